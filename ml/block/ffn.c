/*
 * FFN experts (kw/ml/block.h): Hivemind's "ffn" expert, FeedforwardBlock in
 * hivemind/moe/server/layers/common.py at commit 4bd43b7 (Linear(h, 4h) -> gelu_fast ->
 * Linear(4h, h) -> LayerNorm(x + .), eps 1e-12), and transformers' LlamaMLP
 * (down(silu(gate x) * up x)). Forward, and backward with respect to the inputs by
 * recomputing the forward for each chunk of rows (nothing is kept between calls).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/ml/block.h>

#define GELU_C  0.7978845608f   /* sqrt(2/pi) as gelu_fast writes it */
#define GELU_A  0.044715f
#define LN_EPS  1e-12f

size_t kw_ffn_ctx_bytes(size_t hid, size_t inter, size_t max_rows)
{
	size_t f = max_rows * (3 * inter + 2 * hid);

	if (!hid || !inter || !max_rows || f / max_rows != 3 * inter + 2 * hid)
		return 0;
	return kw_exec_bytes(KW_MAX(hid, inter)) + f * sizeof(float) + 5 * 64;
}

int kw_ffn_ctx_init(struct kw_ffn_ctx *c, const struct kw_kernels *kk, struct kw_workers *wk,
		    size_t hid, size_t inter, size_t max_rows, struct kw_arena *a)
{
	int rc;

	if (!c || !a || !kw_ffn_ctx_bytes(hid, inter, max_rows))
		return -KW_EINVAL;
	rc = kw_exec_init(&c->ex, kk, wk, KW_MAX(hid, inter), a);
	if (rc)
		return rc;
	c->hid = hid;
	c->inter = inter;
	c->max_rows = max_rows;
	c->a = kw_arena_alloc(a, max_rows * inter * sizeof(float), 64);
	c->g = kw_arena_alloc(a, max_rows * inter * sizeof(float), 64);
	c->h = kw_arena_alloc(a, max_rows * inter * sizeof(float), 64);
	c->t = kw_arena_alloc(a, max_rows * hid * sizeof(float), 64);
	c->z = kw_arena_alloc(a, max_rows * hid * sizeof(float), 64);
	return c->a && c->g && c->h && c->t && c->z ? 0 : -KW_ENOMEM;
}

static int ffn_check(const struct kw_ffn_ctx *c, const struct kw_ffn *f)
{
	if (!c || !f || f->hid != c->hid || f->inter > c->inter)
		return -KW_EINVAL;
	if (f->up.n != f->inter || f->up.k != f->hid || f->down.n != f->hid ||
	    f->down.k != f->inter)
		return -KW_EINVAL;
	if (f->kind == KW_FFN_GELU)
		return f->ln_w && f->ln_b ? 0 : -KW_EINVAL;
	if (f->kind == KW_FFN_SWIGLU)
		return f->gate.n == f->inter && f->gate.k == f->hid ? 0 : -KW_EINVAL;
	return -KW_EINVAL;
}

static inline float gelu_fast(float x)
{
	return 0.5f * x * (1.0f + tanhf(x * GELU_C * (1.0f + GELU_A * x * x)));
}

static inline float gelu_fast_grad(float x)
{
	float t = tanhf(x * GELU_C * (1.0f + GELU_A * x * x));

	return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_C * (1.0f + 3.0f * GELU_A * x * x);
}

static inline float silu(float x)
{
	return x / (1.0f + expf(-x));
}

/* LayerNorm of one row (biased variance, as torch). */
static void layer_norm(const float *z, const float *w, const float *b, size_t n, float *y)
{
	double mu = 0, var = 0;
	float rstd;

	for (size_t i = 0; i < n; i++)
		mu += z[i];
	mu /= (double)n;
	for (size_t i = 0; i < n; i++)
		var += (z[i] - mu) * (z[i] - mu);
	rstd = (float)(1.0 / sqrt(var / (double)n + LN_EPS));
	for (size_t i = 0; i < n; i++)
		y[i] = ((float)(z[i] - mu) * rstd) * w[i] + b[i];
}

/* dz given dy for y = LayerNorm(z): rstd (w dy - mean(w dy) - zhat mean(w dy zhat)). */
static void layer_norm_grad(const float *z, const float *w, const float *gy, size_t n,
			    float *gz)
{
	double mu = 0, var = 0, m1 = 0, m2 = 0;
	float rstd;

	for (size_t i = 0; i < n; i++)
		mu += z[i];
	mu /= (double)n;
	for (size_t i = 0; i < n; i++)
		var += (z[i] - mu) * (z[i] - mu);
	rstd = (float)(1.0 / sqrt(var / (double)n + LN_EPS));
	for (size_t i = 0; i < n; i++) {
		double zh = (z[i] - mu) * rstd, g = (double)w[i] * gy[i];

		m1 += g;
		m2 += g * zh;
	}
	m1 /= (double)n;
	m2 /= (double)n;
	for (size_t i = 0; i < n; i++) {
		double zh = (z[i] - mu) * rstd;

		gz[i] = (float)(rstd * ((double)w[i] * gy[i] - m1 - zh * m2));
	}
}

/* The inner activation of mc rows: GELU leaves a = W1 x + b1, h = gelu(a); SwiGLU leaves
 * a = up x, g = gate x, h = silu(g) * a. */
static int ffn_inner(struct kw_ffn_ctx *c, const struct kw_ffn *f, const float *x, size_t mc)
{
	size_t n = mc * f->inter;
	int rc = kw_lin_forward(&c->ex, &f->up, x, mc, c->a);

	if (rc)
		return rc;
	if (f->kind == KW_FFN_GELU) {
		for (size_t i = 0; i < n; i++)
			c->h[i] = gelu_fast(c->a[i]);
		return 0;
	}
	rc = kw_lin_forward(&c->ex, &f->gate, x, mc, c->g);
	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++)
		c->h[i] = silu(c->g[i]) * c->a[i];
	return 0;
}

int kw_ffn_forward(struct kw_ffn_ctx *c, const struct kw_ffn *f, const float *x, size_t m,
		   float *y)
{
	int rc = ffn_check(c, f);

	if (rc || !x || !y || !m)
		return rc ? rc : -KW_EINVAL;
	for (size_t r = 0; r < m; r += c->max_rows) {
		size_t mc = KW_MIN(c->max_rows, m - r), hid = f->hid;
		const float *xr = x + r * hid;
		float *yr = y + r * hid;

		rc = ffn_inner(c, f, xr, mc);
		if (rc)
			return rc;
		if (f->kind == KW_FFN_SWIGLU) {
			rc = kw_lin_forward(&c->ex, &f->down, c->h, mc, yr);
			if (rc)
				return rc;
			continue;
		}
		rc = kw_lin_forward(&c->ex, &f->down, c->h, mc, c->t);
		if (rc)
			return rc;
		for (size_t i = 0; i < mc; i++) {
			float *z = c->z + i * hid;

			for (size_t j = 0; j < hid; j++)
				z[j] = xr[i * hid + j] + c->t[i * hid + j];
			layer_norm(z, f->ln_w, f->ln_b, hid, yr + i * hid);
		}
	}
	return 0;
}

int kw_ffn_backward(struct kw_ffn_ctx *c, const struct kw_ffn *f, const float *x,
		    const float *gy, size_t m, float *gx)
{
	int rc = ffn_check(c, f);

	if (rc || !x || !gy || !gx || !m)
		return rc ? rc : -KW_EINVAL;
	for (size_t r = 0; r < m; r += c->max_rows) {
		size_t mc = KW_MIN(c->max_rows, m - r), hid = f->hid, n = mc * f->inter;
		const float *xr = x + r * hid, *gyr = gy + r * hid;
		float *gxr = gx + r * hid;

		rc = ffn_inner(c, f, xr, mc);
		if (rc)
			return rc;
		if (f->kind == KW_FFN_SWIGLU) {
			/* h <- d act = down^T gy; g <- d gate; a <- d up */
			rc = kw_lin_backward(&c->ex, &f->down, gyr, mc, c->h);
			if (rc)
				return rc;
			for (size_t i = 0; i < n; i++) {
				float gv = c->g[i], sg = 1.0f / (1.0f + expf(-gv));
				float ds = sg * (1.0f + gv * (1.0f - sg));

				c->g[i] = c->h[i] * c->a[i] * ds;
				c->a[i] = c->h[i] * gv * sg;
			}
			rc = kw_lin_backward(&c->ex, &f->up, c->a, mc, c->t);
			if (!rc)
				rc = kw_lin_backward(&c->ex, &f->gate, c->g, mc, c->z);
			if (rc)
				return rc;
			for (size_t i = 0; i < mc * hid; i++)
				gxr[i] = c->t[i] + c->z[i];
			continue;
		}
		/* z = x + W2 h + b2 recomputed, then gz (in t) = LayerNorm'(z) gy */
		rc = kw_lin_forward(&c->ex, &f->down, c->h, mc, c->t);
		if (rc)
			return rc;
		for (size_t i = 0; i < mc * hid; i++)
			c->z[i] = xr[i] + c->t[i];
		for (size_t i = 0; i < mc; i++)
			layer_norm_grad(c->z + i * hid, f->ln_w, gyr + i * hid, hid, c->t + i * hid);
		/* gh (in g) = W2^T gz; ga (in g) = gh * gelu'(a); gx = gz + W1^T ga */
		rc = kw_lin_backward(&c->ex, &f->down, c->t, mc, c->g);
		if (rc)
			return rc;
		for (size_t i = 0; i < n; i++)
			c->g[i] *= gelu_fast_grad(c->a[i]);
		rc = kw_lin_backward(&c->ex, &f->up, c->g, mc, c->z);
		if (rc)
			return rc;
		for (size_t i = 0; i < mc * hid; i++)
			gxr[i] = c->t[i] + c->z[i];
	}
	return 0;
}

/* ---- experts from safetensors --------------------------------------------------------------- */
size_t kw_ffn_load_bytes(size_t hid, int int8, int with_t)
{
	size_t a = kw_lin_load_bytes(4 * hid, hid, int8, with_t, 1);
	size_t b = kw_lin_load_bytes(hid, 4 * hid, int8, with_t, 1);

	return a && b ? a + b + 2 * (hid * sizeof(float) + 64) : 0;
}

int kw_ffn_load(struct kw_ffn *f, const struct kw_st_file *st, const char *uid, int int8,
		int with_t, struct kw_arena *a, char *err, size_t errcap)
{
	static const char *const sfx[6] = { "ffn.weight", "ffn.bias", "ffn_output.weight",
					    "ffn_output.bias", "layer_norm.weight",
					    "layer_norm.bias" };
	const struct kw_st_tensor *t[6];
	float *ln[2];
	size_t hid;
	int r;

	if (!f || !st || !uid || !a)
		return -KW_EINVAL;
	for (int i = 0; i < 6; i++) {
		char name[192];

		snprintf(name, sizeof(name), "%s.%s", uid, sfx[i]);
		t[i] = kw_st_find(st, name);
		if (!t[i])
			return kw_errf(-KW_ENOENT, err, errcap, "expert file has no tensor '%s'", name);
	}
	if (t[4]->ndim != 1 || t[4]->shape[0] == 0 || t[4]->shape[0] > KW_LLAMA_MAX_DIM)
		return kw_errf(-KW_ECORRUPT, err, errcap, "tensor '%s': not a vector of 1..%u",
			       t[4]->name, KW_LLAMA_MAX_DIM);
	hid = (size_t)t[4]->shape[0];
	memset(f, 0, sizeof(*f));
	f->kind = KW_FFN_GELU;
	f->hid = hid;
	f->inter = 4 * hid;
	r = kw_lin_load_st(&f->up, t[0], t[1], 4 * hid, hid, int8, with_t, a, err, errcap);
	if (!r)
		r = kw_lin_load_st(&f->down, t[2], t[3], hid, 4 * hid, int8, with_t, a, err, errcap);
	if (r)
		return r;
	for (int i = 0; i < 2; i++) {
		const struct kw_st_tensor *v = t[4 + i];

		if (v->ndim != 1 || v->shape[0] != hid)
			return kw_errf(-KW_ECORRUPT, err, errcap, "tensor '%s': shape is not [%zu]",
				       v->name, hid);
		ln[i] = kw_arena_alloc(a, hid * sizeof(float), 64);
		if (!ln[i])
			return kw_errf(-KW_ENOSPC, err, errcap, "arena too small for '%s'", v->name);
		if ((r = kw_st_read_f32(v, 0, hid, ln[i])))
			return kw_errf(r, err, errcap, "tensor '%s': read failed", v->name);
	}
	f->ln_w = ln[0];
	f->ln_b = ln[1];
	return 0;
}
