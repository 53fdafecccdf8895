/*
 * The stdin/stdout line protocol of the C test peers (kw_interop_peer, kw_hm_peer): commands
 * arrive one per line on stdin and run one at a time on the node's loop; each is answered
 * with one line `ok <cmd> ...` or `err <cmd> <reason>` on stdout. EOF on stdin stops the loop
 * once the command in progress has answered.
 *
 * A host tool helper, not library code. The struct is owned by the peer (static storage) and
 * lives as long as its loop.
 */
#ifndef KW_TOOLS_LINE_CMD_H
#define KW_TOOLS_LINE_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kw/loop.h>

struct kw_line_cmd;
/* Runs one command line (NUL-terminated, without its newline). The command's first word
 * goes to lc->cmd; the command answers, now or later, with kw_line_ok / kw_line_err (or
 * kw_line_done after printing its own lines). */
typedef void (*kw_line_run_fn)(struct kw_line_cmd *lc, char *line);

struct kw_line_cmd {
	struct kw_loop *loop;
	struct kw_watch in_w;
	struct kw_task next;
	kw_line_run_fn run;
	char inbuf[65536];       /* stdin not yet executed */
	size_t in_len;
	bool in_eof;
	bool busy;               /* a command runs: the next line waits for its answer */
	char cmd[16];            /* the command in progress, for its answer line */
	char line[65536];        /* the line being executed */
};

/* Starts reading commands from stdin on loop. */
void kw_line_start(struct kw_line_cmd *lc, struct kw_loop *loop, kw_line_run_fn run);
/* One line on stdout, flushed. */
void kw_line_out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The command in progress has answered: run the next line. */
void kw_line_done(struct kw_line_cmd *lc);
/* `ok <cmd>[ text]` / `err <cmd> why`, then kw_line_done. */
void kw_line_ok(struct kw_line_cmd *lc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kw_line_err(struct kw_line_cmd *lc, const char *why);
/* Lower-case hex of d[0..n) into o (2n + 1 bytes). */
void kw_line_hex(const uint8_t *d, size_t n, char *o);
/* Hex text into o[0..cap): the byte count, or -KW_EINVAL (odd length, too long, not hex). */
long kw_line_unhex(const char *s, uint8_t *o, size_t cap);

#endif /* KW_TOOLS_LINE_CMD_H */
