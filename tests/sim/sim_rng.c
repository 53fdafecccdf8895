/*
 * Deterministic kernel randomness for simulation binaries (link-time seam).
 *
 * A program that links this file before libkw.a never pulls the archive's rng.o:
 * kw_rng_bytes and kw_rng_below come from a PRNG the program seeds (kw_sim_rng_seed), and
 * kw_prng_* are kernel/rng.c's own code, compiled here under its real names. Only test
 * programs link this; a node always gets the kernel's getrandom.
 *
 * The Kademlia simulations (kad_sim.c) no longer link it: the core takes its random bytes
 * through kw_kad_cfg.rng, which they seed. It stays for a simulation whose lower layers
 * (swarm, Noise, keys) draw from kw_rng_bytes directly and have no such hook.
 */
#include <string.h>

#define kw_rng_bytes kw_rng_bytes_getrandom
#define kw_rng_below kw_rng_below_getrandom
#include "../../kernel/rng.c"
#undef kw_rng_bytes
#undef kw_rng_below

#include "sim_rng.h"

static struct kw_prng sim_rng = { { 1, 2, 3, 4 } };

void kw_sim_rng_seed(uint64_t seed)
{
	kw_prng_seed(&sim_rng, seed ^ 0x6a09e667f3bcc908ull);
}

int kw_rng_bytes(void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len > 0) {
		uint64_t r = kw_prng_next(&sim_rng);
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
	return (uint32_t)(kw_prng_next(&sim_rng) % bound);
}
