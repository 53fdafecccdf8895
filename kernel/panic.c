/* kw_panic: the end of a broken invariant. Logs where, then aborts for a core dump. */
#include <stdlib.h>

#include <kw/assert.h>
#include <kw/log.h>

void kw_panic(const char *file, int line, const char *what)
{
	kw_log_emit(KW_LOG_LEVEL_ERR, "panic", "%s:%d: assertion failed: %s", file, line, what);
	abort();
}
