// CNGTCP2: the one C module of zrc-relay.
//
// It holds only what Swift cannot import directly:
//  - the ngtcp2 0.12.1, ngtcp2_crypto_gnutls and GnuTLS headers, re-exported as one module;
//  - glibc's recvmmsg/sendmmsg and `struct mmsghdr`, which are hidden behind _GNU_SOURCE and
//    therefore invisible to the Swift Glibc module (the same problem SwiftNIO's CNIOLinux solves);
//  - the CMSG_* macros, which are too complex for the clang importer;
//  - compound-expression macros such as NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN.
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

// Same layout as glibc's `struct mmsghdr` (part of the glibc ABI); shim.c checks it with
// _Static_assert. Swift fills arrays of these directly, so no per-packet copying happens here.
typedef struct {
    struct msghdr msg_hdr;
    unsigned int msg_len;
} CNGTCP2_mmsghdr;

/// recvmmsg(2); returns the number of messages or -1 with errno set.
int CNGTCP2_recvmmsg(int fd, CNGTCP2_mmsghdr *msgvec, unsigned int vlen, int flags);
/// sendmmsg(2); returns the number of messages sent or -1 with errno set.
int CNGTCP2_sendmmsg(int fd, CNGTCP2_mmsghdr *msgvec, unsigned int vlen, int flags);

/// Space a control buffer needs for one UDP_SEGMENT (GSO) cmsg.
size_t CNGTCP2_gso_cmsg_space(void);
/// Writes a UDP_SEGMENT cmsg with `segment_size` into `msg`'s control buffer (which must be at
/// least CNGTCP2_gso_cmsg_space() bytes) and sets msg_controllen. Returns 0, or -1 if it does not fit.
int CNGTCP2_set_gso_cmsg(struct msghdr *msg, uint16_t segment_size);
/// Whether the kernel accepts UDP_SEGMENT on this socket (a getsockopt probe).
int CNGTCP2_probe_gso(int fd);

/// The maximum length of a Retry token made by ngtcp2_crypto_generate_retry_token.
size_t CNGTCP2_max_retry_token_length(void);

/// malloc_trim(3): glibc's <malloc.h> is not part of Swift's Glibc module. Returns 1 if memory
/// was given back to the system.
int CNGTCP2_malloc_trim(void);

#endif
