/* Expands initcalls.def into the daemon's default init table. */
#include <kw/board.h>
#include <kw/compiler.h>
#include <kw/node.h>
#include <kw/net/swarm.h>

#define KW_IF_1(...) __VA_ARGS__
#define KW_IF_0(...)
#define KW_IF__(v, ...) KW_IF_##v(__VA_ARGS__)
#define KW_IF_(v, ...) KW_IF__(v, __VA_ARGS__)
#define KW_IF(cfg, ...) KW_IF_(IS_ENABLED(cfg), __VA_ARGS__)
#define KW_INIT(n, i, s) { #n, i, s },

const struct kw_initcall kw_default_initcalls[] = {
#include "initcalls.def"
};
const size_t kw_default_initcalls_count =
	sizeof(kw_default_initcalls) / sizeof(kw_default_initcalls[0]);
