/*
 * The contribution policy (app/policy.c): whether this node should do work for the network
 * right now, decided from the board's sensors (kw/board.h) and the owner's settings, so a
 * board on a battery, running hot or under-powered steps back by itself and comes back when
 * conditions return (doc/board.md).
 *
 * Three states:
 *   contributing  serving requests, announced in the DHT, joining averaging rounds
 *   draining      stopping: every registered client finishes its work in flight and
 *                 withdraws (DHT records, averaging groups); when all report done -> paused
 *   paused        not contributing; the node stays up and keeps its connections
 *
 * Every transition carries a reason (logged at info level and kept in the status), the state
 * changes at most once per `min_dwell_ms` (safety reasons excepted, below), and the thresholds
 * have hysteresis: battery stops below `battery_stop_pct` and starts again only at
 * `battery_start_pct`; temperature stops above `temp_max_c` and starts again at
 * `temp_max_c - temp_hysteresis_c`.
 *
 * The decision is a pure function (kw_policy_decide) of a sensor snapshot, the settings, the
 * current status and the time, tested exhaustively; the runtime object (struct kw_policy)
 * reads the sensors on a periodic timer of the node's loop and runs the drain protocol.
 */
#ifndef KW_POLICY_H
#define KW_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kw/loop.h>

enum kw_policy_state {
	KW_POLICY_PAUSED = 0,
	KW_POLICY_CONTRIBUTING,
	KW_POLICY_DRAINING,
};

/* "paused", "contributing", "draining". */
const char *kw_policy_state_name(enum kw_policy_state s);

/*
 * The owner's settings: Kconfig defaults (app/Kconfig.policy), overridden by the config file
 * (doc/config.md). Numbers are uint32_t so the config key table stores them directly.
 */
struct kw_policy_settings {
	bool require_ac;               /* pause while running from a battery */
	uint32_t battery_start_pct;    /* on battery: contribute only at or above this ... */
	uint32_t battery_stop_pct;     /* ... and keep going until below this (<= start) */
	uint32_t temp_max_c;           /* pause above this SoC temperature (degrees C) ... */
	uint32_t temp_hysteresis_c;    /* ... resume at or below temp_max_c - this */
	bool pause_on_undervoltage;    /* firmware flag: under-voltage now */
	bool pause_on_throttle;        /* firmware flags: throttled, capped or soft limit now */
	int32_t quiet_start_min;       /* quiet hours, minutes after local midnight; -1: none */
	int32_t quiet_end_min;         /* end (exclusive); the window may cross midnight */
	uint32_t cpu_share_pct;        /* CPU share for background work (worker pool reads it) */
	uint32_t min_dwell_ms;         /* least time between two state changes */
	uint32_t poll_ms;              /* sensor reading period */
	uint32_t drain_timeout_ms;     /* draining gives up waiting after this (0: never) */
};

/* Kconfig defaults. A malformed CONFIG_KW_POLICY_QUIET_HOURS leaves quiet_start_min -2, which
 * kw_policy_settings_check reports. */
void kw_policy_settings_defaults(struct kw_policy_settings *s);
/*
 * Checks the cross-field rules (battery_stop_pct <= battery_start_pct, hysteresis below the
 * maximum, quiet hours valid). Return: 0 or -KW_ECONFIG with the reason in err.
 */
int kw_policy_settings_check(const struct kw_policy_settings *s, char *err, size_t errlen);
/*
 * Parses quiet hours "HH:MM-HH:MM" (24-hour local time; start == end is refused) or "off"/""
 * (none). Return: 0 or -KW_EINVAL.
 */
int kw_policy_parse_quiet(const char *text, int32_t *start_min, int32_t *end_min);

/*
 * One reading of the sensors. Unknown values are -1 (or have_* false): a missing sensor does
 * not pause the node (a mains board has no battery; a VM may have no thermal zone), except
 * that an unknown AC state with no battery counts as mains power.
 */
struct kw_policy_sensors {
	int8_t ac;                  /* 1 external power, 0 on battery, -1 unknown */
	int8_t battery_pct;         /* lowest battery charge 0..100; -1 no battery */
	int8_t low_battery;         /* UPS low-battery line: 1 active, 0 inactive, -1 none */
	bool have_temp;
	int32_t temp_mc;            /* SoC temperature, millidegrees C */
	bool have_throttle;
	uint32_t throttle;          /* KW_THROTTLE_* (kw/board.h) */
	int16_t local_min;          /* minutes after local midnight; -1 unknown */
};

#define KW_POLICY_REASON_MAX 160

struct kw_policy_status {
	enum kw_policy_state state;
	char reason[KW_POLICY_REASON_MAX];  /* why the last transition happened */
	char detail[KW_POLICY_REASON_MAX];  /* what holds the state now (refreshed each poll) */
	uint64_t since_ms;                  /* loop time of the last transition */
	uint32_t transitions;               /* 0 until the first decision changed the state */
	struct kw_policy_sensors last;      /* the last reading */
	uint32_t sensor_errors;             /* readings where a sensor file was malformed */
};

/*
 * The decision. Given the settings, one sensor reading, the current status, whether every
 * drain client reported done, and the loop time, returns the next state and writes into
 * `reason` why (the transition's reason when the state changes, else what holds it).
 * Rules, in order:
 *   - stop conditions (first that holds): require_ac and on battery; the UPS low-battery line;
 *     on battery with the charge below the stop threshold (contributing) or the start
 *     threshold (paused); SoC above temp_max_c (contributing) or above
 *     temp_max_c - temp_hysteresis_c (paused); under-voltage now; throttled now; quiet hours;
 *   - contributing -> draining when a stop condition holds and min_dwell_ms has passed since
 *     the last transition; the safety conditions (low-battery line, temperature over the
 *     maximum, under-voltage) do not wait for the dwell time;
 *   - draining -> paused when `drained`, or when drain_timeout_ms (non-zero) has passed;
 *   - paused -> contributing when no stop condition holds and the dwell time has passed;
 *   - the first decision (transitions == 0) ignores the dwell time.
 * Pure: no clock, no I/O, no globals.
 */
enum kw_policy_state kw_policy_decide(const struct kw_policy_settings *s,
				      const struct kw_policy_sensors *in,
				      const struct kw_policy_status *st, bool drained,
				      uint64_t now_ms, char *reason, size_t cap);

/* ---- the runtime object ---- */

struct kw_policy;

/*
 * A subsystem taking part in the drain (Hivemind serving, DHT announcements, averaging).
 * `drain` runs when the policy enters draining: finish work in flight, withdraw, then call
 * kw_policy_drain_done (at once or later, from the loop). `resume` runs when the policy
 * enters contributing again. Either may be NULL (a NULL drain is done at once). Owned by the
 * subsystem; it must stay registered until kw_policy_stop.
 */
struct kw_policy_client {
	const char *name;
	void (*drain)(struct kw_policy *p, struct kw_policy_client *c);
	void (*resume)(struct kw_policy *p, struct kw_policy_client *c);
	void *arg;
	bool pending;                      /* drain begun, not yet done */
	struct kw_policy_client *next;
};

/* Fills one sensor reading; a non-zero return counts a sensor error (the reading is used). */
typedef int (*kw_policy_read_fn)(struct kw_policy *p, struct kw_policy_sensors *out, void *arg);

struct kw_policy {
	struct kw_policy_settings set;
	struct kw_policy_status st;
	struct kw_loop *loop;              /* borrowed */
	struct kw_timer timer;             /* every set.poll_ms */
	struct kw_task eval;               /* re-decides once the last drain client is done */
	kw_policy_read_fn read;
	void *read_arg;
	struct kw_policy_client *clients;
	/* called after every transition (status LED, metrics); may be NULL */
	void (*on_change)(struct kw_policy *p, void *arg);
	void *change_arg;
	bool running;
};

/*
 * Prepares `p` (caller-owned, e.g. from the node arena) over `loop` with a copy of `s`.
 * Return: 0, or -KW_ECONFIG when the settings fail kw_policy_settings_check.
 */
int kw_policy_init(struct kw_policy *p, struct kw_loop *loop, const struct kw_policy_settings *s,
		   kw_policy_read_fn read, void *read_arg, char *err, size_t errlen);
/* Registers a drain client (before or after start). */
void kw_policy_add_client(struct kw_policy *p, struct kw_policy_client *c);
/* Makes the first decision now and arms the poll timer. Return: 0 or -KW_ENOSPC (timers). */
int kw_policy_start(struct kw_policy *p);
/* Reads the sensors and decides once (the timer's work; tests call it directly). */
void kw_policy_poll(struct kw_policy *p);
/* A client finished draining; when it is the last, the policy re-decides on the loop. */
void kw_policy_drain_done(struct kw_policy *p, struct kw_policy_client *c);
/* Disarms the timer and the task. No client callback runs. */
void kw_policy_stop(struct kw_policy *p);

/* The state and reason for status pages; valid until the next poll. */
static inline const struct kw_policy_status *kw_policy_status(const struct kw_policy *p)
{
	return &p->st;
}
/* CPU share for background work in percent (1..100): the worker pool sizes itself by it. */
static inline uint32_t kw_policy_cpu_share(const struct kw_policy *p)
{
	return p->set.cpu_share_pct;
}

/* ---- the board as the sensor source (app/policy_board.c) ---- */

struct kw_board_desc;
struct kw_gpio;

/*
 * Reads the board's sensors under `root`: power supplies, the SoC thermal zone, the firmware
 * throttling flags and the GPIO lines, as the descriptor says the board has them. Owned by
 * the caller; `gpio` (may be NULL) is borrowed. `local_minute` (NULL: the system's local
 * time) gives the minutes after local midnight for quiet hours; tests fix it.
 */
struct kw_policy_board {
	const char *root;
	const struct kw_board_desc *desc;
	struct kw_gpio *gpio;
	int (*local_minute)(void *arg);
	void *minute_arg;
	char last_err[KW_POLICY_REASON_MAX];  /* the last sensor error (logged when it changes) */
};

/* A kw_policy_read_fn over a struct kw_policy_board (arg). Returns -KW_EBADMSG when a sensor
 * file was malformed (that sensor is then absent from the reading). */
int kw_policy_board_read(struct kw_policy *p, struct kw_policy_sensors *out, void *arg);
/* One line saying which sensors exist and what they read, for the start-up log. */
void kw_policy_board_describe(struct kw_policy_board *b, const struct kw_policy_sensors *in,
			      char *buf, size_t cap);

#endif /* KW_POLICY_H */
