// CNGTCP2: the one C module of zrc-relay.
//
// It holds only what Swift cannot import directly:
//  - the ngtcp2 0.12.1, ngtcp2_crypto_gnutls and GnuTLS headers, re-exported as one module;
//  - glibc's recvmmsg/sendmmsg and `struct mmsghdr`, which are hidden behind _GNU_SOURCE and
//    therefore invisible to the Swift Glibc module (the same problem SwiftNIO's CNIOLinux solves);
//  - the CMSG_* macros, which are too complex for the clang importer;
//  - compound-expression macros such as NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN.
//  - the packet-info cmsgs (IP_PKTINFO / IPV6_PKTINFO) that name the local address of a packet;
//  - malloc_trim, from <malloc.h>;
//  - epoll_pwait2 (a nanosecond wait; hidden behind _GNU_SOURCE), with a fallback.
// Every symbol defined here is prefixed CNGTCP2_. Swift code uses `private import CNGTCP2`.
#ifndef CNGTCP2_H
#define CNGTCP2_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <time.h>

#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

// Same layout as glibc's `struct mmsghdr` (part of the glibc ABI); shim.c checks it with
// _Static_assert. Swift fills arrays of these directly, so no per-packet copying happens here.
typedef struct {
    struct msghdr msg_hdr;
    unsigned int msg_len;
} CNGTCP2_mmsghdr;

/// recvmmsg(2); returns the number of messages or -1 with errno set.
int CNGTCP2_recvmmsg(int fd, CNGTCP2_mmsghdr *msgvec, unsigned int vlen, int flags);

/// epoll_wait with a timeout in nanoseconds (epoll_pwait2, Linux 5.11); a negative timeout
/// waits forever. On a kernel without epoll_pwait2 it falls back to epoll_wait, rounding the
/// timeout up to whole milliseconds.
int CNGTCP2_epoll_wait_ns(int epfd, struct epoll_event *events, int maxevents, int64_t timeout_ns);
/// sendmmsg(2); returns the number of messages sent or -1 with errno set.
int CNGTCP2_sendmmsg(int fd, CNGTCP2_mmsghdr *msgvec, unsigned int vlen, int flags);

/// Space a control buffer needs for what a send carries: one UDP_SEGMENT (GSO) cmsg and one
/// source-address cmsg (IP_PKTINFO or IPV6_PKTINFO).
size_t CNGTCP2_send_cmsg_space(void);
/// Points `msg` at `buffer` (CNGTCP2_send_cmsg_space() bytes) and writes into it a UDP_SEGMENT
/// cmsg when `segment_size` > 0 and a source-address cmsg when `source` is not NULL (AF_INET:
/// IP_PKTINFO; AF_INET6, v4-mapped included: IPV6_PKTINFO). With neither, msg_control is NULL.
void CNGTCP2_write_send_cmsgs(struct msghdr *msg, void *buffer, uint16_t segment_size, const struct sockaddr *source);
/// Space a receive control buffer needs for the destination-address cmsg.
size_t CNGTCP2_receive_cmsg_space(void);
/// Asks the kernel to report each packet's destination address (AF_INET: IP_PKTINFO;
/// AF_INET6: IPV6_RECVPKTINFO, which also covers IPv4 on a dual-stack socket). Returns 0 or -1.
int CNGTCP2_enable_destination_address(int fd, int family);
/// The destination address of a received message, as a sockaddr of the socket's `family`
/// (IPv4 on an AF_INET6 socket becomes v4-mapped) with `port` (host order). Returns its
/// length, or 0 when the message carries no destination-address cmsg.
socklen_t CNGTCP2_read_destination_address(const struct msghdr *msg, int family, uint16_t port, struct sockaddr_storage *out);
/// Whether the kernel accepts UDP_SEGMENT on this socket (a getsockopt probe).
int CNGTCP2_probe_gso(int fd);

/// The maximum length of a Retry token made by ngtcp2_crypto_generate_retry_token.
size_t CNGTCP2_max_retry_token_length(void);

/// malloc_trim(3): glibc's <malloc.h> is not part of Swift's Glibc module. Returns 1 if memory
/// was given back to the system.
int CNGTCP2_malloc_trim(void);

#endif
