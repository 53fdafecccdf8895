/*
 * Deterministic kernel randomness for the full-stack simulation (link-time seam; the
 * message-level simulation needs none: it seeds the core through kw_kad_cfg.rng).
 *
 * The Kademlia core draws random refresh keys with kw_rng_bytes (kernel/rng.c, getrandom),
 * which would make two runs of the same seed differ as soon as a bucket refresh fires. The
 * simulation programs link this file before libkw.a, so the archive's rng.o is never pulled:
 * kw_rng_bytes and kw_rng_below come from a PRNG the simulation seeds (kw_full_rng_seed),
 * and kw_prng_* are kernel/rng.c's own code, compiled here under its real names. Only test
 * programs link this; a node always gets the kernel's getrandom.
 */
#include <string.h>

#define kw_rng_bytes kw_rng_bytes_getrandom
#define kw_rng_below kw_rng_below_getrandom
#include "../../kernel/rng.c"
#undef kw_rng_bytes
#undef kw_rng_below

#include "kad_full.h"

int kw_rng_bytes(void *buf, size_t len);
uint32_t kw_rng_below(uint32_t bound);

static struct kw_prng full_rng = { { 1, 2, 3, 4 } };

void kw_full_rng_seed(uint64_t seed)
{
	kw_prng_seed(&full_rng, seed ^ 0x6a09e667f3bcc908ull);
}

int kw_rng_bytes(void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len > 0) {
		uint64_t r = kw_prng_next(&full_rng);
		size_t n = len < sizeof(r) ? len : sizeof(r);
		memcpy(p, &r, n);
		p += n;
		len -= n;
	}
	return 0;
}

uint32_t kw_rng_below(uint32_t bound)
{
	KW_ASSERT(bound > 0);
	return (uint32_t)(kw_prng_next(&full_rng) % bound);
}
