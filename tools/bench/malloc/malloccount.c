/* An LD_PRELOAD heap-allocation counter for tools/bench/malloc/run.sh.
 *
 * Every malloc, calloc, realloc, memalign, posix_memalign and aligned_alloc of the process
 * adds one to a counter (relaxed atomic; frees are not counted). A thread of its own writes
 * the counter to the file named by MALLOC_COUNT_FILE every 20 ms, so the benchmark can read
 * it from outside while the process runs. Allocation itself is glibc's (__libc_*). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static atomic_ulong allocations;

void *malloc(size_t n) { atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed); return __libc_realloc(p, n); }
void *memalign(size_t a, size_t n) { atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed); return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { return memalign(a, n); }
int posix_memalign(void **out, size_t a, size_t n) {
    void *p = memalign(a, n);
    if (p == NULL) return ENOMEM;
    *out = p;
    return 0;
}

static void *reporter(void *path) {
    char tmp[4096], text[32];
    snprintf(tmp, sizeof tmp, "%s.tmp", (const char *)path);
    struct timespec pause = {0, 20 * 1000 * 1000};
    for (;;) {
        int len = snprintf(text, sizeof text, "%lu\n", atomic_load_explicit(&allocations, memory_order_relaxed));
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            if (write(fd, text, (size_t)len) == len) rename(tmp, (const char *)path);
            close(fd);
        }
        nanosleep(&pause, NULL);
    }
    return NULL;
}

__attribute__((constructor)) static void start_reporter(void) {
    const char *path = getenv("MALLOC_COUNT_FILE");
    if (path == NULL || *path == 0) return;
    static char copy[4000];
    strncpy(copy, path, sizeof copy - 1);
    pthread_t thread;
    if (pthread_create(&thread, NULL, reporter, copy) == 0) pthread_detach(thread);
}
