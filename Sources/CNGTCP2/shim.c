// See include/CNGTCP2.h for why each of these exists.
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/epoll.h>
#include <time.h>
#include <netinet/udp.h>
#include <netinet/in.h>
#include <arpa/inet.h>
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

/* Set once a kernel answered ENOSYS; read and written from any loop thread (relaxed). */
static int epoll_pwait2_missing = 0;

int CNGTCP2_epoll_wait_ns(int epfd, struct epoll_event *events, int maxevents, int64_t timeout_ns) {
    if (timeout_ns < 0) return epoll_wait(epfd, events, maxevents, -1);
    if (!__atomic_load_n(&epoll_pwait2_missing, __ATOMIC_RELAXED)) {
        struct timespec ts = { .tv_sec = (time_t)(timeout_ns / 1000000000), .tv_nsec = (long)(timeout_ns % 1000000000) };
        int n = epoll_pwait2(epfd, events, maxevents, &ts, NULL);
        if (n >= 0 || errno != ENOSYS) return n;
        __atomic_store_n(&epoll_pwait2_missing, 1, __ATOMIC_RELAXED);
    }
    int64_t ms = (timeout_ns + 999999) / 1000000;
    return epoll_wait(epfd, events, maxevents, ms > 1000 ? 1000 : (int)ms);
}

int CNGTCP2_sendmmsg(int fd, CNGTCP2_mmsghdr *msgvec, unsigned int vlen, int flags) {
    return sendmmsg(fd, (struct mmsghdr *)msgvec, vlen, flags);
}

size_t CNGTCP2_send_cmsg_space(void) {
    return CMSG_SPACE(sizeof(uint16_t)) + CMSG_SPACE(sizeof(struct in6_pktinfo));
}

void CNGTCP2_write_send_cmsgs(struct msghdr *msg, void *buffer, uint16_t segment_size, const struct sockaddr *source) {
    size_t length = 0;
    if (segment_size > 0) {
        length += CMSG_SPACE(sizeof(uint16_t));
    }
    if (source != NULL && source->sa_family == AF_INET) {
        length += CMSG_SPACE(sizeof(struct in_pktinfo));
    } else if (source != NULL && source->sa_family == AF_INET6) {
        length += CMSG_SPACE(sizeof(struct in6_pktinfo));
    } else {
        source = NULL;
    }
    if (length == 0) {
        msg->msg_control = NULL;
        msg->msg_controllen = 0;
        return;
    }
    memset(buffer, 0, length);
    msg->msg_control = buffer;
    msg->msg_controllen = length;
    struct cmsghdr *cm = CMSG_FIRSTHDR(msg);
    if (segment_size > 0) {
        cm->cmsg_level = SOL_UDP;
        cm->cmsg_type = UDP_SEGMENT;
        cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        memcpy(CMSG_DATA(cm), &segment_size, sizeof(segment_size));
        cm = CMSG_NXTHDR(msg, cm);
    }
    if (source != NULL && cm != NULL) {
        if (source->sa_family == AF_INET) {
            struct in_pktinfo info;
            memset(&info, 0, sizeof(info));
            info.ipi_spec_dst = ((const struct sockaddr_in *)source)->sin_addr;
            cm->cmsg_level = IPPROTO_IP;
            cm->cmsg_type = IP_PKTINFO;
            cm->cmsg_len = CMSG_LEN(sizeof(info));
            memcpy(CMSG_DATA(cm), &info, sizeof(info));
        } else {
            const struct sockaddr_in6 *source6 = (const struct sockaddr_in6 *)source;
            struct in6_pktinfo info;
            memset(&info, 0, sizeof(info));
            info.ipi6_addr = source6->sin6_addr;
            info.ipi6_ifindex = source6->sin6_scope_id;
            cm->cmsg_level = IPPROTO_IPV6;
            cm->cmsg_type = IPV6_PKTINFO;
            cm->cmsg_len = CMSG_LEN(sizeof(info));
            memcpy(CMSG_DATA(cm), &info, sizeof(info));
        }
    }
}

size_t CNGTCP2_receive_cmsg_space(void) {
    // Room for both kinds, and for a cmsg the kernel may add that we do not read.
    return CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo)) + 64;
}

int CNGTCP2_enable_destination_address(int fd, int family) {
    int one = 1;
    if (family == AF_INET) {
        return setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
    }
    return setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
}

socklen_t CNGTCP2_read_destination_address(const struct msghdr *msg, int family, uint16_t port, struct sockaddr_storage *out) {
    if (msg->msg_control == NULL || msg->msg_controllen < sizeof(struct cmsghdr)) {
        return 0;
    }
    for (struct cmsghdr *cm = CMSG_FIRSTHDR((struct msghdr *)msg); cm != NULL; cm = CMSG_NXTHDR((struct msghdr *)msg, cm)) {
        if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO && cm->cmsg_len >= CMSG_LEN(sizeof(struct in_pktinfo))) {
            struct in_pktinfo info;
            memcpy(&info, CMSG_DATA(cm), sizeof(info));
            memset(out, 0, sizeof(*out));
            if (family == AF_INET) {
                struct sockaddr_in *v4 = (struct sockaddr_in *)out;
                v4->sin_family = AF_INET;
                v4->sin_port = htons(port);
                v4->sin_addr = info.ipi_addr;
                return sizeof(struct sockaddr_in);
            }
            struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
            v6->sin6_family = AF_INET6;
            v6->sin6_port = htons(port);
            v6->sin6_addr.s6_addr[10] = 0xff;
            v6->sin6_addr.s6_addr[11] = 0xff;
            memcpy(&v6->sin6_addr.s6_addr[12], &info.ipi_addr, 4);
            return sizeof(struct sockaddr_in6);
        }
        if (family == AF_INET6 && cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO
            && cm->cmsg_len >= CMSG_LEN(sizeof(struct in6_pktinfo))) {
            struct in6_pktinfo info;
            memcpy(&info, CMSG_DATA(cm), sizeof(info));
            memset(out, 0, sizeof(*out));
            struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
            v6->sin6_family = AF_INET6;
            v6->sin6_port = htons(port);
            v6->sin6_addr = info.ipi6_addr;
            if (IN6_IS_ADDR_LINKLOCAL(&info.ipi6_addr)) {
                v6->sin6_scope_id = info.ipi6_ifindex;
            }
            return sizeof(struct sockaddr_in6);
        }
    }
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
