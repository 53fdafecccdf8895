/*
 * The command line of the full-stack simulation programs (sim_cli.h): option tables and the
 * cost line shared by kw_kad_full and kw_hm_full.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <kw/log.h>

#include "sim_cli.h"

int sim_opts_parse(int argc, char **argv, const struct sim_opt *opts)
{
	for (int i = 1; i < argc; i++) {
		const struct sim_opt *o = opts;
		const char *v;

		while (o->name && strcmp(o->name, argv[i]))
			o++;
		if (!o->name)
			return -1;
		if (o->kind == SIM_OPT_FLAG) {
			*(bool *)o->p = true;
			continue;
		}
		if (i + 1 >= argc)
			return -1;
		v = argv[++i];
		switch (o->kind) {
		case SIM_OPT_UINT:
			*(unsigned *)o->p = (unsigned)strtoul(v, NULL, 10);
			break;
		case SIM_OPT_U32:
			*(uint32_t *)o->p = (uint32_t)strtoul(v, NULL, 10);
			break;
		case SIM_OPT_U64:
			*(uint64_t *)o->p = strtoull(v, NULL, 10);
			break;
		case SIM_OPT_SIZE:
			*(size_t *)o->p = strtoull(v, NULL, 10);
			break;
		case SIM_OPT_RANGE:
			if (sscanf(v, "%u-%u", (unsigned *)o->p, (unsigned *)o->p2) != 2)
				return -1;
			break;
		default:
			return -1;
		}
	}
	return 0;
}

void sim_log_level_from_env(void)
{
	kw_log_set_level(getenv("KW_FULL_LOG") ? atoi(getenv("KW_FULL_LOG")) : KW_LOG_LEVEL_ERR);
}

static double secs(const struct timeval *t)
{
	return (double)t->tv_sec + (double)t->tv_usec / 1e6;
}

void sim_print_cost(const struct timespec *w0)
{
	struct timespec w1;
	struct rusage ru;

	clock_gettime(CLOCK_MONOTONIC, &w1);
	getrusage(RUSAGE_SELF, &ru);
	printf("  wall / CPU       %.1f s / %.1f s (user %.1f + sys %.1f); max RSS %.0f MiB\n",
	       (double)(w1.tv_sec - w0->tv_sec) + (double)(w1.tv_nsec - w0->tv_nsec) / 1e9,
	       secs(&ru.ru_utime) + secs(&ru.ru_stime), secs(&ru.ru_utime), secs(&ru.ru_stime),
	       ru.ru_maxrss / 1024.0);
}
