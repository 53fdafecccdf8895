/*
 * libFuzzer target: what a Petals rpc_inference caller controls before any compute
 * (app/serve_infer.c, doc/serve.md). The first byte picks the part:
 *   0: the step metadata alone (msgpack dict: max_length, start_from_position, session_id,
 *      step_id, points, pushed, active_adapter, output_compression; args_structure and
 *      unknown keys skipped) through kw_serve_infer_meta_decode;
 *   1: a whole step request (ExpertRequest) through kw_serve_req_decode, its metadata as in
 *      0 and its third tensor as hypo_ids through kw_serve_infer_hypo for a batch the next
 *      byte gives;
 *   2: the rest as an error repr turned into str(exception) by kw_serve_pystr, into an
 *      output of the size the next byte gives;
 *   3: the rest as a step's metadata rewritten for its next hop (next_servers) by
 *      kw_serve_push_meta, into a writer of the size the next byte gives (x 16): what it
 *      writes must be one msgpack dict.
 * Every error text must be a non-empty C string inside its buffer; decoded hypo_ids must be
 * indices below the batch. Built against libkw.a.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kw/err.h>

#include "../../app/serve_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void trap(void)
{
	abort();
}

static void check_text(const char *t, size_t cap)
{
	if (!memchr(t, 0, cap) || !t[0])
		trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kw_serve_infer_meta m;
	struct kw_serve_req r;
	char err[KW_SERVE_ERR_MAX];
	uint32_t hypo[64];
	size_t n = 0;
	int ret;

	if (size < 2)
		return 0;
	switch (data[0] % 4) {
	case 0:
		err[0] = '\0';
		ret = kw_serve_infer_meta_decode(data + 1, size - 1, &m, err, sizeof(err));
		if (ret < 0)
			check_text(err, sizeof(err));
		else if (ret != 0 || (m.has_comp && m.comp >= KW_COMP_COUNT))
			trap();
		break;
	case 1: {
		uint32_t B = data[1];

		if (kw_serve_req_decode(&r, data + 2, size - 2, NULL) < 0)
			break;
		err[0] = '\0';
		if (kw_serve_infer_meta_decode(r.meta, r.meta_len, &m, err, sizeof(err)) < 0)
			check_text(err, sizeof(err));
		if (r.n_tensors < 3)
			break;
		err[0] = '\0';
		ret = kw_serve_infer_hypo(&r.t[2], B, hypo, 64, &n, err, sizeof(err));
		if (ret < 0) {
			check_text(err, sizeof(err));
			break;
		}
		if (n > 64 || (n && n != B))
			trap();
		for (size_t i = 0; i < n; i++)
			if (hypo[i] >= B)
				trap();
		break;
	}
	case 3: {
		size_t cap = (size_t)data[1] * 16;
		uint8_t *o = malloc(cap ? cap : 1);   /* exact size: ASan sees any write past it */
		struct kw_serve_push_hop h;
		struct kw_mp_writer w;
		struct kw_mp_reader rd;
		struct kw_mp_item it;

		if (!o)
			return 0;
		kw_mp_writer_init(&w, o, cap);
		ret = kw_serve_push_meta(data + 2, size - 2, &w, &h);
		if (ret == 0) {
			if (h.start < 0 || h.end <= h.start || h.end - h.start > 64 ||
			    !memchr(h.peer, 0, sizeof(h.peer)) ||
			    kw_mp_reader_init(&rd, o, w.len, 0) < 0 || kw_mp_read(&rd, &it) < 0 ||
			    it.type != KW_MP_MAP || kw_mp_skip(&rd, &it) < 0 ||
			    kw_mp_reader_done(&rd) != 0)
				trap();
		} else if (ret != 1 && ret != -KW_EINVAL && ret != -KW_ENOSPC) {
			trap();
		}
		free(o);
		break;
	}
	default: {
		static char in[4096], out[300];
		size_t len = size - 2 < sizeof(in) - 1 ? size - 2 : sizeof(in) - 1;
		size_t cap = (size_t)data[1] % sizeof(out) + 1;
		char *o = malloc(cap);   /* exact size: ASan sees any write past it */

		if (!o)
			return 0;
		memcpy(in, data + 2, len);
		in[len] = '\0';
		kw_serve_pystr(in, o, cap);
		if (!memchr(o, 0, cap))
			trap();
		free(o);
		(void)out;
		break;
	}
	}
	return 0;
}
