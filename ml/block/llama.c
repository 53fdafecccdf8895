/*
 * The LLaMA decoder block (kw/ml/block.h) as transformers 4.43.1 (the version Petals 2.3
 * pins) writes it in models/llama/modeling_llama.py, LlamaDecoderLayer:
 *   h = x + o_proj(attn(rope(q_proj(n1)), rope(k_proj(n1)), v_proj(n1))),  n1 = RMSNorm(x)
 *   y = h + down_proj(silu(gate_proj(n2)) * up_proj(n2)),                  n2 = RMSNorm(h)
 * RMSNorm (LlamaRMSNorm): w * x / sqrt(mean(x^2) + eps), in fp32. RoPE (LlamaRotaryEmbedding,
 * apply_rotary_pos_emb): inv_freq_i = 1 / theta^(2i / head_dim), cos/sin of pos x inv_freq
 * repeated over both halves, q' = q cos + rotate_half(q) sin with rotate_half(x) =
 * (-x2, x1). Grouped-query attention (repeat_kv): query head h reads KV head
 * h / (heads / kv_heads); scores q.k / sqrt(head_dim), causal, softmax in fp32.
 * Forward runs over the session's KV cache (Petals inference_step); backward with respect
 * to the inputs recomputes the forward of each whole sequence without a cache (Petals
 * rpc_backward) and keeps the attention probabilities in scratch.
 */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/ml/block.h>
#include <kw/ml/kernels.h>

void kw_llama_dims_from_config(struct kw_llama_dims *d, const struct kw_llama_config *c)
{
	d->hidden = c->hidden_size;
	d->inter = c->intermediate_size;
	d->heads = c->num_attention_heads;
	d->kv_heads = c->num_key_value_heads;
	d->head_dim = c->head_dim;
	d->rope_theta = c->rope_theta;
	d->eps = c->rms_norm_eps;
}

static int dims_ok(const struct kw_llama_dims *d)
{
	return d && d->hidden && d->inter && d->heads && d->kv_heads && d->head_dim &&
	       d->head_dim % 2 == 0 && d->heads % d->kv_heads == 0 && d->rope_theta > 0 &&
	       d->eps > 0 && d->hidden <= KW_LLAMA_MAX_DIM && d->inter <= KW_LLAMA_MAX_DIM &&
	       d->heads * d->head_dim <= KW_LLAMA_MAX_DIM;
}

/* Float counts of every buffer, in the order kw_llama_ctx_init carves them. */
static size_t ctx_floats(const struct kw_llama_dims *d, size_t R, size_t P, unsigned nw,
			 size_t f[32], size_t *nf)
{
	size_t H = d->hidden, I = d->inter, QD = d->heads * d->head_dim;
	size_t KD = d->kv_heads * d->head_dim, i = 0, sum = 0;

	f[i++] = P * d->head_dim / 2;          /* cos */
	f[i++] = P * d->head_dim / 2;          /* sin */
	f[i++] = R * H;                        /* xn */
	f[i++] = R * QD;                       /* q */
	f[i++] = R * KD;                       /* k */
	f[i++] = R * KD;                       /* v */
	f[i++] = R * QD;                       /* att */
	f[i++] = R * H;                        /* h1 */
	f[i++] = R * I;                        /* g */
	f[i++] = R * I;                        /* u */
	f[i++] = (size_t)nw * P;               /* sc */
	f[i++] = KD * R;                       /* kbuf */
	f[i++] = KD * R;                       /* vbuf */
	f[i++] = d->heads * R * R;             /* p */
	f[i++] = R * QD;                       /* gq */
	f[i++] = R * KD;                       /* gk */
	f[i++] = R * KD;                       /* gv */
	f[i++] = R * QD;                       /* gatt */
	f[i++] = R * H;                        /* gh */
	f[i++] = R * I;                        /* gg */
	f[i++] = R * I;                        /* gu */
	f[i++] = R * KW_MAX(H, QD);            /* t1 */
	f[i++] = R * H;                        /* xn2 */
	f[i++] = R * H;                        /* r1 */
	f[i++] = R * H;                        /* r2 */
	for (size_t j = 0; j < i; j++)
		sum += f[j] + 16;              /* 64-byte alignment of each */
	*nf = i;
	return sum;
}

size_t kw_llama_ctx_bytes(const struct kw_llama_dims *d, size_t max_rows, size_t max_pos,
			  unsigned nworkers)
{
	size_t f[32], nf;

	if (!dims_ok(d) || !max_rows || !max_pos || max_rows > (1u << 16) ||
	    max_pos > (1u << 24) || !nworkers)
		return 0;
	return ctx_floats(d, max_rows, max_pos, nworkers, f, &nf) * sizeof(float) +
	       kw_exec_bytes(KW_MAX(KW_MAX(d->hidden, d->inter), d->heads * d->head_dim));
}

int kw_llama_ctx_init(struct kw_llama_ctx *c, const struct kw_llama_dims *d,
		      const struct kw_kernels *kk, struct kw_workers *wk, size_t max_rows,
		      size_t max_pos, struct kw_arena *a)
{
	unsigned nw = kw_workers_count(wk);
	size_t f[32], nf, hd2;
	float **dst[] = { &c->cos, &c->sin, &c->xn, &c->q, &c->k, &c->v, &c->att, &c->h1,
			  &c->g, &c->u, &c->sc, &c->kbuf, &c->vbuf, &c->p, &c->gq, &c->gk,
			  &c->gv, &c->gatt, &c->gh, &c->gg, &c->gu, &c->t1, &c->xn2, &c->r1,
			  &c->r2 };
	int rc;

	if (!c || !a || !kw_llama_ctx_bytes(d, max_rows, max_pos, nw))
		return -KW_EINVAL;
	memset(c, 0, sizeof(*c));
	rc = kw_exec_init(&c->ex, kk, wk,
			  KW_MAX(KW_MAX(d->hidden, d->inter), d->heads * d->head_dim), a);
	if (rc)
		return rc;
	c->d = *d;
	c->max_rows = max_rows;
	c->max_pos = max_pos;
	c->nsc = nw;
	ctx_floats(d, max_rows, max_pos, nw, f, &nf);
	for (size_t i = 0; i < nf; i++) {
		*dst[i] = kw_arena_alloc(a, f[i] * sizeof(float), 64);
		if (!*dst[i])
			return -KW_ENOMEM;
	}
	/* RoPE table in fp32 as LlamaRotaryEmbedding computes it (inv_freq, then pos x inv_freq,
	 * then cos/sin of the product) */
	hd2 = d->head_dim / 2;
	for (size_t i = 0; i < hd2; i++) {
		float inv = 1.0f / powf((float)d->rope_theta, (float)(2 * i) / (float)d->head_dim);

		for (size_t p = 0; p < max_pos; p++) {
			float fr = (float)p * inv;

			c->cos[p * hd2 + i] = cosf(fr);
			c->sin[p * hd2 + i] = sinf(fr);
		}
	}
	return 0;
}

/* ---- pieces --------------------------------------------------------------------------------- */
void kw_rms_norm(const float *x, const float *w, size_t n, float eps, float *y)
{
	float ss = 0.0f, r;

	for (size_t i = 0; i < n; i++)
		ss += x[i] * x[i];
	r = 1.0f / sqrtf(ss / (float)n + eps);
	for (size_t i = 0; i < n; i++)
		y[i] = w[i] * (x[i] * r);
}

/* dx for y = rms_norm(x): r w g - x r^3 mean(w g x), accumulated into gx. */
static void rms_norm_grad_add(const float *x, const float *w, const float *g, size_t n,
			      float eps, float *gx)
{
	double ss = 0, dot = 0;
	double r;

	for (size_t i = 0; i < n; i++) {
		ss += (double)x[i] * x[i];
		dot += (double)w[i] * g[i] * x[i];
	}
	r = 1.0 / sqrt(ss / (double)n + eps);
	for (size_t i = 0; i < n; i++)
		gx[i] += (float)(r * w[i] * g[i] - x[i] * r * r * r * dot / (double)n);
}

/* x (nheads x head_dim) at position p: x cos + rotate_half(x) sin. */
static void rope(const struct kw_llama_ctx *c, float *x, size_t nheads, size_t p)
{
	size_t hd = c->d.head_dim, h2 = hd / 2;
	const float *co = c->cos + p * h2, *si = c->sin + p * h2;

	for (size_t h = 0; h < nheads; h++) {
		float *v = x + h * hd;

		for (size_t i = 0; i < h2; i++) {
			float a = v[i], b = v[i + h2];

			v[i] = a * co[i] - b * si[i];
			v[i + h2] = b * co[i] + a * si[i];
		}
	}
}

/* The transpose of rope for gradients: g cos + R^T (g sin), R^T(z) = (z2, -z1). */
static void rope_grad(const struct kw_llama_ctx *c, float *g, size_t nheads, size_t p)
{
	size_t hd = c->d.head_dim, h2 = hd / 2;
	const float *co = c->cos + p * h2, *si = c->sin + p * h2;

	for (size_t h = 0; h < nheads; h++) {
		float *v = g + h * hd;

		for (size_t i = 0; i < h2; i++) {
			float a = v[i], b = v[i + h2];

			v[i] = a * co[i] + b * si[i];
			v[i + h2] = b * co[i] - a * si[i];
		}
	}
}

/* Attention of one batch row's n new tokens, split over the worker pool by (token, head). */
struct attn_job {
	struct kw_llama_ctx *c;
	const float *kb, *vb;            /* [kv_heads][stride][head_dim] */
	size_t stride, n, pos, row0;     /* row0: first row of q/att for this batch row */
	const uint16_t *kb16, *vb16;     /* instead of kb, vb: an fp16 KV cache */
};

/*
 * q.k and o += p v over head_dim with GCC's generic vectors (4 floats: one SSE or NEON
 * register; two accumulators), no intrinsics, so the same code serves every arch; head_dim
 * not a multiple of 8 takes the scalar loops. The dot product sums in eight lanes, then across
 * them: a different rounding order from the scalar loop (both are fp32 sums of head_dim
 * products), the same on every call and every thread count.
 */
typedef float kw_v4f __attribute__((vector_size(16)));

static inline kw_v4f v4_load(const float *p)
{
	kw_v4f v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline float dot_hd(const float *a, const float *b, size_t hd)
{
	float acc = 0.0f;

	if (hd % 8 == 0) {
		kw_v4f s0 = { 0 }, s1 = { 0 };

		for (size_t e = 0; e < hd; e += 8) {
			s0 += v4_load(a + e) * v4_load(b + e);
			s1 += v4_load(a + e + 4) * v4_load(b + e + 4);
		}
		s0 += s1;
		return (s0[0] + s0[2]) + (s0[1] + s0[3]);
	}
	for (size_t e = 0; e < hd; e++)
		acc += a[e] * b[e];
	return acc;
}

static inline void axpy_hd(float *o, float p, const float *v, size_t hd)
{
	if (hd % 4 == 0) {
		for (size_t e = 0; e < hd; e += 4) {
			kw_v4f r = v4_load(o + e) + p * v4_load(v + e);

			memcpy(o + e, &r, sizeof(r));
		}
		return;
	}
	for (size_t e = 0; e < hd; e++)
		o[e] += p * v[e];
}

/*
 * The same over fp16 keys and values (KW_KV_F16): each row is widened to fp32 by the
 * kernel table's conversion (F16C, NEON or the portable one, bit-identical) in chunks of
 * KV16_CHUNK on the stack, then goes through dot_hd / axpy_hd.
 */
#define KV16_CHUNK 256

static inline float dot_hd16(const struct kw_kernels *kk, const float *q, const uint16_t *k,
			     size_t hd)
{
	float buf[KV16_CHUNK], acc = 0.0f;

	for (size_t e = 0; e < hd; e += KV16_CHUNK) {
		size_t n = KW_MIN((size_t)KV16_CHUNK, hd - e);

		kk->f16_to_f32(buf, k + e, n);
		acc += dot_hd(q + e, buf, n);
	}
	return acc;
}

static inline void axpy_hd16(const struct kw_kernels *kk, float *o, float p, const uint16_t *v,
			     size_t hd)
{
	float buf[KV16_CHUNK];

	for (size_t e = 0; e < hd; e += KV16_CHUNK) {
		size_t n = KW_MIN((size_t)KV16_CHUNK, hd - e);

		kk->f16_to_f32(buf, v + e, n);
		axpy_hd(o + e, p, buf, n);
	}
}

static void attn_fn(void *arg, unsigned ci, unsigned nc)
{
	struct attn_job *j = arg;
	struct kw_llama_ctx *c = j->c;
	size_t nh = c->d.heads, hd = c->d.head_dim, grp = c->d.heads / c->d.kv_heads;
	size_t items = j->n * nh, i0 = items * ci / nc, i1 = items * (ci + 1) / nc;
	float *sc = c->sc + (size_t)ci % c->nsc * c->max_pos;
	float scale = 1.0f / sqrtf((float)hd);

	for (size_t it = i0; it < i1; it++) {
		size_t t = it / nh, h = it % nh, kh = h / grp, len = j->pos + t + 1;
		const float *q = c->q + ((j->row0 + t) * nh + h) * hd;
		const float *K = NULL, *V = NULL;
		const uint16_t *K16 = NULL, *V16 = NULL;
		float *o = c->att + ((j->row0 + t) * nh + h) * hd;
		float mx = -INFINITY, sum = 0.0f, inv;

		if (j->kb16) {
			K16 = j->kb16 + kh * j->stride * hd;
			V16 = j->vb16 + kh * j->stride * hd;
		} else {
			K = j->kb + kh * j->stride * hd;
			V = j->vb + kh * j->stride * hd;
		}
		for (size_t s = 0; s < len; s++) {
			sc[s] = (K16 ? dot_hd16(c->ex.kk, q, K16 + s * hd, hd) :
				       dot_hd(q, K + s * hd, hd)) * scale;
			mx = sc[s] > mx ? sc[s] : mx;
		}
		for (size_t s = 0; s < len; s++) {
			sc[s] = expf(sc[s] - mx);
			sum += sc[s];
		}
		inv = 1.0f / sum;
		memset(o, 0, hd * sizeof(float));
		for (size_t s = 0; s < len; s++) {
			if (V16)
				axpy_hd16(c->ex.kk, o, sc[s] * inv, V16 + s * hd, hd);
			else
				axpy_hd(o, sc[s] * inv, V + s * hd, hd);
		}
	}
}

/* n1 = RMSNorm(x); q, k, v projections of rows [0, m) at positions pos + (row % n). */
static int qkv(struct kw_llama_ctx *c, const struct kw_llama_w *w, const float *x, size_t m,
	       size_t n, size_t pos)
{
	size_t H = c->d.hidden, nh = c->d.heads, kvh = c->d.kv_heads, hd = c->d.head_dim;
	int rc;

	for (size_t r = 0; r < m; r++)
		kw_rms_norm(x + r * H, w->input_norm, H, (float)c->d.eps, c->xn + r * H);
	rc = kw_lin_forward(&c->ex, &w->q, c->xn, m, c->q);
	if (!rc)
		rc = kw_lin_forward(&c->ex, &w->k, c->xn, m, c->k);
	if (!rc)
		rc = kw_lin_forward(&c->ex, &w->v, c->xn, m, c->v);
	if (rc)
		return rc;
	for (size_t r = 0; r < m; r++) {
		rope(c, c->q + r * nh * hd, nh, pos + r % n);
		rope(c, c->k + r * kvh * hd, kvh, pos + r % n);
	}
	return 0;
}

static int w_ok(const struct kw_llama_ctx *c, const struct kw_llama_w *w)
{
	const struct kw_llama_dims *d = &c->d;
	size_t QD = d->heads * d->head_dim, KD = d->kv_heads * d->head_dim;

	return w && w->input_norm && w->post_norm &&
	       w->q.n == QD && w->q.k == d->hidden && w->k.n == KD && w->k.k == d->hidden &&
	       w->v.n == KD && w->v.k == d->hidden && w->o.n == d->hidden && w->o.k == QD &&
	       w->gate.n == d->inter && w->gate.k == d->hidden && w->up.n == d->inter &&
	       w->up.k == d->hidden && w->down.n == d->hidden && w->down.k == d->inter;
}

/* h1 = x + o(att); n2 = RMSNorm(h1) (into xn); g, u; u <- silu(g) u. */
static int post_attn(struct kw_llama_ctx *c, const struct kw_llama_w *w, const float *x,
		     size_t m, float *n2)
{
	size_t H = c->d.hidden;
	int rc = kw_lin_forward(&c->ex, &w->o, c->att, m, c->h1);

	if (rc)
		return rc;
	for (size_t i = 0; i < m * H; i++)
		c->h1[i] += x[i];
	for (size_t r = 0; r < m; r++)
		kw_rms_norm(c->h1 + r * H, w->post_norm, H, (float)c->d.eps, n2 + r * H);
	rc = kw_lin_forward(&c->ex, &w->gate, n2, m, c->g);
	if (!rc)
		rc = kw_lin_forward(&c->ex, &w->up, n2, m, c->u);
	return rc;
}

int kw_llama_forward(struct kw_llama_ctx *c, const struct kw_llama_w *w,
		     struct kw_kv_cache *kv, struct kw_kv_session *s, size_t layer,
		     const float *x, size_t batch, size_t n, size_t pos, float *y)
{
	size_t H, kvh, hd, m = batch * n, I;
	int rc;

	if (!c || !x || !y || !batch || !n || !w_ok(c, w) || m / n != batch || m > c->max_rows)
		return -KW_EINVAL;
	if (s && (!kv || !s->open || batch != s->batch || layer >= kv->layers ||
		  kv->kv_heads != c->d.kv_heads || kv->head_dim != c->d.head_dim))
		return -KW_EINVAL;
	if (s ? pos > s->len[layer] || pos + n > s->max_len : pos != 0)
		return -KW_ERANGE;
	if (pos + n > c->max_pos)
		return -KW_ERANGE;
	H = c->d.hidden;
	kvh = c->d.kv_heads;
	hd = c->d.head_dim;
	I = c->d.inter;
	rc = qkv(c, w, x, m, n, pos);
	if (rc)
		return rc;
	for (size_t b = 0; b < batch; b++) {
		struct attn_job j = { c, NULL, NULL, 0, n, pos, b * n, NULL, NULL };
		bool f16 = s && kv->dtype == KW_KV_F16;
		float *kb = s ? kw_kv_k(kv, s, layer, b) : c->kbuf;
		float *vb = s ? kw_kv_v(kv, s, layer, b) : c->vbuf;
		uint16_t *kb16 = f16 ? kw_kv_k16(kv, s, layer, b) : NULL;
		uint16_t *vb16 = f16 ? kw_kv_v16(kv, s, layer, b) : NULL;
		size_t stride = s ? s->max_len : c->max_rows;

		for (size_t t = 0; t < n; t++)
			for (size_t h = 0; h < kvh; h++) {
				const float *kr = c->k + ((b * n + t) * kvh + h) * hd;
				const float *vr = c->v + ((b * n + t) * kvh + h) * hd;
				size_t at = (h * stride + pos + t) * hd;

				/* fp16 clamps rather than overflowing: an Inf key would make
				 * every score of the row NaN */
				if (f16) {
					c->ex.kk->f32_to_f16_clamp(kb16 + at, kr, hd);
					c->ex.kk->f32_to_f16_clamp(vb16 + at, vr, hd);
				} else {
					memcpy(kb + at, kr, hd * sizeof(float));
					memcpy(vb + at, vr, hd * sizeof(float));
				}
			}
		j.kb = kb;
		j.vb = vb;
		j.kb16 = kb16;
		j.vb16 = vb16;
		j.stride = stride;
		kw_workers_run(c->ex.wk, attn_fn, &j,
			       (unsigned)KW_MIN((size_t)c->nsc, n * c->d.heads));
	}
	rc = post_attn(c, w, x, m, c->xn);
	if (rc)
		return rc;
	for (size_t i = 0; i < m * I; i++) {
		float g = c->g[i];

		c->u[i] *= g / (1.0f + expf(-g));
	}
	/* the MLP output goes to xn (free now); y = h1 + mlp may overwrite x */
	rc = kw_lin_forward(&c->ex, &w->down, c->u, m, c->xn);
	if (rc)
		return rc;
	for (size_t i = 0; i < m * H; i++)
		y[i] = c->h1[i] + c->xn[i];
	if (s)
		s->len[layer] = (uint32_t)(pos + n);
	return 0;
}

/* ---- backward ------------------------------------------------------------------------------- */
static int seq_backward(struct kw_llama_ctx *c, const struct kw_llama_w *w, const float *x,
			const float *gy, size_t n, float *gx)
{
	const struct kw_llama_dims *d = &c->d;
	size_t H = d->hidden, I = d->inter, nh = d->heads, kvh = d->kv_heads, hd = d->head_dim;
	size_t grp = nh / kvh, R = c->max_rows, QD = nh * hd, KD = kvh * hd;
	float scale = 1.0f / sqrtf((float)hd), eps = (float)d->eps;
	int rc = qkv(c, w, x, n, n, 0);

	if (rc)
		return rc;
	/* attention with the probabilities kept: p[h][t][s], s <= t */
	for (size_t h = 0; h < nh; h++) {
		size_t kh = h / grp;

		for (size_t t = 0; t < n; t++) {
			const float *q = c->q + (t * nh + h) * hd;
			float *pr = c->p + (h * R + t) * R, *o = c->att + (t * nh + h) * hd;
			float mx = -INFINITY, sum = 0.0f;

			for (size_t s = 0; s <= t; s++) {
				const float *k = c->k + (s * kvh + kh) * hd;
				float acc = 0.0f;

				for (size_t e = 0; e < hd; e++)
					acc += q[e] * k[e];
				pr[s] = acc * scale;
				mx = pr[s] > mx ? pr[s] : mx;
			}
			for (size_t s = 0; s <= t; s++) {
				pr[s] = expf(pr[s] - mx);
				sum += pr[s];
			}
			memset(o, 0, hd * sizeof(float));
			for (size_t s = 0; s <= t; s++) {
				const float *v = c->v + (s * kvh + kh) * hd;

				pr[s] /= sum;
				for (size_t e = 0; e < hd; e++)
					o[e] += pr[s] * v[e];
			}
		}
	}
	rc = post_attn(c, w, x, n, c->xn2);
	if (rc)
		return rc;
	/* MLP: gact = down^T gy (into gg), then gate and up gradients */
	for (size_t i = 0; i < n * I; i++) {
		float g = c->g[i];

		c->gu[i] = c->u[i];      /* keep up(n2) */
		c->u[i] = g / (1.0f + expf(-g)) * c->u[i];
	}
	rc = kw_lin_backward(&c->ex, &w->down, gy, n, c->gg);
	if (rc)
		return rc;
	for (size_t i = 0; i < n * I; i++) {
		float g = c->g[i], sg = 1.0f / (1.0f + expf(-g)), ga = c->gg[i], up = c->gu[i];

		c->gg[i] = ga * up * sg * (1.0f + g * (1.0f - sg));
		c->gu[i] = ga * g * sg;
	}
	rc = kw_lin_backward(&c->ex, &w->up, c->gu, n, c->t1);
	if (!rc)
		rc = kw_lin_backward(&c->ex, &w->gate, c->gg, n, c->r1);
	if (rc)
		return rc;
	/* gh = gy + RMSNorm'(h1) (gn2) */
	memcpy(c->gh, gy, n * H * sizeof(float));
	for (size_t i = 0; i < n * H; i++)
		c->t1[i] += c->r1[i];
	for (size_t r = 0; r < n; r++)
		rms_norm_grad_add(c->h1 + r * H, w->post_norm, c->t1 + r * H, H, eps,
				  c->gh + r * H);
	rc = kw_lin_backward(&c->ex, &w->o, c->gh, n, c->gatt);
	if (rc)
		return rc;
	/* attention backward */
	memset(c->gq, 0, n * QD * sizeof(float));
	memset(c->gk, 0, n * KD * sizeof(float));
	memset(c->gv, 0, n * KD * sizeof(float));
	for (size_t h = 0; h < nh; h++) {
		size_t kh = h / grp;

		for (size_t t = 0; t < n; t++) {
			const float *pr = c->p + (h * R + t) * R, *ga = c->gatt + (t * nh + h) * hd;
			const float *q = c->q + (t * nh + h) * hd;
			float *gq = c->gq + (t * nh + h) * hd, *gp = c->sc, dsum = 0.0f;

			for (size_t s = 0; s <= t; s++) {
				const float *v = c->v + (s * kvh + kh) * hd;
				float *gv = c->gv + (s * kvh + kh) * hd, acc = 0.0f;

				for (size_t e = 0; e < hd; e++) {
					acc += ga[e] * v[e];
					gv[e] += pr[s] * ga[e];
				}
				gp[s] = acc;
				dsum += pr[s] * acc;
			}
			for (size_t s = 0; s <= t; s++) {
				const float *k = c->k + (s * kvh + kh) * hd;
				float *gk = c->gk + (s * kvh + kh) * hd;
				float gs = pr[s] * (gp[s] - dsum) * scale;

				for (size_t e = 0; e < hd; e++) {
					gq[e] += gs * k[e];
					gk[e] += gs * q[e];
				}
			}
		}
	}
	for (size_t r = 0; r < n; r++) {
		rope_grad(c, c->gq + r * QD, nh, r);
		rope_grad(c, c->gk + r * KD, kvh, r);
	}
	/* gn1 = q^T gq + k^T gk + v^T gv; gx = gh + RMSNorm'(x) (gn1) */
	rc = kw_lin_backward(&c->ex, &w->q, c->gq, n, c->t1);
	if (!rc)
		rc = kw_lin_backward(&c->ex, &w->k, c->gk, n, c->r1);
	if (!rc)
		rc = kw_lin_backward(&c->ex, &w->v, c->gv, n, c->r2);
	if (rc)
		return rc;
	for (size_t i = 0; i < n * H; i++)
		c->t1[i] += c->r1[i] + c->r2[i];
	memcpy(gx, c->gh, n * H * sizeof(float));
	for (size_t r = 0; r < n; r++)
		rms_norm_grad_add(x + r * H, w->input_norm, c->t1 + r * H, H, eps, gx + r * H);
	return 0;
}

int kw_llama_backward(struct kw_llama_ctx *c, const struct kw_llama_w *w, const float *x,
		      const float *gy, size_t batch, size_t n, float *gx)
{
	size_t H;

	if (!c || !x || !gy || !gx || !batch || !n || !w_ok(c, w))
		return -KW_EINVAL;
	if (n > c->max_rows || n > c->max_pos)
		return -KW_ERANGE;
	H = c->d.hidden;
	for (size_t b = 0; b < batch; b++) {
		int rc = seq_backward(c, w, x + b * n * H, gy + b * n * H, n, gx + b * n * H);

		if (rc)
			return rc;
	}
	return 0;
}
