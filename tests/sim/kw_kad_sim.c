/*
 * kw_kad_sim: command-line front end of the Kademlia simulation (kad_sim.c, doc/sim.md).
 *
 *   kw_kad_sim [options]            one scenario, a row of figures
 *   kw_kad_sim --suite [options]    the standard scenarios (plain, 20 % churn, 10 % adversarial
 *                                   grouped / exempt from the diversity filter, get after put),
 *                                   one table
 *   kw_kad_sim --scenario NAME      one of them (plain, churn, adv-grouped, adv-exempt, put-get),
 *                                   or several: NAME,NAME,... (make sim runs the suite as three
 *                                   such processes side by side)
 *   --no-header                     rows only (to append to another process's table)
 *   --own-bootstrap                 every scenario bootstraps its own network (by default
 *                                   plain, churn and put-get share one, forking after it)
 *
 * Options: --nodes N --lookups L --seed S --latency MIN-MAX (ms) --loss P --churn P
 * --partition P --adversarial P --adv-groups G --private-ips --bootstrap B --timeout MS
 * --join-interval MS --settle MS --phase MS --k K --alpha A --inflight N --trace.
 * Fractions P are 0..1. Exit status: 0, or 1 on bad options or a failed set-up.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kad_sim.h"

static void usage(void)
{
	fprintf(stderr,
		"usage: kw_kad_sim [--suite | --scenario plain|churn|adv-grouped|adv-exempt|put-get[,...]] [--no-header] [--own-bootstrap] [--nodes N] [--lookups L] [--seed S] [--latency MIN-MAX]\n"
		"                  [--loss P] [--churn P] [--partition P] [--adversarial P]\n"
		"                  [--adv-groups G] [--private-ips] [--bootstrap B] [--timeout MS]\n"
		"                  [--join-interval MS] [--settle MS] [--phase MS] [--k K] [--alpha A]\n"
		"                  [--puts P] [--inflight N] [--full-store] [--prefill] [--trace]\n");
}

static int num(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "kw_kad_sim: bad value '%s' (expected %g..%g)\n", s, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

static void header(void)
{
	printf("| scenario | N | lookups | success %% | rounds med/p99/max | msgs/lookup med/p99 "
	       "| rt size | arena B/node | sim B/node | messages | lost/cut/dead | virtual s | wall s (cpu s) | trace hash |\n");
	printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
}

static void row(const char *name, const struct kw_kad_sim_cfg *c, const struct kw_kad_sim_report *r)
{
	printf("| %s | %u | %u (%u excl.) | %.2f | %u/%u/%u | %u/%u | %.0f | %zu (used %zu) | %zu + %.0f shared "
	       "| %" PRIu64 " | %" PRIu64 "/%" PRIu64 "/%" PRIu64 " | %.0f | %.1f (%.1f) | %016" PRIx64 " |\n",
	       name, c->nodes, r->lookups_ok + r->lookups_failed, r->lookups_excluded, r->success_pct,
	       r->rounds_median, r->rounds_p99, r->rounds_max, r->msgs_median, r->msgs_p99,
	       r->rt_size_mean, r->arena_bytes_per_node, r->arena_used_per_node,
	       r->sim_bytes_per_node, (double)r->sim_bytes_shared / c->nodes, r->messages,
	       r->lost, r->cut, r->to_dead, (double)r->virtual_ms / 1000.0, r->wall_s, r->cpu_s, r->trace_hash);
	if (c->puts)
		printf("|  (%s: %u puts, %u reached a peer; get after put: %u of %u returned the value) |\n",
		       name, c->puts, r->puts_ok, r->gets_ok, r->gets_total);
	if (r->boot_shared)
		printf("|  (%s: bootstrap shared by %u scenarios, %.1f s CPU once; this lookup phase "
		       "%.1f s CPU in a forked child) |\n", name, r->boot_shared, r->boot_cpu_s,
		       r->phase_cpu_s);
	if (getenv("KW_SIM_DETAIL"))
		printf("|  (%s: requests PUT %" PRIu64 " GET %" PRIu64 " ADD_PROV %" PRIu64 " GET_PROV %" PRIu64
		       " FIND_NODE %" PRIu64 " PING %" PRIu64 "; core lookups %" PRIu64 " of which refresh %" PRIu64
		       ", rate-limited %" PRIu64 ", core timeouts %" PRIu64 ") |\n", name, r->by_type[0],
		       r->by_type[1], r->by_type[2], r->by_type[3], r->by_type[4], r->by_type[5],
		       r->core_lookups, r->core_refresh, r->core_rate_limited, r->core_timeouts);
	if (getenv("KW_SIM_DETAIL") && c->adversarial > 0) {
		printf("|  (%s: by adversaries among the origin's %d closest at the start:", name,
		       KW_KAD_SIM_ALPHA_SEEN);
		for (int i = 0; i <= KW_KAD_SIM_ALPHA_SEEN; i++)
			printf(" %d: %u lookups %.2f %%%s", i, r->adv_first_n[i],
			       r->adv_first_n[i] ? 100.0 * r->adv_first_ok[i] / r->adv_first_n[i] : 0.0,
			       i < KW_KAD_SIM_ALPHA_SEEN ? ";" : "");
		printf("; adversaries in honest tables %.1f %% of members) |\n",
		       r->table_members ? 100.0 * (double)r->adv_members / (double)r->table_members : 0.0);
	}
	if (r->pool_exhausted || r->refused)
		printf("|  (%s: %" PRIu64 " sends refused for an empty in-flight pool, %" PRIu64
		       " requests refused by the receiver; in-flight high %u of %u) |\n",
		       name, r->pool_exhausted, r->refused, r->inflight_high, r->inflight_cap);
	fflush(stdout);
}

/* Whether `tag` is one of the comma-separated names in `list`. */
static bool listed(const char *list, const char *tag)
{
	size_t n = strlen(tag);

	for (const char *p = list; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
		if (strncmp(p, tag, n) == 0 && (p[n] == ',' || p[n] == '\0'))
			return true;
	return false;
}

static int run(const char *name, const struct kw_kad_sim_cfg *c)
{
	struct kw_kad_sim_report r;
	int rc = kw_kad_sim_run(c, &r);

	if (rc) {
		fprintf(stderr, "kw_kad_sim: %s: set-up failed (%d)\n", name, rc);
		return 1;
	}
	row(name, c, &r);
	return 0;
}

int main(int argc, char **argv)
{
	struct kw_kad_sim_cfg c;
	bool suite = false, no_header = false, own_boot = false;
	const char *only = NULL;
	double v;

	kw_kad_sim_cfg_default(&c);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		bool has = true;
#define OPT(name) (strcmp(a, name) == 0 && (val || (usage(), exit(1), 0)))
		if (strcmp(a, "--suite") == 0) { suite = true; has = false; }
		else if (OPT("--scenario")) { suite = true; only = val; }
		else if (strcmp(a, "--no-header") == 0) { no_header = true; has = false; }
		else if (strcmp(a, "--own-bootstrap") == 0) { own_boot = true; has = false; }
		else if (strcmp(a, "--private-ips") == 0) { c.private_ips = true; has = false; }
		else if (strcmp(a, "--trace") == 0) { c.trace = true; has = false; }
		else if (strcmp(a, "--full-store") == 0) { c.full_store = true; has = false; }
		else if (strcmp(a, "--prefill") == 0) { c.prefill = true; has = false; }
		else if (OPT("--nodes")) { if (num(val, 2, 1e7, &v)) return 1; c.nodes = (unsigned)v; }
		else if (OPT("--lookups")) { if (num(val, 0, 1e8, &v)) return 1; c.lookups = (unsigned)v; }
		else if (OPT("--seed")) { c.seed = strtoull(val, NULL, 0); }
		else if (OPT("--latency")) {
			unsigned lo, hi;
			if (sscanf(val, "%u-%u", &lo, &hi) != 2 || lo > hi) {
				fprintf(stderr, "kw_kad_sim: --latency wants MIN-MAX in ms, e.g. 20-200\n");
				return 1;
			}
			c.lat_min_ms = lo;
			c.lat_max_ms = hi;
		}
		else if (OPT("--loss")) { if (num(val, 0, 1, &c.loss)) return 1; }
		else if (OPT("--churn")) { if (num(val, 0, 1, &c.churn)) return 1; }
		else if (OPT("--partition")) { if (num(val, 0, 1, &c.partition)) return 1; }
		else if (OPT("--adversarial")) { if (num(val, 0, 0.9, &c.adversarial)) return 1; }
		else if (OPT("--adv-groups")) { if (num(val, 0, 65536, &v)) return 1; c.adv_groups = (unsigned)v; }
		else if (OPT("--bootstrap")) { if (num(val, 1, 16, &v)) return 1; c.bootstrap_peers = (unsigned)v; }
		else if (OPT("--timeout")) { if (num(val, 1, 600000, &v)) return 1; c.query_timeout_ms = (uint32_t)v; }
		else if (OPT("--join-interval")) { if (num(val, 0, 600000, &v)) return 1; c.join_interval_ms = (uint32_t)v; }
		else if (OPT("--settle")) { if (num(val, 0, 1e9, &v)) return 1; c.settle_ms = (uint32_t)v; }
		else if (OPT("--phase")) { if (num(val, 1, 4e9, &v)) return 1; c.lookup_phase_ms = (uint32_t)v; }
		else if (OPT("--k")) { if (num(val, 1, 64, &v)) return 1; c.k = (unsigned)v; }
		else if (OPT("--alpha")) { if (num(val, 1, 64, &v)) return 1; c.alpha = (unsigned)v; }
		else if (OPT("--puts")) { if (num(val, 0, 1e7, &v)) return 1; c.puts = (unsigned)v; }
		else if (OPT("--inflight")) { if (num(val, 16, 1e8, &v)) return 1; c.inflight = (unsigned)v; }
		else { usage(); return 1; }
#undef OPT
		if (has)
			i++;
	}
	if (c.lookups && c.lookup_phase_ms < c.lookups)
		c.lookup_phase_ms = c.lookups;

	if (!no_header)
		header();
	if (!suite)
		return run("custom", &c);
	{
		int bad = 0;
		bool any = false;
		static const char *const tags[] = { "plain", "churn", "adv-grouped", "adv-exempt",
						    "put-get" };

		/* every listed name must be a scenario: a typo must not shrink the table silently */
		for (const char *p = only; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
			bool known = false;

			for (unsigned t = 0; t < sizeof(tags) / sizeof(tags[0]); t++)
				known |= strncmp(p, tags[t], strlen(tags[t])) == 0 &&
					 (p[strlen(tags[t])] == ',' || p[strlen(tags[t])] == '\0');
			if (!known) {
				fprintf(stderr, "kw_kad_sim: unknown scenario in '%s' (plain, churn, "
					"adv-grouped, adv-exempt, put-get)\n", only);
				return 1;
			}
		}
		/* The suite's scenarios in table order. plain, churn and put-get differ only in
		 * their lookup phase: unless --own-bootstrap, they share one bootstrap
		 * (kw_kad_sim_run_shared), the adversarial ones (other addresses, adversaries
		 * joining) each bootstrap their own network. */
		struct {
			const char *tag, *name;
			struct kw_kad_sim_cfg c;
			bool shared;
			struct kw_kad_sim_report r;
		} sc[5];
		unsigned nsc = 0, nsh = 0;
		struct kw_kad_sim_cfg shc[5];
		struct kw_kad_sim_report shr[5];

#define ADD(t, n, is_shared) do { if (!only || listed(only, t)) { sc[nsc].tag = t; \
		sc[nsc].name = n; sc[nsc].c = c; sc[nsc].shared = is_shared; nsc++; any = true; } \
	} while (0)
		ADD("plain", "plain", true);
		ADD("churn", "churn 20 %", true);
		if (nsc && strcmp(sc[nsc - 1].tag, "churn") == 0)
			sc[nsc - 1].c.churn = 0.20;
		ADD("adv-grouped", "adversarial 10 %, in 4 /16 groups (filter acts)", false);
		if (nsc && strcmp(sc[nsc - 1].tag, "adv-grouped") == 0) {
			sc[nsc - 1].c.adversarial = 0.10;
			sc[nsc - 1].c.adv_groups = 4;
		}
		ADD("adv-exempt", "adversarial 10 %, all addresses exempt (no filter)", false);
		if (nsc && strcmp(sc[nsc - 1].tag, "adv-exempt") == 0) {
			sc[nsc - 1].c.adversarial = 0.10;
			sc[nsc - 1].c.private_ips = true;
		}
		ADD("put-get", "get after put", true);
		if (nsc && strcmp(sc[nsc - 1].tag, "put-get") == 0)
			sc[nsc - 1].c.puts = c.lookups / 10 ? c.lookups / 10 : 1;
#undef ADD
		for (unsigned i = 0; i < nsc; i++) {
			sc[i].shared &= !own_boot;
			if (sc[i].shared)
				shc[nsh++] = sc[i].c;
		}
		if (nsh == 1) {
			for (unsigned i = 0; i < nsc; i++)
				sc[i].shared = false;   /* nothing to share with */
			nsh = 0;
		}
		if (nsh > 1) {
			int rc = kw_kad_sim_run_shared(shc, nsh, shr);
			if (rc) {
				fprintf(stderr, "kw_kad_sim: shared bootstrap failed (%d)\n", rc);
				return 1;
			}
			for (unsigned i = 0, j = 0; i < nsc; i++)
				if (sc[i].shared)
					sc[i].r = shr[j++];
		}
		for (unsigned i = 0; i < nsc; i++) {
			if (sc[i].shared)
				row(sc[i].name, &sc[i].c, &sc[i].r);
			else
				bad |= run(sc[i].name, &sc[i].c);
		}
		if (!any) {
			fprintf(stderr, "kw_kad_sim: unknown scenario '%s' (plain, churn, adv-grouped, "
				"adv-exempt, put-get)\n", only);
			return 1;
		}
		return bad;
	}
}
