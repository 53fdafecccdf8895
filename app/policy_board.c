/*
 * The board as the policy's sensor source: one reading of power supplies, the SoC thermal
 * zone, the firmware throttling flags and the GPIO lines, each only where the board
 * descriptor says the board has it (board/Kconfig), and local time for quiet hours.
 *
 * A sensor that is missing (no file) is simply absent from the reading. A sensor whose file
 * is malformed is absent too, but counted and logged (once per distinct message), so a broken
 * driver shows up in the log without stopping the node.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <kw/board.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/policy.h>

static int system_local_minute(void)
{
	struct tm tm;
	time_t now = time(NULL);

	if (!localtime_r(&now, &tm))
		return -1;
	return tm.tm_hour * 60 + tm.tm_min;
}

/* Keeps the first error of a reading; logs it when it differs from the last one logged. */
static void note(struct kw_policy_board *b, char *first, const char *e)
{
	if (first[0])
		return;
	snprintf(first, KW_POLICY_REASON_MAX, "%s", e);
	if (strcmp(b->last_err, first)) {
		KW_LOG_WRN(policy, "sensor: %s (treated as absent)", first);
		snprintf(b->last_err, sizeof(b->last_err), "%s", first);
	}
}

int kw_policy_board_read(struct kw_policy *p, struct kw_policy_sensors *out, void *arg)
{
	struct kw_policy_board *b = arg;
	const struct kw_board_desc *d = b->desc;
	char e[KW_POLICY_REASON_MAX], first[KW_POLICY_REASON_MAX] = "";
	int ret, m;

	memset(out, 0, sizeof(*out));
	out->ac = -1;
	out->battery_pct = -1;
	out->low_battery = -1;
	if (d->sensors & KW_BOARD_SENSE_POWER) {
		struct kw_power_state ps;

		e[0] = '\0';
		ret = kw_power_read(b->root, &ps, e, sizeof(e));
		if (ret < 0) {
			note(b, first, e);
		} else {
			if (ps.n_errors)
				note(b, first, e);
			out->battery_pct = ps.battery_pct;
			if (ps.n_external)
				out->ac = ps.external_online ? 1 : 0;
			else if (ps.battery_pct >= 0)  /* a battery alone: discharging means no AC */
				out->ac = ps.battery_status == KW_POWER_STATUS_DISCHARGING ? 0 : 1;
		}
	}
	if (d->sensors & KW_BOARD_SENSE_THERMAL) {
		ret = kw_thermal_read(b->root, d->thermal_zone, &out->temp_mc, e, sizeof(e));
		if (ret == 0)
			out->have_temp = true;
		else if (ret != -KW_ENOENT)
			note(b, first, e);
	}
	if ((d->sensors & KW_BOARD_SENSE_THROTTLE) && d->throttle_file[0]) {
		ret = kw_throttle_read(b->root, d->throttle_file, &out->throttle, e, sizeof(e));
		if (ret == 0)
			out->have_throttle = true;
		else if (ret != -KW_ENOENT)
			note(b, first, e);
	}
	if (b->gpio) {
		/* the UPS's own power-good line overrides what sysfs says about AC */
		if (d->power_good.offset >= 0) {
			ret = b->gpio->ops->get(b->gpio, d->power_good.offset);
			if (ret >= 0)
				out->ac = ret ? 1 : 0;
			else {
				snprintf(e, sizeof(e), "power-good GPIO line %d: %s", d->power_good.offset,
					 kw_strerror(ret));
				note(b, first, e);
			}
		}
		if (d->low_battery.offset >= 0) {
			ret = b->gpio->ops->get(b->gpio, d->low_battery.offset);
			if (ret >= 0)
				out->low_battery = ret ? 1 : 0;
			else {
				snprintf(e, sizeof(e), "low-battery GPIO line %d: %s",
					 d->low_battery.offset, kw_strerror(ret));
				note(b, first, e);
			}
		}
	}
	m = b->local_minute ? b->local_minute(b->minute_arg) : system_local_minute();
	out->local_min = (int16_t)(m >= 0 && m < 1440 ? m : -1);
	if (!first[0])
		b->last_err[0] = '\0';  /* a later error is logged again */
	return first[0] ? -KW_EBADMSG : 0;
}

void kw_policy_board_describe(struct kw_policy_board *b, const struct kw_policy_sensors *in,
			      char *buf, size_t cap)
{
	const struct kw_board_desc *d = b->desc;
	size_t o = 0;

#define ADD(...) \
	do { if (o < cap) o += (size_t)snprintf(buf + o, cap - o, __VA_ARGS__); } while (0)
	if (!(d->sensors & KW_BOARD_SENSE_POWER))
		ADD("power: not read");
	else if (in->ac < 0 && in->battery_pct < 0)
		ADD("power: no supply listed (mains assumed)");
	else
		ADD("power: %s%s", in->ac == 1 ? "external" : in->ac == 0 ? "battery" : "unknown",
		    in->battery_pct >= 0 ? "" : ", no battery");
	if (in->battery_pct >= 0)
		ADD(", battery %d%%", in->battery_pct);
	if (!(d->sensors & KW_BOARD_SENSE_THERMAL))
		ADD("; thermal: not read");
	else if (in->have_temp)
		ADD("; thermal: %s %d.%d C", d->thermal_zone[0] ? d->thermal_zone : "hottest zone",
		    (int)(in->temp_mc / 1000), (int)((in->temp_mc < 0 ? -in->temp_mc : in->temp_mc) %
						     1000 / 100));
	else
		ADD("; thermal: none found (no temperature limit)");
	if (!(d->sensors & KW_BOARD_SENSE_THROTTLE))
		ADD("; throttle flags: not on this board");
	else if (in->have_throttle)
		ADD("; throttle flags: 0x%x", in->throttle);
	else
		ADD("; throttle flags: file absent");
	if (!b->gpio)
		ADD("; gpio: none");
	else
		ADD("; gpio: %s (power-good %d, low-battery %d, led %d)", d->gpio_chip,
		    d->power_good.offset, d->low_battery.offset, d->status_led.offset);
	ADD("; local time %s", in->local_min >= 0 ? "known" : "unknown");
#undef ADD
}
