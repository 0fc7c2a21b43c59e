// See include/CNGTCP2.h for why each of these exists.
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/udp.h>
#include "CNGTCP2.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

_Static_assert(sizeof(CNGTCP2_mmsghdr) == sizeof(struct mmsghdr),
               "CNGTCP2_mmsghdr must match struct mmsghdr");
_Static_assert(offsetof(CNGTCP2_mmsghdr, msg_len) == offsetof(struct mmsghdr, msg_len),
               "CNGTCP2_mmsghdr.msg_len must match struct mmsghdr.msg_len");

int CNGTCP2_recvmmsg(int fd, CNGTCP2_mmsghdr *msgvec, unsigned int vlen, int flags) {
    return recvmmsg(fd, (struct mmsghdr *)msgvec, vlen, flags, NULL);
}

int CNGTCP2_sendmmsg(int fd, CNGTCP2_mmsghdr *msgvec, unsigned int vlen, int flags) {
    return sendmmsg(fd, (struct mmsghdr *)msgvec, vlen, flags);
}

size_t CNGTCP2_gso_cmsg_space(void) {
    return CMSG_SPACE(sizeof(uint16_t));
}

int CNGTCP2_set_gso_cmsg(struct msghdr *msg, uint16_t segment_size) {
    if (msg->msg_control == NULL || msg->msg_controllen < CMSG_SPACE(sizeof(uint16_t))) {
        return -1;
    }
    msg->msg_controllen = CMSG_SPACE(sizeof(uint16_t));
    struct cmsghdr *cm = CMSG_FIRSTHDR(msg);
    cm->cmsg_level = SOL_UDP;
    cm->cmsg_type = UDP_SEGMENT;
    cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    memcpy(CMSG_DATA(cm), &segment_size, sizeof(segment_size));
    return 0;
}

int CNGTCP2_probe_gso(int fd) {
    int value = 0;
    socklen_t len = sizeof(value);
    return getsockopt(fd, SOL_UDP, UDP_SEGMENT, &value, &len) == 0;
}

size_t CNGTCP2_max_retry_token_length(void) {
    return NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN;
}

int CNGTCP2_malloc_trim(void) {
    return malloc_trim(0);
}
