/*
 * GPIO lines through libgpiod 1.6 (Debian bookworm; the v1 API: gpiod_chip_open_lookup,
 * gpiod_line_request_*_flags, gpiod_line_get/set_value). The lines are requested once at
 * start-up and held until close, so another program cannot drive our LED meanwhile; values
 * are logical (GPIOD_LINE_REQUEST_FLAG_ACTIVE_LOW inverts in the kernel).
 *
 * One board has one header chip, so the backend keeps one static instance. Without
 * CONFIG_KW_GPIO the open call reports -KW_ENOTSUP and nothing links libgpiod.
 */
#include <errno.h>
#include <string.h>

#include <kw/board.h>
#include <kw/compiler.h>
#include <kw/err.h>

#ifdef CONFIG_KW_GPIO
#include <gpiod.h>

#define GPIO_LINES_MAX 8

static struct gpiod_state {
	struct gpiod_chip *chip;
	struct gpiod_line *line[GPIO_LINES_MAX];
	int offset[GPIO_LINES_MAX];
	size_t n;
} g_gpiod;

static struct gpiod_line *find(struct gpiod_state *s, int offset)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (s->offset[i] == offset)
			return s->line[i];
	return NULL;
}

static int gpiod_get(struct kw_gpio *g, int offset)
{
	struct gpiod_line *l = find(g->priv, offset);
	int v;

	if (!l)
		return -KW_EINVAL;
	v = gpiod_line_get_value(l);
	return v < 0 ? -errno : v;
}

static int gpiod_set(struct kw_gpio *g, int offset, int value)
{
	struct gpiod_line *l = find(g->priv, offset);

	if (!l)
		return -KW_EINVAL;
	return gpiod_line_set_value(l, value ? 1 : 0) < 0 ? -errno : 0;
}

static void gpiod_close(struct kw_gpio *g)
{
	struct gpiod_state *s = g->priv;

	if (!s || !s->chip)
		return;
	gpiod_chip_close(s->chip);  /* releases every requested line */
	memset(s, 0, sizeof(*s));
	g->priv = NULL;
}

static const struct kw_gpio_ops g_gpiod_ops = {
	.get = gpiod_get,
	.set = gpiod_set,
	.close = gpiod_close,
};

static int request(struct gpiod_state *s, const char *chip, const struct kw_board_line *bl,
		   bool output, char *err, size_t errlen)
{
	struct gpiod_line *l;
	int flags = bl->active_low ? GPIOD_LINE_REQUEST_FLAG_ACTIVE_LOW : 0, ret;

	if (s->n == GPIO_LINES_MAX)
		return kw_errf(-KW_ELIMIT, err, errlen, "%s: more than %d lines", chip,
			       GPIO_LINES_MAX);
	if (bl->offset >= (int)gpiod_chip_num_lines(s->chip))
		return kw_errf(-KW_EINVAL, err, errlen, "GPIO chip %s has %u lines, no line %d",
			       chip, gpiod_chip_num_lines(s->chip), bl->offset);
	l = gpiod_chip_get_line(s->chip, (unsigned)bl->offset);
	if (!l) {
		ret = -errno;
		return kw_errf(ret, err, errlen, "GPIO chip %s line %d: %s", chip, bl->offset,
			       kw_strerror(ret));
	}
	ret = output ? gpiod_line_request_output_flags(l, "kwnode", flags, 0)
		     : gpiod_line_request_input_flags(l, "kwnode", flags);
	if (ret < 0) {
		ret = -errno;
		return kw_errf(ret, err, errlen, "GPIO chip %s line %d (%s): %s", chip, bl->offset,
			       output ? "output" : "input", kw_strerror(ret));
	}
	s->line[s->n] = l;
	s->offset[s->n++] = bl->offset;
	return 0;
}

int kw_gpiod_open(struct kw_gpio *g, const char *chip, const struct kw_board_line *in,
		  size_t n_in, const struct kw_board_line *out, size_t n_out, char *err,
		  size_t errlen)
{
	struct gpiod_state *s = &g_gpiod;
	size_t i;
	int ret;

	if (s->chip)
		return kw_errf(-KW_EBUSY, err, errlen, "GPIO chip already open");
	if (!chip || !chip[0])
		return kw_errf(-KW_EINVAL, err, errlen, "no GPIO chip configured");
	s->chip = gpiod_chip_open_lookup(chip);
	if (!s->chip) {
		ret = errno ? -errno : -KW_ENOENT;
		if (ret == -ENOTTY || ret == -ENODEV)
			ret = -KW_ENOENT;  /* lookup says "not a GPIO chip" for a name it lacks */
		return kw_errf(ret, err, errlen, "GPIO chip %s not found (%s); `gpiodetect` lists "
			       "the chips", chip, kw_strerror(ret));
	}
	g->ops = &g_gpiod_ops;
	g->priv = s;
	for (i = 0; i < n_in + n_out; i++) {
		const struct kw_board_line *bl = i < n_in ? &in[i] : &out[i - n_in];

		if (bl->offset < 0)
			continue;
		ret = request(s, chip, bl, i >= n_in, err, errlen);
		if (ret < 0) {
			gpiod_close(g);
			return ret;
		}
	}
	return 0;
}

#else /* !CONFIG_KW_GPIO */

int kw_gpiod_open(struct kw_gpio *g, const char *chip, const struct kw_board_line *in,
		  size_t n_in, const struct kw_board_line *out, size_t n_out, char *err,
		  size_t errlen)
{
	return kw_errf(-KW_ENOTSUP, err, errlen, "GPIO chip %s: libgpiod is not built in "
		       "(CONFIG_KW_GPIO)", chip ? chip : "?");
}

#endif
