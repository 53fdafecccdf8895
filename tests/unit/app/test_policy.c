/*
 * app/policy.c: the pure decision function, rule by rule, then the runtime driven through a
 * fake sysfs tree on the simulated clock (unplug, battery below the threshold, heat, recover),
 * the drain protocol with a client that has work in flight, and the daemon's init entry.
 */
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "unit/board/fakesys.h"
#include <kw/app.h>
#include <kw/board.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/policy.h>
#include <kw/sim.h>

/* ---- pure decision ---- */

static struct kw_policy_settings base_settings(void)
{
	struct kw_policy_settings s;

	memset(&s, 0, sizeof(s));
	s.require_ac = true;
	s.battery_start_pct = 50;
	s.battery_stop_pct = 30;
	s.temp_max_c = 80;
	s.temp_hysteresis_c = 10;
	s.pause_on_undervoltage = true;
	s.pause_on_throttle = true;
	s.quiet_start_min = s.quiet_end_min = -1;
	s.cpu_share_pct = 50;
	s.min_dwell_ms = 60000;
	s.poll_ms = 1000;
	s.drain_timeout_ms = 30000;
	return s;
}

/* On mains, no battery, 50 C, no firmware flags, 10:00. */
static struct kw_policy_sensors good(void)
{
	struct kw_policy_sensors in;

	memset(&in, 0, sizeof(in));
	in.ac = 1;
	in.battery_pct = -1;
	in.low_battery = -1;
	in.have_temp = true;
	in.temp_mc = 50000;
	in.local_min = 600;
	return in;
}

/* A status in `state` since t=1000 after one earlier transition. */
static struct kw_policy_status status(enum kw_policy_state state)
{
	struct kw_policy_status st;

	memset(&st, 0, sizeof(st));
	st.state = state;
	st.since_ms = 1000;
	st.transitions = 1;
	snprintf(st.reason, sizeof(st.reason), "earlier reason");
	return st;
}

#define LATER (1000 + 60000)  /* the dwell time has passed */
#define SOON (1000 + 100)     /* it has not */

static enum kw_policy_state decide(const struct kw_policy_settings *s,
				   const struct kw_policy_sensors *in, enum kw_policy_state cur,
				   uint64_t now, char *why)
{
	struct kw_policy_status st = status(cur);

	return kw_policy_decide(s, in, &st, false, now, why, KW_POLICY_REASON_MAX);
}

static void test_decide_first_decision_contributes_without_waiting(void **state)
{
	struct kw_policy_settings s = base_settings();
	struct kw_policy_sensors in = good();
	struct kw_policy_status st = status(KW_POLICY_PAUSED);
	char why[KW_POLICY_REASON_MAX];

	st.transitions = 0;
	assert_int_equal(kw_policy_decide(&s, &in, &st, false, SOON, why, sizeof(why)),
			 KW_POLICY_CONTRIBUTING);
	assert_non_null(strstr(why, "conditions met"));
	assert_non_null(strstr(why, "SoC 50.0 C"));
}

static void test_decide_ac_lost_drains(void **state)
{
	struct kw_policy_settings s = base_settings();
	struct kw_policy_sensors in = good();
	char why[KW_POLICY_REASON_MAX];

	in.ac = 0;
	assert_int_equal(decide(&s, &in, KW_POLICY_CONTRIBUTING, LATER, why), KW_POLICY_DRAINING);
	assert_non_null(strstr(why, "AC lost"));
}

static void test_decide_ac_lost_ignored_when_not_required(void **state)
{
	struct kw_policy_settings s = base_settings();
	struct kw_policy_sensors in = good();
	char why[KW_POLICY_REASON_MAX];

	s.require_ac = false;
	in.ac = 0;
	in.battery_pct = 90;
	assert_int_equal(decide(&s, &in, KW_POLICY_CONTRIBUTING, LATER, why),
			 KW_POLICY_CONTRIBUTING);
}

static void test_decide_draining_pauses_once_drained(void **state)
{
	struct kw_policy_settings s = base_settings();
	struct kw_policy_sensors in = good();
	struct kw_policy_status st = status(KW_POLICY_DRAINING);
	char why[KW_POLICY_REASON_MAX];

	in.ac = 0;
	assert_int_equal(kw_policy_decide(&s, &in, &st, false, SOON, why, sizeof(why)),
			 KW_POLICY_DRAINING);
	assert_non_null(strstr(why, "waiting for work in flight"));
	assert_int_equal(kw_policy_decide(&s, &in, &st, true, SOON, why, sizeof(why)),
			 KW_POLICY_PAUSED);
	assert_string_equal(why, "drained (earlier reason)");
}

static void test_decide_draining_gives_up_after_the_timeout(void **state)
{
	struct kw_policy_settings s = base_settings();
	struct kw_policy_sensors in = good();
	struct kw_policy_status st = status(KW_POLICY_DRAINING);
	char why[KW_POLICY_REASON_MAX];

	assert_int_equal(kw_policy_decide(&s, &in, &st, false, 1000 + 29999, why, sizeof(why)),
			 KW_POLICY_DRAINING);
	assert_int_equal(kw_policy_decide(&s, &in, &st, false, 1000 + 30000, why, sizeof(why)),
			 KW_POLICY_PAUSED);
	assert_non_null(strstr(why, "timed out after 30000 ms"));
	s.drain_timeout_ms = 0;  /* no limit */
	assert_int_equal(kw_policy_decide(&s, &in, &st, false, 1000 + 3600000, why, sizeof(why)),
			 KW_POLICY_DRAINING);
}

static void test_decide_draining_finishes_even_if_conditions_return(void **state)
{
	struct kw_policy_settings s = base_settings();
	struct kw_policy_sensors in = good();  /* everything fine again */
	struct kw_policy_status st = status(KW_POLICY_DRAINING);
	char why[KW_POLICY_REASON_MAX];

	assert_int_equal(kw_policy_decide(&s, &in, &st, true, LATER, why, sizeof(why)),
			 KW_POLICY_PAUSED);
}

static void test_decide_battery_below_stop_threshold_drains(void **state)
{
	struct kw_policy_settings s = base_settings();
	struct kw_policy_sensors in = good();
	char why[KW_POLICY_REASON_MAX];

	s.require_ac = false;
	in.ac = 0;
	in.battery_pct = 30;
	assert_int_equal(decide(&s, &in, KW_POLICY_CONTRIBUTING, LATER, why),
			 KW_POLICY_CONTRIBUTING);
	in.battery_pct = 29;
	assert_int_equal(decide(&s, &in, KW_POLICY_CONTRIBUTING, LATER, why), KW_POLICY_DRAINING);
	assert_string_equal(why, "battery 29% is below the stop threshold 30%");
}

static void test_decide_battery_hysteresis_band_holds_each_state(void **state)
{
	struct kw_policy_settings s = base_settings();
	struct kw_policy_sensors in = good();
	char why[KW_POLICY_REASON_MAX];
	int pct;

	s.require_ac = false;
	in.ac = 0;
	for (pct = 30; pct < 50; pct++) {  /* inside the band nothing changes, either way */
		in.battery_pct = (int8_t)pct;
		assert_int_equal(decide(&s, &in, KW_POLICY_CONTRIBUTING, LATER, why),
				 KW_POLICY_CONTRIBUTING);
		assert_int_equal(decide(&s, &in, KW_POLICY_PAUSED, LATER, why), KW_POLICY_PAUSED);
		assert_non_null(strstr(why, "below the start threshold 50%"));
	}
	in.battery_pct = 50;
	assert_int_equal(decide(&s, &in, KW_POLICY_PAUSED, LATER, why), KW_POLICY_CONTRIBUTING);
}

static void test_decide_battery_charge_ignored_on_external_power(void **state)
{
	struct kw_policy_settings s = base_settings();
	struct kw_policy_sensors in = good();
	char why[KW_POLICY_REASON_MAX];

	in.battery_pct = 5;  /* charging from the adapter */
	assert_int_equal(decide(&s, &in, KW_POLICY_PAUSED, LATER, why), KW_POLICY_CONTRIBUTING);
	assert_non_null(strstr(why, "battery 5%"));
}

static void test_decide_temperature_over_max_drains_at_once(void **state)
{
	struct kw_policy_settings s = base_settings();
	struct kw_policy_sensors in = good();
	char why[KW_POLICY_REASON_MAX];

	in.temp_mc = 80000;
	assert_int_equal(decide(&s, &in, KW_POLICY_CONTRIBUTING, SOON, why),
			 KW_POLICY_CONTRIBUTING);
	in.temp_mc = 80001;  /* a safety reason: no dwell */
	assert_int_equal(decide(&s, &in, KW_POLICY_CONTRIBUTING, SOON, why), KW_POLICY_DRAINING);
	assert_string_equal(why, "SoC at 80.0 C, above the maximum 80 C");
}

static void test_decide_temperature_resumes_below_the_hysteresis(void **state)
{
	struct kw_policy_settings s = base_settings();
	struct kw_policy_sensors in = good();
	char why[KW_POLICY_REASON_MAX];

	in.temp_mc = 75000;  /* below the maximum, above the resume point 70 */
	assert_int_equal(decide(&s, &in, KW_POLICY_PAUSED, LATER, why), KW_POLICY_PAUSED);
	assert_string_equal(why, "SoC at 75.0 C, above the resume point 70 C");
	assert_int_equal(decide(&s, &in, KW_POLICY_CONTRIBUTING, LATER, why),
			 KW_POLICY_CONTRIBUTING);
	in.temp_mc = 70000;
	assert_int_equal(decide(&s, &in, KW_POLICY_PAUSED, LATER, why), KW_POLICY_CONTRIBUTING);
}

static void test_decide_undervoltage_drains_at_once(void **state)
{
	struct kw_policy_settings s = base_settings();
	struct kw_policy_sensors in = good();
	char why[KW_POLICY_REASON_MAX];

	in.have_throttle = true;
	in.throttle = KW_THROTTLE_UNDERVOLT | KW_THROTTLE_UNDERVOLT_SEEN;
	assert_int_equal(decide(&s, &in, KW_POLICY_CONTRIBUTING, SOON, why), KW_POLICY_DRAINING);
	assert_string_equal(why, "firmware reports under-voltage (flags 0x10001)");
	s.pause_on_undervoltage = false;
	assert_int_equal(decide(&s, &in, KW_POLICY_CONTRIBUTING, SOON, why),
			 KW_POLICY_CONTRIBUTING);
}

static void test_decide_throttled_drains_after_the_dwell(void **state)
{
	struct kw_policy_settings s = base_settings();
	struct kw_policy_sensors in = good();
	char why[KW_POLICY_REASON_MAX];
	const uint32_t now_bits[] = { KW_THROTTLE_FREQ_CAPPED, KW_THROTTLE_THROTTLED,
				      KW_THROTTLE_SOFT_TEMP };
	size_t i;

	in.have_throttle = true;
	for (i = 0; i < 3; i++) {
		in.throttle = now_bits[i];
		assert_int_equal(decide(&s, &in, KW_POLICY_CONTRIBUTING, SOON, why),
				 KW_POLICY_CONTRIBUTING);
		assert_non_null(strstr(why, "held 100 of 60000 ms dwell"));
		assert_int_equal(decide(&s, &in, KW_POLICY_CONTRIBUTING, LATER, why),
				 KW_POLICY_DRAINING);
		assert_non_null(strstr(why, "throttling"));
	}
	s.pause_on_throttle = false;
	assert_int_equal(decide(&s, &in, KW_POLICY_CONTRIBUTING, LATER, why),
			 KW_POLICY_CONTRIBUTING);
}

static void test_decide_past_throttling_does_not_pause(void **state)
{
	struct kw_policy_settings s = base_settings();
	struct kw_policy_sensors in = good();
	char why[KW_POLICY_REASON_MAX];

	in.have_throttle = true;
	in.throttle = KW_THROTTLE_UNDERVOLT_SEEN | KW_THROTTLE_CAPPED_SEEN |
		      KW_THROTTLE_THROTTLED_SEEN | KW_THROTTLE_SOFT_TEMP_SEEN;
	assert_int_equal(decide(&s, &in, KW_POLICY_PAUSED, LATER, why), KW_POLICY_CONTRIBUTING);
}

static void test_decide_quiet_hours_across_midnight(void **state)
{
	struct kw_policy_settings s = base_settings();
	struct kw_policy_sensors in = good();
	char why[KW_POLICY_REASON_MAX];
	const struct { int min; enum kw_policy_state want; } cases[] = {
		{ 22 * 60 + 59, KW_POLICY_CONTRIBUTING }, { 23 * 60, KW_POLICY_PAUSED },
		{ 23 * 60 + 59, KW_POLICY_PAUSED }, { 0, KW_POLICY_PAUSED },
		{ 6 * 60 + 59, KW_POLICY_PAUSED }, { 7 * 60, KW_POLICY_CONTRIBUTING },
		{ 12 * 60, KW_POLICY_CONTRIBUTING }, { -1, KW_POLICY_CONTRIBUTING },
	};
	size_t i;

	assert_int_equal(kw_policy_parse_quiet("23:00-07:00", &s.quiet_start_min,
					       &s.quiet_end_min), 0);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		in.local_min = (int16_t)cases[i].min;
		assert_int_equal(decide(&s, &in, KW_POLICY_PAUSED, LATER, why), cases[i].want);
		if (cases[i].want == KW_POLICY_PAUSED)
			assert_string_equal(why, "quiet hours 23:00-07:00");
	}
}

static void test_decide_quiet_hours_within_a_day(void **state)
{
	struct kw_policy_settings s = base_settings();
	struct kw_policy_sensors in = good();
	char why[KW_POLICY_REASON_MAX];

	assert_int_equal(kw_policy_parse_quiet("13:30-14:00", &s.quiet_start_min,
					       &s.quiet_end_min), 0);
	in.local_min = 13 * 60 + 29;
	assert_int_equal(decide(&s, &in, KW_POLICY_PAUSED, LATER, why), KW_POLICY_CONTRIBUTING);
	in.local_min = 13 * 60 + 30;
	assert_int_equal(decide(&s, &in, KW_POLICY_CONTRIBUTING, LATER, why), KW_POLICY_DRAINING);
	in.local_min = 14 * 60;
	assert_int_equal(decide(&s, &in, KW_POLICY_PAUSED, LATER, why), KW_POLICY_CONTRIBUTING);
	in.local_min = 1;
	assert_int_equal(decide(&s, &in, KW_POLICY_PAUSED, LATER, why), KW_POLICY_CONTRIBUTING);
}

static void test_decide_dwell_time_holds_pause_before_resuming(void **state)
{
	struct kw_policy_settings s = base_settings();
	struct kw_policy_sensors in = good();
	char why[KW_POLICY_REASON_MAX];

	assert_int_equal(decide(&s, &in, KW_POLICY_PAUSED, 1000 + 59999, why), KW_POLICY_PAUSED);
	assert_non_null(strstr(why, "held 59999 of 60000 ms dwell"));
	assert_int_equal(decide(&s, &in, KW_POLICY_PAUSED, 1000 + 60000, why),
			 KW_POLICY_CONTRIBUTING);
}

static void test_decide_missing_sensors_mean_a_mains_board(void **state)
{
	struct kw_policy_settings s = base_settings();
	struct kw_policy_sensors in;
	char why[KW_POLICY_REASON_MAX];

	memset(&in, 0, sizeof(in));
	in.ac = -1;
	in.battery_pct = -1;
	in.low_battery = -1;
	in.local_min = -1;
	assert_int_equal(decide(&s, &in, KW_POLICY_PAUSED, LATER, why), KW_POLICY_CONTRIBUTING);
	assert_string_equal(why, "conditions met: power source unknown (taken as mains)");
}

static void test_decide_low_battery_line_drains_at_once(void **state)
{
	struct kw_policy_settings s = base_settings();
	struct kw_policy_sensors in = good();
	char why[KW_POLICY_REASON_MAX];

	in.low_battery = 1;
	assert_int_equal(decide(&s, &in, KW_POLICY_CONTRIBUTING, SOON, why), KW_POLICY_DRAINING);
	assert_string_equal(why, "UPS low-battery line is active");
	in.low_battery = 0;
	assert_int_equal(decide(&s, &in, KW_POLICY_PAUSED, LATER, why), KW_POLICY_CONTRIBUTING);
}

static void test_decide_reports_the_first_condition_in_rule_order(void **state)
{
	struct kw_policy_settings s = base_settings();
	struct kw_policy_sensors in = good();
	char why[KW_POLICY_REASON_MAX];

	in.ac = 0;
	in.temp_mc = 90000;
	assert_int_equal(decide(&s, &in, KW_POLICY_CONTRIBUTING, LATER, why), KW_POLICY_DRAINING);
	assert_non_null(strstr(why, "AC lost"));
}

/* ---- settings ---- */

static void test_settings_defaults_come_from_kconfig(void **state)
{
	struct kw_policy_settings s;

	kw_policy_settings_defaults(&s);
	assert_int_equal(s.require_ac, IS_ENABLED(CONFIG_KW_POLICY_REQUIRE_AC));
	assert_int_equal(s.battery_start_pct, CONFIG_KW_POLICY_BATTERY_START_PCT);
	assert_int_equal(s.battery_stop_pct, CONFIG_KW_POLICY_BATTERY_STOP_PCT);
	assert_int_equal(s.temp_max_c, CONFIG_KW_POLICY_TEMP_MAX_C);
	assert_int_equal(s.min_dwell_ms, CONFIG_KW_POLICY_MIN_DWELL_MS);
	assert_int_equal(s.poll_ms, CONFIG_KW_POLICY_POLL_MS);
	assert_int_equal(s.cpu_share_pct, CONFIG_KW_POLICY_CPU_SHARE_PCT);
	assert_int_equal(kw_policy_settings_check(&s, NULL, 0), 0);
}

static void test_settings_check_refuses_stop_above_start(void **state)
{
	struct kw_policy_settings s = base_settings();
	char err[200];

	s.battery_stop_pct = 51;
	assert_int_equal(kw_policy_settings_check(&s, err, sizeof(err)), -KW_ECONFIG);
	assert_non_null(strstr(err, "policy_battery_stop_pct (51)"));
	s.battery_stop_pct = 50;
	assert_int_equal(kw_policy_settings_check(&s, err, sizeof(err)), 0);
	s.temp_hysteresis_c = 80;
	assert_int_equal(kw_policy_settings_check(&s, err, sizeof(err)), -KW_ECONFIG);
	assert_non_null(strstr(err, "policy_temp_hysteresis_c"));
}

static void test_quiet_hours_parser(void **state)
{
	int32_t a = 5, b = 5;

	assert_int_equal(kw_policy_parse_quiet("off", &a, &b), 0);
	assert_int_equal(a, -1);
	assert_int_equal(kw_policy_parse_quiet("00:00-23:59", &a, &b), 0);
	assert_int_equal(a, 0);
	assert_int_equal(b, 1439);
	assert_int_equal(kw_policy_parse_quiet("7:00-08:00", &a, &b), -KW_EINVAL);
	assert_int_equal(kw_policy_parse_quiet("24:00-08:00", &a, &b), -KW_EINVAL);
	assert_int_equal(kw_policy_parse_quiet("23:60-08:00", &a, &b), -KW_EINVAL);
	assert_int_equal(kw_policy_parse_quiet("08:00-08:00", &a, &b), -KW_EINVAL);
	assert_int_equal(kw_policy_parse_quiet("08:00-09:00x", &a, &b), -KW_EINVAL);
	assert_int_equal(kw_policy_parse_quiet("08:00 09:00", &a, &b), -KW_EINVAL);
	assert_int_equal(kw_policy_parse_quiet("-1:00-09:00", &a, &b), -KW_EINVAL);
	assert_int_equal(kw_policy_parse_quiet("+8:00-09:00", &a, &b), -KW_EINVAL);
	assert_int_equal(kw_policy_parse_quiet(" 8:00-09:00", &a, &b), -KW_EINVAL);
	assert_int_equal(kw_policy_parse_quiet("08:00-09:0a", &a, &b), -KW_EINVAL);
}

static void test_config_file_sets_policy_keys(void **state)
{
	static const char text[] =
		"sysfs_root = /tmp/fake\n"
		"policy_require_ac = no\n"
		"policy_battery_start_pct = 60\n"
		"policy_battery_stop_pct = 40\n"
		"policy_temp_max_c = 70\n"
		"policy_pause_on_throttle = off\n"
		"policy_quiet_hours = 22:30-06:15\n"
		"policy_cpu_share_pct = 25\n"
		"policy_min_dwell_ms = 5000\n";
	struct kw_config c;
	char err[200];

	kw_config_defaults(&c);
	assert_string_equal(c.sysfs_root, CONFIG_KW_BOARD_SYSFS_ROOT);
	assert_int_equal(kw_config_parse(&c, text, sizeof(text) - 1, err, sizeof(err)), 0);
	assert_string_equal(c.sysfs_root, "/tmp/fake");
	assert_false(c.policy.require_ac);
	assert_int_equal(c.policy.battery_start_pct, 60);
	assert_int_equal(c.policy.battery_stop_pct, 40);
	assert_int_equal(c.policy.temp_max_c, 70);
	assert_false(c.policy.pause_on_throttle);
	assert_int_equal(c.policy.quiet_start_min, 22 * 60 + 30);
	assert_int_equal(c.policy.quiet_end_min, 6 * 60 + 15);
	assert_int_equal(c.policy.cpu_share_pct, 25);
	assert_int_equal(c.policy.min_dwell_ms, 5000);
}

static void test_config_file_policy_errors_name_the_key(void **state)
{
	struct kw_config c;
	char err[200];
	static const char t1[] = "policy_require_ac = maybe\n";
	static const char t2[] = "policy_quiet_hours = 25:00-01:00\n";
	static const char t3[] = "policy_battery_start_pct = 101\n";
	static const char t4[] = "policy_battery_start_pct = 20\npolicy_battery_stop_pct = 25\n";

	kw_config_defaults(&c);
	assert_int_equal(kw_config_parse(&c, t1, sizeof(t1) - 1, err, sizeof(err)), -KW_ECONFIG);
	assert_string_equal(err, "line 1: policy_require_ac must be yes or no, got 'maybe'");
	assert_int_equal(kw_config_parse(&c, t2, sizeof(t2) - 1, err, sizeof(err)), -KW_ECONFIG);
	assert_non_null(strstr(err, "line 1: policy_quiet_hours must be HH:MM-HH:MM"));
	assert_int_equal(kw_config_parse(&c, t3, sizeof(t3) - 1, err, sizeof(err)), -KW_ECONFIG);
	assert_non_null(strstr(err, "0..100"));
	kw_config_defaults(&c);
	assert_int_equal(kw_config_parse(&c, t4, sizeof(t4) - 1, err, sizeof(err)), -KW_ECONFIG);
	assert_non_null(strstr(err, "policy_battery_stop_pct (25) must be at most "
				    "policy_battery_start_pct (20)"));
}

/* ---- runtime through a fake sysfs tree ---- */

#define THROTTLE_REL "sys/devices/platform/soc/soc:firmware/get_throttled"

struct log_rec {
	char lines[32][KW_POLICY_REASON_MAX + 64];
	int n;
};

static void log_hook(int level, const char *module, const char *msg, void *arg)
{
	struct log_rec *r = arg;

	if (strcmp(module, "policy") || level > KW_LOG_LEVEL_INF)
		return;
	if (r->n < 32)
		snprintf(r->lines[r->n++], sizeof(r->lines[0]), "%s", msg);
}

/* A subsystem with work in flight: its drain finishes that work, withdraws, then reports. */
struct client_rec {
	struct kw_policy_client c;
	int in_flight;
	char events[16][32];
	int n;
};

static void ev(struct client_rec *r, const char *e)
{
	if (r->n < 16)
		snprintf(r->events[r->n++], sizeof(r->events[0]), "%s", e);
}

static void client_drain(struct kw_policy *p, struct kw_policy_client *c)
{
	struct client_rec *r = c->arg;

	ev(r, "drain");
	if (r->in_flight == 0) {
		ev(r, "withdraw");
		kw_policy_drain_done(p, c);
	}
	/* else: the request finishes later (finish_request) and withdraws then */
}

static void client_resume(struct kw_policy *p, struct kw_policy_client *c)
{
	ev(c->arg, "resume");
}

static void finish_request(struct kw_policy *p, struct client_rec *r)
{
	r->in_flight--;
	ev(r, "request done");
	if (r->in_flight == 0 && r->c.pending) {
		ev(r, "withdraw");
		kw_policy_drain_done(p, &r->c);
	}
}

struct rt {
	struct kw_test_node *t;
	char trans[32][KW_POLICY_REASON_MAX + 32];  /* "a -> b: reason", from on_change */
	int n_trans;
	enum kw_policy_state prev;
	int saved_level;
	struct fakesys fs;
	struct kw_board_desc desc;
	struct kw_policy_board board;
	struct kw_policy policy;
	struct log_rec log;
	struct client_rec client;
	int minute;
};

static int fixed_minute(void *arg)
{
	return ((struct rt *)arg)->minute;
}

static int rt_setup(void **state)
{
	static struct rt rt;

	memset(&rt, 0, sizeof(rt));
	rt.t = kw_test_node_new(256);
	if (!rt.t)
		return -1;
	fakesys_init(&rt.fs);
	rt.desc = *kw_board_desc();
	rt.desc.sensors = KW_BOARD_SENSE_POWER | KW_BOARD_SENSE_THERMAL | KW_BOARD_SENSE_THROTTLE;
	rt.desc.thermal_zone = "thermal_zone0";
	rt.desc.throttle_file = THROTTLE_REL;
	rt.board.root = rt.fs.root;
	rt.board.desc = &rt.desc;
	rt.board.local_minute = fixed_minute;
	rt.board.minute_arg = &rt;
	rt.minute = 12 * 60;
	rt.client.c.name = "test-serving";
	rt.client.c.drain = client_drain;
	rt.client.c.resume = client_resume;
	rt.client.c.arg = &rt.client;
	kw_log_set_hook(log_hook, &rt.log);
	rt.saved_level = kw_log_set_level(KW_LOG_LEVEL_INF);  /* whatever the build's default */
	*state = &rt;
	return 0;
}

static int rt_teardown(void **state)
{
	struct rt *rt = *state;

	kw_log_set_hook(NULL, NULL);
	kw_log_set_level(rt->saved_level);
	if (rt->policy.loop)  /* started by the test */
		kw_policy_stop(&rt->policy);
	fakesys_free(&rt->fs);
	kw_test_node_free(rt->t);
	return 0;
}

static void record_change(struct kw_policy *p, void *arg)
{
	struct rt *rt = arg;
	const struct kw_policy_status *st = kw_policy_status(p);

	if (rt->n_trans < 32)
		snprintf(rt->trans[rt->n_trans++], sizeof(rt->trans[0]), "%s -> %s: %s",
			 kw_policy_state_name(rt->prev), kw_policy_state_name(st->state), st->reason);
	rt->prev = st->state;
}

static void rt_start(struct rt *rt, const struct kw_policy_settings *s)
{
	char err[200];

	assert_int_equal(kw_policy_init(&rt->policy, &rt->t->node->loop, s, kw_policy_board_read,
					&rt->board, err, sizeof(err)), 0);
	rt->prev = KW_POLICY_PAUSED;
	rt->policy.on_change = record_change;
	rt->policy.change_arg = rt;
	kw_policy_add_client(&rt->policy, &rt->client.c);
	assert_int_equal(kw_policy_start(&rt->policy), 0);
}

/* Moves the simulated clock forward one poll period at a time, running the loop. */
static void rt_run(struct rt *rt, uint64_t ms)
{
	uint64_t step = rt->policy.set.poll_ms, done;

	for (done = 0; done < ms; done += step) {
		kw_sim_advance(rt->t->net, step);
		kw_loop_run_once(&rt->t->node->loop, 0);
		kw_loop_run_once(&rt->t->node->loop, 0);  /* tasks posted by the pass above */
	}
}

static enum kw_policy_state rt_state(struct rt *rt)
{
	return kw_policy_status(&rt->policy)->state;
}

/*
 * The transitions so far ("a -> b: reason"), in order, as the on_change callback saw them;
 * where info lines are compiled in, the log must carry the same lines in the same order.
 */
static int transitions(struct rt *rt, const char *out[], int max)
{
	int i, n = 0;

	for (i = 0; i < rt->n_trans && i < max; i++)
		out[i] = rt->trans[i];
	if (CONFIG_KW_LOG_LEVEL >= KW_LOG_LEVEL_INF) {
		for (i = 0; i < rt->log.n; i++)
			if (strstr(rt->log.lines[i], " -> ")) {
				assert_true(n < rt->n_trans);
				assert_string_equal(rt->log.lines[i], rt->trans[n]);
				n++;
			}
		assert_int_equal(n, rt->n_trans);
	}
	return rt->n_trans < max ? rt->n_trans : max;
}

static struct kw_policy_settings rt_settings(void)
{
	struct kw_policy_settings s = base_settings();

	s.min_dwell_ms = 10000;
	s.poll_ms = 1000;
	return s;
}

static void laptop(struct rt *rt, const char *online, const char *pct, const char *status,
		   const char *temp)
{
	fakesys_write(&rt->fs, "sys/class/power_supply/AC/type", "Mains\n");
	fakesys_write(&rt->fs, "sys/class/power_supply/AC/online", online);
	fakesys_write(&rt->fs, "sys/class/power_supply/BAT0/type", "Battery\n");
	fakesys_write(&rt->fs, "sys/class/power_supply/BAT0/capacity", pct);
	fakesys_write(&rt->fs, "sys/class/power_supply/BAT0/status", status);
	fakesys_write(&rt->fs, "sys/class/thermal/thermal_zone0/temp", temp);
}

static void test_policy_fake_tree_unplug_drain_heat_recover(void **state)
{
	struct rt *rt = *state;
	struct kw_policy_settings s = rt_settings();
	const char *tr[16];
	int n;

	s.require_ac = false;  /* on battery until the charge falls below 30 % */
	laptop(rt, "1\n", "90\n", "Charging\n", "45000\n");
	rt_start(rt, &s);
	assert_int_equal(rt_state(rt), KW_POLICY_CONTRIBUTING);

	laptop(rt, "0\n", "90\n", "Discharging\n", "45000\n");  /* unplug: charge still high */
	rt_run(rt, 20000);
	assert_int_equal(rt_state(rt), KW_POLICY_CONTRIBUTING);
	laptop(rt, "0\n", "29\n", "Discharging\n", "45000\n");  /* drain the battery */
	rt_run(rt, 3000);
	assert_int_equal(rt_state(rt), KW_POLICY_PAUSED);
	laptop(rt, "1\n", "29\n", "Charging\n", "45000\n");     /* plug in again */
	rt_run(rt, 12000);
	assert_int_equal(rt_state(rt), KW_POLICY_CONTRIBUTING);
	laptop(rt, "1\n", "60\n", "Charging\n", "85000\n");     /* heat past the limit */
	rt_run(rt, 2000);
	assert_int_equal(rt_state(rt), KW_POLICY_PAUSED);
	laptop(rt, "1\n", "60\n", "Charging\n", "75000\n");     /* cooler, not cool enough */
	rt_run(rt, 30000);
	assert_int_equal(rt_state(rt), KW_POLICY_PAUSED);
	laptop(rt, "1\n", "60\n", "Charging\n", "69000\n");     /* recovered */
	rt_run(rt, 12000);
	assert_int_equal(rt_state(rt), KW_POLICY_CONTRIBUTING);

	n = transitions(rt, tr, 16);
	assert_int_equal(n, 7);
	assert_non_null(strstr(tr[0], "paused -> contributing: conditions met"));
	assert_non_null(strstr(tr[1], "contributing -> draining: battery 29% is below the stop "
				      "threshold 30%"));
	assert_non_null(strstr(tr[2], "draining -> paused: drained (battery 29%"));
	assert_non_null(strstr(tr[3], "paused -> contributing: conditions met: external power, "
				      "battery 29%"));
	assert_non_null(strstr(tr[4], "contributing -> draining: SoC at 85.0 C, above the "
				      "maximum 80 C"));
	assert_non_null(strstr(tr[5], "draining -> paused: drained (SoC at 85.0 C"));
	assert_non_null(strstr(tr[6], "paused -> contributing: conditions met: external power, "
				      "battery 60%, SoC 69.0 C"));
	assert_int_equal(kw_policy_status(&rt->policy)->transitions, 7);
	assert_int_equal(kw_policy_status(&rt->policy)->sensor_errors, 0);
}

static void test_policy_fake_tree_ac_lost_then_restored(void **state)
{
	struct rt *rt = *state;
	struct kw_policy_settings s = rt_settings();
	const char *tr[16];
	uint64_t t0;

	laptop(rt, "1\n", "100\n", "Full\n", "45000\n");
	rt_start(rt, &s);
	rt_run(rt, 10000);  /* past the dwell of the start transition */
	laptop(rt, "0\n", "100\n", "Discharging\n", "45000\n");
	rt_run(rt, 1000);
	assert_int_equal(rt_state(rt), KW_POLICY_PAUSED);
	t0 = kw_policy_status(&rt->policy)->since_ms;
	laptop(rt, "1\n", "100\n", "Full\n", "45000\n");
	rt_run(rt, 9000);  /* back, but the dwell time has not passed */
	assert_int_equal(rt_state(rt), KW_POLICY_PAUSED);
	rt_run(rt, 2000);
	assert_int_equal(rt_state(rt), KW_POLICY_CONTRIBUTING);
	assert_true(kw_policy_status(&rt->policy)->since_ms - t0 >= 10000);
	assert_int_equal(transitions(rt, tr, 16), 4);
	assert_non_null(strstr(tr[1], "contributing -> draining: on battery power (AC lost)"));
	assert_non_null(strstr(tr[2], "draining -> paused"));
	assert_non_null(strstr(tr[3], "paused -> contributing"));
}

static void test_policy_drain_finishes_work_in_flight_before_pausing(void **state)
{
	struct rt *rt = *state;
	struct kw_policy_settings s = rt_settings();

	laptop(rt, "1\n", "100\n", "Full\n", "45000\n");
	rt_start(rt, &s);
	rt->client.in_flight = 1;  /* serving a request */
	fakesys_write(&rt->fs, "sys/class/thermal/thermal_zone0/temp", "95000\n");
	rt_run(rt, 1000);
	assert_int_equal(rt_state(rt), KW_POLICY_DRAINING);
	rt_run(rt, 5000);  /* the request takes a while: still draining */
	assert_int_equal(rt_state(rt), KW_POLICY_DRAINING);
	finish_request(&rt->policy, &rt->client);
	rt_run(rt, 1000);
	assert_int_equal(rt_state(rt), KW_POLICY_PAUSED);
	assert_int_equal(rt->client.n, 4);
	assert_string_equal(rt->client.events[0], "resume");  /* the start */
	assert_string_equal(rt->client.events[1], "drain");
	assert_string_equal(rt->client.events[2], "request done");
	assert_string_equal(rt->client.events[3], "withdraw");
}

static void test_policy_drain_times_out_on_a_stuck_client(void **state)
{
	struct rt *rt = *state;
	struct kw_policy_settings s = rt_settings();

	s.drain_timeout_ms = 5000;
	laptop(rt, "1\n", "100\n", "Full\n", "45000\n");
	rt_start(rt, &s);
	rt->client.in_flight = 1;  /* never finishes */
	fakesys_write(&rt->fs, "sys/class/thermal/thermal_zone0/temp", "95000\n");
	rt_run(rt, 4000);
	assert_int_equal(rt_state(rt), KW_POLICY_DRAINING);
	rt_run(rt, 2000);
	assert_int_equal(rt_state(rt), KW_POLICY_PAUSED);
	assert_non_null(strstr(kw_policy_status(&rt->policy)->reason, "drain timed out"));
}

static void test_policy_mains_board_without_sensors_contributes(void **state)
{
	struct rt *rt = *state;
	struct kw_policy_settings s = rt_settings();
	char line[320];

	rt_start(rt, &s);  /* an empty tree: no power_supply, no thermal, no throttle file */
	assert_int_equal(rt_state(rt), KW_POLICY_CONTRIBUTING);
	assert_int_equal(kw_policy_status(&rt->policy)->sensor_errors, 0);
	kw_policy_board_describe(&rt->board, &kw_policy_status(&rt->policy)->last, line,
				 sizeof(line));
	assert_non_null(strstr(line, "power: no supply listed (mains assumed)"));
	assert_non_null(strstr(line, "thermal: none found"));
	assert_non_null(strstr(line, "throttle flags: file absent"));
}

static void test_policy_malformed_sensor_is_counted_and_logged_once(void **state)
{
	struct rt *rt = *state;
	struct kw_policy_settings s = rt_settings();
	int i, warnings = 0;

	fakesys_write(&rt->fs, "sys/class/thermal/thermal_zone0/temp", "warm\n");
	rt_start(rt, &s);
	rt_run(rt, 5000);
	assert_int_equal(rt_state(rt), KW_POLICY_CONTRIBUTING);
	assert_int_equal(kw_policy_status(&rt->policy)->sensor_errors, 6);
	if (CONFIG_KW_LOG_LEVEL < KW_LOG_LEVEL_WRN)
		return;  /* warnings compiled out: the count above is what remains */
	for (i = 0; i < rt->log.n; i++)
		if (strstr(rt->log.lines[i], "thermal_zone0/temp: not a number"))
			warnings++;
	assert_int_equal(warnings, 1);
}

static void test_policy_firmware_undervoltage_pauses(void **state)
{
	struct rt *rt = *state;
	struct kw_policy_settings s = rt_settings();

	fakesys_write(&rt->fs, THROTTLE_REL, "0\n");
	rt_start(rt, &s);
	assert_int_equal(rt_state(rt), KW_POLICY_CONTRIBUTING);
	fakesys_write(&rt->fs, THROTTLE_REL, "50005\n");
	rt_run(rt, 2000);
	assert_int_equal(rt_state(rt), KW_POLICY_PAUSED);
	assert_non_null(strstr(kw_policy_status(&rt->policy)->reason, "under-voltage"));
}

static void test_policy_quiet_hours_from_the_clock_hook(void **state)
{
	struct rt *rt = *state;
	struct kw_policy_settings s = rt_settings();

	assert_int_equal(kw_policy_parse_quiet("23:00-07:00", &s.quiet_start_min,
					       &s.quiet_end_min), 0);
	rt->minute = 23 * 60 + 30;
	rt_start(rt, &s);
	assert_int_equal(rt_state(rt), KW_POLICY_PAUSED);
	assert_string_equal(kw_policy_status(&rt->policy)->detail, "quiet hours 23:00-07:00");
	rt->minute = 7 * 60;
	rt_run(rt, 1000);
	assert_int_equal(rt_state(rt), KW_POLICY_CONTRIBUTING);
}

/* A fake GPIO: the policy reads the UPS lines through the ops table. */
struct fake_gpio {
	struct kw_gpio g;
	int value[8];
};

static int fake_get(struct kw_gpio *g, int offset)
{
	return ((struct fake_gpio *)(void *)g)->value[offset];
}

static int fake_set(struct kw_gpio *g, int offset, int value)
{
	((struct fake_gpio *)(void *)g)->value[offset] = value;
	return 0;
}

static const struct kw_gpio_ops g_fake_ops = { .get = fake_get, .set = fake_set };

static void test_policy_ups_gpio_lines_override_sysfs(void **state)
{
	struct rt *rt = *state;
	struct kw_policy_settings s = rt_settings();
	struct fake_gpio fg = { .g = { &g_fake_ops, NULL }, .value = { 0 } };

	rt->desc.sensors |= KW_BOARD_SENSE_GPIO;
	rt->desc.power_good.offset = 2;
	rt->desc.low_battery.offset = 3;
	rt->board.gpio = &fg.g;
	fg.value[2] = 1;  /* power good */
	rt_start(rt, &s);
	assert_int_equal(rt_state(rt), KW_POLICY_CONTRIBUTING);
	assert_int_equal(kw_policy_status(&rt->policy)->last.ac, 1);
	fg.value[3] = 1;  /* the UPS warns: battery low */
	rt_run(rt, 1000);
	assert_int_equal(rt_state(rt), KW_POLICY_PAUSED);
	assert_string_equal(kw_policy_status(&rt->policy)->reason,
			    "drained (UPS low-battery line is active)");
	fg.value[3] = 0;
	fg.value[2] = 0;  /* and the mains is gone */
	rt_run(rt, 20000);
	assert_int_equal(rt_state(rt), KW_POLICY_PAUSED);
	assert_int_equal(kw_policy_status(&rt->policy)->last.ac, 0);
	assert_non_null(strstr(kw_policy_status(&rt->policy)->detail, "AC lost"));
}

static void test_policy_battery_alone_discharging_means_no_ac(void **state)
{
	struct rt *rt = *state;
	struct kw_policy_settings s = rt_settings();

	fakesys_write(&rt->fs, "sys/class/power_supply/BAT0/type", "Battery\n");
	fakesys_write(&rt->fs, "sys/class/power_supply/BAT0/capacity", "90\n");
	fakesys_write(&rt->fs, "sys/class/power_supply/BAT0/status", "Discharging\n");
	rt_start(rt, &s);
	assert_int_equal(rt_state(rt), KW_POLICY_PAUSED);
	assert_int_equal(kw_policy_status(&rt->policy)->last.ac, 0);
}

/* ---- the daemon's init entry ---- */

int kw_app_policy_init(struct kw_node *n);
void kw_app_policy_shutdown(struct kw_node *n);

static void test_app_policy_init_logs_sensors_and_first_state(void **state)
{
	struct rt *rt = *state;
	static struct kw_app app;
	const struct kw_board_desc *d = kw_board_desc();
	int i, found = 0;

	/* lines configured in Kconfig need the board's GPIO chip, which a build host lacks */
	if ((d->sensors & KW_BOARD_SENSE_GPIO) && (d->power_good.offset >= 0 ||
	    d->low_battery.offset >= 0 || d->status_led.offset >= 0))
		skip();
	memset(&app, 0, sizeof(app));
	kw_config_defaults(&app.cfg);
	snprintf(app.cfg.sysfs_root, sizeof(app.cfg.sysfs_root), "%s", rt->fs.root);
	app.cfg.policy.quiet_start_min = app.cfg.policy.quiet_end_min = -1;
	kw_app_attach(rt->t->node, &app);
	assert_int_equal(kw_app_policy_init(rt->t->node), 0);
	assert_non_null(app.policy);
	assert_int_equal(kw_policy_status(app.policy)->state, KW_POLICY_CONTRIBUTING);
	for (i = 0; i < rt->log.n; i++) {
		if (strstr(rt->log.lines[i], "sensors under ") && strstr(rt->log.lines[i], "power:"))
			found |= 1;
		if (strstr(rt->log.lines[i], "paused -> contributing"))
			found |= 2;
	}
	assert_int_equal(found, CONFIG_KW_LOG_LEVEL >= KW_LOG_LEVEL_INF ? 3 : 0);
	kw_app_policy_shutdown(rt->t->node);
	assert_null(app.policy);
}

#define RT(fn) cmocka_unit_test_setup_teardown(fn, rt_setup, rt_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decide_first_decision_contributes_without_waiting),
		cmocka_unit_test(test_decide_ac_lost_drains),
		cmocka_unit_test(test_decide_ac_lost_ignored_when_not_required),
		cmocka_unit_test(test_decide_draining_pauses_once_drained),
		cmocka_unit_test(test_decide_draining_gives_up_after_the_timeout),
		cmocka_unit_test(test_decide_draining_finishes_even_if_conditions_return),
		cmocka_unit_test(test_decide_battery_below_stop_threshold_drains),
		cmocka_unit_test(test_decide_battery_hysteresis_band_holds_each_state),
		cmocka_unit_test(test_decide_battery_charge_ignored_on_external_power),
		cmocka_unit_test(test_decide_temperature_over_max_drains_at_once),
		cmocka_unit_test(test_decide_temperature_resumes_below_the_hysteresis),
		cmocka_unit_test(test_decide_undervoltage_drains_at_once),
		cmocka_unit_test(test_decide_throttled_drains_after_the_dwell),
		cmocka_unit_test(test_decide_past_throttling_does_not_pause),
		cmocka_unit_test(test_decide_quiet_hours_across_midnight),
		cmocka_unit_test(test_decide_quiet_hours_within_a_day),
		cmocka_unit_test(test_decide_dwell_time_holds_pause_before_resuming),
		cmocka_unit_test(test_decide_missing_sensors_mean_a_mains_board),
		cmocka_unit_test(test_decide_low_battery_line_drains_at_once),
		cmocka_unit_test(test_decide_reports_the_first_condition_in_rule_order),
		cmocka_unit_test(test_settings_defaults_come_from_kconfig),
		cmocka_unit_test(test_settings_check_refuses_stop_above_start),
		cmocka_unit_test(test_quiet_hours_parser),
		cmocka_unit_test(test_config_file_sets_policy_keys),
		cmocka_unit_test(test_config_file_policy_errors_name_the_key),
		RT(test_policy_fake_tree_unplug_drain_heat_recover),
		RT(test_policy_fake_tree_ac_lost_then_restored),
		RT(test_policy_drain_finishes_work_in_flight_before_pausing),
		RT(test_policy_drain_times_out_on_a_stuck_client),
		RT(test_policy_mains_board_without_sensors_contributes),
		RT(test_policy_malformed_sensor_is_counted_and_logged_once),
		RT(test_policy_firmware_undervoltage_pauses),
		RT(test_policy_quiet_hours_from_the_clock_hook),
		RT(test_policy_ups_gpio_lines_override_sysfs),
		RT(test_policy_battery_alone_discharging_means_no_ac),
		RT(test_app_policy_init_logs_sensors_and_first_state),
	};
	return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
