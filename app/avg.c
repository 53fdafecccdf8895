/*
 * hivemind averaging's state download (app/avg.h): the rpc_download_state stream handler
 * and its caller on net/hivemind's stream calls. Wire facts (hivemind @ 4bd43b7):
 *  - name: ServicerBase._get_handle_name = f"{namespace}::{cls.__name__}.{method}" with
 *    namespace = the averager's prefix (averager.py add_p2p_handlers(namespace=prefix));
 *  - request: one empty DownloadRequest, then END_OF_STREAM (unary input);
 *  - responses: DownloadData{metadata = serializer.dumps(metadata) on the first message
 *    only, tensor_part = piece} for every piece of every tensor (split_for_streaming, 64 KiB
 *    of Tensor.buffer per piece); a piece with a dtype starts a new tensor; a node that does
 *    not share its state ends the stream with no message.
 * averaging.proto: DownloadData { bytes metadata = 1; Tensor tensor_part = 2; }.
 *
 * Owns: one scratch message buffer, KW_APP_AVG_DOWNLOADS serve cursors and as many download
 * slots, from the node's arena at kw_app_avg_create.
 */
#include <stdio.h>
#include <string.h>

#include <kw/arena.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/node.h>
#include <kw/ml/codec.h>
#include <kw/ml/tensor_msg.h>
#include <kw/net/hivemind.h>
#include <kw/net/swarm.h>

#include "avg.h"

#define SCRATCH (KW_APP_AVG_CHUNK + KW_APP_AVG_META_MAX + 256)

struct serve {                      /* one download we serve */
	struct kw_app_avg *av;
	struct kw_hm_stream *st;    /* NULL: free */
	struct kw_app_avg_state state;
	size_t tensor, piece;       /* next piece to send */
	bool sent_meta;
};

struct kw_app_avg_dl {              /* one download we make */
	struct kw_app_avg *av;
	bool busy;
	struct kw_app_avg_dest dest;
	kw_app_avg_dl_fn done;
	void *user;
	struct kw_tensor_join join;
	size_t tensor;              /* tensors completed */
	bool in_tensor;
	size_t metadata_len;
	int err;                    /* first local error; the stream is cancelled on it */
};

struct kw_app_avg {
	struct kw_hm *hm;
	char name[KW_APP_AVG_NAME_MAX + 1];
	kw_app_avg_state_fn get_state;
	void *arg;
	uint8_t *scratch;
	struct serve serves[KW_APP_AVG_DOWNLOADS];
	struct kw_app_avg_dl dls[KW_APP_AVG_DOWNLOADS];
	struct kw_app_avg_stats st;
};

int kw_app_avg_handle_name(const char *prefix, const char *cls, char *out, size_t cap)
{
	int n;

	if (!prefix || !cls || !*prefix || !*cls || strchr(prefix, '.'))
		return -KW_EINVAL;  /* averager.py: "group prefix must be a string without '.'" */
	n = snprintf(out, cap, "%s::%s.rpc_download_state", prefix, cls);
	if (n < 0 || (size_t)n >= cap)
		return -KW_ENOSPC;
	return n;
}

/* ---- protobuf: DownloadData ---------------------------------------------------------------- */

static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	do {
		p[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v)
			p[n] |= 0x80;
		n++;
	} while (v);
	return n;
}

static int get_varint(const uint8_t *p, size_t len, size_t *off, uint64_t *v)
{
	*v = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		uint8_t b;

		if (*off >= len)
			return -KW_EBADMSG;
		b = p[(*off)++];
		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return 0;
	}
	return -KW_EBADMSG;
}

/* DownloadData{metadata (if any), tensor_part = piece} into out[0..cap). */
static long download_data_encode(const uint8_t *meta, size_t meta_len,
				 const struct kw_tensor_msg *piece, uint8_t *out, size_t cap)
{
	size_t tlen = kw_tensor_msg_encoded_size(piece), n = 0, w;

	if (!tlen || meta_len + tlen + 24 > cap)
		return -KW_ENOSPC;
	if (meta_len) {
		out[n++] = 0x0a;
		n += put_varint(out + n, meta_len);
		memcpy(out + n, meta, meta_len);
		n += meta_len;
	}
	out[n++] = 0x12;
	n += put_varint(out + n, tlen);
	if (kw_tensor_msg_encode(piece, out + n, cap - n, &w) < 0 || w != tlen)
		return -KW_EINVAL;
	return (long)(n + w);
}

/* Views of a DownloadData's fields (unknown fields skipped, as protobuf readers do). */
static int download_data_decode(const uint8_t *p, size_t len, const uint8_t **meta,
				size_t *meta_len, const uint8_t **part, size_t *part_len)
{
	size_t off = 0;

	*meta = *part = NULL;
	*meta_len = *part_len = 0;
	while (off < len) {
		uint64_t key, v;

		if (get_varint(p, len, &off, &key) < 0)
			return -KW_EBADMSG;
		switch (key & 7) {
		case 0:
			if (get_varint(p, len, &off, &v) < 0)
				return -KW_EBADMSG;
			break;
		case 1:
			if (len - off < 8)
				return -KW_EBADMSG;
			off += 8;
			break;
		case 5:
			if (len - off < 4)
				return -KW_EBADMSG;
			off += 4;
			break;
		case 2:
			if (get_varint(p, len, &off, &v) < 0 || v > len - off)
				return -KW_EBADMSG;
			if (key >> 3 == 1) {
				*meta = p + off;
				*meta_len = (size_t)v;
			} else if (key >> 3 == 2) {
				*part = p + off;
				*part_len = (size_t)v;
			}
			off += (size_t)v;
			break;
		default:
			return -KW_EBADMSG;
		}
	}
	return 0;
}

/* ---- serving ------------------------------------------------------------------------------- */

/* Sends pieces until the stream's send buffer is full or the state is sent. */
static void serve_pump(struct serve *sv)
{
	struct kw_app_avg *av = sv->av;

	while (sv->tensor < sv->state.n_tensors) {
		struct kw_tensor_msg whole, piece;
		size_t pieces;
		long n;
		int r;

		memset(&whole, 0, sizeof(whole));
		whole.buf = (const uint8_t *)sv->state.tensors[sv->tensor];
		whole.buf_len = (size_t)sv->state.numel[sv->tensor] * sizeof(float);
		whole.ndim = 1;
		whole.shape[0] = (uint32_t)sv->state.numel[sv->tensor];
		strcpy(whole.dtype, "float32");
		whole.compression = KW_COMP_NONE;
		pieces = kw_tensor_msg_pieces(&whole, KW_APP_AVG_CHUNK);
		if (sv->piece >= pieces) {
			sv->tensor++;
			sv->piece = 0;
			continue;
		}
		if (kw_tensor_msg_piece(&whole, KW_APP_AVG_CHUNK, sv->piece, &piece) < 0)
			goto fail;
		n = download_data_encode(sv->sent_meta ? NULL : sv->state.metadata,
					 sv->sent_meta ? 0 : sv->state.metadata_len, &piece,
					 av->scratch, SCRATCH);
		if (n < 0)
			goto fail;
		r = kw_hm_stream_send(sv->st, av->scratch, (size_t)n);
		if (r == -KW_EAGAIN)
			return;  /* on_writable continues */
		if (r < 0)
			goto fail;
		sv->sent_meta = true;
		sv->piece++;
		av->st.messages_out++;
		av->st.bytes_out += (uint64_t)n;
	}
	kw_hm_stream_end(sv->st);
	sv->st = NULL;
	return;
fail:
	KW_LOG_WRN(hivemind, "%s: state piece %zu of tensor %zu does not fit a stream message",
		   av->name, sv->piece, sv->tensor);
	kw_hm_stream_error(sv->st, "RuntimeError('state piece does not fit the stream buffer')");
	sv->st = NULL;
}

static struct serve *serve_of(struct kw_hm_stream *st)
{
	return (struct serve *)kw_hm_stream_user(st);
}

/* The request (an empty DownloadRequest) carries nothing: wait for END_OF_STREAM. */
static int srv_msg(struct kw_hm_stream *st, const uint8_t *msg, size_t len, void *arg)
{
	return 0;
}

static void srv_end(struct kw_hm_stream *st, void *arg)
{
	struct kw_app_avg *av = arg;
	struct serve *sv = NULL;

	for (unsigned i = 0; i < KW_APP_AVG_DOWNLOADS; i++)
		if (!av->serves[i].st) {
			sv = &av->serves[i];
			break;
		}
	if (!sv) {
		av->st.refused_busy++;
		kw_hm_stream_error(st, "RuntimeError('too many state downloads at once')");
		return;
	}
	memset(sv, 0, sizeof(*sv));
	sv->av = av;
	if (av->get_state(&sv->state, av->arg) < 0 ||
	    sv->state.metadata_len > KW_APP_AVG_META_MAX) {
		av->st.not_shared++;
		kw_hm_stream_end(st);  /* hivemind: `return` from the generator, no message */
		return;
	}
	av->st.served++;
	sv->st = st;
	kw_hm_stream_set_user(st, sv);
	serve_pump(sv);
}

static void srv_writable(struct kw_hm_stream *st, void *arg)
{
	struct serve *sv = serve_of(st);

	if (sv && sv->st == st)
		serve_pump(sv);
}

static void srv_cancel(struct kw_hm_stream *st, int reason, void *arg)
{
	struct serve *sv = serve_of(st);

	if (sv && sv->st == st)
		sv->st = NULL;
}

static const struct kw_hm_stream_ops srv_ops = {
	.on_message = srv_msg, .on_end = srv_end, .on_writable = srv_writable,
	.on_cancel = srv_cancel,
};

int kw_app_avg_create(struct kw_node *n, struct kw_hm *hm, const char *prefix, const char *cls,
		      kw_app_avg_state_fn get_state, void *arg, struct kw_app_avg **out)
{
	struct kw_app_avg *av;
	int ret;

	if (!n || !hm || !out)
		return -KW_EINVAL;
	av = (struct kw_app_avg *)kw_arena_alloc(&n->arena, sizeof(*av), 16);
	if (!av)
		return -KW_ENOMEM;
	memset(av, 0, sizeof(*av));
	ret = kw_app_avg_handle_name(prefix, cls, av->name, sizeof(av->name));
	if (ret < 0)
		return ret;
	av->hm = hm;
	av->get_state = get_state;
	av->arg = arg;
	av->scratch = (uint8_t *)kw_arena_alloc(&n->arena, SCRATCH, 16);
	if (!av->scratch)
		return -KW_ENOMEM;
	if (get_state) {
		ret = kw_hm_register_stream(hm, av->name, &srv_ops, av, 0);
		if (ret < 0)
			return ret;
	}
	*out = av;
	return 0;
}

void kw_app_avg_get_stats(const struct kw_app_avg *av, struct kw_app_avg_stats *st)
{
	*st = av->st;
}

/* ---- downloading --------------------------------------------------------------------------- */

static int dl_fail(struct kw_app_avg_dl *dl, struct kw_hm_stream *st, int err)
{
	if (!dl->err)
		dl->err = err;
	kw_hm_stream_cancel(st);  /* on_done runs inside and reports dl->err */
	return 0;
}

/* Starts the next tensor at a piece with a dtype, as hivemind's reader decides. */
static int dl_start_tensor(struct kw_app_avg_dl *dl)
{
	if (dl->tensor >= dl->dest.n_tensors)
		return -KW_ERANGE;
	kw_tensor_join_init(&dl->join, (uint8_t *)dl->dest.tensors[dl->tensor],
			    (size_t)dl->dest.numel[dl->tensor] * sizeof(float));
	dl->in_tensor = true;
	return 0;
}

static int dl_msg(struct kw_hm_stream *st, const uint8_t *msg, size_t len, void *arg)
{
	struct kw_app_avg_dl *dl = arg;
	const uint8_t *meta, *part;
	size_t meta_len, part_len, numel;
	struct kw_tensor_msg piece;
	int r;

	dl->av->st.messages_in++;
	if (download_data_decode(msg, len, &meta, &meta_len, &part, &part_len) < 0 ||
	    kw_tensor_msg_decode(&piece, part, part_len) < 0)
		return dl_fail(dl, st, -KW_EBADMSG);
	if (meta_len) {  /* hivemind keeps the last one it sees */
		if (meta_len > dl->dest.metadata_cap)
			return dl_fail(dl, st, -KW_EMSGSIZE);
		memcpy(dl->dest.metadata, meta, meta_len);
		dl->metadata_len = meta_len;
	}
	if (piece.dtype[0]) {
		if (dl->in_tensor)  /* the previous tensor ended early */
			return dl_fail(dl, st, -KW_EBADMSG);
		if (strcmp(piece.dtype, "float32"))
			return dl_fail(dl, st, -KW_ENOTSUP);
		if (piece.compression != KW_COMP_NONE)
			return dl_fail(dl, st, -KW_ENOTSUP);
		r = dl_start_tensor(dl);
		if (r < 0)
			return dl_fail(dl, st, r);
	} else if (!dl->in_tensor) {
		return dl_fail(dl, st, -KW_EBADMSG);
	}
	r = kw_tensor_join_add(&dl->join, &piece);
	if (r == -KW_EMSGSIZE)
		return dl_fail(dl, st, -KW_ERANGE);
	if (r < 0)
		return dl_fail(dl, st, r);
	if (r == 1) {
		if (kw_tensor_msg_numel(&dl->join.head, &numel) < 0 ||
		    numel != dl->dest.numel[dl->tensor] || dl->join.len != numel * sizeof(float))
			return dl_fail(dl, st, -KW_ERANGE);
		dl->tensor++;
		dl->in_tensor = false;
	}
	return 0;
}

static void dl_done(struct kw_hm_stream *st, const struct kw_hm_stream_result *r, void *arg)
{
	struct kw_app_avg_dl *dl = arg;
	struct kw_app_avg_dl_result res;

	memset(&res, 0, sizeof(res));
	res.err = dl->err ? dl->err : r->err;
	res.remote_error = !dl->err && r->remote_error;
	res.text = r->text;
	res.messages = r->messages;
	res.tensors = dl->tensor;
	res.metadata_len = dl->metadata_len;
	if (res.err == 0 && !res.remote_error) {
		if (r->messages == 0)
			res.err = -KW_ENOENT;  /* "Peer did not send its state" */
		else if (dl->in_tensor)
			res.err = -KW_EBADMSG;   /* the last tensor is incomplete */
		else if (dl->tensor != dl->dest.n_tensors)
			res.err = -KW_ERANGE;
	}
	if (res.err < 0 || res.remote_error)
		dl->av->st.downloads_failed++;
	dl->busy = false;
	dl->done(&res, dl->user);
}

static const struct kw_hm_stream_ops dl_ops = { .on_message = dl_msg, .on_done = dl_done };

int kw_app_avg_download(struct kw_app_avg *av, struct kw_conn *c, const struct kw_app_avg_dest *dest,
			uint32_t idle_ms, kw_app_avg_dl_fn done, void *user)
{
	struct kw_app_avg_dl *dl = NULL;
	struct kw_hm_stream *st;
	int ret;

	if (!av || !c || !dest || !done || (dest->n_tensors && (!dest->tensors || !dest->numel)) ||
	    (dest->metadata_cap && !dest->metadata))
		return -KW_EINVAL;
	for (unsigned i = 0; i < KW_APP_AVG_DOWNLOADS; i++)
		if (!av->dls[i].busy) {
			dl = &av->dls[i];
			break;
		}
	if (!dl)
		return -KW_ELIMIT;
	memset(dl, 0, sizeof(*dl));
	dl->av = av;
	dl->dest = *dest;
	dl->done = done;
	dl->user = user;
	ret = kw_hm_stream_open(av->hm, c, av->name, &dl_ops, dl, idle_ms, &st);
	if (ret < 0)
		return ret;
	dl->busy = true;
	av->st.downloads++;
	/* one empty DownloadRequest, then END_OF_STREAM (hivemind's unary-input call) */
	kw_hm_stream_send(st, NULL, 0);
	kw_hm_stream_end(st);
	return 0;
}
