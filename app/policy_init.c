/*
 * The `policy` entry of the init table (app/initcalls.def): builds the contribution policy
 * from the configuration, with the board as its sensor source, opens the board's GPIO lines
 * when any is configured, logs which sensors were found and the first decision, and polls on
 * the node's loop from then on. The status LED (if the board has one) follows the state.
 *
 * Subsystems that serve the network register as drain clients (kw_policy_add_client on
 * app->policy) from init entries placed after this one; a client added while the node is
 * paused gets its `resume` call when the policy next enters contributing.
 */
#include <string.h>

#include <kw/app.h>
#include <kw/board.h>
#include <kw/cpu.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>
#include <kw/policy.h>

int kw_app_policy_init(struct kw_node *n);
void kw_app_policy_shutdown(struct kw_node *n);

struct policy_ctx {
	struct kw_policy policy;
	struct kw_policy_board board;
	struct kw_gpio gpio;
};

static void led(struct kw_policy *p, void *arg)
{
	struct policy_ctx *c = arg;
	const struct kw_board_desc *d = c->board.desc;
	int ret;

	if (!c->board.gpio || d->status_led.offset < 0)
		return;
	ret = c->gpio.ops->set(&c->gpio, d->status_led.offset,
			       p->st.state == KW_POLICY_CONTRIBUTING);
	if (ret < 0)
		KW_LOG_WRN(policy, "status LED (GPIO line %d): %s", d->status_led.offset,
			   kw_strerror(ret));
}

static int open_gpio(struct policy_ctx *c)
{
	const struct kw_board_desc *d = c->board.desc;
	struct kw_board_line in[2] = { d->power_good, d->low_battery };
	char err[200];
	int ret;

	if (!(d->sensors & KW_BOARD_SENSE_GPIO) ||
	    (d->power_good.offset < 0 && d->low_battery.offset < 0 && d->status_led.offset < 0))
		return 0;
	ret = kw_gpiod_open(&c->gpio, d->gpio_chip, in, 2, &d->status_led, 1, err, sizeof(err));
	if (ret < 0) {
		/* configured lines we cannot read would make the policy blind: refuse to start */
		KW_LOG_ERR(policy, "%s", err);
		return ret;
	}
	c->board.gpio = &c->gpio;
	return 0;
}

/*
 * A CPU without a feature its board's descriptor promises (dotprod on a "rpi5" build whose
 * -mcpu was made generic, say) still runs, since kernels are chosen at run time, but the board
 * choice is probably wrong: say so once.
 */
static void check_cpu(const struct kw_board_desc *d)
{
	unsigned missing = d->cpu_features & ~kw_cpu_features();

	if (missing)
		KW_LOG_WRN(board, "this CPU lacks features board %s has (KW_CPU_* bits 0x%x): "
			   "is this the right image? (the kernels this CPU supports are used)",
			   d->name, missing);
}

int kw_app_policy_init(struct kw_node *n)
{
	struct kw_app *app = kw_app_of(n);
	struct policy_ctx *c;
	char err[200], line[320];
	int ret;

	c = kw_arena_alloc(&n->arena, sizeof(*c), 8);
	if (!c)
		return -KW_ENOMEM;
	memset(c, 0, sizeof(*c));
	c->board.root = app->cfg.sysfs_root;
	c->board.desc = kw_board_desc();
	check_cpu(c->board.desc);
	ret = kw_policy_init(&c->policy, &n->loop, &app->cfg.policy, kw_policy_board_read,
			     &c->board, err, sizeof(err));
	if (ret < 0) {
		KW_LOG_ERR(policy, "%s", err);
		return ret;
	}
	ret = open_gpio(c);
	if (ret < 0)
		return ret;
	c->policy.on_change = led;
	c->policy.change_arg = c;
	app->policy = &c->policy;

	/* one reading for the log line, before the first decision uses its own */
	kw_policy_board_read(&c->policy, &c->policy.st.last, &c->board);
	kw_policy_board_describe(&c->board, &c->policy.st.last, line, sizeof(line));
	KW_LOG_INF(policy, "sensors under %s: %s", c->board.root, line);
	ret = kw_policy_start(&c->policy);
	if (ret < 0) {
		KW_LOG_ERR(policy, "cannot arm the sensor timer: %s", kw_strerror(ret));
		goto fail;
	}
	led(&c->policy, c);
	return 0;
fail:
	kw_policy_stop(&c->policy);
	if (c->board.gpio)
		c->gpio.ops->close(&c->gpio);
	app->policy = NULL;
	return ret;
}

void kw_app_policy_shutdown(struct kw_node *n)
{
	struct kw_app *app = kw_app_of(n);
	struct policy_ctx *c;

	if (!app || !app->policy)
		return;
	c = (struct policy_ctx *)(void *)app->policy;  /* policy is the first member */
	kw_policy_stop(&c->policy);
	if (c->board.gpio) {
		if (c->board.desc->status_led.offset >= 0)
			c->gpio.ops->set(&c->gpio, c->board.desc->status_led.offset, 0);
		c->gpio.ops->close(&c->gpio);
	}
	app->policy = NULL;
}
