/*
 * One error space for the whole tree. Functions return 0 or a negated KW_E* code.
 * Codes that mean the same as a POSIX errno have that errno's value, so a failing syscall
 * passes through as `return -errno;` and strerror() agrees. Project-only codes start at 4096.
 */
#ifndef KW_ERR_H
#define KW_ERR_H

#include <errno.h>
#include <stddef.h>

#define KW_OK           0
#define KW_EPERM        EPERM
#define KW_ENOENT       ENOENT
#define KW_EIO          EIO
#define KW_EBADF        EBADF
#define KW_EAGAIN       EAGAIN
#define KW_ENOMEM       ENOMEM
#define KW_EACCES       EACCES
#define KW_EBUSY        EBUSY
#define KW_EEXIST       EEXIST
#define KW_EINVAL       EINVAL
#define KW_ENOSPC       ENOSPC   /* the caller's output buffer is too small */
#define KW_ERANGE       ERANGE
#define KW_ENOSYS       ENOSYS
#define KW_ENOTSUP      ENOTSUP
#define KW_EPROTO       EPROTO
#define KW_EBADMSG      EBADMSG
#define KW_EMSGSIZE     EMSGSIZE
#define KW_ENOBUFS      ENOBUFS  /* a shared buffer pool is exhausted (our shortage) */
#define KW_ECONNRESET   ECONNRESET
#define KW_ECONNREFUSED ECONNREFUSED
#define KW_ECONNABORTED ECONNABORTED
#define KW_ETIMEDOUT    ETIMEDOUT
#define KW_ECANCELED    ECANCELED
#define KW_ENOTCONN     ENOTCONN
#define KW_EPIPE        EPIPE
#define KW_EALREADY     EALREADY
#define KW_EINPROGRESS  EINPROGRESS
#define KW_EADDRINUSE   EADDRINUSE
#define KW_ENOTEMPTY    ENOTEMPTY

/* Project-only codes: never reuse a number for another meaning. */
#define KW_EBASE        4096
#define KW_EHANDSHAKE   (KW_EBASE + 1)  /* security handshake failed */
#define KW_EPEERID      (KW_EBASE + 2)  /* remote peer id differs from the one dialed */
#define KW_ESIG         (KW_EBASE + 3)  /* signature did not verify */
#define KW_EKEYTYPE     (KW_EBASE + 4)  /* key type unknown or not built in */
#define KW_ENOPROTO     (KW_EBASE + 5)  /* no handler / protocol not supported by the peer */
#define KW_ELIMIT       (KW_EBASE + 6)  /* a configured resource limit was reached */
#define KW_ECORRUPT     (KW_EBASE + 7)  /* on-disk data failed validation */
#define KW_ESHUTDOWN    (KW_EBASE + 8)  /* the node is stopping */
#define KW_ECONFIG      (KW_EBASE + 9)  /* configuration file or option is invalid */
#define KW_ELAST        (KW_EBASE + 10)

/*
 * Returns a static, human-readable string for an error code; accepts the code negated
 * (as returned) or positive. Never NULL.
 */
const char *kw_strerror(int err);

/*
 * Writes a printf-formatted reason into `err` (capacity `errcap`; both may be NULL/0) and
 * returns `ret` unchanged, so a parser can `return kw_errf(-KW_EINVAL, err, cap, ...)`.
 * The text is cut to fit, always NUL-terminated when errcap > 0.
 */
int kw_errf(int ret, char *err, size_t errcap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif /* KW_ERR_H */
