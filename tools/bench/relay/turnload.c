/*
 * turnload: TURN (RFC 8656 / RFC 5766) load generator for the relay benchmark.
 *
 * For N "allocations" it opens N pairs of UDP sockets (side A, side B). Side A Allocates a
 * UDP relay on the TURN server (long-term credentials when the server asks for them:
 * MESSAGE-INTEGRITY = HMAC-SHA1 keyed with MD5(user:realm:pass)) and ChannelBinds channel
 * 0x4000 to side B, then sends ChannelData at a fixed total rate for a fixed time.
 *
 *   --peer udp (default): B is a plain UDP socket, the TURN "peer". Every datagram crosses
 *       the relay once (client -> allocation -> peer): one receive and one send in the relay,
 *       the same work per forwarded datagram as a relay between two connected clients.
 *   --peer turn: B Allocates too and both sides ChannelBind to the other's relayed address.
 *       Every datagram crosses the relay twice (client A -> relay A -> relay B -> client B).
 *
 *   oneway: A -> relay -> B; B counts what arrives.
 *   rtt:    B echoes every datagram back through the relay; A measures the round trip
 *           from the CLOCK_MONOTONIC send time carried in the payload.
 *
 * Payload: send time (ns, u64 BE) | sequence (u32 BE) | pair index (u32 BE) | zeros.
 * One thread, epoll, a timerfd tick for pacing, sendmmsg/recvmmsg batches.
 *
 * With --relay-pid PID: the relay's utime+stime (/proc/PID/stat) over the measured window
 * (start of sending .. end of the drain) divided by the datagrams the relay delivered
 * (both directions in rtt mode), and VmRSS from /proc/PID/status.
 *
 * Build: cc -O2 -o turnload turnload.c -lcrypto
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#define MAGIC 0x2112A442u
#define CHANNEL 0x4000
#define BATCH 64
#define BUFSZ 2048

/* STUN methods / classes / attributes used here. */
enum {
    M_ALLOCATE = 0x003, M_REFRESH = 0x004, M_CHANNEL_BIND = 0x009,
    C_SUCCESS = 0x100, C_ERROR = 0x110,
    A_USERNAME = 0x0006, A_MESSAGE_INTEGRITY = 0x0008, A_ERROR_CODE = 0x0009,
    A_CHANNEL_NUMBER = 0x000C, A_LIFETIME = 0x000D, A_XOR_PEER_ADDRESS = 0x0012,
    A_REALM = 0x0014, A_NONCE = 0x0015, A_XOR_RELAYED_ADDRESS = 0x0016,
    A_REQUESTED_TRANSPORT = 0x0019,
};

/* ---- options ---- */
static const char *opt_target = "coturn";
static struct sockaddr_in opt_server;
static char opt_user[128] = "bench", opt_pass[128] = "bench";
static int opt_allocations = 1;
static long opt_rate = 1000;
static int opt_size = 1200;
static double opt_duration = 5.0;
static int opt_rtt = 0;
static int opt_pid = 0;
static int opt_json = 0;
static int opt_tick_us = 1000;
static int opt_burst = 4;
static double opt_warmup = 0.0;
static int opt_settle_ms = 300;
static int opt_drain_ms = 500;
static int opt_verbose = 0;
static int opt_peer_turn = 0; /* 0: B is a plain UDP peer (one relay hop); 1: B has its own allocation (two hops) */

/* ---- per-socket state ---- */
typedef struct {
    int fd;
    int plain; /* a plain UDP peer socket (no allocation) */
    struct sockaddr_in relayed; /* allocated side: its relayed address; plain side: its own address */
    int have_nonce;
    char realm[256];
    size_t realm_len;
    char nonce[256];
    size_t nonce_len;
} side_t;

static side_t *sides; /* 2 * allocations: 2p = A, 2p+1 = B */
static uint8_t lt_key[16];
static int lt_key_ready = 0;

/* ---- tallies ---- */
static uint64_t n_sent, n_received, n_forwarded, n_send_failures, n_echo_failures;
static uint32_t *rtt_ns;
static size_t rtt_count, rtt_cap;

static void die(const char *fmt, const char *arg) {
    fprintf(stderr, "turnload: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(1);
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static void put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xff; }
static void put32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }
static void put64(uint8_t *p, uint64_t v) { put32(p, v >> 32); put32(p + 4, (uint32_t)v); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) << 32 | get32(p + 4); }

/* ---- /proc readings ---- */
static double proc_cpu_us(int pid) {
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    /* After "comm)": field 3 (state) is token 0; utime (14) and stime (15) are tokens 11, 12. */
    unsigned long long ut = 0, st = 0;
    int tok = 0;
    char *save = NULL;
    for (char *t = strtok_r(p + 1, " ", &save); t; t = strtok_r(NULL, " ", &save), tok++) {
        if (tok == 11) ut = strtoull(t, NULL, 10);
        if (tok == 12) { st = strtoull(t, NULL, 10); break; }
    }
    if (tok < 12) return -1;
    return (double)(ut + st) * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

static long proc_rss_kib(int pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kib = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) { kib = strtol(line + 6, NULL, 10); break; }
    }
    fclose(f);
    return kib;
}

static double self_cpu_us(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* ---- STUN messages ---- */
typedef struct {
    uint8_t b[BUFSZ];
    size_t n;
} msg_t;

static void msg_init(msg_t *m, uint16_t type, uint8_t tid[12]) {
    put16(m->b, type);
    put16(m->b + 2, 0);
    put32(m->b + 4, MAGIC);
    for (int i = 0; i < 12; i++) tid[i] = (uint8_t)(random() >> 7);
    memcpy(m->b + 8, tid, 12);
    m->n = 20;
}

static void msg_attr(msg_t *m, uint16_t type, const void *value, size_t len) {
    size_t padded = (len + 3) & ~(size_t)3;
    put16(m->b + m->n, type);
    put16(m->b + m->n + 2, (uint16_t)len);
    memcpy(m->b + m->n + 4, value, len);
    memset(m->b + m->n + 4 + len, 0, padded - len);
    m->n += 4 + padded;
    put16(m->b + 2, (uint16_t)(m->n - 20));
}

/* MESSAGE-INTEGRITY: HMAC-SHA1 over the message so far, its length field already counting the attribute. */
static void msg_integrity(msg_t *m) {
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    put16(m->b + 2, (uint16_t)(m->n - 20 + 24));
    HMAC(EVP_sha1(), lt_key, sizeof lt_key, m->b, m->n, mac, &maclen);
    msg_attr(m, A_MESSAGE_INTEGRITY, mac, 20);
}

static void xor_address(uint8_t out[8], const struct sockaddr_in *a) {
    uint32_t ip = ntohl(a->sin_addr.s_addr);
    out[0] = 0;
    out[1] = 1; /* IPv4 */
    put16(out + 2, ntohs(a->sin_port) ^ (MAGIC >> 16));
    put32(out + 4, ip ^ MAGIC);
}

/* Finds attribute `type` in a STUN message; returns its value and length, or NULL. */
static const uint8_t *find_attr(const uint8_t *msg, size_t len, uint16_t type, size_t *vlen) {
    size_t total = 20 + get16(msg + 2);
    if (total > len) total = len;
    size_t off = 20;
    while (off + 4 <= total) {
        uint16_t t = get16(msg + off), l = get16(msg + off + 2);
        if (off + 4 + l > total) break;
        if (t == type) { *vlen = l; return msg + off + 4; }
        off += 4 + (((size_t)l + 3) & ~(size_t)3);
    }
    return NULL;
}

static int parse_xor_address(const uint8_t *v, size_t l, struct sockaddr_in *out) {
    if (!v || l < 8 || v[1] != 1) return -1;
    memset(out, 0, sizeof *out);
    out->sin_family = AF_INET;
    out->sin_port = htons(get16(v + 2) ^ (MAGIC >> 16));
    out->sin_addr.s_addr = htonl(get32(v + 4) ^ MAGIC);
    return 0;
}

static void make_key(const char *realm, size_t realm_len) {
    char text[600];
    int n = snprintf(text, sizeof text, "%s:%.*s:%s", opt_user, (int)realm_len, realm, opt_pass);
    unsigned int outlen = 0;
    EVP_Digest(text, (size_t)n, lt_key, &outlen, EVP_md5(), NULL);
    lt_key_ready = 1;
}

typedef void (*attrs_fn)(msg_t *, const void *);

/*
 * One request/response transaction on a side's socket: retransmits (RFC-style doubling
 * from 100 ms, 7 tries), answers a 401/438 challenge by retrying with credentials.
 * On success copies the response into resp and returns its length; -1 on failure, -2 on
 * 437 (Allocation Mismatch).
 */
static int request(side_t *s, uint16_t method, attrs_fn add, const void *arg, uint8_t *resp, const char *what) {
    for (int round = 0; round < 4; round++) {
        msg_t m;
        uint8_t tid[12];
        msg_init(&m, method, tid);
        add(&m, arg);
        if (s->have_nonce) {
            msg_attr(&m, A_USERNAME, opt_user, strlen(opt_user));
            msg_attr(&m, A_REALM, s->realm, s->realm_len);
            msg_attr(&m, A_NONCE, s->nonce, s->nonce_len);
            msg_integrity(&m);
        }
        int got = -1;
        int timeout = 100;
        for (int attempt = 0; attempt < 7 && got < 0; attempt++, timeout *= 2) {
            if (send(s->fd, m.b, m.n, 0) < 0 && errno != EAGAIN) {
                fprintf(stderr, "turnload: %s: send: %s\n", what, strerror(errno));
                return -1;
            }
            uint64_t deadline = now_ns() + (uint64_t)timeout * 1000000ull;
            for (;;) {
                uint64_t t = now_ns();
                if (t >= deadline) break;
                struct pollfd pfd = {s->fd, POLLIN, 0};
                int left = (int)((deadline - t) / 1000000ull) + 1;
                if (poll(&pfd, 1, left) <= 0) continue;
                ssize_t r = recv(s->fd, resp, BUFSZ, MSG_DONTWAIT);
                if (r < 20) continue;
                if ((resp[0] & 0xC0) != 0 || get32(resp + 4) != MAGIC || memcmp(resp + 8, tid, 12) != 0) continue;
                got = (int)r;
                break;
            }
        }
        if (got < 0) {
            fprintf(stderr, "turnload: %s: no answer from the server\n", what);
            return -1;
        }
        uint16_t type = get16(resp);
        if ((type & 0x0110) == C_SUCCESS) return got;
        size_t l = 0;
        const uint8_t *e = find_attr(resp, (size_t)got, A_ERROR_CODE, &l);
        int code = (e && l >= 4) ? (e[2] & 7) * 100 + e[3] : 0;
        if ((code == 401 || code == 438) && round < 3) {
            size_t rl = 0, nl = 0;
            const uint8_t *realm = find_attr(resp, (size_t)got, A_REALM, &rl);
            const uint8_t *nonce = find_attr(resp, (size_t)got, A_NONCE, &nl);
            if (nonce && nl < sizeof s->nonce) { memcpy(s->nonce, nonce, nl); s->nonce_len = nl; }
            if (realm && rl < sizeof s->realm) {
                memcpy(s->realm, realm, rl);
                s->realm_len = rl;
                if (!lt_key_ready) make_key(s->realm, s->realm_len);
            }
            if (!nonce || s->realm_len == 0) {
                fprintf(stderr, "turnload: %s: %d without REALM/NONCE\n", what, code);
                return -1;
            }
            s->have_nonce = 1;
            continue;
        }
        if (code == 437) return -2; /* allocation mismatch: the caller decides */
        fprintf(stderr, "turnload: %s: error %d %.*s\n", what, code, e && l > 4 ? (int)(l - 4) : 0, e ? (const char *)e + 4 : "");
        return -1;
    }
    fprintf(stderr, "turnload: %s: authentication failed\n", what);
    return -1;
}

static void attrs_allocate(msg_t *m, const void *arg) {
    (void)arg;
    uint8_t transport[4] = {17, 0, 0, 0}; /* UDP */
    msg_attr(m, A_REQUESTED_TRANSPORT, transport, 4);
}

static void attrs_channel_bind(msg_t *m, const void *arg) {
    const struct sockaddr_in *peer = arg;
    uint8_t ch[4] = {CHANNEL >> 8, CHANNEL & 0xff, 0, 0};
    uint8_t addr[8];
    msg_attr(m, A_CHANNEL_NUMBER, ch, 4);
    xor_address(addr, peer);
    msg_attr(m, A_XOR_PEER_ADDRESS, addr, 8);
}

static void attrs_refresh_zero(msg_t *m, const void *arg) {
    (void)arg;
    uint8_t zero[4] = {0, 0, 0, 0};
    msg_attr(m, A_LIFETIME, zero, 4);
}

static int open_side(side_t *s) {
    s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0) return -1;
    int size = 4 << 20;
    if (setsockopt(s->fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
        setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    if (setsockopt(s->fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0)
        setsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    if (connect(s->fd, (struct sockaddr *)&opt_server, sizeof opt_server) < 0) return -1;
    return 0;
}

/* A plain UDP peer on 127.0.0.1 talking to `relayed` (the other side's relayed address). */
static int open_plain(side_t *s, const struct sockaddr_in *relayed) {
    s->plain = 1;
    s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0) return -1;
    int size = 4 << 20;
    if (setsockopt(s->fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
        setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    if (setsockopt(s->fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0)
        setsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(s->fd, (struct sockaddr *)&local, sizeof local) < 0) return -1;
    if (connect(s->fd, (const struct sockaddr *)relayed, sizeof *relayed) < 0) return -1;
    socklen_t len = sizeof s->relayed;
    return getsockname(s->fd, (struct sockaddr *)&s->relayed, &len);
}

/* ---- data phase ---- */
static struct mmsghdr smsg[BATCH], rmsg[BATCH], emsg[BATCH];
static struct iovec siov[BATCH], riov[BATCH], eiov[BATCH];
static uint8_t sbuf[BATCH][BUFSZ], rbuf[BATCH][BUFSZ];

static int next_pair = 0;

/* Sends k datagrams of pair p in one sendmmsg. */
static void send_batch(int p, int k, uint64_t ts) {
    for (int j = 0; j < k; j++) {
        uint8_t *b = sbuf[j];
        put64(b + 4, ts);
        put32(b + 12, (uint32_t)(n_sent + (uint64_t)j));
        put32(b + 16, (uint32_t)p);
        siov[j].iov_len = 4 + (size_t)opt_size;
    }
    int done = 0;
    while (done < k) {
        int r = sendmmsg(sides[2 * p].fd, smsg + done, (unsigned)(k - done), MSG_DONTWAIT);
        if (r <= 0) break;
        done += r;
    }
    n_send_failures += (uint64_t)(k - done);
    n_sent += (uint64_t)k;
}

/* One pacing tick: send what is due since start, at most 20 ms worth at once. */
static void pace(uint64_t start, uint64_t now) {
    double target = (double)(now - start) / 1e9 * (double)opt_rate;
    int64_t due = (int64_t)target - (int64_t)n_sent;
    int64_t cap = opt_rate / 50 > 1 ? opt_rate / 50 : 1;
    if (due > cap) due = cap;
    if (due <= 0) return;
    int pairs = opt_allocations;
    int64_t chunk = (due + pairs - 1) / pairs;
    if (pairs > 1 && chunk < opt_burst) chunk = opt_burst;
    while (due > 0) {
        int k = (int)(chunk < due ? chunk : due);
        if (k > BATCH) k = BATCH;
        send_batch(next_pair, k, now);
        due -= k;
        if (k < BATCH || pairs > 1) next_pair = (next_pair + 1) % pairs;
    }
}

static void receive(int idx) {
    side_t *s = &sides[idx];
    int is_b = idx & 1;
    int plain = s->plain;
    for (;;) {
        for (int j = 0; j < BATCH; j++) riov[j].iov_len = BUFSZ;
        int r = recvmmsg(s->fd, rmsg, BATCH, MSG_DONTWAIT, NULL);
        if (r <= 0) return;
        uint64_t now = opt_rtt && !is_b ? now_ns() : 0;
        int echoes = 0;
        for (int j = 0; j < r; j++) {
            uint8_t *b = rbuf[j];
            size_t len = rmsg[j].msg_len;
            const uint8_t *payload = b;
            if (plain) {
                if (len < 16) continue;
            } else {
                if (len < 4 || (b[0] & 0xC0) != 0x40) continue; /* STUN (late responses): ignore */
                size_t plen = get16(b + 2);
                if (plen + 4 > len || plen < 16) continue;
                payload = b + 4;
            }
            n_forwarded++;
            if (!opt_rtt) {
                n_received++;
            } else if (is_b) {
                eiov[echoes].iov_base = b;
                eiov[echoes].iov_len = len; /* plain: to A's relayed address; turn: the same channel, bound to A */
                echoes++;
            } else {
                n_received++;
                uint64_t sent_at = get64(payload);
                uint64_t d = now > sent_at ? now - sent_at : 0;
                if (rtt_count < rtt_cap) rtt_ns[rtt_count++] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
            }
        }
        if (echoes > 0) {
            int done = 0;
            while (done < echoes) {
                int w = sendmmsg(s->fd, emsg + done, (unsigned)(echoes - done), MSG_DONTWAIT);
                if (w <= 0) break;
                done += w;
            }
            n_echo_failures += (uint64_t)(echoes - done);
        }
        if (r < BATCH) return;
    }
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double percentile_us(double p) {
    if (rtt_count == 0) return -1;
    double r = (double)rtt_count * p;
    long idx = (long)r;
    if ((double)idx < r) idx++; /* ceil */
    idx -= 1;
    if (idx < 0) idx = 0;
    if ((size_t)idx >= rtt_count) idx = (long)rtt_count - 1;
    return rtt_ns[idx] / 1000.0;
}

static void usage(void) {
    fprintf(stderr,
            "usage: turnload [--server HOST:PORT] [--user USER:PASS] [--allocations N] [--rate R] [--size S]\n"
            "                [--duration SEC] [--mode oneway|rtt] [--peer udp|turn] [--relay-pid PID] [--json]\n"
            "                [--target NAME]"
            "                [--tick-us US] [--burst K] [--warmup SEC] [--settle-ms MS] [--drain-ms MS] [-v]\n"
            "  --rate 0: only establish the pairs and hold them for --duration (RSS per allocation).\n");
    exit(2);
}

static void parse_args(int argc, char **argv) {
    memset(&opt_server, 0, sizeof opt_server);
    opt_server.sin_family = AF_INET;
    opt_server.sin_port = htons(3478);
    opt_server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDV() do { if (!v) usage(); i++; } while (0)
        if (!strcmp(a, "--server")) {
            NEEDV();
            char host[64];
            const char *colon = strrchr(v, ':');
            if (!colon || (size_t)(colon - v) >= sizeof host) usage();
            memcpy(host, v, (size_t)(colon - v));
            host[colon - v] = 0;
            if (inet_pton(AF_INET, host, &opt_server.sin_addr) != 1) die("--server: not an IPv4 address: %s", host);
            opt_server.sin_port = htons((uint16_t)atoi(colon + 1));
        } else if (!strcmp(a, "--user")) {
            NEEDV();
            const char *colon = strchr(v, ':');
            if (!colon || (size_t)(colon - v) >= sizeof opt_user || strlen(colon + 1) >= sizeof opt_pass) usage();
            memcpy(opt_user, v, (size_t)(colon - v));
            opt_user[colon - v] = 0;
            strcpy(opt_pass, colon + 1);
        } else if (!strcmp(a, "--allocations")) { NEEDV(); opt_allocations = atoi(v); }
        else if (!strcmp(a, "--rate")) { NEEDV(); opt_rate = atol(v); }
        else if (!strcmp(a, "--size")) { NEEDV(); opt_size = atoi(v); }
        else if (!strcmp(a, "--duration")) { NEEDV(); opt_duration = atof(v); }
        else if (!strcmp(a, "--mode")) {
            NEEDV();
            if (!strcmp(v, "rtt")) opt_rtt = 1;
            else if (!strcmp(v, "oneway")) opt_rtt = 0;
            else usage();
        } else if (!strcmp(a, "--relay-pid")) { NEEDV(); opt_pid = atoi(v); }
        else if (!strcmp(a, "--json")) opt_json = 1;
        else if (!strcmp(a, "--target")) { NEEDV(); opt_target = v; }
        else if (!strcmp(a, "--tick-us")) { NEEDV(); opt_tick_us = atoi(v); }
        else if (!strcmp(a, "--burst")) { NEEDV(); opt_burst = atoi(v); }
        else if (!strcmp(a, "--warmup")) { NEEDV(); opt_warmup = atof(v); }
        else if (!strcmp(a, "--settle-ms")) { NEEDV(); opt_settle_ms = atoi(v); }
        else if (!strcmp(a, "--drain-ms")) { NEEDV(); opt_drain_ms = atoi(v); }
        else if (!strcmp(a, "--peer")) {
            NEEDV();
            if (!strcmp(v, "turn")) opt_peer_turn = 1;
            else if (!strcmp(v, "udp")) opt_peer_turn = 0;
            else usage();
        } else if (!strcmp(a, "-v")) opt_verbose = 1;
        else usage();
#undef NEEDV
    }
    if (opt_allocations < 1 || opt_allocations > 100000) die("--allocations must be 1..100000%s", "");
    if (opt_rate < 0 || opt_rate > 10000000) die("--rate must be 0..10000000%s", "");
    if (opt_size < 16 || opt_size > 1400) die("--size must be 16..1400%s", "");
    if (opt_duration <= 0) die("--duration must be > 0%s", "");
    if (opt_tick_us < 50) opt_tick_us = 50;
    if (opt_burst < 1) opt_burst = 1;
    if (opt_burst > BATCH) opt_burst = BATCH;
    if (opt_pid) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/stat", opt_pid);
        if (access(path, R_OK) != 0) die("--relay-pid: no such process: %s", path);
    }
}

/* Runs the sending loop for `seconds` (plus the drain), counting into the tallies. */
static void run_traffic(int ep, int tfd, double seconds, int drain_ms) {
    uint64_t start = now_ns();
    uint64_t send_end = start + (uint64_t)(seconds * 1e9);
    uint64_t stop = send_end + (uint64_t)drain_ms * 1000000ull;
    int sending = opt_rate > 0;
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, 100);
        if (n < 0 && errno != EINTR) { perror("epoll_wait"); exit(1); }
        for (int i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64;
            if (tag == UINT64_MAX) {
                uint64_t expirations;
                if (read(tfd, &expirations, sizeof expirations) < 0) {}
                if (sending) {
                    uint64_t t = now_ns();
                    if (t >= send_end) {
                        pace(start, send_end);
                        sending = 0;
                    } else {
                        pace(start, t);
                    }
                }
            } else {
                receive((int)tag);
            }
        }
        if (now_ns() >= stop) break;
    }
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    srandom((unsigned)(now_ns() ^ (uint64_t)getpid()));

    int nsides = 2 * opt_allocations;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    long rss_before = opt_pid ? proc_rss_kib(opt_pid) : -1;

    /* Set-up: open, Allocate, ChannelBind. */
    sides = calloc((size_t)nsides, sizeof *sides);
    if (!sides) die("out of memory%s", "");
    uint8_t resp[BUFSZ];
    uint64_t t_setup = now_ns();
    for (int i = 0; i < nsides; i++) {
        if ((i & 1) && !opt_peer_turn) {
            if (open_plain(&sides[i], &sides[i - 1].relayed) < 0) die("peer socket: %s", strerror(errno));
            continue;
        }
        /* 437: the server still holds an allocation on this 5-tuple (a previous run's socket had
         * the same local port; coturn frees released allocations about a second later): take
         * another local port. */
        int r = -2;
        for (int attempt = 0; attempt < 20 && r == -2; attempt++) {
            if (attempt > 0) close(sides[i].fd);
            memset(&sides[i], 0, sizeof sides[i]);
            if (open_side(&sides[i]) < 0) die("socket: %s", strerror(errno));
            r = request(&sides[i], M_ALLOCATE, attrs_allocate, NULL, resp, "Allocate");
        }
        if (r == -2) fprintf(stderr, "turnload: Allocate: 437 Allocation Mismatch on 20 local ports\n");
        if (r < 0) exit(1);
        size_t l = 0;
        const uint8_t *v = find_attr(resp, (size_t)r, A_XOR_RELAYED_ADDRESS, &l);
        if (parse_xor_address(v, l, &sides[i].relayed) < 0) die("Allocate: no IPv4 XOR-RELAYED-ADDRESS%s", "");
    }
    for (int i = 0; i < nsides; i++) {
        if (sides[i].plain) continue;
        side_t *peer = &sides[i ^ 1];
        if (request(&sides[i], M_CHANNEL_BIND, attrs_channel_bind, &peer->relayed, resp, "ChannelBind") < 0) exit(1);
    }
    double setup_s = (double)(now_ns() - t_setup) / 1e9;
    if (opt_verbose) {
        char a[32];
        inet_ntop(AF_INET, &sides[0].relayed.sin_addr, a, sizeof a);
        fprintf(stderr, "turnload: %d pairs set up in %.3f s (%s); first relayed %s:%d\n", opt_allocations, setup_s,
                sides[0].have_nonce ? "long-term credentials" : "no authentication", a, ntohs(sides[0].relayed.sin_port));
    }

    /* Data-phase structures. */
    for (int j = 0; j < BATCH; j++) {
        memset(sbuf[j], 0, BUFSZ);
        put16(sbuf[j], CHANNEL);
        put16(sbuf[j] + 2, (uint16_t)opt_size);
        siov[j].iov_base = sbuf[j];
        smsg[j].msg_hdr.msg_iov = &siov[j];
        smsg[j].msg_hdr.msg_iovlen = 1;
        riov[j].iov_base = rbuf[j];
        riov[j].iov_len = BUFSZ;
        rmsg[j].msg_hdr.msg_iov = &riov[j];
        rmsg[j].msg_hdr.msg_iovlen = 1;
        emsg[j].msg_hdr.msg_iov = &eiov[j];
        emsg[j].msg_hdr.msg_iovlen = 1;
    }
    if (opt_rtt) {
        rtt_cap = (size_t)((double)opt_rate * (opt_duration + 1.0)) + 16;
        if (rtt_cap > 16u << 20) rtt_cap = 16u << 20;
        rtt_ns = malloc(rtt_cap * sizeof *rtt_ns);
        if (!rtt_ns) die("out of memory%s", "");
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < nsides; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, sides[i].fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
    }
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct itimerspec its = {{opt_tick_us / 1000000, (long)(opt_tick_us % 1000000) * 1000},
                             {opt_tick_us / 1000000, (long)(opt_tick_us % 1000000) * 1000}};
    timerfd_settime(tfd, 0, &its, NULL);
    struct epoll_event tev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev);

    if (opt_warmup > 0 && opt_rate > 0) {
        run_traffic(ep, tfd, opt_warmup, 200);
        n_sent = n_received = n_forwarded = n_send_failures = n_echo_failures = 0;
        rtt_count = 0;
        next_pair = 0;
    } else {
        sleep_ms(opt_settle_ms); /* let set-up leftovers settle */
    }

    double cpu0 = opt_pid ? proc_cpu_us(opt_pid) : -1;
    double self0 = self_cpu_us();
    uint64_t w0 = now_ns();
    run_traffic(ep, tfd, opt_duration, opt_rate > 0 ? opt_drain_ms : 0);
    double window_s = (double)(now_ns() - w0) / 1e9;
    double cpu1 = opt_pid ? proc_cpu_us(opt_pid) : -1;
    double self1 = self_cpu_us();
    long rss = opt_pid ? proc_rss_kib(opt_pid) : -1;

    /* Release the allocations (Refresh with LIFETIME 0); failures here do not matter. */
    for (int i = 0; i < nsides; i++) {
        if (!sides[i].plain) request(&sides[i], M_REFRESH, attrs_refresh_zero, NULL, resp, "Refresh(0)");
        close(sides[i].fd);
    }

    if (opt_rtt && rtt_count) qsort(rtt_ns, rtt_count, sizeof *rtt_ns, cmp_u32);
    double loss = n_sent ? 1.0 - (double)n_received / (double)n_sent : 0.0;
    if (loss < 0) loss = 0;
    double fwd_rate = (double)n_forwarded / opt_duration;
    double cpu_per = (opt_pid && cpu0 >= 0 && cpu1 >= 0 && n_forwarded > 0) ? (cpu1 - cpu0) / (double)n_forwarded : -1;
    double gen_pct = window_s > 0 ? (self1 - self0) / (window_s * 1e6) * 100.0 : 0;
    double p50 = percentile_us(0.5), p99 = percentile_us(0.99), p999 = percentile_us(0.999);
    uint64_t failures = n_send_failures + n_echo_failures;

    if (opt_json) {
        char b50[32] = "null", b99[32] = "null", b999[32] = "null", bcpu[32] = "null", brss[32] = "null", brss0[32] = "null";
        if (p50 >= 0) snprintf(b50, sizeof b50, "%.3f", p50);
        if (p99 >= 0) snprintf(b99, sizeof b99, "%.3f", p99);
        if (p999 >= 0) snprintf(b999, sizeof b999, "%.3f", p999);
        if (cpu_per >= 0) snprintf(bcpu, sizeof bcpu, "%.3f", cpu_per);
        if (rss >= 0) snprintf(brss, sizeof brss, "%ld", rss);
        if (rss_before >= 0) snprintf(brss0, sizeof brss0, "%ld", rss_before);
        printf("{\"target\":\"%s\",\"mode\":\"%s\",\"allocations\":%d,\"rate\":%ld,\"size\":%d,\"duration_s\":%.3f,"
               "\"sent\":%" PRIu64 ",\"received\":%" PRIu64 ",\"forwarded\":%" PRIu64 ",\"send_failures\":%" PRIu64 ","
               "\"forwarded_rate\":%.3f,\"loss\":%.6f,\"rtt_p50_us\":%s,\"rtt_p99_us\":%s,\"rtt_p999_us\":%s,"
               "\"relay_cpu_us_per_datagram\":%s,\"relay_rss_before_kib\":%s,\"relay_rss_kib\":%s,"
               "\"peer\":\"%s\",\"loadgen_cpu_pct\":%.1f,\"setup_s\":%.3f}\n",
               opt_target, opt_rtt ? "rtt" : "oneway", opt_allocations, opt_rate, opt_size, opt_duration, n_sent,
               n_received, n_forwarded, failures, fwd_rate, loss, b50, b99, b999, bcpu, brss0, brss,
               opt_peer_turn ? "turn" : "udp", gen_pct, setup_s);
    } else {
        printf("%s: allocations %d rate %ld/s size %d B mode %s peer %s duration %.1f s (set-up %.2f s)\n", opt_target,
               opt_allocations, opt_rate, opt_size, opt_rtt ? "rtt" : "oneway", opt_peer_turn ? "turn" : "udp",
               opt_duration, setup_s);
        printf("sent %" PRIu64 " received %" PRIu64 " forwarded %" PRIu64 " send failures %" PRIu64
               " loss %.2f%% forwarded_rate %.0f/s\n",
               n_sent, n_received, n_forwarded, failures, loss * 100, fwd_rate);
        if (p50 >= 0) printf("rtt_us p50 %.1f p99 %.1f p999 %.1f (%zu samples)\n", p50, p99, p999, rtt_count);
        if (cpu_per >= 0) printf("relay cpu %.2f us/datagram (%.0f ms over %.2f s)\n", cpu_per, (cpu1 - cpu0) / 1000, window_s);
        if (rss >= 0) printf("relay rss %ld KiB (before: %ld KiB)\n", rss, rss_before);
        printf("loadgen cpu %.1f%% of one core over the window\n", gen_pct);
    }
    return 0;
}
