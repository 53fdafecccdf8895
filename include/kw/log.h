/*
 * Logging. CONFIG_KW_LOG_LEVEL is the compile-time ceiling for the whole tree (a file may
 * lower its own by defining KW_LOG_MAX before including this header; none does today).
 * Levels above the ceiling compile away (the constant comparison comes first) while their
 * arguments are still type-checked. The runtime level (CONFIG_KW_LOG_DEFAULT_LEVEL until
 * kw_log_set_level runs) chooses what is printed below the ceiling.
 *
 * Output: "<mono-ms> <LVL> <module>: message" to stderr, never coloured, never to files of
 * our own (an SD card wears). When stderr is systemd's journal stream (kw_log_detect_journal)
 * a line is "<prio><LVL> <module>: message": the syslog priority journald reads, no timestamp.
 * Logging is the one process-wide facility (like stderr itself): its level is set once at
 * start-up by the daemon.
 */
#ifndef KW_LOG_H
#define KW_LOG_H

#include <stdint.h>

enum kw_log_level { KW_LOG_LEVEL_OFF = 0, KW_LOG_LEVEL_ERR = 1, KW_LOG_LEVEL_WRN = 2,
		    KW_LOG_LEVEL_INF = 3, KW_LOG_LEVEL_DBG = 4 };

#ifndef KW_LOG_MAX
#define KW_LOG_MAX CONFIG_KW_LOG_LEVEL  /* autoconf.h is included into every unit */
#endif

/* Emits one line; use the macros below instead of calling this directly. */
void kw_log_emit(int level, const char *module, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Sets the runtime level (clamped to 0..4); returns the previous one. */
int kw_log_set_level(int level);
int kw_log_get_level(void);
/* Test seam: when set, each formatted line also goes to this callback (NULL to stop). */
void kw_log_set_hook(void (*hook)(int level, const char *module, const char *msg, void *arg),
		     void *arg);
/* Fuzz seam: 0 stops the stderr copy (lines are still formatted and reach the hook, so the
 * formatting of hostile input stays exercised); 1 restores it. Returns the previous value. */
int kw_log_set_stderr(int on);

/*
 * Journal mode: on when $JOURNAL_STREAM names the device and inode stderr is (systemd sets it
 * for a unit whose output goes to the journal), off otherwise. Called once at start-up; the
 * daemon's main does. Returns the mode chosen (1 on, 0 off); kw_log_journal reads it.
 */
int kw_log_detect_journal(void);
int kw_log_journal(void);

#define KW_LOG_(lvl, module, ...)                                                          \
	do {                                                                                \
		if ((lvl) <= KW_LOG_MAX && (lvl) <= kw_log_get_level())                     \
			kw_log_emit((lvl), #module, __VA_ARGS__);                           \
	} while (0)

#define KW_LOG_ERR(module, ...) KW_LOG_(KW_LOG_LEVEL_ERR, module, __VA_ARGS__)
#define KW_LOG_WRN(module, ...) KW_LOG_(KW_LOG_LEVEL_WRN, module, __VA_ARGS__)
#define KW_LOG_INF(module, ...) KW_LOG_(KW_LOG_LEVEL_INF, module, __VA_ARGS__)
#define KW_LOG_DBG(module, ...) KW_LOG_(KW_LOG_LEVEL_DBG, module, __VA_ARGS__)

#endif /* KW_LOG_H */
