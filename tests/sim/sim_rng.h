/* Seeds the deterministic kw_rng_bytes / kw_rng_below of the simulation binaries
 * (tests/sim/sim_rng.c, linked before libkw.a instead of kernel/rng.c's getrandom). */
#ifndef KW_TESTS_SIM_RNG_H
#define KW_TESTS_SIM_RNG_H

#include <stddef.h>
#include <stdint.h>

void kw_sim_rng_seed(uint64_t seed);
int kw_rng_bytes(void *buf, size_t len);
uint32_t kw_rng_below(uint32_t bound);

#endif
