/*
 * libFuzzer target: averaging messages (ml/avg). First byte even, (byte >> 1) % 4 picks:
 * 0 one AveragingData through kw_avg_data_decode (what decodes lies in the input,
 * re-encodes, and decodes to the same fields); 1 a JoinRequest (what decodes re-encodes to a
 * message that decodes the same); 2 the msgpack `gather` metadata (views lie in the input,
 * what decodes re-encodes); 3 a MessageFromLeader (views lie in the input and within their
 * bounds, what decodes re-encodes to bytes that decode the same, and the group it describes
 * is either refused with -KW_EPROTO / -KW_ERANGE or consistent). First byte odd: the rest is u16-length-prefixed messages from peer 1 into a
 * running two-peer all-reduce round (kw_avg_on_message), as a groupmate can send them; every
 * return is a documented code, and once the clock passes the round deadline the completion
 * callback has run exactly once with finite tensors.
 */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <kw/arena.h>
#include <kw/err.h>
#include <kw/loop.h>
#include <kw/ml/avg.h>
#include <kw/sim.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N0 300
#define N1 200

static struct kw_codec codec;
static struct kw_sim_net net;
static struct kw_sim sim;
static struct kw_loop loop;
static float t0[N0], t1[N1];
static float *tensors[2] = { t0, t1 };
static const uint64_t numel[2] = { N0, N1 };
static unsigned calls;
static uint8_t enc[1 << 17];

static int t_send(void *t, unsigned peer, const uint8_t *msg, size_t len)
{
	(void)t; (void)msg; (void)len;
	if (peer != 1)
		__builtin_trap();
	return 0;
}

static void on_done(struct kw_avg *a, const struct kw_avg_result *r, void *user)
{
	(void)a; (void)user;
	calls++;
	if (r->n_excluded > 1 || r->peers_used + r->n_excluded != 2)
		__builtin_trap();
}

static void init(void)
{
	static uint8_t net_mem[1 << 14];
	static uint8_t loop_mem[1 << 16];
	struct kw_arena a;

	if (kw_codec_init(&codec, KW_SIMD_AUTO))
		__builtin_trap();
	kw_arena_init(&a, net_mem, sizeof(net_mem));
	if (kw_sim_net_init(&net, &a, 2, 1024))
		__builtin_trap();
	kw_sim_init(&sim, &net);
	kw_arena_init(&a, loop_mem, sizeof(loop_mem));
	if (kw_loop_init(&loop, &sim.sys, &a, 64, 8))
		__builtin_trap();
}

static void one_message(const uint8_t *data, size_t size)
{
	struct kw_avg_data d, back;
	size_t n = 0;
	int rc = kw_avg_data_decode(&d, data, size);

	if (rc) {
		if (rc != -KW_EBADMSG && rc != -KW_EMSGSIZE)
			__builtin_trap();
		return;
	}
	if (d.group_id_len > KW_AVG_GROUP_ID_MAX || d.peer_id_len > KW_AVG_PEER_ID_MAX)
		__builtin_trap();
	if (d.has_part && d.part.buf_len &&
	    (d.part.buf < data || d.part.buf + d.part.buf_len > data + size))
		__builtin_trap();
	if (kw_avg_data_encode(&d, enc, sizeof(enc), &n)) {
		if (kw_avg_data_encoded_size(&d) <= sizeof(enc))
			__builtin_trap();
		return;
	}
	if (n != kw_avg_data_encoded_size(&d) || kw_avg_data_decode(&back, enc, n))
		__builtin_trap();
	if (back.code != d.code || back.group_id_len != d.group_id_len ||
	    memcmp(back.group_id, d.group_id, d.group_id_len) || back.has_part != d.has_part ||
	    (back.weight != d.weight && !(isnan(back.weight) && isnan(d.weight))))
		__builtin_trap();
	if (d.has_part && (back.part.buf_len != d.part.buf_len || back.part.ndim != d.part.ndim ||
			   back.part.compression != d.part.compression ||
			   (d.part.buf_len && memcmp(back.part.buf, d.part.buf, d.part.buf_len))))
		__builtin_trap();
}

static void join_message(const uint8_t *data, size_t size)
{
	static struct kw_avg_join_msg j, back;
	size_t n = 0;
	int rc = kw_avg_join_decode(&j, data, size);

	if (rc) {
		if (rc != -KW_EBADMSG && rc != -KW_EMSGSIZE)
			__builtin_trap();
		return;
	}
	if (j.schema_hash_len > sizeof(j.schema_hash) || j.gather_len > sizeof(j.gather) ||
	    memchr(j.group_key, 0, sizeof(j.group_key)) == NULL)
		__builtin_trap();
	if (kw_avg_join_encode(&j, enc, sizeof(enc), &n) || kw_avg_join_decode(&back, enc, n))
		__builtin_trap();
	if (back.schema_hash_len != j.schema_hash_len || back.gather_len != j.gather_len ||
	    strcmp(back.group_key, j.group_key) || back.client_mode != j.client_mode ||
	    memcmp(back.gather, j.gather, j.gather_len))
		__builtin_trap();
}

static void gather_message(const uint8_t *data, size_t size)
{
	const uint8_t *u = NULL;
	size_t ul = 0, n = 0;
	double bw;
	enum kw_avg_mode mode;
	int rc = kw_avg_gather_decode(data, size, &bw, &mode, &u, &ul);

	if (rc) {
		if (rc != -KW_EBADMSG && rc != -KW_EMSGSIZE)
			__builtin_trap();
		return;
	}
	if (mode > KW_AVG_AUX || u < data || u + ul != data + size)
		__builtin_trap();
	if (kw_avg_gather_encode(bw, mode, u, ul, enc, sizeof(enc), &n))
		__builtin_trap();
}

static void leader_message(const uint8_t *data, size_t size)
{
	static struct kw_avg_leader_msg m, back;
	struct kw_avg_group g;
	size_t n = 0;
	int rc = kw_avg_leader_decode(&m, data, size);

	if (rc) {
		if (rc != -KW_EBADMSG && rc != -KW_EMSGSIZE)
			__builtin_trap();
		return;
	}
	if (m.n_peers > KW_AVG_GROUP_MAX || m.n_gathered > KW_AVG_GROUP_MAX ||
	    m.group_id_len > KW_AVG_GROUP_ID_MAX || m.suggested_len > KW_AVG_PEER_ID_MAX)
		__builtin_trap();
	for (unsigned i = 0; i < m.n_peers; i++)
		if (m.peer[i].len > KW_AVG_PEER_ID_MAX || (m.peer[i].len &&
		    (m.peer[i].p < data || m.peer[i].p + m.peer[i].len > data + size)))
			__builtin_trap();
	for (unsigned i = 0; i < m.n_gathered; i++)
		if (m.gathered[i].len > KW_AVG_GATHER_MAX || (m.gathered[i].len &&
		    (m.gathered[i].p < data || m.gathered[i].p + m.gathered[i].len > data + size)))
			__builtin_trap();
	if (kw_avg_leader_encode(&m, enc, sizeof(enc), &n) || kw_avg_leader_decode(&back, enc, n))
		__builtin_trap();
	if (back.code != m.code || back.n_peers != m.n_peers || back.n_gathered != m.n_gathered ||
	    back.group_id_len != m.group_id_len || back.suggested_len != m.suggested_len)
		__builtin_trap();
	for (unsigned i = 0; i < m.n_peers; i++)
		if (back.peer[i].len != m.peer[i].len ||
		    (m.peer[i].len && memcmp(back.peer[i].p, m.peer[i].p, m.peer[i].len)))
			__builtin_trap();
	if (m.n_peers) {   /* the first peer as "self" */
		rc = kw_avg_group_from_leader(&m, m.peer[0].p, m.peer[0].len, 16, &g);
		if (rc == 0 && (g.n != m.n_peers || g.self != 0 || g.n > 16))
			__builtin_trap();
		if (rc && rc != -KW_EPROTO && rc != -KW_ERANGE && rc != -KW_EINVAL)
			__builtin_trap();
	}
}

static void round_with(const uint8_t *data, size_t size)
{
	static uint8_t mem[1 << 20] __attribute__((aligned(64)));
	struct kw_avg_cfg cfg;
	struct kw_avg_transport tr = { t_send, NULL };
	struct kw_avg_group g;
	struct kw_arena a;
	struct kw_avg *avg;

	kw_avg_cfg_default(&cfg);
	cfg.n_tensors = 2;
	cfg.tensors = tensors;
	cfg.numel = numel;
	cfg.part_size_bytes = 4096;   /* NONE: parts of 1024 values */
	cfg.max_peers = 2;
	cfg.max_parts = 8;
	cfg.sender_timeout_ms = 1000;
	cfg.round_timeout_ms = 2000;
	cfg.codec = &codec;
	cfg.compression = (size > 0 && (data[0] & 0x80)) ? KW_COMP_FLOAT16 : KW_COMP_NONE;
	if (kw_avg_arena_bytes(&cfg) > sizeof(mem))
		__builtin_trap();
	kw_arena_init(&a, mem, sizeof(mem));
	if (kw_avg_create(&loop, &a, &cfg, &tr, &avg))
		__builtin_trap();
	for (unsigned i = 0; i < N0; i++)
		t0[i] = (float)i / N0;
	for (unsigned i = 0; i < N1; i++)
		t1[i] = -(float)i / N1;
	memset(&g, 0, sizeof(g));
	g.n = 2;
	g.self = 0;
	g.group_id_len = 20;   /* all zero, easy for the fuzzer to hit */
	g.bandwidth[0] = g.bandwidth[1] = KW_AVG_BW_NONE;
	/* the first input byte's low bits pick our mode and the peer's */
	g.mode[0] = (size > 0) ? (enum kw_avg_mode)((data[0] >> 1) % 3) : KW_AVG_NODE;
	g.mode[1] = (size > 0) ? (enum kw_avg_mode)((data[0] >> 3) % 3) : KW_AVG_NODE;
	if (g.mode[0] == KW_AVG_CLIENT && g.mode[1] == KW_AVG_CLIENT)
		g.mode[1] = KW_AVG_NODE;
	calls = 0;
	if (kw_avg_step(avg, &g, on_done, NULL))
		__builtin_trap();
	if (size)
		data++, size--;
	while (size >= 2) {
		size_t len = (size_t)data[0] | (size_t)data[1] << 8;
		int rc;

		data += 2;
		size -= 2;
		if (len > size)
			len = size;
		rc = kw_avg_on_message(avg, 1, data, len);
		if (rc && rc != -KW_EAGAIN && rc != -KW_EBADMSG && rc != -KW_EPROTO &&
		    rc != -KW_ERANGE && rc != -KW_ENOENT)
			__builtin_trap();
		data += len;
		size -= len;
		kw_loop_run_once(&loop, 0);
	}
	for (int t = 0; t < 60 && !calls; t++) {
		kw_sim_advance(&net, 50);
		kw_loop_run_once(&loop, 0);
	}
	if (calls != 1)
		__builtin_trap();
	for (unsigned i = 0; i < N0; i++)
		if (!isfinite(t0[i]))
			__builtin_trap();
	kw_avg_destroy(avg);
	if (calls != 1)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool inited;

	if (!inited) {
		init();
		inited = true;
	}
	if (size < 1)
		return 0;
	if (data[0] & 1)
		round_with(data, size);
	else if ((data[0] >> 1) % 4 == 1)
		join_message(data + 1, size - 1);
	else if ((data[0] >> 1) % 4 == 2)
		gather_message(data + 1, size - 1);
	else if ((data[0] >> 1) % 4 == 3)
		leader_message(data + 1, size - 1);
	else
		one_message(data + 1, size - 1);
	return 0;
}
