/*
 * The command line of the full-stack simulation programs (kw_kad_full, kw_hm_full; doc/sim.md):
 * one option table per program, parsed here, and the cost line both print. Test programs
 * only.
 */
#ifndef KW_TESTS_SIM_SIM_CLI_H
#define KW_TESTS_SIM_SIM_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

enum sim_opt_kind {
	SIM_OPT_FLAG,     /* bool, no value */
	SIM_OPT_UINT,     /* unsigned */
	SIM_OPT_U32,      /* uint32_t */
	SIM_OPT_U64,      /* uint64_t */
	SIM_OPT_SIZE,     /* size_t */
	SIM_OPT_RANGE,    /* MIN-MAX into two uint32_t: p and p2 */
};

struct sim_opt {
	const char *name;     /* "--nodes"; NULL ends the table */
	enum sim_opt_kind kind;
	void *p, *p2;
};

/* Sets the fields the options name. Return: 0, or -1 for an unknown option, a missing value
 * or a range that is not MIN-MAX (the caller prints its usage). */
int sim_opts_parse(int argc, char **argv, const struct sim_opt *opts);

/* The log level from KW_FULL_LOG (2 shows warnings: why a call failed, rate limited per
 * node); errors only by default, since a thousand nodes' info lines say nothing. */
void sim_log_level_from_env(void);

/* Prints "wall / CPU ... max RSS" for the run that started at w0 (CLOCK_MONOTONIC). */
void sim_print_cost(const struct timespec *w0);

#endif
