/* Cryptographic randomness from the kernel (getrandom, blocking only before the pool is
 * seeded at boot). Stateless, so it needs no node context. */
#ifndef KW_RNG_H
#define KW_RNG_H

#include <stddef.h>
#include <stdint.h>

/* Fills buf with len random bytes. Return: 0 or -KW_EIO (-errno) if getrandom fails. */
int kw_rng_bytes(void *buf, size_t len);
/* Uniform in [0, bound) without modulo bias; bound > 0. Aborts only if the kernel RNG fails. */
uint32_t kw_rng_below(uint32_t bound);

/* Deterministic xoshiro-style PRNG for simulations and tests (not for keys). */
struct kw_prng { uint64_t s[4]; };
void kw_prng_seed(struct kw_prng *p, uint64_t seed);
uint64_t kw_prng_next(struct kw_prng *p);

#endif /* KW_RNG_H */
