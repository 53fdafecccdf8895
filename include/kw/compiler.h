/* Small compiler helpers shared by every module. */
#ifndef KW_COMPILER_H
#define KW_COMPILER_H

#include <stddef.h>

#define KW_ARRAY_SIZE(a)  (sizeof(a) / sizeof((a)[0]))
#define KW_MIN(a, b)      ((a) < (b) ? (a) : (b))
#define KW_MAX(a, b)      ((a) > (b) ? (a) : (b))
#define KW_ALIGN_UP(x, a) (((x) + ((a) - 1)) & ~((size_t)(a) - 1))
#define KW_UNUSED(x)      ((void)(x))
#define KW_LIKELY(x)      __builtin_expect(!!(x), 1)
#define KW_UNLIKELY(x)    __builtin_expect(!!(x), 0)
#define KW_CONTAINER_OF(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* Linux/Zephyr IS_ENABLED: 1 when CONFIG_X is defined to 1, else 0; usable in `if`. */
#define KW__ARG_PLACEHOLDER_1 0,
#define KW__TAKE_SECOND(ignored, val, ...) val
#define KW__IS_ENABLED3(arg1_or_junk) KW__TAKE_SECOND(arg1_or_junk 1, 0, 0)
#define KW__IS_ENABLED2(val) KW__IS_ENABLED3(KW__ARG_PLACEHOLDER_##val)
#define IS_ENABLED(option) KW__IS_ENABLED2(option)

#endif /* KW_COMPILER_H */
