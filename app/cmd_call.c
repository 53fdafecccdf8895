/*
 * `kwnode info PEER [UID]` and `kwnode call PEER UID --input FILE [--backward --grad FILE]`:
 * one rpc_info / rpc_forward / rpc_backward to a Hivemind MoE or Petals server, ours or
 * Python's (doc/serve.md). PEER is a multiaddr with /p2p/<peer-id>. Handlers: hivemind's
 * ConnectionHandler.rpc_* by default, TransformerConnectionHandler.rpc_* with --petals (and
 * for `info` without a UID, which only a Petals server answers).
 *
 * Tensor files are text, one tensor each: a line `shape D0 D1 ...`, then the values (any
 * whitespace, '#' comments). `call` sends them as float32 NONE (Petals: [hidden_states,
 * DUMMY prompts], [inputs, grad_outputs, DUMMY]) and prints every response tensor in the same
 * form, so a forward output feeds a backward call. `info` prints the msgpack info dict in the
 * text form of `kwnode hivemind` (app/hm_text.c). With --json either prints one line of JSON
 * instead, as `kwnode hivemind` and `kwnode status` do: `call` an object naming the handler
 * and uid with every tensor's shape, dtype, compression and values (row-major; non-finite
 * ones as the {"$float": ..} objects of app/hm_text.c), `info` the dict in the JSON form of
 * `kwnode hivemind get`. A remote error prints on stderr as the Python caller would see it,
 * either way. Exit: 0 answered, 1 remote error or no answer, 2 usage or a bad file.
 *
 * The node is the transient node of the one-shot commands (kw_app_transient_open); its call
 * buffers are sized for this one call (start-up allocation).
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kw/app.h>
#include <kw/err.h>
#include <kw/loop.h>
#include <kw/node.h>
#include <kw/ml/codec.h>
#include <kw/ml/half.h>
#include <kw/ml/tensor_msg.h>
#include <kw/net/hivemind.h>
#include <kw/net/swarm.h>

#include "client.h"
#include "hivemind.h"
#include "serve.h"

int kw_cmd_info(int argc, char **argv);
int kw_cmd_call(int argc, char **argv);

#define FILE_MAX   (16u << 20)   /* a tensor file */
#define TENSOR_MAX (1u << 20)    /* floats of one tensor */
#define CALL_BUF   ((4u << 20) + 64)

struct tfile {
	uint32_t shape[KW_TENSOR_MSG_MAX_DIMS];
	uint32_t ndim;
	float *v;
	size_t n;
};

struct cli {
	const char *prog;
	struct kw_node *n;
	struct kw_hm *hm;
	const char *name;
	const char *uid;
	uint8_t *req;
	size_t req_len;
	uint32_t timeout_ms;
	bool info, json;
	int code;
	bool done;
};

/* ---- tensor files ------------------------------------------------------------------------- */

static int read_tensor(const char *path, struct tfile *t, const char *prog)
{
	FILE *f = fopen(path, "r");
	char *buf, *p, *end;
	size_t len, need = 1;
	int ret = -1;

	if (!f) {
		fprintf(stderr, "%s: cannot open %s: %s\n", prog, path, strerror(errno));
		return -1;
	}
	buf = malloc(FILE_MAX + 1);   /* a one-shot command: start-up allocation */
	len = buf ? fread(buf, 1, FILE_MAX + 1, f) : 0;
	fclose(f);
	if (!buf || len > FILE_MAX) {
		fprintf(stderr, "%s: %s: larger than %u bytes\n", prog, path, FILE_MAX);
		free(buf);
		return -1;
	}
	buf[len] = '\0';
	for (p = buf; (p = strchr(p, '#'));)   /* comments to the end of the line */
		while (*p && *p != '\n')
			*p++ = ' ';
	p = buf;
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	if (strncmp(p, "shape", 5)) {
		fprintf(stderr, "%s: %s: must start with a line 'shape D0 D1 ...'\n", prog, path);
		goto out;
	}
	p += 5;
	t->ndim = 0;
	while (*p && *p != '\n') {
		unsigned long d = strtoul(p, &end, 10);

		if (end == p) {
			if (*p == ' ' || *p == '\t' || *p == '\r') {
				p++;
				continue;
			}
			fprintf(stderr, "%s: %s: the shape line holds '%c'\n", prog, path, *p);
			goto out;
		}
		if (t->ndim == KW_TENSOR_MSG_MAX_DIMS || d == 0 || d > TENSOR_MAX ||
		    need * d > TENSOR_MAX) {
			fprintf(stderr, "%s: %s: at most %d dimensions of at most %u values in "
				"all\n", prog, path, KW_TENSOR_MSG_MAX_DIMS, TENSOR_MAX);
			goto out;
		}
		t->shape[t->ndim++] = (uint32_t)d;
		need *= d;
		p = end;
	}
	if (!t->ndim) {
		fprintf(stderr, "%s: %s: the shape line names no dimension\n", prog, path);
		goto out;
	}
	t->v = malloc(need * sizeof(float));
	if (!t->v)
		goto out;
	for (t->n = 0;; t->n++) {
		float x = strtof(p, &end);

		if (end == p)
			break;
		if (t->n == need) {
			fprintf(stderr, "%s: %s: more than the %zu values the shape holds\n", prog,
				path, need);
			goto out;
		}
		t->v[t->n] = x;
		p = end;
	}
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	if (*p || t->n != need) {
		fprintf(stderr, "%s: %s: %zu values where the shape holds %zu%s\n", prog, path,
			t->n, need, *p ? " (or text that is not a number)" : "");
		goto out;
	}
	ret = 0;
out:
	free(buf);
	return ret;
}

int kw_app_tensor_read(const char *path, const char *prog, uint32_t *shape, uint32_t *ndim,
		       float **v, size_t *n)
{
	struct tfile t = { 0 };

	if (read_tensor(path, &t, prog) < 0) {
		free(t.v);
		return -1;
	}
	memcpy(shape, t.shape, t.ndim * sizeof(uint32_t));
	*ndim = t.ndim;
	*v = t.v;
	*n = t.n;
	return 0;
}

/* A response tensor's values as fp32 into v[0..TENSOR_MAX): 0 with *n and *last (the last
 * dimension), or -1 when this build cannot decode it (dtype, compression, size). */
static int decode_tensor(const struct kw_tensor_msg *m, float *v, size_t *n, size_t *last)
{
	struct kw_codec codec;
	enum kw_codec_dtype dt;

	*last = m->ndim ? m->shape[m->ndim - 1] : 1;
	if (kw_tensor_msg_numel(m, n) < 0 || *n > TENSOR_MAX ||
	    kw_codec_dtype_parse(m->dtype, strlen(m->dtype), &dt) < 0 ||
	    kw_codec_init(&codec, KW_SIMD_AUTO) < 0 || m->compression < 0 ||
	    m->compression >= KW_COMP_COUNT ||
	    kw_codec_decode(&codec, (enum kw_compression)m->compression, dt, m->buf, m->buf_len,
			    *n, *last ? *last : 1, v) < 0)
		return -1;
	return 0;
}

static float tvals[TENSOR_MAX];

static void print_tensor(const struct kw_tensor_msg *m)
{
	size_t n, last;

	printf("shape");
	for (uint32_t i = 0; i < m->ndim; i++)
		printf(" %u", m->shape[i]);
	printf("\n");
	if (decode_tensor(m, tvals, &n, &last) < 0) {
		printf("# %s tensor, compression %d, %zu bytes: not decoded here\n", m->dtype,
		       (int)m->compression, m->buf_len);
		return;
	}
	for (size_t i = 0; i < n; i++)
		printf("%.9g%c", (double)tvals[i], (i + 1) % last == 0 ? '\n' : ' ');
}

/* One float as JSON: %.9g gives float32 back exactly; 1.0 stays a float; non-finite values,
 * which JSON has no number for, as hm_text.c writes them. */
static void json_float(float x)
{
	char t[40];

	if (isnan(x)) {
		fputs("{\"$float\": \"NaN\"}", stdout);
		return;
	}
	if (isinf(x)) {
		fputs(x > 0 ? "{\"$float\": \"Infinity\"}" : "{\"$float\": \"-Infinity\"}",
		      stdout);
		return;
	}
	snprintf(t, sizeof(t), "%.9g", (double)x);
	fputs(t, stdout);
	if (!strpbrk(t, ".e"))
		fputs(".0", stdout);
}

/* One response tensor as a JSON object; values null when this build cannot decode them. */
static void json_tensor(const struct kw_tensor_msg *m)
{
	size_t n, last;
	char dtype[2 * sizeof(m->dtype) + 8];

	printf("{\"shape\": [");
	for (uint32_t i = 0; i < m->ndim; i++)
		printf("%s%u", i ? ", " : "", m->shape[i]);
	if (kw_hm_json_str(m->dtype, dtype, sizeof(dtype)) < 0)
		snprintf(dtype, sizeof(dtype), "null");
	printf("], \"dtype\": %s, \"compression\": %d, \"bytes\": %zu, \"values\": ", dtype,
	       (int)m->compression, m->buf_len);
	if (decode_tensor(m, tvals, &n, &last) < 0) {
		printf("null}");
		return;
	}
	putchar('[');
	for (size_t i = 0; i < n; i++) {
		if (i)
			fputs(", ", stdout);
		json_float(tvals[i]);
	}
	printf("]}");
}

/* The answer of `call --json`: {"handler": .., "uid": .., "tensors": [..]}, one line. */
static void json_response(const struct cli *c, const struct kw_serve_req *resp)
{
	static char uid[4 * 65536];

	if (kw_hm_json_str(c->uid, uid, sizeof(uid)) < 0)
		snprintf(uid, sizeof(uid), "null");
	printf("{\"handler\": \"%s\", \"uid\": %s, \"tensors\": [", c->name, uid);
	for (size_t i = 0; i < resp->n_tensors; i++) {
		if (i)
			fputs(", ", stdout);
		json_tensor(&resp->t[i]);
	}
	printf("]}\n");
}

/* ---- request bytes ------------------------------------------------------------------------ */

static int put_field(struct cli *c, size_t cap, unsigned field, const void *data, size_t len)
{
	if (cap - c->req_len < len + 11)
		return -KW_EMSGSIZE;
	c->req[c->req_len++] = (uint8_t)(field << 3 | 2);
	c->req_len += kw_serve_pb_varint_put(c->req + c->req_len, len);
	memcpy(c->req + c->req_len, data, len);
	c->req_len += len;
	return 0;
}

static int put_tensor(struct cli *c, size_t cap, const uint32_t *shape, uint32_t ndim,
		      const float *v, size_t n)
{
	struct kw_tensor_msg m;
	size_t tl;
	uint8_t *tb;
	int ret;

	kw_tensor_msg_f32(&m, v, n, shape, ndim);
	tl = kw_tensor_msg_encoded_size(&m);
	if (!tl || cap - c->req_len < tl + 11)
		return -KW_EMSGSIZE;
	tb = malloc(tl);
	if (!tb)
		return -KW_ENOMEM;
	ret = kw_tensor_msg_encode(&m, tb, tl, &tl);
	if (ret == 0)
		ret = put_field(c, cap, 2, tb, tl);
	free(tb);
	return ret;
}

/* ---- the call ----------------------------------------------------------------------------- */

static void on_result(const struct kw_hm_result *r, void *user)
{
	struct cli *c = user;
	static char text[1 << 16];

	c->done = true;
	c->code = 1;
	if (r->err < 0) {
		fprintf(stderr, "%s: no answer: %s\n", c->prog,
			r->err == -KW_ENOPROTO ? "the peer does not serve this handler" :
						 kw_strerror(r->err));
	} else if (r->remote_error) {
		kw_hm_error_text(r->data, r->len, text, sizeof(text));
		fprintf(stderr, "%s: the server raised %s\n", c->prog, text);
	} else if (c->info) {
		/* ExpertInfo { bytes serialized_info = 1 }: tag, length, the msgpack */
		size_t pos = 1, l = 0;

		for (unsigned sh = 0; r->len > 1 && r->data[0] == 0x0a && pos < r->len && sh < 35;
		     sh += 7) {
			l |= (size_t)(r->data[pos] & 0x7f) << sh;
			if (!(r->data[pos++] & 0x80))
				break;
		}
		if (r->len > 1 && r->data[0] == 0x0a && pos + l == r->len &&
		    (c->json ? kw_hm_mp_to_json(r->data + pos, l, text, sizeof(text)) :
			       kw_hm_mp_to_text(r->data + pos, l, text, sizeof(text))) >= 0) {
			printf("%s\n", text);
			c->code = 0;
		} else {
			fprintf(stderr, "%s: the answer is not an ExpertInfo holding msgpack\n",
				c->prog);
		}
	} else {
		/* ExpertResponse { repeated Tensor tensors = 2 }: field 2 as in a request */
		struct kw_serve_req resp;

		if (kw_serve_req_decode(&resp, r->data, r->len, NULL) == 0) {
			if (c->json)
				json_response(c, &resp);
			else
				for (size_t i = 0; i < resp.n_tensors; i++)
					print_tensor(&resp.t[i]);
			c->code = 0;
		} else {
			fprintf(stderr, "%s: the answer is not an ExpertResponse\n", c->prog);
		}
	}
	fflush(stdout);
	kw_loop_stop(&c->n->loop, 0);
}

static void on_dial(struct kw_swarm *sw, struct kw_conn *conn, int err, void *user)
{
	struct cli *c = user;
	int ret;

	(void)sw;
	if (err < 0) {
		fprintf(stderr, "%s: cannot connect: %s\n", c->prog, kw_strerror(err));
		c->code = 1;
		kw_loop_stop(&c->n->loop, 0);
		return;
	}
	ret = kw_hm_call(c->hm, conn, c->name, c->req, c->req_len, c->timeout_ms, on_result, c);
	if (ret < 0) {
		fprintf(stderr, "%s: cannot call %s: %s\n", c->prog, c->name, kw_strerror(ret));
		c->code = 1;
		kw_loop_stop(&c->n->loop, 0);
	}
}

static int run(struct cli *c, const struct kw_config *cfg, const char *peer)
{
	struct kw_hm_limits lim;
	struct kw_app_transient t;
	int ret;

	if (kw_app_transient_open(&t, c->prog, cfg, (size_t)32 << 20) < 0)
		return 1;
	c->n = t.n;
	kw_hm_limits_default(&lim);
	lim.calls_in = 1;
	lim.calls_per_peer = 1;
	lim.calls_out = 1;
	lim.buf_bytes = CALL_BUF;
	lim.timeout_ms = c->timeout_ms;
	ret = kw_hm_create(t.sw, &lim, &c->hm);
	if (ret == 0)
		ret = kw_swarm_dial(t.sw, peer, on_dial, c);
	if (ret < 0) {
		fprintf(stderr, "%s: %s: %s\n", c->prog, peer,
			ret == -KW_EINVAL ? "not a multiaddr with /p2p/<peer-id>" : kw_strerror(ret));
		c->code = ret == -KW_EINVAL ? 2 : 1;
	} else {
		c->code = 1;
		kw_loop_run(&c->n->loop);
	}
	kw_app_transient_close(&t);
	return c->code;
}

static void info_usage(FILE *f)
{
	fprintf(f,
		"usage: kwnode info PEER [UID] [--petals] [--json] [--timeout-ms MS]\n"
		"                   [--data-dir DIR]\n"
		"  PEER a multiaddr with /p2p/<peer-id>. Prints the rpc_info dict: of hivemind\n"
		"  expert UID (ConnectionHandler.rpc_info), or with --petals or without UID of a\n"
		"  Petals server (TransformerConnectionHandler.rpc_info; UID: one block).\n"
		"  --json: the dict as one line of JSON (the form of `kwnode hivemind get`).\n");
}

static void call_usage(FILE *f)
{
	fprintf(f,
		"usage: kwnode call PEER UID --input FILE [--backward --grad FILE] [--petals]\n"
		"                   [--json] [--timeout-ms MS] [--data-dir DIR]\n"
		"  rpc_forward (or rpc_backward) of hivemind expert UID, or with --petals of the\n"
		"  Petals block chain UID (\"name.3 name.4\"). FILE: a line 'shape D0 D1 ...' then\n"
		"  the values (float32 on the wire). Prints each returned tensor in the same form.\n"
		"  --json: one line of JSON instead: {\"handler\": .., \"uid\": .., \"tensors\":\n"
		"  [{\"shape\": [..], \"dtype\": .., \"compression\": N, \"bytes\": N, \"values\":\n"
		"  [..]}]}, values row-major (null when not decodable here).\n"
		"  Exit: 0 answered, 1 remote error (on stderr) or no answer, 2 usage or a bad file.\n");
}

static int common(int argc, char **argv, bool is_info)
{
	static const struct option opts[] = {
		{ "input", required_argument, NULL, 'i' },
		{ "grad", required_argument, NULL, 'g' },
		{ "backward", no_argument, NULL, 'B' },
		{ "petals", no_argument, NULL, 'P' },
		{ "json", no_argument, NULL, 'j' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ 0, 0, 0, 0 },
	};
	static struct kw_config cfg;
	static struct cli c;
	const char *input = NULL, *grad = NULL, *data_dir = NULL, *peer, *uid = "";
	bool petals = false, backward = false;
	struct tfile x = { 0 }, g = { 0 };
	uint32_t dummy_shape[1] = { 0 };
	char err[512];
	int o, ret = 2;

	memset(&c, 0, sizeof(c));
	c.prog = is_info ? "kwnode info" : "kwnode call";
	c.info = is_info;
	c.timeout_ms = 30000;
	optind = 1;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'i': input = optarg; break;
		case 'g': grad = optarg; break;
		case 'B': backward = true; break;
		case 'P': petals = true; break;
		case 'j': c.json = true; break;
		case 'd': data_dir = optarg; break;
		case 't':
			if (kw_config_parse_u32(optarg, 1, 600000, &c.timeout_ms) < 0) {
				fprintf(stderr, "%s: --timeout-ms must be 1..600000\n", c.prog);
				return 2;
			}
			break;
		case 'h':
			(is_info ? info_usage : call_usage)(stdout);
			return 0;
		default:
			(is_info ? info_usage : call_usage)(stderr);
			return 2;
		}
	}
	if (argc - optind < (is_info ? 1 : 2) || argc - optind > 2 ||
	    (!is_info && (!input || backward != !!grad)) || (is_info && (input || grad || backward))) {
		(is_info ? info_usage : call_usage)(stderr);
		return 2;
	}
	peer = argv[optind];
	if (argc - optind == 2)
		uid = argv[optind + 1];
	c.uid = uid;
	if (is_info && !uid[0])
		petals = true;
	kw_config_defaults(&cfg);
	if (data_dir && kw_config_set(&cfg, "data_dir", data_dir, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", c.prog, err);
		return 2;
	}
	c.req = malloc(CALL_BUF);   /* one-shot: start-up allocation */
	if (!c.req)
		return 1;
	if (put_field(&c, CALL_BUF, 1, uid, strlen(uid)) < 0)
		goto out;
	if (is_info) {
		c.name = petals ? KW_SERVE_PT_INFO : KW_SERVE_MOE_INFO;
	} else {
		c.name = petals ? (backward ? KW_SERVE_PT_BACKWARD : KW_SERVE_PT_FORWARD) :
				  (backward ? KW_SERVE_MOE_BACKWARD : KW_SERVE_MOE_FORWARD);
		if (read_tensor(input, &x, c.prog) < 0 || (grad && read_tensor(grad, &g, c.prog) < 0))
			goto out;
		ret = put_tensor(&c, CALL_BUF, x.shape, x.ndim, x.v, x.n);
		if (ret == 0 && grad)
			ret = put_tensor(&c, CALL_BUF, g.shape, g.ndim, g.v, g.n);
		if (ret == 0 && petals)   /* DUMMY prompts, as Petals clients send */
			ret = put_tensor(&c, CALL_BUF, dummy_shape, 1, NULL, 0);
		if (ret < 0) {
			fprintf(stderr, "%s: the request is larger than %u bytes\n", c.prog, CALL_BUF);
			ret = 2;
			goto out;
		}
	}
	ret = run(&c, &cfg, peer);
out:
	free(x.v);
	free(g.v);
	free(c.req);
	return ret;
}

int kw_cmd_info(int argc, char **argv)
{
	return common(argc, argv, true);
}

int kw_cmd_call(int argc, char **argv)
{
	return common(argc, argv, false);
}
