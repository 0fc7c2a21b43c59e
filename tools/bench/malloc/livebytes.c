// livebytes.c: an LD_PRELOAD allocator shim that keeps, for every live block of at least
// MIN_BYTES, its size and the caller that allocated it (through libc's own allocator), and on
// SIGUSR2 writes to stderr the callers holding the most live bytes, named with dladdr.
// For attributing per-connection memory (issue 18); not part of any test.
//   gcc -O2 -shared -fPIC -o livebytes.so livebytes.c -ldl -lpthread
//   LD_PRELOAD=./livebytes.so zrc-relay serve ...   then   kill -USR2 <pid>
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIN_BYTES 256
#define TABLE (1u << 22)
#define CALLERS 4096

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

struct block { void *ptr; size_t size; void *caller; };
static struct block *blocks;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static __thread int busy;

static size_t slot(void *p) { return ((uintptr_t)p >> 4) * 2654435761u & (TABLE - 1); }

static void record(void *p, size_t size, void *caller) {
    if (!p || size < MIN_BYTES || busy) return;
    busy = 1;
    pthread_mutex_lock(&lock);
    if (!blocks) blocks = __libc_calloc(TABLE, sizeof(struct block));
    if (blocks) {
        for (size_t i = slot(p), n = 0; n < TABLE; i = (i + 1) & (TABLE - 1), n++) {
            if (!blocks[i].ptr || blocks[i].ptr == (void *)1) { blocks[i] = (struct block){p, size, caller}; break; }
        }
    }
    pthread_mutex_unlock(&lock);
    busy = 0;
}

static void forget(void *p) {
    if (!p || !blocks) return;
    pthread_mutex_lock(&lock);
    for (size_t i = slot(p), n = 0; n < TABLE && blocks[i].ptr; i = (i + 1) & (TABLE - 1), n++) {
        if (blocks[i].ptr == p) { blocks[i].ptr = (void *)1; blocks[i].size = 0; break; }
    }
    pthread_mutex_unlock(&lock);
}

void *malloc(size_t n) { void *p = __libc_malloc(n); record(p, n, __builtin_return_address(0)); return p; }
void *calloc(size_t a, size_t b) { void *p = __libc_calloc(a, b); record(p, a * b, __builtin_return_address(0)); return p; }
void *realloc(void *q, size_t n) { forget(q); void *p = __libc_realloc(q, n); record(p, n, __builtin_return_address(0)); return p; }
void free(void *p) { forget(p); __libc_free(p); }
int posix_memalign(void **out, size_t align, size_t n) {
    void *p = __libc_memalign(align, n);
    if (!p) return 12;
    record(p, n, __builtin_return_address(0));
    *out = p;
    return 0;
}
void *aligned_alloc(size_t align, size_t n) { void *p = __libc_memalign(align, n); record(p, n, __builtin_return_address(0)); return p; }

struct total { void *caller; size_t bytes, count; };
static struct total totals[CALLERS];

static int by_bytes(const void *a, const void *b) {
    const struct total *x = a, *y = b;
    return x->bytes < y->bytes ? 1 : x->bytes > y->bytes ? -1 : 0;
}

static void report(int sig) {
    (void)sig;
    busy = 1;
    pthread_mutex_lock(&lock);
    memset(totals, 0, sizeof totals);
    size_t all = 0;
    for (size_t i = 0; blocks && i < TABLE; i++) {
        if (!blocks[i].ptr || blocks[i].ptr == (void *)1) continue;
        all += blocks[i].size;
        size_t h = ((uintptr_t)blocks[i].caller >> 2) & (CALLERS - 1);
        for (size_t n = 0; n < CALLERS; n++, h = (h + 1) & (CALLERS - 1)) {
            if (!totals[h].caller || totals[h].caller == blocks[i].caller) {
                totals[h].caller = blocks[i].caller; totals[h].bytes += blocks[i].size; totals[h].count++; break;
            }
        }
    }
    pthread_mutex_unlock(&lock);
    qsort(totals, CALLERS, sizeof totals[0], by_bytes);
    fprintf(stderr, "livebytes: %zu bytes live in blocks >= %d\n", all, MIN_BYTES);
    for (int i = 0; i < 25 && totals[i].bytes; i++) {
        Dl_info info;
        const char *name = "?", *object = "?";
        if (dladdr(totals[i].caller, &info)) { name = info.dli_sname ? info.dli_sname : "?"; object = info.dli_fname ? info.dli_fname : "?"; }
        fprintf(stderr, "livebytes: %10zu bytes %7zu blocks  %p %s (%s)\n", totals[i].bytes, totals[i].count, totals[i].caller, name, object);
    }
    busy = 0;
}

__attribute__((constructor)) static void install(void) { signal(SIGUSR2, report); }
