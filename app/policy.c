/*
 * The contribution policy: a pure decision function (kw_policy_decide) and the runtime
 * object that feeds it sensor readings from a timer on the node's loop and runs the drain
 * protocol with its clients. The rules are listed in kw/policy.h; doc/board.md explains them
 * for a board owner.
 */
#include <stdio.h>
#include <string.h>

#include <kw/board.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/policy.h>

const char *kw_policy_state_name(enum kw_policy_state s)
{
	switch (s) {
	case KW_POLICY_CONTRIBUTING: return "contributing";
	case KW_POLICY_DRAINING: return "draining";
	case KW_POLICY_PAUSED: return "paused";
	}
	return "?";
}

/* Two decimal digits at t, 0..max. Return: the value or -1. */
static int two_digits(const char *t, int max)
{
	int v;

	if (t[0] < '0' || t[0] > '9' || t[1] < '0' || t[1] > '9')
		return -1;
	v = (t[0] - '0') * 10 + (t[1] - '0');
	return v <= max ? v : -1;
}

int kw_policy_parse_quiet(const char *t, int32_t *start, int32_t *end)
{
	int h1, m1, h2, m2;

	if (!t[0] || !strcmp(t, "off") || !strcmp(t, "none")) {
		*start = *end = -1;
		return 0;
	}
	/* exactly HH:MM-HH:MM, no signs or spaces */
	if (strlen(t) != 11 || t[2] != ':' || t[5] != '-' || t[8] != ':')
		return -KW_EINVAL;
	h1 = two_digits(t, 23);
	m1 = two_digits(t + 3, 59);
	h2 = two_digits(t + 6, 23);
	m2 = two_digits(t + 9, 59);
	if (h1 < 0 || m1 < 0 || h2 < 0 || m2 < 0)
		return -KW_EINVAL;
	if (h1 * 60 + m1 == h2 * 60 + m2)
		return -KW_EINVAL;  /* an empty (or whole-day) window is a typo, not a wish */
	*start = h1 * 60 + m1;
	*end = h2 * 60 + m2;
	return 0;
}

void kw_policy_settings_defaults(struct kw_policy_settings *s)
{
	memset(s, 0, sizeof(*s));
	s->require_ac = IS_ENABLED(CONFIG_KW_POLICY_REQUIRE_AC);
	s->battery_start_pct = CONFIG_KW_POLICY_BATTERY_START_PCT;
	s->battery_stop_pct = CONFIG_KW_POLICY_BATTERY_STOP_PCT;
	s->temp_max_c = CONFIG_KW_POLICY_TEMP_MAX_C;
	s->temp_hysteresis_c = CONFIG_KW_POLICY_TEMP_HYSTERESIS_C;
	s->pause_on_undervoltage = IS_ENABLED(CONFIG_KW_POLICY_PAUSE_ON_UNDERVOLTAGE);
	s->pause_on_throttle = IS_ENABLED(CONFIG_KW_POLICY_PAUSE_ON_THROTTLE);
	if (kw_policy_parse_quiet(CONFIG_KW_POLICY_QUIET_HOURS, &s->quiet_start_min,
				  &s->quiet_end_min) < 0)
		s->quiet_start_min = s->quiet_end_min = -2;  /* reported by the check */
	s->cpu_share_pct = CONFIG_KW_POLICY_CPU_SHARE_PCT;
	s->min_dwell_ms = CONFIG_KW_POLICY_MIN_DWELL_MS;
	s->poll_ms = CONFIG_KW_POLICY_POLL_MS;
	s->drain_timeout_ms = CONFIG_KW_POLICY_DRAIN_TIMEOUT_MS;
}

int kw_policy_settings_check(const struct kw_policy_settings *s, char *err, size_t errlen)
{
	if (s->battery_start_pct > 100 || s->battery_stop_pct > s->battery_start_pct)
		return kw_errf(-KW_ECONFIG, err, errlen, "policy_battery_stop_pct (%u) must be at "
			       "most policy_battery_start_pct (%u), both 0..100",
			       s->battery_stop_pct, s->battery_start_pct);
	if (s->temp_hysteresis_c >= s->temp_max_c)
		return kw_errf(-KW_ECONFIG, err, errlen, "policy_temp_hysteresis_c (%u) must be "
			       "below policy_temp_max_c (%u)", s->temp_hysteresis_c, s->temp_max_c);
	if (s->quiet_start_min == -2)
		return kw_errf(-KW_ECONFIG, err, errlen, "CONFIG_KW_POLICY_QUIET_HOURS \"%s\" is not "
			       "HH:MM-HH:MM", CONFIG_KW_POLICY_QUIET_HOURS);
	if (s->quiet_start_min < -1 || s->quiet_start_min >= 1440 || s->quiet_end_min < -1 ||
	    s->quiet_end_min >= 1440 || (s->quiet_start_min < 0) != (s->quiet_end_min < 0))
		return kw_errf(-KW_ECONFIG, err, errlen, "quiet hours out of range");
	if (s->cpu_share_pct < 1 || s->cpu_share_pct > 100)
		return kw_errf(-KW_ECONFIG, err, errlen, "policy_cpu_share_pct must be 1..100");
	if (s->poll_ms < 100)
		return kw_errf(-KW_ECONFIG, err, errlen, "policy_poll_ms must be at least 100");
	return 0;
}

static bool in_quiet(const struct kw_policy_settings *s, int m)
{
	int a = s->quiet_start_min, b = s->quiet_end_min;

	if (a < 0 || m < 0)
		return false;
	return a < b ? m >= a && m < b : m >= a || m < b;  /* a > b: crosses midnight */
}

/* Whole and tenth degrees of a millidegree value, for messages ("47.3"). */
#define DEG(mc) (int)((mc) / 1000), (int)(((mc) < 0 ? -(mc) : (mc)) % 1000 / 100)

/*
 * The first stop condition that holds, written into why; `active` picks the thresholds (stop
 * side while contributing or draining, start side while paused). Return: 0 none, 1 a stop
 * condition, 2 a safety one (does not wait for the dwell time).
 */
static int stop_condition(const struct kw_policy_settings *s, const struct kw_policy_sensors *in,
			  bool active, char *why, size_t cap)
{
	int32_t limit_mc;

	if (s->require_ac && in->ac == 0) {
		snprintf(why, cap, "on battery power (AC lost), policy_require_ac is on");
		return 1;
	}
	if (in->low_battery == 1) {
		snprintf(why, cap, "UPS low-battery line is active");
		return 2;
	}
	if (in->battery_pct >= 0 && in->ac != 1) {
		uint32_t lim = active ? s->battery_stop_pct : s->battery_start_pct;

		if ((uint32_t)in->battery_pct < lim) {
			snprintf(why, cap, "battery %d%% is below the %s threshold %u%%",
				 in->battery_pct, active ? "stop" : "start", lim);
			return 1;
		}
	}
	if (in->have_temp) {
		limit_mc = (int32_t)s->temp_max_c * 1000;
		if (!active)
			limit_mc -= (int32_t)s->temp_hysteresis_c * 1000;
		if (in->temp_mc > limit_mc) {
			snprintf(why, cap, "SoC at %d.%d C, above %s %d C", DEG(in->temp_mc),
				 active ? "the maximum" : "the resume point", limit_mc / 1000);
			return active ? 2 : 1;
		}
	}
	if (in->have_throttle) {
		if (s->pause_on_undervoltage && (in->throttle & KW_THROTTLE_UNDERVOLT)) {
			snprintf(why, cap, "firmware reports under-voltage (flags 0x%x)", in->throttle);
			return 2;
		}
		if (s->pause_on_throttle &&
		    (in->throttle & (KW_THROTTLE_FREQ_CAPPED | KW_THROTTLE_THROTTLED |
				     KW_THROTTLE_SOFT_TEMP))) {
			snprintf(why, cap, "firmware is throttling the CPU (flags 0x%x)", in->throttle);
			return 1;
		}
	}
	if (in_quiet(s, in->local_min)) {
		snprintf(why, cap, "quiet hours %02d:%02d-%02d:%02d", s->quiet_start_min / 60,
			 s->quiet_start_min % 60, s->quiet_end_min / 60, s->quiet_end_min % 60);
		return 1;
	}
	return 0;
}

/* "AC online, battery 80%, SoC 47.3 C": what the sensors say, for a resume reason. */
static void conditions(const struct kw_policy_sensors *in, char *out, size_t cap)
{
	size_t o = 0;

#define ADD(...) \
	do { if (o < cap) o += (size_t)snprintf(out + o, cap - o, __VA_ARGS__); } while (0)
	ADD("%s", in->ac == 1 ? "external power" : in->ac == 0 ? "on battery"
				 : "power source unknown (taken as mains)");
	if (in->battery_pct >= 0)
		ADD(", battery %d%%", in->battery_pct);
	if (in->have_temp)
		ADD(", SoC %d.%d C", DEG(in->temp_mc));
	if (in->have_throttle)
		ADD(", firmware flags 0x%x", in->throttle);
#undef ADD
}

enum kw_policy_state kw_policy_decide(const struct kw_policy_settings *s,
				      const struct kw_policy_sensors *in,
				      const struct kw_policy_status *st, bool drained,
				      uint64_t now_ms, char *reason, size_t cap)
{
	char why[KW_POLICY_REASON_MAX - 32];
	uint64_t held = now_ms >= st->since_ms ? now_ms - st->since_ms : 0;
	bool dwell_ok = st->transitions == 0 || held >= s->min_dwell_ms;
	int stop;

	switch (st->state) {
	case KW_POLICY_CONTRIBUTING:
		stop = stop_condition(s, in, true, why, sizeof(why));
		if (!stop) {
			conditions(in, why, sizeof(why));
			snprintf(reason, cap, "%s", why);
			return KW_POLICY_CONTRIBUTING;
		}
		if (stop == 2 || dwell_ok) {
			snprintf(reason, cap, "%s", why);
			return KW_POLICY_DRAINING;
		}
		snprintf(reason, cap, "%s; held %llu of %u ms dwell", why,
			 (unsigned long long)held, s->min_dwell_ms);
		return KW_POLICY_CONTRIBUTING;
	case KW_POLICY_DRAINING:
		if (drained) {
			snprintf(reason, cap, "drained (%s)", st->reason);
			return KW_POLICY_PAUSED;
		}
		if (s->drain_timeout_ms && held >= s->drain_timeout_ms) {
			snprintf(reason, cap, "drain timed out after %u ms (%s)", s->drain_timeout_ms,
				 st->reason);
			return KW_POLICY_PAUSED;
		}
		snprintf(reason, cap, "waiting for work in flight (%s)", st->reason);
		return KW_POLICY_DRAINING;
	case KW_POLICY_PAUSED:
	default:
		stop = stop_condition(s, in, false, why, sizeof(why));
		if (stop) {
			snprintf(reason, cap, "%s", why);
			return KW_POLICY_PAUSED;
		}
		conditions(in, why, sizeof(why));
		if (!dwell_ok) {
			snprintf(reason, cap, "conditions met (%s); held %llu of %u ms dwell", why,
				 (unsigned long long)held, s->min_dwell_ms);
			return KW_POLICY_PAUSED;
		}
		snprintf(reason, cap, "conditions met: %s", why);
		return KW_POLICY_CONTRIBUTING;
	}
}

/* ---- runtime ---- */

static bool clients_pending(const struct kw_policy *p)
{
	const struct kw_policy_client *c;

	for (c = p->clients; c; c = c->next)
		if (c->pending)
			return true;
	return false;
}

static void enter(struct kw_policy *p, enum kw_policy_state next, const char *reason)
{
	enum kw_policy_state prev = p->st.state;
	struct kw_policy_client *c;

	p->st.state = next;
	snprintf(p->st.reason, sizeof(p->st.reason), "%s", reason);
	p->st.detail[0] = '\0';
	p->st.since_ms = kw_loop_now(p->loop);
	p->st.transitions++;
	KW_LOG_INF(policy, "%s -> %s: %s", kw_policy_state_name(prev), kw_policy_state_name(next),
		   reason);
	if (next == KW_POLICY_DRAINING) {
		for (c = p->clients; c; c = c->next)
			c->pending = c->drain != NULL;
		/* a client may report done from inside its drain call: mark all first */
		for (c = p->clients; c; c = c->next)
			if (c->drain)
				c->drain(p, c);
		if (!clients_pending(p))
			kw_task_post(p->loop, &p->eval);
	} else if (next == KW_POLICY_CONTRIBUTING) {
		for (c = p->clients; c; c = c->next)
			if (c->resume)
				c->resume(p, c);
	}
	if (p->on_change)
		p->on_change(p, p->change_arg);
}

/* Decides with the last reading (no sensor read): used when the drain finishes. */
static void decide(struct kw_policy *p)
{
	char reason[KW_POLICY_REASON_MAX];
	enum kw_policy_state next;

	next = kw_policy_decide(&p->set, &p->st.last, &p->st,
				p->st.state == KW_POLICY_DRAINING && !clients_pending(p),
				kw_loop_now(p->loop), reason, sizeof(reason));
	if (next != p->st.state) {
		enter(p, next, reason);
		/* paused with the conditions already back: the dwell timer decides the resume */
	} else if (strcmp(reason, p->st.detail)) {
		KW_LOG_DBG(policy, "%s: %s", kw_policy_state_name(next), reason);
		snprintf(p->st.detail, sizeof(p->st.detail), "%s", reason);
	}
}

void kw_policy_poll(struct kw_policy *p)
{
	struct kw_policy_sensors in;

	if (p->read(p, &in, p->read_arg) != 0)
		p->st.sensor_errors++;
	p->st.last = in;
	decide(p);
}

static void on_timer(struct kw_loop *l, struct kw_timer *t)
{
	struct kw_policy *p = t->arg;

	kw_policy_poll(p);
	if (p->running && kw_timer_start(l, &p->timer, p->set.poll_ms) < 0)
		KW_LOG_ERR(policy, "cannot re-arm the sensor timer (timer heap full); the state "
			   "stays %s until the next start", kw_policy_state_name(p->st.state));
}

static int on_eval(struct kw_loop *l, struct kw_task *t)
{
	struct kw_policy *p = t->arg;

	if (p->running)
		decide(p);
	return KW_TASK_DONE;
}

int kw_policy_init(struct kw_policy *p, struct kw_loop *loop, const struct kw_policy_settings *s,
		   kw_policy_read_fn read, void *read_arg, char *err, size_t errlen)
{
	int ret = kw_policy_settings_check(s, err, errlen);

	if (ret < 0)
		return ret;
	memset(p, 0, sizeof(*p));
	p->set = *s;
	p->loop = loop;
	p->read = read;
	p->read_arg = read_arg;
	p->st.state = KW_POLICY_PAUSED;
	snprintf(p->st.reason, sizeof(p->st.reason), "not started");
	kw_timer_init(&p->timer, on_timer, p);
	kw_task_init(&p->eval, on_eval, p);
	return 0;
}

void kw_policy_add_client(struct kw_policy *p, struct kw_policy_client *c)
{
	c->pending = false;
	c->next = p->clients;
	p->clients = c;
}

int kw_policy_start(struct kw_policy *p)
{
	p->running = true;
	p->st.since_ms = kw_loop_now(p->loop);
	kw_policy_poll(p);
	if (p->st.transitions == 0)  /* stayed paused: say why once */
		KW_LOG_INF(policy, "paused at start: %s", p->st.detail);
	return kw_timer_start(p->loop, &p->timer, p->set.poll_ms);
}

void kw_policy_drain_done(struct kw_policy *p, struct kw_policy_client *c)
{
	if (!c->pending)
		return;
	c->pending = false;
	KW_LOG_DBG(policy, "%s drained", c->name);
	if (p->st.state == KW_POLICY_DRAINING && !clients_pending(p))
		kw_task_post(p->loop, &p->eval);
}

void kw_policy_stop(struct kw_policy *p)
{
	p->running = false;
	kw_timer_cancel(p->loop, &p->timer);
	kw_task_cancel(p->loop, &p->eval);
}
