/* Kernel randomness (getrandom) and a deterministic PRNG for simulations. */
#include <errno.h>
#include <sys/random.h>

#include <kw/assert.h>
#include <kw/err.h>
#include <kw/rng.h>

int kw_rng_bytes(void *buf, size_t len)
{
	uint8_t *p = (uint8_t *)buf;

	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

uint32_t kw_rng_below(uint32_t bound)
{
	uint32_t x, limit;

	KW_ASSERT(bound > 0);
	/* Reject the top partial range so every residue is equally likely. */
	limit = UINT32_MAX - (UINT32_MAX % bound);
	do {
		if (kw_rng_bytes(&x, sizeof(x)) != 0)
			kw_panic(__FILE__, __LINE__, "getrandom failed");
	} while (x >= limit);
	return x % bound;
}

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void kw_prng_seed(struct kw_prng *p, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		p->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t kw_prng_next(struct kw_prng *p)
{
	/* xoshiro256** (public-domain algorithm by Blackman and Vigna). */
	uint64_t *s = p->s, r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return r;
}
