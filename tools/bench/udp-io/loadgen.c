// Load generator: RATE datagrams/s of SIZE bytes to 127.0.0.1:PORT for SECONDS, sent with
// sendmmsg in batches every millisecond; echoes counted with recvmmsg. Prints "sent N recv M".
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: loadgen PORT RATE SIZE SECONDS\n"); return 2; }
    int port = atoi(argv[1]), rate = atoi(argv[2]), size = atoi(argv[3]);
    double seconds = atof(argv[4]);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int buf = 8 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    connect(fd, (struct sockaddr *)&to, sizeof to);
    enum { B = 256 };
    static char out[B][2048], in[B][2048];
    struct mmsghdr sm[B], rm[B];
    struct iovec si[B], ri[B];
    for (int i = 0; i < B; i++) {
        memset(out[i], i, sizeof out[i]);
        si[i] = (struct iovec){out[i], (size_t)size};
        ri[i] = (struct iovec){in[i], 2048};
        sm[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &si[i], .msg_iovlen = 1}};
        rm[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &ri[i], .msg_iovlen = 1}};
    }
    long sent = 0, received = 0;
    double start = now(), end = start + seconds;
    while (1) {
        double t = now();
        if (t >= end + 0.3) break;
        if (t < end) {
            long due = (long)((t - start) * rate);
            while (sent < due) {
                int k = due - sent > B ? B : (int)(due - sent);
                int r = sendmmsg(fd, sm, k, 0);
                if (r <= 0) break;
                sent += r;
            }
        }
        int r;
        while ((r = recvmmsg(fd, rm, B, MSG_DONTWAIT, NULL)) > 0) received += r;
        usleep(1000);
    }
    printf("sent %ld recv %ld\n", sent, received);
    return 0;
}
