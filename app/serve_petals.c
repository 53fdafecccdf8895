/*
 * The Petals server's unary handlers (app/serve.h, doc/serve.md) for a span of LLaMA blocks:
 * TransformerConnectionHandler.rpc_info / rpc_forward / rpc_backward as petals
 * src/petals/server/handler.py @ 22afba6 answers them (block_functions.py run_rpc_forward /
 * run_rpc_backward for the computation, server.py for the schemas):
 *   uid        a chain of block uids "<prefix>.<i>" joined by ' ' (CHAIN_DELIMITER), run in
 *              the order given; every one must be held (_check_uids)
 *   forward    tensors [hidden_states (B, T, H), prompts?]: prompts absent, DUMMY (an empty
 *              tensor) or deep prompts (num_blocks, Bp, pre_seq_len, H), prompts[i] added
 *              to the first pre_seq_len positions before block i; answers [hidden_states out]
 *   backward   tensors [inputs (B, T, H), grad_outputs (B, T, H), prompts?]: the forward is
 *              recomputed block by block (prompts added) keeping each block's input, then
 *              the gradient runs back through the chain; answers [grad_inputs], and
 *              grad_prompts (num_blocks, B, pre_seq_len, H) after it with deep prompts
 *   metadata   msgpack map: output_compression (list/tuple of one int), active_adapter (only
 *              nil or "" here: no adapters), points (a number); other keys are ignored
 * Schemas: BatchTensorDescriptor(1, 2048, hidden, dtype, compression NONE), device nil, as
 * server.py builds them; the dtype is torch.float32, what these handlers answer in (the
 * int8 weights compute in fp32). rpc_inference (a KV-cache session over a stream handler)
 * is app/serve_infer.c.
 */
#include <stdio.h>
#include <string.h>

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/version.h>

#include "serve_int.h"

#define SCHEMA_TOKENS 2048   /* server.py: BatchTensorDescriptor(1, 2048, hidden_size, ...) */

static void fail(struct kw_serve_slot *slot, struct kw_serve_out *o)
{
	o->data = (const uint8_t *)slot->err;
	o->len = strlen(slot->err);
	o->is_error = true;
}

/* The block a uid names, or -1: "<prefix>.<i>" with first <= i < first + count. */
static long block_of(const struct kw_serve *s, const char *u, size_t len)
{
	size_t pl = strlen(s->prefix);
	uint64_t v = 0;

	if (len < pl + 2 || memcmp(u, s->prefix, pl) || u[pl] != '.')
		return -1;
	if (u[pl + 1] == '0' && len > pl + 2)
		return -1;   /* str(i) never has a leading zero */
	for (size_t i = pl + 1; i < len; i++) {
		if (u[i] < '0' || u[i] > '9' || v > UINT32_MAX)
			return -1;
		v = v * 10 + (uint64_t)(u[i] - '0');
	}
	if (v < s->first || v - s->first >= s->count)
		return -1;
	return (long)(v - s->first);
}

/* _check_uids: the chain as block indices into w[]; an error text on failure. */
int kw_serve_petals_chain(struct kw_serve *s, const char *uid, size_t uid_len, uint32_t *idx,
			  size_t *n, char *err, size_t cap)
{
	size_t pos = 0, len = uid_len;
	const char *u = uid ? uid : "";

	*n = 0;
	for (;;) {
		size_t end = pos;
		long b;

		while (end < len && u[end] != ' ')
			end++;
		b = block_of(s, u + pos, end - pos);
		if (b < 0) {
			kw_serve_pyerr(err, cap, "RuntimeError",
				       "Remote peer does not serve %.*s", (int)KW_MIN(end - pos, 128),
				       u + pos);
			return -KW_ENOENT;
		}
		if (*n == s->lim.max_blocks) {
			kw_serve_pyerr(err, cap, "ValueError",
				       "a chain of more than %u blocks is not served",
				       s->lim.max_blocks);
			return -KW_ELIMIT;
		}
		idx[(*n)++] = (uint32_t)b;
		if (end == len)
			return 0;
		pos = end + 1;
	}
}

/* Reads the request's metadata; *comp gets output_compression[0] when given. */
static int read_meta(struct kw_serve_slot *slot, const struct kw_serve_req *r,
		     enum kw_compression *comp)
{
	struct kw_mp_reader rd;
	struct kw_mp_item it, k;

	if (!r->meta_len)
		return 0;
	if (kw_mp_reader_init(&rd, r->meta, r->meta_len, KW_MP_ENTER_EXT) < 0 ||
	    kw_mp_read(&rd, &it) < 0 || it.type != KW_MP_MAP)
		goto bad;
	for (uint32_t i = 0; i < it.len; i++) {
		struct kw_mp_item v;

		if (kw_mp_read(&rd, &k) < 0 || kw_mp_read(&rd, &v) < 0)
			goto bad;
		if (k.type == KW_MP_STR && k.len == 18 &&
		    !memcmp(k.data, "output_compression", 18) && v.type != KW_MP_NIL) {
			struct kw_mp_item arr = v, c;

			if (v.type == KW_MP_EXT && v.entered && kw_mp_read(&rd, &arr) < 0)
				goto bad;
			if (arr.type != KW_MP_ARRAY) {
				kw_serve_pyerr(slot->err, sizeof(slot->err), "AssertionError",
					       "output_compression must be a tuple/list");
				return -KW_EINVAL;
			}
			if (arr.len != 1) {
				kw_serve_pyerr(slot->err, sizeof(slot->err), "AssertionError",
					       "output_compression tuple should have 1 element");
				return -KW_EINVAL;
			}
			if (kw_mp_read(&rd, &c) < 0)
				goto bad;
			if (c.type != KW_MP_UINT || c.v.u >= KW_COMP_COUNT) {
				kw_serve_pyerr(slot->err, sizeof(slot->err), "ValueError",
					       "output_compression holds an unknown compression");
				return -KW_EINVAL;
			}
			*comp = (enum kw_compression)c.v.u;
		} else if (k.type == KW_MP_STR && k.len == 14 &&
			   !memcmp(k.data, "active_adapter", 14)) {
			if (v.type == KW_MP_STR && v.len) {
				kw_serve_pyerr(slot->err, sizeof(slot->err), "KeyError",
					       "adapter %.*s not found", (int)KW_MIN(v.len, 64u),
					       (const char *)v.data);
				return -KW_EINVAL;
			}
			if (kw_mp_skip(&rd, &v) < 0)
				goto bad;
		} else if (k.type == KW_MP_STR && k.len == 6 && !memcmp(k.data, "points", 6)) {
			if (v.type != KW_MP_UINT && v.type != KW_MP_INT && v.type != KW_MP_FLOAT &&
			    v.type != KW_MP_NIL) {
				kw_serve_pyerr(slot->err, sizeof(slot->err), "AssertionError",
					       "points must be a number or None");
				return -KW_EINVAL;
			}
		} else if (kw_mp_skip(&rd, &k) < 0 || kw_mp_skip(&rd, &v) < 0) {
			goto bad;
		}
	}
	if (kw_mp_reader_done(&rd) == 0)
		return 0;
bad:
	kw_serve_pyerr(slot->err, sizeof(slot->err), "ValueError", "metadata is not msgpack of a "
		       "dict: %s", rd.why && rd.why[0] ? rd.why : "not a map");
	return -KW_EINVAL;
}

static void info(struct kw_serve *s, struct kw_serve_slot *slot, const struct kw_serve_req *r,
		 struct kw_serve_out *o)
{
	uint32_t dims[3] = { 1, SCHEMA_TOKENS, (uint32_t)s->d.hidden };
	bool block = r->uid_len > 0;
	struct kw_mp_writer w;
	size_t m1, m2, m3, m4, m5, m6;
	long n;

	if (block && (memchr(r->uid, ' ', r->uid_len) || block_of(s, r->uid, r->uid_len) < 0)) {
		/* self.module_backends[request.uid] */
		kw_serve_pyerr(slot->err, sizeof(slot->err), "KeyError", "%.*s",
			       (int)KW_MIN(r->uid_len, 128), r->uid);
		fail(slot, o);
		return;
	}
	kw_mp_writer_init(&w, slot->enc, slot->enc_cap);
	kw_mp_put_map(&w, block ? 7 : 3);
	kw_mp_put_cstr(&w, "version");
	kw_mp_put_cstr(&w, "kwaainet-edge " KW_VERSION_STRING);
	kw_mp_put_cstr(&w, "dht_client_mode");
	kw_mp_put_bool(&w, s->client_mode);
	kw_mp_put_cstr(&w, "cache_tokens_available");
	kw_mp_put_uint(&w, kw_serve_cache_tokens(s));
	if (block) {
		kw_mp_put_cstr(&w, "forward_schema");
		kw_mp_put_ext_begin(&w, KW_MP_EXT_TUPLE, &m1);
		kw_mp_put_array(&w, 2);
		kw_mp_put_ext_begin(&w, KW_MP_EXT_TUPLE, &m2);
		kw_mp_put_array(&w, 1);
		kw_serve_put_btd(&w, dims, 3, "torch.float32", false, KW_COMP_NONE, NULL);
		kw_mp_put_ext_end(&w, m2);
		kw_mp_put_map(&w, 0);
		kw_mp_put_ext_end(&w, m1);
		kw_mp_put_cstr(&w, "outputs_schema");
		kw_mp_put_ext_begin(&w, KW_MP_EXT_TUPLE, &m3);
		kw_mp_put_array(&w, 1);
		kw_serve_put_btd(&w, dims, 3, "torch.float32", false, KW_COMP_NONE, NULL);
		kw_mp_put_ext_end(&w, m3);
		kw_mp_put_cstr(&w, "keyword_names");
		kw_mp_put_ext_begin(&w, KW_MP_EXT_TUPLE, &m4);
		kw_mp_put_array(&w, 0);
		kw_mp_put_ext_end(&w, m4);
		/* backend.py: ((*args_schema, BTD((), dtype), BTD((), torch.int64)), kwargs) */
		kw_mp_put_cstr(&w, "inference_schema");
		kw_mp_put_ext_begin(&w, KW_MP_EXT_TUPLE, &m5);
		kw_mp_put_array(&w, 2);
		kw_mp_put_ext_begin(&w, KW_MP_EXT_TUPLE, &m6);
		kw_mp_put_array(&w, 3);
		kw_serve_put_btd(&w, dims, 3, "torch.float32", false, KW_COMP_NONE, NULL);
		kw_serve_put_btd(&w, NULL, 0, "torch.float32", false, KW_COMP_NONE, NULL);
		kw_serve_put_btd(&w, NULL, 0, "torch.int64", false, KW_COMP_NONE, NULL);
		kw_mp_put_ext_end(&w, m6);
		kw_mp_put_map(&w, 0);
		kw_mp_put_ext_end(&w, m5);
	}
	n = kw_mp_writer_finish(&w);
	if (n < 0 || kw_serve_info_response(slot, slot->enc, (size_t)n, &o->len) < 0) {
		kw_serve_pyerr(slot->err, sizeof(slot->err), "RuntimeError",
			       "cannot write the server info");
		fail(slot, o);
		return;
	}
	o->data = slot->out;
	o->is_error = false;
}

int kw_serve_prompts_check(struct kw_serve *s, const struct kw_tensor_msg *m, size_t n_chain,
			   uint32_t B, uint32_t T, struct kw_serve_prompts *p, char *err,
			   size_t cap)
{
	size_t H = s->d.hidden, n = 0;

	memset(p, 0, sizeof(*p));
	if (!m || (kw_tensor_msg_numel(m, &n) == 0 && n == 0))
		return 0;   /* is_dummy(prompts) */
	if (kw_codec_dtype_parse(m->dtype, strlen(m->dtype), &p->dt) < 0) {
		kw_serve_pyerr(err, cap, "TypeError", "prompts: dtype %s is not served (float32, "
			       "float16 or bfloat16)", m->dtype[0] ? m->dtype : "(none)");
		return -KW_EINVAL;
	}
	if (m->ndim != 4 || m->shape[3] != H || !n) {
		kw_serve_pyerr(err, cap, "ValueError", "prompts: expected a 4d tensor of shape "
			       "[num_blocks, batch, pre_seq_len, %zu], got %ud", H, m->ndim);
		return -KW_EINVAL;
	}
	if (m->compression != KW_COMP_NONE) {
		/* sliced per block as it is added: an uncompressed buffer only */
		kw_serve_pyerr(err, cap, "ValueError", "prompts: compression %d is not served for "
			       "deep prompts (send them uncompressed)", (int)m->compression);
		return -KW_EINVAL;
	}
	p->el = m->buf_len / n;
	if (m->buf_len != n * p->el || (p->el != 4 && p->el != 2) ||
	    (p->dt == KW_CODEC_F32 && p->el != 4) || (p->dt == KW_CODEC_F16 && p->el != 2)) {
		kw_serve_pyerr(err, cap, "ValueError", "prompts: a buffer of %zu bytes does not "
			       "hold %zu %s values", m->buf_len, n, m->dtype);
		return -KW_EINVAL;
	}
	p->nb = m->shape[0];
	p->bp = m->shape[1];
	p->pre = m->shape[2];
	if (p->nb != n_chain) {
		/* block_functions.py iterate_rpc_inference's check (forward and backward would
		 * zip the shorter list silently; refused here as well) */
		kw_serve_pyerr(err, cap, "ValueError", "Received %u prompts for %zu backends",
			       p->nb, n_chain);
		return -KW_EINVAL;
	}
	/* hidden_states[:, :pre] += prompt, torch's broadcast checks from the last dim; a step
	 * of no tokens computes nothing (block_functions.py), so adds nothing */
	if (T && p->pre > T) {
		kw_serve_pyerr(err, cap, "RuntimeError", "The size of tensor a (%u) must match the "
			       "size of tensor b (%u) at non-singleton dimension 1", T, p->pre);
		return -KW_EINVAL;
	}
	if (T && p->bp != B && p->bp != 1) {
		if (B == 1)
			kw_serve_pyerr(err, cap, "RuntimeError", "output with shape [1, %u, %zu] "
				       "doesn't match the broadcast shape [%u, %u, %zu]", p->pre, H,
				       p->bp, p->pre, H);
		else
			kw_serve_pyerr(err, cap, "RuntimeError", "The size of tensor a (%u) must "
				       "match the size of tensor b (%u) at non-singleton dimension 0",
				       B, p->bp);
		return -KW_EINVAL;
	}
	p->m = *m;
	p->on = true;
	return 0;
}

int kw_serve_prompts_add(struct kw_serve *s, const struct kw_serve_prompts *p, size_t i,
			 float *h, uint32_t B, uint32_t T, float *scratch)
{
	size_t H = s->d.hidden, per = (size_t)p->bp * p->pre * H;

	if (!p->on)
		return 0;
	if (kw_codec_decode(s->codec, KW_COMP_NONE, p->dt, p->m.buf + i * per * p->el,
			    per * p->el, per, H, scratch) < 0)
		return -KW_EBADMSG;
	for (uint32_t b = 0; b < B; b++) {
		const float *src = scratch + (size_t)(p->bp == 1 ? 0 : b) * p->pre * H;
		float *dst = h + (size_t)b * T * H;

		for (size_t k = 0; k < (size_t)p->pre * H; k++)
			dst[k] += src[k];
	}
	return 0;
}

/* At most one tensor after those a method takes (prompts). */
static int check_count(struct kw_serve_slot *slot, const struct kw_serve_req *r, size_t at)
{
	if (r->n_tensors > at + 1) {
		kw_serve_pyerr(slot->err, sizeof(slot->err), "ValueError",
			       "expected at most %zu tensors, got %zu", at + 1, r->n_tensors);
		return -KW_EINVAL;
	}
	return 0;
}

void kw_serve_petals_run(struct kw_serve *s, struct kw_serve_slot *slot, int method,
			 const struct kw_serve_req *r, struct kw_serve_out *o)
{
	uint32_t chain[64], shape[3], pshape[4];
	size_t n_chain, nx, ng, H = s->d.hidden, max = (size_t)s->lim.max_rows * H, B, T;
	enum kw_compression comp = KW_COMP_NONE;
	struct kw_serve_prompts pr;
	struct kw_serve_tout t[2];
	bool bwd = method == KW_SERVE_BACKWARD;
	float *y = slot->y;
	int ret = 0;

	if (method == KW_SERVE_INFO) {
		info(s, slot, r, o);
		return;
	}
	if (s->lim.max_blocks > KW_ARRAY_SIZE(chain)) {   /* Kconfig's range keeps it below */
		kw_serve_pyerr(slot->err, sizeof(slot->err), "RuntimeError", "chain table");
		fail(slot, o);
		return;
	}
	if (kw_serve_petals_chain(s, r->uid, r->uid_len, chain, &n_chain, slot->err,
				  sizeof(slot->err)) < 0 || read_meta(slot, r, &comp) < 0 ||
	    check_count(slot, r, bwd ? 2 : 1) < 0) {
		fail(slot, o);
		return;
	}
	if (r->n_tensors < (bwd ? 2u : 1u)) {
		kw_serve_pyerr(slot->err, sizeof(slot->err), "ValueError", "%s takes %s, got %zu "
			       "tensors", bwd ? "rpc_backward" : "rpc_forward",
			       bwd ? "inputs and grad_outputs" : "hidden_states", r->n_tensors);
		fail(slot, o);
		return;
	}
	if (kw_serve_tensor_in(s, &r->t[0], bwd ? "inputs" : "hidden_states", 3, H, max, slot->x,
			       &nx, slot->err, sizeof(slot->err)) < 0) {
		fail(slot, o);
		return;
	}
	B = r->t[0].shape[0];
	T = r->t[0].shape[1];
	if (kw_serve_prompts_check(s, r->n_tensors > (bwd ? 2u : 1u) ? &r->t[bwd ? 2 : 1] : NULL,
				   n_chain, (uint32_t)B, (uint32_t)T, &pr, slot->err,
				   sizeof(slot->err)) < 0) {
		fail(slot, o);
		return;
	}
	if (bwd && pr.on && (size_t)pr.nb * B * pr.pre > s->lim.max_rows) {
		kw_serve_pyerr(slot->err, sizeof(slot->err), "ValueError", "prompts: a gradient "
			       "of %zu rows exceeds this server's limit of %u (max_rows)",
			       (size_t)pr.nb * B * pr.pre, s->lim.max_rows);
		fail(slot, o);
		return;
	}
	if (bwd) {
		if (kw_serve_tensor_in(s, &r->t[1], "grad_outputs", 3, H, max, slot->g, &ng,
				       slot->err, sizeof(slot->err)) < 0) {
			fail(slot, o);
			return;
		}
		if (r->t[1].shape[0] != B || r->t[1].shape[1] != T) {
			kw_serve_pyerr(slot->err, sizeof(slot->err), "ValueError",
				       "grad_outputs shape differs from inputs shape");
			fail(slot, o);
			return;
		}
		/* run_rpc_backward: forward through the chain keeping each block's input */
		memcpy(slot->acts, slot->x, nx * sizeof(float));
		for (size_t i = 0; i + 1 < n_chain && ret == 0; i++) {
			ret = kw_serve_prompts_add(s, &pr, i, slot->acts + i * nx, (uint32_t)B,
						   (uint32_t)T, slot->y);
			if (ret == 0)
				ret = kw_llama_forward(&s->lctx, &s->w[chain[i]], NULL, NULL, 0,
						       slot->acts + i * nx, B, T, 0,
						       slot->acts + (i + 1) * nx);
		}
		if (ret == 0)
			ret = kw_serve_prompts_add(s, &pr, n_chain - 1,
						   slot->acts + (n_chain - 1) * nx, (uint32_t)B,
						   (uint32_t)T, slot->y);
		/* then back: g -> y -> g ... ending in whichever holds the last result */
		float *gin = slot->g, *gout = slot->y;

		for (size_t i = n_chain; i-- > 0 && ret == 0;) {
			float *tmp;

			ret = kw_llama_backward(&s->lctx, &s->w[chain[i]], slot->acts + i * nx, gin,
						B, T, gout);
			/* grad of prompts[i]: grad_outputs[:, :pre] after block i, kept where
			 * block i's input was (no longer needed) */
			for (size_t b = 0; pr.on && b < B; b++)
				memcpy(slot->acts + i * nx + b * pr.pre * H, gout + b * T * H,
				       (size_t)pr.pre * H * sizeof(float));
			tmp = gin;
			gin = gout;
			gout = tmp;
		}
		/* then packed as (num_blocks, B, pre_seq_len, H): each moves down, never over
		 * one still to move */
		for (size_t i = 1; pr.on && i < n_chain; i++)
			memmove(slot->acts + i * B * pr.pre * H, slot->acts + i * nx,
				B * pr.pre * H * sizeof(float));
		y = gin;
	} else {
		memcpy(y, slot->x, nx * sizeof(float));
		for (size_t i = 0; i < n_chain && ret == 0; i++) {
			ret = kw_serve_prompts_add(s, &pr, i, y, (uint32_t)B, (uint32_t)T, slot->g);
			if (ret == 0)
				ret = kw_llama_forward(&s->lctx, &s->w[chain[i]], NULL, NULL, 0, y, B,
						       T, 0, y);
		}
	}
	if (ret < 0) {
		kw_serve_pyerr(slot->err, sizeof(slot->err), "RuntimeError", "%s failed: %s",
			       bwd ? "backward" : "forward", kw_strerror(ret));
		fail(slot, o);
		return;
	}
	shape[0] = (uint32_t)B;
	shape[1] = (uint32_t)T;
	shape[2] = (uint32_t)H;
	pshape[0] = pr.nb;
	pshape[1] = (uint32_t)B;
	pshape[2] = pr.pre;
	pshape[3] = (uint32_t)H;
	/* run_rpc_backward: [grad_outputs, grad_prompts] when there were prompts */
	t[0] = (struct kw_serve_tout){ .y = y, .shape = shape, .ndim = 3, .comp = comp };
	t[1] = (struct kw_serve_tout){ .y = slot->acts, .shape = pshape, .ndim = 4, .comp = comp };
	if (kw_serve_response(s, slot, t, bwd && pr.on ? 2 : 1, &o->len) < 0) {
		fail(slot, o);
		return;
	}
	o->data = slot->out;
	o->is_error = false;
}
