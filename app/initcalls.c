/* Expands initcalls.def into the daemon's init table. */
#include <kw/app.h>
#include <kw/board.h>
#include <kw/compiler.h>
#include <kw/node.h>

int kw_app_net_init(struct kw_node *n);
void kw_app_net_shutdown(struct kw_node *n);
int kw_app_policy_init(struct kw_node *n);
void kw_app_policy_shutdown(struct kw_node *n);
int kw_app_status_init(struct kw_node *n);
void kw_app_status_shutdown(struct kw_node *n);
int kw_app_control_init(struct kw_node *n);
void kw_app_control_shutdown(struct kw_node *n);
int kw_app_dht_drain_init(struct kw_node *n);
int kw_app_hivemind_init(struct kw_node *n);
void kw_app_hivemind_shutdown(struct kw_node *n);
int kw_app_hm_announce_init(struct kw_node *n);
void kw_app_hm_announce_shutdown(struct kw_node *n);
int kw_app_serve_init(struct kw_node *n);
void kw_app_serve_shutdown(struct kw_node *n);
int kw_app_serve_drain_init(struct kw_node *n);
void kw_app_serve_drain_shutdown(struct kw_node *n);
int kw_app_avgd_init(struct kw_node *n);
void kw_app_avgd_shutdown(struct kw_node *n);

#define KW_IF_1(...) __VA_ARGS__
#define KW_IF_0(...)
#define KW_IF__(v, ...) KW_IF_##v(__VA_ARGS__)
#define KW_IF_(v, ...) KW_IF__(v, __VA_ARGS__)
#define KW_IF(cfg, ...) KW_IF_(IS_ENABLED(cfg), __VA_ARGS__)
#define KW_INIT(n, i, s) { #n, i, s },

const struct kw_initcall kw_app_initcalls[] = {
#include "initcalls.def"
};
const size_t kw_app_initcalls_count = sizeof(kw_app_initcalls) / sizeof(kw_app_initcalls[0]);
