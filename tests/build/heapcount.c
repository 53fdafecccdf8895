/*
 * Heap-call counter, loaded into a process with LD_PRELOAD (tests/build/test_heap.sh).
 *
 * check-alloc proves that the project's own objects call no allocator; this catches the
 * rest: libraries (mbedTLS, libsecp256k1, libsodium, glibc itself) called on the node's
 * paths. Every malloc-family entry point is replaced by a counter in front of glibc's own
 * implementation (__libc_malloc and friends, which need no dlsym and so cannot recurse).
 *
 * Control and results share one small file, mapped MAP_SHARED, named by $HEAPCOUNT_FILE
 * (created 64 bytes long by the test): byte 0 != 0 arms the counters (the test sets it once
 * the node has logged `ready`, so start-up allocations are not counted); the seven u64 that
 * follow count armed calls: malloc, calloc, realloc (and reallocarray), free (of non-NULL
 * pointers), posix_memalign, aligned_alloc, memalign/valloc/pvalloc. `od -An -t u8 -j 8`
 * reads them. With $HEAPCOUNT_TRACE=1 each armed call also writes a backtrace to stderr.
 * Without $HEAPCOUNT_FILE the library counts nothing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);

enum { C_MALLOC, C_CALLOC, C_REALLOC, C_FREE, C_POSIX_MEMALIGN, C_ALIGNED_ALLOC, C_OTHER,
       C_COUNT };

struct heapcount_file {
	volatile uint64_t armed;
	uint64_t n[C_COUNT];
};

static struct heapcount_file *g_hc;
static int g_trace;
static __thread int t_inside;  /* backtrace() may allocate: do not count our own calls */

__attribute__((constructor)) static void heapcount_init(void)
{
	const char *path = getenv("HEAPCOUNT_FILE"), *tr = getenv("HEAPCOUNT_TRACE");
	void *m, *pc[2];
	int fd;

	if (!path)
		return;
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return;
	m = mmap(NULL, sizeof(*g_hc), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return;
	g_trace = tr && tr[0] == '1';
	if (g_trace) {
		t_inside = 1;
		backtrace(pc, 2);  /* loads libgcc's unwinder now, before anything is armed */
		t_inside = 0;
	}
	g_hc = m;
}

static void count(int which)
{
	void *pc[24];
	int n;

	if (!g_hc || !g_hc->armed || t_inside)
		return;
	__atomic_fetch_add(&g_hc->n[which], 1, __ATOMIC_RELAXED);
	if (g_trace) {
		t_inside = 1;
		n = backtrace(pc, 24);
		(void)!write(2, "heapcount: armed heap call\n", 27);
		backtrace_symbols_fd(pc, n, 2);
		t_inside = 0;
	}
}

void *malloc(size_t n)
{
	count(C_MALLOC);
	return __libc_malloc(n);
}

void *calloc(size_t n, size_t m)
{
	count(C_CALLOC);
	return __libc_calloc(n, m);
}

void *realloc(void *p, size_t n)
{
	count(C_REALLOC);
	return __libc_realloc(p, n);
}

void *reallocarray(void *p, size_t n, size_t m)
{
	size_t total;

	count(C_REALLOC);
	if (__builtin_mul_overflow(n, m, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_realloc(p, total);
}

void free(void *p)
{
	if (p)
		count(C_FREE);
	__libc_free(p);
}

int posix_memalign(void **out, size_t align, size_t n)
{
	void *p;

	count(C_POSIX_MEMALIGN);
	if (align < sizeof(void *) || (align & (align - 1)) != 0)
		return EINVAL;
	p = __libc_memalign(align, n);
	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}

void *aligned_alloc(size_t align, size_t n)
{
	count(C_ALIGNED_ALLOC);
	return __libc_memalign(align, n);
}

void *memalign(size_t align, size_t n)
{
	count(C_OTHER);
	return __libc_memalign(align, n);
}

void *valloc(size_t n)
{
	count(C_OTHER);
	return __libc_valloc(n);
}

void *pvalloc(size_t n)
{
	count(C_OTHER);
	return __libc_pvalloc(n);
}
