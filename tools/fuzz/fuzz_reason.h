/*
 * Shared by the model-loading fuzz targets: a refusal must come with a reason a person can
 * read, so an empty text or a control byte in it stops the fuzzer.
 */
#ifndef KW_TOOLS_FUZZ_REASON_H
#define KW_TOOLS_FUZZ_REASON_H

static inline void kw_fuzz_check_reason(const char *err)
{
	if (!err[0])
		__builtin_trap();
	for (const char *p = err; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
			__builtin_trap();
}

#endif /* KW_TOOLS_FUZZ_REASON_H */
