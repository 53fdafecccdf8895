/*
 * The hivemind MoE server's unary handlers (app/serve.h, doc/serve.md) for FFN experts:
 * ConnectionHandler.rpc_info / rpc_forward / rpc_backward as
 * hivemind/moe/server/connection_handler.py @ 4bd43b7 answers them, over the schemas
 * hivemind/moe/server/module_backend.py and server.py (Server.create) build:
 *   args_schema    = (BatchTensorDescriptor.from_tensor(sample_input, compression),)
 *                    size (None, hid), requires_grad False, device cpu, the server's compression
 *   outputs_schema = BatchTensorDescriptor.from_tensor(module(dummy)): size (None, hid),
 *                    requires_grad True (the module's parameters want grad), compression NONE
 *   forward_schema = (args_schema, {}); grad_inputs_schema = forward_schema
 * Forward answers [outputs] compressed as outputs_schema says (NONE); backward takes
 * [inputs, grad_outputs] and answers [grad_inputs] compressed as args_schema says.
 */
#include <string.h>

#include <kw/compiler.h>
#include <kw/err.h>

#include "serve_int.h"

static const struct kw_serve_expert *find(const struct kw_serve *s, const char *uid, size_t len)
{
	for (size_t i = 0; i < s->n_ex; i++)
		if (strlen(s->ex[i].uid) == len && !memcmp(s->ex[i].uid, uid, len))
			return &s->ex[i];
	return NULL;
}

static void fail(struct kw_serve_slot *slot, struct kw_serve_out *o)
{
	o->data = (const uint8_t *)slot->err;
	o->len = strlen(slot->err);
	o->is_error = true;
}

static void info(struct kw_serve *s, struct kw_serve_slot *slot, const struct kw_serve_expert *e,
		 struct kw_serve_out *o)
{
	struct kw_mp_writer w;
	uint32_t hid = (uint32_t)s->hid;
	size_t m1, m2, m3;
	long n;

	/* the msgpack goes to enc first, then into the ExpertInfo in out */
	kw_mp_writer_init(&w, slot->enc, slot->enc_cap);
	kw_mp_put_map(&w, 3);
	kw_mp_put_cstr(&w, "forward_schema");
	kw_mp_put_ext_begin(&w, KW_MP_EXT_TUPLE, &m1);
	kw_mp_put_array(&w, 2);
	kw_mp_put_ext_begin(&w, KW_MP_EXT_TUPLE, &m2);
	kw_mp_put_array(&w, 1);
	kw_serve_put_btd(&w, &hid, 1, "torch.float32", false, e->comp, "cpu");
	kw_mp_put_ext_end(&w, m2);
	kw_mp_put_map(&w, 0);
	kw_mp_put_ext_end(&w, m1);
	kw_mp_put_cstr(&w, "outputs_schema");
	kw_serve_put_btd(&w, &hid, 1, "torch.float32", true, KW_COMP_NONE, "cpu");
	kw_mp_put_cstr(&w, "keyword_names");
	kw_mp_put_ext_begin(&w, KW_MP_EXT_TUPLE, &m3);
	kw_mp_put_array(&w, 0);
	kw_mp_put_ext_end(&w, m3);
	n = kw_mp_writer_finish(&w);
	if (n < 0 || kw_serve_info_response(slot, slot->enc, (size_t)n, &o->len) < 0) {
		kw_serve_pyerr(slot->err, sizeof(slot->err), "RuntimeError",
			       "cannot write the expert info");
		fail(slot, o);
		return;
	}
	o->data = slot->out;
	o->is_error = false;
}

void kw_serve_moe_run(struct kw_serve *s, struct kw_serve_slot *slot, int method,
		      const struct kw_serve_req *r, struct kw_serve_out *o)
{
	const struct kw_serve_expert *e = find(s, r->uid, r->uid_len);
	size_t max = (size_t)s->lim.max_rows * s->hid, nx, ng, rows;
	struct kw_serve_tout t;
	uint32_t shape[2];
	int ret;

	if (!e) {
		/* self.module_backends[request.uid] */
		kw_serve_pyerr(slot->err, sizeof(slot->err), "KeyError", "%.*s",
			       (int)KW_MIN(r->uid_len, 128), r->uid ? r->uid : "");
		fail(slot, o);
		return;
	}
	if (method == KW_SERVE_INFO) {
		info(s, slot, e, o);
		return;
	}
	if (r->n_tensors != (method == KW_SERVE_FORWARD ? 1u : 2u)) {
		kw_serve_pyerr(slot->err, sizeof(slot->err), "ValueError",
			       "%s of %s takes %u tensors, got %zu",
			       method == KW_SERVE_FORWARD ? "forward" : "backward", e->uid,
			       method == KW_SERVE_FORWARD ? 1u : 2u, r->n_tensors);
		fail(slot, o);
		return;
	}
	if (kw_serve_tensor_in(s, &r->t[0], "inputs", 2, s->hid, max, slot->x, &nx, slot->err,
			       sizeof(slot->err)) < 0) {
		fail(slot, o);
		return;
	}
	rows = nx / s->hid;
	if (method == KW_SERVE_BACKWARD) {
		if (kw_serve_tensor_in(s, &r->t[1], "grad_outputs", 2, s->hid, max, slot->g, &ng,
				       slot->err, sizeof(slot->err)) < 0) {
			fail(slot, o);
			return;
		}
		if (ng != nx) {
			kw_serve_pyerr(slot->err, sizeof(slot->err), "ValueError",
				       "grad_outputs has %zu rows, inputs %zu", ng / s->hid, rows);
			fail(slot, o);
			return;
		}
		ret = kw_ffn_backward(&s->fctx, e->f, slot->x, slot->g, rows, slot->y);
	} else {
		ret = kw_ffn_forward(&s->fctx, e->f, slot->x, rows, slot->y);
	}
	if (ret < 0) {
		kw_serve_pyerr(slot->err, sizeof(slot->err), "RuntimeError", "%s of %s failed: %s",
			       method == KW_SERVE_FORWARD ? "forward" : "backward", e->uid,
			       kw_strerror(ret));
		fail(slot, o);
		return;
	}
	shape[0] = (uint32_t)rows;
	shape[1] = (uint32_t)s->hid;
	t = (struct kw_serve_tout){
		.y = slot->y, .shape = shape, .ndim = 2,
		.comp = method == KW_SERVE_FORWARD ? KW_COMP_NONE : e->comp,
		.requires_grad = false,
	};
	if (kw_serve_response(s, slot, &t, 1, &o->len) < 0) {
		fail(slot, o);
		return;
	}
	o->data = slot->out;
	o->is_error = false;
}
