/*
 * Asserts are for our bugs, checks are for their bytes (house rule 7).
 * KW_ASSERT: internal invariants; on failure logs file/line/expression and aborts (a crash
 *   and supervised restart beats silent corruption). Compiled in when CONFIG_KW_ASSERT=y.
 * Bytes from the network or disk never reach KW_ASSERT: those are checked in the open and
 * answered with a negative KW_E* code.
 */
#ifndef KW_ASSERT_H
#define KW_ASSERT_H

#include <kw/compiler.h>

__attribute__((noreturn)) void kw_panic(const char *file, int line, const char *what);

#if defined(CONFIG_KW_ASSERT) && CONFIG_KW_ASSERT
#define KW_ASSERT(cond) \
	do { if (KW_UNLIKELY(!(cond))) kw_panic(__FILE__, __LINE__, #cond); } while (0)
#else
#define KW_ASSERT(cond) do { (void)sizeof(cond); } while (0)
#endif

#endif /* KW_ASSERT_H */
