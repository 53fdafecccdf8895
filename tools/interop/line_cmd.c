/* The test peers' stdin command loop (line_cmd.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <kw/bytes.h>
#include <kw/compiler.h>
#include <kw/err.h>

#include "line_cmd.h"

void kw_line_out(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

void kw_line_done(struct kw_line_cmd *lc)
{
	lc->busy = false;
	kw_task_post(lc->loop, &lc->next);
}

void kw_line_ok(struct kw_line_cmd *lc, const char *fmt, ...)
{
	char buf[8192];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	kw_line_out("ok %s%s%s", lc->cmd, buf[0] ? " " : "", buf);
	kw_line_done(lc);
}

void kw_line_err(struct kw_line_cmd *lc, const char *why)
{
	kw_line_out("err %s %s", lc->cmd, why);
	kw_line_done(lc);
}

void kw_line_hex(const uint8_t *d, size_t n, char *o)
{
	o[kw_hex_put(d, n, o)] = '\0';
}

long kw_line_unhex(const char *s, uint8_t *o, size_t cap)
{
	size_t n = strlen(s);

	if (n % 2 || n / 2 > cap)
		return -KW_EINVAL;
	if (kw_hex_get(s, n / 2, o))
		return -KW_EINVAL;
	return (long)(n / 2);
}

static int next_fn(struct kw_loop *l, struct kw_task *t)
{
	struct kw_line_cmd *lc = t->arg;

	while (!lc->busy) {
		char *nl = memchr(lc->inbuf, '\n', lc->in_len);
		size_t n;

		if (!nl) {
			if (lc->in_eof)
				kw_loop_stop(l, 0);
			break;
		}
		n = (size_t)(nl - lc->inbuf);
		snprintf(lc->line, sizeof(lc->line), "%.*s",
			 (int)KW_MIN(n, sizeof(lc->line) - 1), lc->inbuf);
		memmove(lc->inbuf, nl + 1, lc->in_len - n - 1);
		lc->in_len -= n + 1;
		lc->run(lc, lc->line);
	}
	return KW_TASK_DONE;
}

static void on_stdin(struct kw_loop *l, struct kw_watch *w, uint32_t ev)
{
	struct kw_line_cmd *lc = w->arg;
	ssize_t n = 0;

	(void)ev;
	if (lc->in_len < sizeof(lc->inbuf))
		n = read(0, lc->inbuf + lc->in_len, sizeof(lc->inbuf) - lc->in_len);
	if (n <= 0) {
		kw_loop_unwatch(l, w);
		lc->in_eof = true;
	} else {
		lc->in_len += (size_t)n;
	}
	kw_task_post(l, &lc->next);
}

void kw_line_start(struct kw_line_cmd *lc, struct kw_loop *loop, kw_line_run_fn run)
{
	lc->loop = loop;
	lc->run = run;
	kw_task_init(&lc->next, next_fn, lc);
	kw_loop_watch(loop, &lc->in_w, 0, KW_EV_READ, on_stdin, lc);
}
