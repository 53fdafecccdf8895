/* kw_strerror: the one table of messages for the project's error space. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <kw/err.h>

static const char *const g_kw_msgs[] = {
	[KW_EHANDSHAKE - KW_EBASE] = "security handshake failed",
	[KW_EPEERID - KW_EBASE] = "remote peer id does not match the dialed one",
	[KW_ESIG - KW_EBASE] = "signature verification failed",
	[KW_EKEYTYPE - KW_EBASE] = "key type unknown or not built in",
	[KW_ENOPROTO - KW_EBASE] = "protocol not supported",
	[KW_ELIMIT - KW_EBASE] = "configured resource limit reached",
	[KW_ECORRUPT - KW_EBASE] = "stored data is corrupt",
	[KW_ESHUTDOWN - KW_EBASE] = "node is shutting down",
	[KW_ECONFIG - KW_EBASE] = "invalid configuration",
};

const char *kw_strerror(int err)
{
	if (err < 0)
		err = -err;
	if (err == 0)
		return "success";
	if (err > KW_EBASE && err < KW_ELAST) {
		const char *m = g_kw_msgs[err - KW_EBASE];
		return m ? m : "unknown error";
	}
	if (err == KW_ENOSPC)  /* our meaning, not the disk's */
		return "output buffer too small";
	if (err < KW_EBASE)
		return strerror(err);  /* glibc returns a static string for known codes */
	return "unknown error";
}

int kw_errf(int ret, char *err, size_t errcap, const char *fmt, ...)
{
	va_list ap;

	if (err && errcap > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errcap, fmt, ap);
		va_end(ap);
	}
	return ret;
}
