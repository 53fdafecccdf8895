/*
 * Butterfly all-reduce round (hivemind @ 4bd43b7 hivemind/averaging/allreduce.py
 * AllReduceRunner, partition.py TensorPartContainer / TensorPartReducer), driven by messages
 * and one timer on the kernel loop instead of asyncio tasks.
 *
 * Every peer i of the group reduces a contiguous run of parts (kw_avg_partition). As a
 * sender (NODE, CLIENT) we stream our parts of peer j's run to j and add the averaged deltas
 * it returns; as a reducer (NODE, AUX) we average part k over all senders (weighted mean,
 * float32 as torch) once every sender still in the round has delivered it, and return to each
 * sender `average - its part`, compressed as the part was. Our own parts never leave the
 * process (hivemind: parts_for_local_averaging).
 *
 * Flow control: a sender keeps at most `window` parts unanswered per reducer; a reducer keeps
 * `window` received parts per sender (the slots) and answers -KW_EAGAIN beyond that, so a
 * round's memory is fixed at create: slots = max_peers * window * part values.
 *
 * Failures (allreduce.py _ban_sender / register_failed_reducer): a peer that sends a bad
 * message, stays silent past sender_timeout while we wait on it (2x that as a reducer, as
 * hivemind's reducer_timeout), or is lost by the transport is excluded with a logged reason.
 * Its parts received so far still count; parts it reduces for us keep our own values. At
 * round_timeout every peer still owed is excluded and the round completes with the rest.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/ml/avg.h>

#define NOT_FAILED UINT32_MAX

struct peer {
	/* we reduce: this peer sends to us */
	uint32_t rx;               /* parts received */
	uint32_t failed_after;     /* parts of it that count once excluded; NOT_FAILED */
	uint64_t last_rx_ms;
	/* we send: this peer reduces our parts */
	uint32_t tx, replies;
	uint64_t last_reply_ms;
	bool excluded;
};

struct kw_avg {
	struct kw_loop *loop;
	struct kw_avg_cfg cfg;
	struct kw_avg_transport tr;
	struct kw_timer timer;
	size_t part_values;        /* values per part (cfg.compression, cfg.part_size_bytes) */
	size_t enc_cap, scratch_len;
	size_t slot_cap;           /* bytes of a slot's body: one part as the codec encodes it */
	size_t run;                /* values per run of the fused paths (kw_codec_granule) */
	bool raw;                  /* NONE: a slot holds the part's float32 values as sent */
	bool fuse;                 /* runs shorter than a part: see reduce_fused() (NONE always) */
	uint64_t total;            /* values over every tensor */

	/* from the arena */
	struct peer *peers;
	char (*reason)[KW_AVG_REASON_MAX];
	struct kw_avg_part *parts;
	uint8_t *slots;            /* [peer][window][SLOT_ROOM + slot_cap + SLOT_ROOM]: received
	                            * parts, still encoded, with room to frame a message around */
	double *slot_w;            /* [peer][window] weights */
	float *avg, *tmp;          /* part_values each: the mean; one decoded run */
	uint8_t *enc;              /* one encoded AveragingData (enc_cap) */
	uint8_t *sent_finite;      /* [max_parts]: 1 when the part we sent had no NaN or Inf */
	void *scratch;

	/* accumulation */
	double acc_weight;
	bool acc_open;

	/* the round */
	bool running;
	struct kw_avg_group g;
	uint64_t alloc[KW_AVG_GROUP_MAX];
	uint32_t first[KW_AVG_GROUP_MAX + 1];
	size_t n_parts;
	uint32_t cur;              /* next of our parts to reduce (0..mine) */
	uint32_t mine;             /* parts we reduce */
	double weight;             /* our weight this round */
	uint64_t start_ms, deadline_ms;
	kw_avg_done_fn done;
	void *user;
	struct kw_avg_result res;
	uint64_t part_bytes_sent;  /* codec output bytes sent (compression ratio) */
	struct kw_avg_stats stats;
};

/* Hot loops (below): VEC values per vector step, CHUNK values per cache-resident run. */
#define VEC 16u
#define CHUNK 2048u
#define EXP_BITS 0x7f800000u
/* On the loops that OR into per-lane flags: unrolled, the flags stay in vector registers
 * (GCC 12 otherwise keeps the flag array in memory and reloads it every step). */
#define UNROLL_VEC _Pragma("GCC unroll 16")

/* x86-64 with GCC: each hot loop (HOT) is also built for AVX2 and the CPU's best is bound at
 * load time (target_clones: an ifunc), as wide loads halve the loop steps of these
 * memory-bound passes. No FMA: element-wise adds and multiplies round alike in both, so a
 * round's result does not depend on the CPU. Elsewhere (arm64: NEON is the baseline; clang's
 * fuzz builds) the plain loops. */
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
#define HOT __attribute__((target_clones("avx2", "default")))
#else
#define HOT
#endif

#define TICK_MS 50u   /* timeout checks; a dead peer is noticed within this of its deadline */
/* At the round deadline we first drop the senders we still wait on, so our own parts reduce
 * and their replies go out; a reducer that still owes us replies this much later is dropped.
 * Every peer hits the deadline at about the same time: without the grace, peers blocked by
 * the same dead sender would drop each other. */
#define DEADLINE_GRACE_MS 500u

void kw_avg_cfg_default(struct kw_avg_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->compression = KW_COMP_NONE;
	cfg->part_size_bytes = CONFIG_KW_ML_AVG_PART_BYTES;
	cfg->max_peers = CONFIG_KW_ML_AVG_MAX_PEERS;
	cfg->max_parts = CONFIG_KW_ML_AVG_MAX_PARTS;
	cfg->window = CONFIG_KW_ML_AVG_WINDOW;
	cfg->sender_timeout_ms = CONFIG_KW_ML_AVG_SENDER_TIMEOUT_MS;
	cfg->round_timeout_ms = CONFIG_KW_ML_AVG_ROUND_TIMEOUT_MS;
}

static void fill_defaults(struct kw_avg_cfg *c)
{
	if (!c->part_size_bytes) c->part_size_bytes = CONFIG_KW_ML_AVG_PART_BYTES;
	if (!c->max_peers) c->max_peers = CONFIG_KW_ML_AVG_MAX_PEERS;
	if (!c->max_parts) c->max_parts = CONFIG_KW_ML_AVG_MAX_PARTS;
	if (!c->window) c->window = CONFIG_KW_ML_AVG_WINDOW;
	if (!c->sender_timeout_ms) c->sender_timeout_ms = CONFIG_KW_ML_AVG_SENDER_TIMEOUT_MS;
	if (!c->round_timeout_ms) c->round_timeout_ms = CONFIG_KW_ML_AVG_ROUND_TIMEOUT_MS;
}

/* Group id, peer id and weight, Tensor header (shape, dtype, compression) and the tags. */
#define MSG_OVERHEAD 256
/* Before and after each slot's body: a delta's AveragingData around it (code, tags and
 * lengths before, about 15 bytes; shape, dtype, compression after, about 25), so the delta
 * encoded in place in the slot is sent from there. 64 keeps the body 64-byte aligned. */
#define SLOT_ROOM 64

#define N_BLOCKS 11
struct layout {
	size_t pv, enc_cap, scratch, slot_cap, off[N_BLOCKS], total;
};

static int plan_layout(const struct kw_avg_cfg *c, struct layout *l)
{
	size_t sizes[N_BLOCKS], aligns[N_BLOCKS] = { 64, 16, 16, 16, 16, 64, 64, 64, 64, 64, 16 };
	size_t W = c->window, P = c->max_peers, codec_max;

	if (c->max_peers > KW_AVG_GROUP_MAX || c->max_peers < 1 || !c->window ||
	    c->part_size_bytes > (1u << 26))
		return -KW_EINVAL;
	l->pv = kw_avg_part_values(c->compression, c->part_size_bytes);
	if (!l->pv || l->pv > UINT32_MAX)
		return -KW_EINVAL;
	/* parts are encoded as one row (last_dim = part length) */
	codec_max = kw_codec_max_size(c->compression, l->pv, l->pv);
	if (!codec_max)
		return -KW_EINVAL;
	l->enc_cap = codec_max + MSG_OVERHEAD;
	/* 64-byte slots: a kept NONE part is an aligned float array, a BLOCKWISE_8BIT part's
	 * absmax and code are aligned floats the kernels read in place */
	l->slot_cap = (codec_max + 63) / 64 * 64;
	l->scratch = kw_codec_scratch_size(c->compression, l->pv);
	sizes[0] = sizeof(struct kw_avg);
	sizes[1] = P * sizeof(struct peer);
	sizes[2] = P * KW_AVG_REASON_MAX;
	sizes[3] = (size_t)c->max_parts * sizeof(struct kw_avg_part);
	sizes[4] = P * W * sizeof(double);
	sizes[5] = P * W * (SLOT_ROOM + l->slot_cap + SLOT_ROOM);
	sizes[6] = l->pv * sizeof(float);
	sizes[7] = l->pv * sizeof(float);
	sizes[8] = l->enc_cap;
	sizes[9] = l->scratch;
	sizes[10] = c->max_parts;
	l->total = 0;
	for (int i = 0; i < N_BLOCKS; i++) {
		l->total = (l->total + aligns[i] - 1) / aligns[i] * aligns[i];
		l->off[i] = l->total;
		l->total += sizes[i];
	}
	l->total += 64;  /* the arena's own alignment of the first block */
	return 0;
}

size_t kw_avg_arena_bytes(const struct kw_avg_cfg *cfg)
{
	struct kw_avg_cfg c = *cfg;
	struct layout l;

	fill_defaults(&c);
	return plan_layout(&c, &l) ? 0 : l.total;
}

static void on_timer(struct kw_loop *l, struct kw_timer *t);

int kw_avg_create(struct kw_loop *loop, struct kw_arena *arena, const struct kw_avg_cfg *cfg,
		  const struct kw_avg_transport *tr, struct kw_avg **out)
{
	struct kw_avg_cfg c;
	struct layout l;
	uint8_t *base;
	struct kw_avg *a;

	if (!loop || !arena || !cfg || !tr || !tr->send || !out || !cfg->codec ||
	    (cfg->n_tensors && (!cfg->tensors || !cfg->numel)))
		return -KW_EINVAL;
	c = *cfg;
	fill_defaults(&c);
	if (plan_layout(&c, &l))
		return -KW_EINVAL;
	base = kw_arena_alloc(arena, l.total, 64);
	if (!base)
		return -KW_ENOMEM;
	a = (struct kw_avg *)base;
	memset(a, 0, sizeof(*a));
	a->loop = loop;
	a->cfg = c;
	a->tr = *tr;
	a->part_values = l.pv;
	a->enc_cap = l.enc_cap;
	a->scratch_len = l.scratch;
	a->peers = (struct peer *)(base + l.off[1]);
	a->reason = (char (*)[KW_AVG_REASON_MAX])(base + l.off[2]);
	a->parts = (struct kw_avg_part *)(base + l.off[3]);
	a->slot_w = (double *)(base + l.off[4]);
	a->slots = base + l.off[5];
	a->slot_cap = l.slot_cap;
	a->raw = c.compression == KW_COMP_NONE;
	a->run = kw_codec_granule(c.compression, KW_CODEC_F32, l.pv);
	a->fuse = a->run < l.pv;
	a->run = a->run >= l.pv ? l.pv : KW_MAX(a->run, (size_t)CHUNK / a->run * a->run);
	a->avg = (float *)(base + l.off[6]);
	a->tmp = (float *)(base + l.off[7]);
	a->enc = base + l.off[8];
	a->scratch = l.scratch ? base + l.off[9] : NULL;
	a->sent_finite = base + l.off[10];
	for (size_t t = 0; t < c.n_tensors; t++)
		a->total += c.numel[t];
	kw_timer_init(&a->timer, on_timer, a);
	*out = a;
	return 0;
}

static float *part_ptr(struct kw_avg *a, uint32_t k)
{
	const struct kw_avg_part *p = &a->parts[k];

	return a->cfg.tensors[p->tensor] + p->off;
}

static uint8_t *slot(struct kw_avg *a, unsigned peer, uint32_t k)
{
	return a->slots + ((size_t)peer * a->cfg.window + k % a->cfg.window) *
	       (SLOT_ROOM + a->slot_cap + SLOT_ROOM) + SLOT_ROOM;
}

/* 0 when a part's codec bytes have the exact length of len values, else the error the
 * codec's decoder gives (short: -KW_EBADMSG, long: -KW_EMSGSIZE). */
static size_t enc_len(const struct kw_avg *a, uint32_t len);
static int part_len_ok(const struct kw_avg *a, size_t got, uint32_t len)
{
	size_t need = enc_len(a, len);

	return got < need ? -KW_EBADMSG : got > need ? -KW_EMSGSIZE : 0;
}

/* Bytes of a len-value part in the round's codec (exact for every codec, float32 NONE). */
static size_t enc_len(const struct kw_avg *a, uint32_t len)
{
	return kw_codec_max_size(a->cfg.compression, len, len);
}

static bool is_sender(const struct kw_avg *a, unsigned i)
{
	return a->g.mode[i] != KW_AVG_AUX;
}

static uint32_t nparts_of(const struct kw_avg *a, unsigned i)
{
	return a->first[i + 1] - a->first[i];
}

int kw_avg_accumulate(struct kw_avg *a, const float *const *tensors, double weight)
{
	if (!a || !tensors || !isfinite(weight) || weight < 0 || weight > FLT_MAX)
		return -KW_EINVAL;
	if (a->running)
		return -KW_EBUSY;
	for (size_t t = 0; t < a->cfg.n_tensors; t++) {
		float *dst = a->cfg.tensors[t];
		const float *src = tensors[t];
		float w = (float)weight;

		if (!a->acc_open)
			for (uint64_t i = 0; i < a->cfg.numel[t]; i++)
				dst[i] = w * src[i];
		else
			for (uint64_t i = 0; i < a->cfg.numel[t]; i++)
				dst[i] += w * src[i];
	}
	a->acc_weight = a->acc_open ? a->acc_weight + weight : weight;
	a->acc_open = true;
	return 0;
}

/* ---- hot loops -------------------------------------------------------------------------- */

/*
 * The loops below touch every value of a round several times. GCC's -O2 vectoriser (the
 * "very cheap" cost model) only takes loops whose trip count is a multiple of the vector
 * width and whose pointers cannot alias, so each loop is written as fixed VEC-value steps
 * on restrict pointers plus a scalar tail: plain C that becomes SSE2 / NEON code. The
 * finiteness tests are integer tests on the exponent bits (isfinite() has a branch per
 * value and does not vectorise). Results are the same, value for value, as the one-value
 * loops they replace. CHUNK: values per cache-resident step of the weighted sum.
 */

/* True when no x[i] is NaN or Inf (exponent bits all ones). */
HOT static bool all_finite(const float *restrict x, size_t n)
{
	uint32_t bad[VEC] = { 0 }, any = 0;
	size_t i = 0;

	for (; i + VEC <= n; i += VEC)
		UNROLL_VEC for (unsigned j = 0; j < VEC; j++) {
			uint32_t b;

			memcpy(&b, &x[i + j], 4);
			bad[j] |= (b & EXP_BITS) == EXP_BITS;
		}
	for (; i < n; i++) {
		uint32_t b;

		memcpy(&b, &x[i], 4);
		any |= (b & EXP_BITS) == EXP_BITS;
	}
	for (unsigned j = 0; j < VEC; j++)
		any |= bad[j];
	return !any;
}

/* True when every x[i] + d[i] is finite (in float32, as the update x += d computes it). */
HOT static bool sum_finite(const float *restrict x, const float *restrict d, size_t n)
{
	uint32_t bad[VEC] = { 0 }, any = 0;
	size_t i = 0;

	for (; i + VEC <= n; i += VEC)
		UNROLL_VEC for (unsigned j = 0; j < VEC; j++) {
			float v = x[i + j] + d[i + j];
			uint32_t b;

			memcpy(&b, &v, 4);
			bad[j] |= (b & EXP_BITS) == EXP_BITS;
		}
	for (; i < n; i++) {
		float v = x[i] + d[i];
		uint32_t b;

		memcpy(&b, &v, 4);
		any |= (b & EXP_BITS) == EXP_BITS;
	}
	for (unsigned j = 0; j < VEC; j++)
		any |= bad[j];
	return !any;
}

/* y[i] = 0 + w * x[i] (the first term of a sum that started at 0, -0.0 included) */
HOT static void scale_to(float *restrict y, const float *restrict x, float w, size_t n)
{
	size_t i = 0;

	for (; i + VEC <= n; i += VEC)
		for (unsigned j = 0; j < VEC; j++)
			y[i + j] = 0.0f + w * x[i + j];
	for (; i < n; i++)
		y[i] = 0.0f + w * x[i];
}

/* y[i] += w * x[i] */
HOT static void axpy(float *restrict y, const float *restrict x, float w, size_t n)
{
	size_t i = 0;

	for (; i + VEC <= n; i += VEC)
		for (unsigned j = 0; j < VEC; j++)
			y[i + j] += w * x[i + j];
	for (; i < n; i++)
		y[i] += w * x[i];
}

/* y[i] += x[i] */
HOT static void add_to(float *restrict y, const float *restrict x, size_t n)
{
	size_t i = 0;

	for (; i + VEC <= n; i += VEC)
		for (unsigned j = 0; j < VEC; j++)
			y[i + j] += x[i + j];
	for (; i < n; i++)
		y[i] += x[i];
}

/* x[i] = avg[i] - x[i]: a sender's delta, in place of its decoded run */
HOT static void delta_of(float *restrict x, const float *restrict avg, size_t n)
{
	size_t i = 0;

	for (; i + VEC <= n; i += VEC)
		for (unsigned j = 0; j < VEC; j++)
			x[i + j] = avg[i + j] - x[i + j];
	for (; i < n; i++)
		x[i] = avg[i] - x[i];
}

/*
 * NONE's fused paths read and write float32 wire bytes in place, at any alignment: the
 * memcpy of 4 bytes is one unaligned load or store, and the loops vectorise as above.
 */

/* True when every float32 d[i] (wire bytes) is finite and |d[i]| < 2^103: its magnitude
 * bits plus (0x7fffffff - SMALL_BITS) carry into bit 31 exactly when they are larger. */
#define SMALL_BITS 0x72ffffffu   /* the largest float32 below 2^103 */
HOT static bool small_bytes(const uint8_t *restrict d, size_t n)
{
	uint32_t acc[VEC] = { 0 }, any = 0;
	size_t i = 0;

	for (; i + VEC <= n; i += VEC)
		UNROLL_VEC for (unsigned j = 0; j < VEC; j++) {
			uint32_t b;

			memcpy(&b, d + 4 * (i + j), 4);
			acc[j] |= (b & 0x7fffffffu) + (0x7fffffffu - SMALL_BITS);
		}
	for (; i < n; i++) {
		uint32_t b;

		memcpy(&b, d + 4 * i, 4);
		any |= (b & 0x7fffffffu) + (0x7fffffffu - SMALL_BITS);
	}
	for (unsigned j = 0; j < VEC; j++)
		any |= acc[j];
	return !(any & 0x80000000u);
}

/* A delta d (float32 wire bytes) for x: -KW_ERANGE when some d[i] is NaN or Inf, 1 when
 * some x[i] + d[i] is (overflow), else 0. Reads only. */
HOT static int delta_check_bytes(const float *restrict x, const uint8_t *restrict d, size_t n)
{
	uint32_t bad[VEC] = { 0 }, ovf[VEC] = { 0 }, anyb = 0, anyo = 0;
	size_t i = 0;

	for (; i + VEC <= n; i += VEC)
		UNROLL_VEC for (unsigned j = 0; j < VEC; j++) {
			uint32_t b, sb;
			float v, sum;

			memcpy(&b, d + 4 * (i + j), 4);
			memcpy(&v, &b, 4);
			sum = x[i + j] + v;
			memcpy(&sb, &sum, 4);
			bad[j] |= (b & EXP_BITS) == EXP_BITS;
			ovf[j] |= (sb & EXP_BITS) == EXP_BITS;
		}
	for (; i < n; i++) {
		uint32_t b, sb;
		float v, sum;

		memcpy(&b, d + 4 * i, 4);
		memcpy(&v, &b, 4);
		sum = x[i] + v;
		memcpy(&sb, &sum, 4);
		anyb |= (b & EXP_BITS) == EXP_BITS;
		anyo |= (sb & EXP_BITS) == EXP_BITS;
	}
	for (unsigned j = 0; j < VEC; j++) {
		anyb |= bad[j];
		anyo |= ovf[j];
	}
	return anyb ? -KW_ERANGE : anyo ? 1 : 0;
}

/* x[i] += d[i], d float32 wire bytes */
HOT static void add_bytes(float *restrict x, const uint8_t *restrict d, size_t n)
{
	size_t i = 0;

	for (; i + VEC <= n; i += VEC)
		for (unsigned j = 0; j < VEC; j++) {
			float v;

			memcpy(&v, d + 4 * (i + j), 4);
			x[i + j] += v;
		}
	for (; i < n; i++) {
		float v;

		memcpy(&v, d + 4 * i, 4);
		x[i] += v;
	}
}

/*
 * Values [off, off + n) of a part kept in a slot (n a run of the codec): the slot itself
 * for NONE, else decoded into buf. The slot was checked when it arrived, so this cannot
 * fail; a failure would be a bug, and gives NULL.
 */
static const float *slot_run(struct kw_avg *a, const uint8_t *sl, uint32_t len, size_t off,
			     size_t n, float *buf)
{
	if (a->raw)
		return (const float *)(const void *)sl + off;
	if (kw_codec_decode_range(a->cfg.codec, a->cfg.compression, KW_CODEC_F32, sl,
				  enc_len(a, len), len, len, off, n, buf))
		return NULL;
	return buf;
}

/*
 * avg[0..len) = sum over k of w[k] * x_k[i], accumulated in float32 in the order of the
 * inputs (the order and rounding of one pass per sender), one run at a time so avg stays
 * in cache while each input streams through once. Input k is our own part when sl[k] is
 * NULL (own), else the part kept in slot sl[k], decoded run by run straight into the sum
 * (through a->tmp: one run, cache-resident). False when some mean is NaN or Inf.
 */
static bool weighted_sum(struct kw_avg *a, const float *own, uint8_t *const *sl, const float *w,
			 unsigned nx, uint32_t len)
{
	bool ok = true;

	for (size_t off = 0; off < len; off += a->run) {
		size_t c = KW_MIN(a->run, len - off);

		for (unsigned k = 0; k < nx; k++) {
			const float *x = sl[k] ? slot_run(a, sl[k], len, off, c, a->tmp) : own + off;

			if (!x)
				return false;
			if (k == 0)
				scale_to(a->avg + off, x, w[k], c);
			else
				axpy(a->avg + off, x, w[k], c);
		}
		ok = ok && all_finite(a->avg + off, c);
	}
	return ok;
}

/*
 * The reduction of one of our parts when every input's run fits in a->tmp at once (a codec
 * with runs shorter than a part, nx * run <= part_values; NONE reads its slots as they are):
 * each sender's run is decoded once and serves both the weighted sum (same order and
 * rounding as weighted_sum()) and that sender's delta, which is encoded in place of the run
 * in the sender's slot while the run is in cache (a run's bytes sit at the same offsets in
 * both; the header, which may hold the sender's own code, is rewritten at the end), and
 * sent from there (send_kept). reply[k] says whether input k gets a delta. False when some
 * mean is NaN or Inf; the slots are then half overwritten, and nobody is answered.
 */
static bool reduce_fused(struct kw_avg *a, const float *own, uint8_t *const *sl,
			 const bool *reply, const float *w, unsigned nx, uint32_t len)
{
	size_t run = KW_MIN(a->run, (size_t)len), hl;
	int err = 0;

	for (size_t off = 0; off < len; off += run) {
		size_t c = KW_MIN(run, len - off);

		for (unsigned k = 0; k < nx; k++) {
			const float *x = !sl[k] ? own + off :
				a->raw ? (const float *)(const void *)sl[k] + off : a->tmp + k * run;

			if (sl[k] && !a->raw && kw_codec_decode_range(a->cfg.codec, a->cfg.compression, KW_CODEC_F32,
							   sl[k], enc_len(a, len), len, len, off, c,
							   a->tmp + k * run))
				return false;   /* checked on arrival: a bug */
			if (k == 0)
				scale_to(a->avg + off, x, w[k], c);
			else
				axpy(a->avg + off, x, w[k], c);
		}
		if (!all_finite(a->avg + off, c))
			return false;
		for (unsigned k = 0; k < nx && !err; k++) {
			if (!sl[k] || !reply[k])
				continue;
			if (a->raw) {   /* the delta's float32 bytes, in place of the part's */
				delta_of((float *)(void *)sl[k] + off, a->avg + off, c);
				continue;
			}
			delta_of(a->tmp + k * run, a->avg + off, c);
			err = kw_codec_encode_range(a->cfg.codec, a->cfg.compression, KW_CODEC_F32,
						    a->tmp + k * run,
						    len, len, off, c, a->scratch, a->scratch_len, sl[k],
						    a->slot_cap);
		}
	}
	for (unsigned k = 0; k < nx && !err && !a->raw; k++)
		if (sl[k] && reply[k])
			err = kw_codec_encode_header(a->cfg.codec, a->cfg.compression, KW_CODEC_F32, len,
						     len, sl[k], a->slot_cap, &hl);
	return !err;
}

/* ---- messages ------------------------------------------------------------------------- */

static int send_msg(struct kw_avg *a, unsigned to, struct kw_avg_data *d)
{
	size_t len = 0;
	int err = kw_avg_data_encode(d, a->enc, a->enc_cap, &len);

	if (err)
		return err;
	err = a->tr.send(a->tr.t, to, a->enc, len);
	if (!err)
		a->res.bytes_sent += len;
	return err;
}

static void send_code(struct kw_avg *a, unsigned to, enum kw_avg_code code)
{
	struct kw_avg_data d;

	memset(&d, 0, sizeof(d));
	d.code = code;
	(void)send_msg(a, to, &d);  /* best effort: the peer is being excluded anyway */
}

/*
 * Encodes d with a part of len values in the round's codec into a->enc, leaving the part's
 * bytes to be written in place (kw_tensor_msg_encode reserves them): *body is where they go,
 * *blen their count, *mlen the message's. Tensor.buffer is the Tensor's first field and
 * the Tensor is followed only by the weight, so the body ends that far before the end.
 */
static int frame_part(struct kw_avg *a, struct kw_avg_data *d, uint32_t len, uint8_t **body,
		      size_t *blen, size_t *mlen)
{
	struct kw_avg_data tail;
	struct kw_tensor_msg rest;
	size_t after;
	int err;

	*blen = enc_len(a, len);
	d->has_part = true;
	memset(&d->part, 0, sizeof(d->part));
	d->part.buf = NULL;
	d->part.buf_len = *blen;
	d->part.ndim = 1;
	d->part.shape[0] = len;
	strcpy(d->part.dtype, "float32");
	d->part.compression = a->cfg.compression;
	if ((err = kw_avg_data_encode(d, a->enc, a->enc_cap, mlen)))
		return err;
	rest = d->part;
	rest.buf_len = 0;
	memset(&tail, 0, sizeof(tail));
	tail.weight = d->weight;
	after = kw_tensor_msg_encoded_size(&rest) + kw_avg_data_encoded_size(&tail);
	if (after + *blen > *mlen)
		return -KW_EPROTO;   /* the layout above no longer holds: a bug, not input */
	*body = a->enc + *mlen - after - *blen;
	return 0;
}

/* Sends a message frame_part() built (msg: a->enc, or a copy framed around a slot),
 * counting its bytes. */
static int send_part(struct kw_avg *a, unsigned to, const uint8_t *msg, uint32_t len, size_t blen,
		     size_t mlen)
{
	int err = a->tr.send(a->tr.t, to, msg, mlen);

	a->res.raw_bytes_sent += (uint64_t)len * 4;
	if (!err) {
		a->res.bytes_sent += mlen;
		a->part_bytes_sent += blen;
	}
	return err;
}

/*
 * Encodes our part k straight into the message d and sends it. Whether the part is finite
 * is noted on the way (in the copy's pass for NONE; just before the encoder, which then
 * reads the part from cache, for the others): its delta is checked against it (on_delta).
 */
static int send_tensor(struct kw_avg *a, unsigned to, struct kw_avg_data *d, uint32_t k)
{
	const float *x = part_ptr(a, k);
	uint32_t len = a->parts[k].len;
	size_t blen, mlen, n;
	uint8_t *body;
	int err = frame_part(a, d, len, &body, &blen, &mlen);

	if (err)
		return err;
	a->sent_finite[k] = all_finite(x, len);
	err = kw_codec_encode(a->cfg.codec, a->cfg.compression, KW_CODEC_F32, x, len, len,
			      a->scratch, a->scratch_len, body, blen, &n);
	return err ? err : send_part(a, to, a->enc, len, blen, mlen);
}

/*
 * Sends sender s its delta for our part k, `average - its part`, in the codec the part came
 * in: computed a run at a time from the kept part and encoded straight into the message.
 */
static int send_delta(struct kw_avg *a, unsigned s, uint32_t k, uint32_t len)
{
	const uint8_t *sl = slot(a, s, k);
	struct kw_avg_data d;
	size_t blen, mlen, hl;
	uint8_t *body;
	int err;

	memset(&d, 0, sizeof(d));
	d.code = KW_AVG_AVERAGED_PART;
	if ((err = frame_part(a, &d, len, &body, &blen, &mlen)) ||
	    (err = kw_codec_encode_header(a->cfg.codec, a->cfg.compression, KW_CODEC_F32, len, len,
					  body, blen, &hl)))
		return err;
	for (size_t off = 0; off < len; off += a->run) {
		size_t c = KW_MIN(a->run, len - off);

		if (kw_codec_decode_range(a->cfg.codec, a->cfg.compression, KW_CODEC_F32, sl,
					  enc_len(a, len), len, len, off, c, a->tmp))
			return -KW_EPROTO;   /* checked on arrival: a bug */
		delta_of(a->tmp, a->avg + off, c);
		err = kw_codec_encode_range(a->cfg.codec, a->cfg.compression, KW_CODEC_F32, a->tmp,
					    len, len, off, c, a->scratch, a->scratch_len, body, blen);
		if (err)
			return err;
	}
	return send_part(a, s, a->enc, len, blen, mlen);
}

/* Sends sender s the delta reduce_fused() left encoded in its slot for our part k: the
 * message's header and tail are built in a->enc and copied around the slot's body, which
 * is sent where it is (into a->enc instead if they ever outgrow SLOT_ROOM). */
static int send_kept(struct kw_avg *a, unsigned s, uint32_t k, uint32_t len)
{
	struct kw_avg_data d;
	size_t blen, mlen, pre, post;
	uint8_t *body, *sb = slot(a, s, k);
	int err;

	memset(&d, 0, sizeof(d));
	d.code = KW_AVG_AVERAGED_PART;
	if ((err = frame_part(a, &d, len, &body, &blen, &mlen)))
		return err;
	pre = (size_t)(body - a->enc);
	post = mlen - pre - blen;
	if (pre > SLOT_ROOM || post > SLOT_ROOM) {
		memcpy(body, sb, blen);
		return send_part(a, s, a->enc, len, blen, mlen);
	}
	memcpy(sb - pre, a->enc, pre);
	memcpy(sb + blen, body + blen, post);
	return send_part(a, s, sb - pre, len, blen, mlen);
}

static void finish_if_done(struct kw_avg *a);
static void try_reduce(struct kw_avg *a);

static void exclude(struct kw_avg *a, unsigned i, const char *why, int detail)
{
	struct peer *p = &a->peers[i];

	if (p->excluded || i == a->g.self)
		return;
	p->excluded = true;
	if (detail)
		snprintf(a->reason[i], KW_AVG_REASON_MAX, "%s (%s)", why, kw_strerror(detail));
	else
		snprintf(a->reason[i], KW_AVG_REASON_MAX, "%s", why);
	KW_LOG_WRN(avg, "excluding peer %u of %u from the round: %s", i, a->g.n, a->reason[i]);
	a->stats.peers_excluded++;
	a->res.n_excluded++;
	a->res.excluded_mask |= 1ull << i;
	/* as a sender to us: its parts received so far still count (TensorPartReducer) */
	p->failed_after = p->rx;
	/* as our reducer: the parts it owes us keep our own values */
	if (is_sender(a, a->g.self) && nparts_of(a, i) > p->replies) {
		for (uint32_t k = a->first[i] + p->replies; k < a->first[i + 1]; k++)
			a->res.values_failed += a->parts[k].len;
	}
}

/*
 * Sends parts of peer j's run while fewer than `window` are unanswered. A CLIENT (we reduce
 * nothing) sends everything at once: Hivemind reducers hold their answers to a client until
 * its stream ends (allreduce.py should_delay_results), so a window would stall the round.
 */
static void pump(struct kw_avg *a, unsigned j)
{
	struct peer *p = &a->peers[j];
	uint32_t window = a->mine ? a->cfg.window : UINT32_MAX;

	while (!p->excluded && p->tx < nparts_of(a, j) && p->tx - p->replies < window) {
		uint32_t k = a->first[j] + p->tx;
		struct kw_avg_data d;
		int err;

		memset(&d, 0, sizeof(d));
		if (p->tx == 0) {   /* the first message opens the stream (_generate_input_for_peer) */
			d.code = KW_AVG_PART_FOR_AVERAGING;
			memcpy(d.group_id, a->g.group_id, a->g.group_id_len);
			d.group_id_len = a->g.group_id_len;
		}
		d.weight = a->weight;
		if (p->tx == 0)
			p->last_reply_ms = kw_loop_now(a->loop);
		err = send_tensor(a, j, &d, k);
		if (err) {
			exclude(a, j, "send failed", err);
			return;
		}
		p->tx++;
		if (p->tx == nparts_of(a, j) && a->tr.end)
			a->tr.end(a->tr.t, j, false);
	}
}

/* A part for us to reduce, from sender `from`. */
static int on_part(struct kw_avg *a, unsigned from, const struct kw_avg_data *d)
{
	struct peer *p = &a->peers[from];
	uint32_t k = p->rx, len;
	size_t numel;
	uint8_t *dst;
	int err;

	if (!is_sender(a, from)) {
		exclude(a, from, "auxiliary peer sent a part", 0);
		return -KW_EPROTO;
	}
	if (k == 0 && (d->code != KW_AVG_PART_FOR_AVERAGING || d->group_id_len != a->g.group_id_len ||
		       memcmp(d->group_id, a->g.group_id, d->group_id_len))) {
		send_code(a, from, KW_AVG_BAD_GROUP_ID);
		exclude(a, from, d->code != KW_AVG_PART_FOR_AVERAGING ?
			"first message is not PART_FOR_AVERAGING" : "wrong group id", 0);
		return -KW_EPROTO;
	}
	if (k >= a->mine) {
		send_code(a, from, KW_AVG_PROTOCOL_VIOLATION);
		exclude(a, from, "more parts than we reduce", 0);
		return -KW_EPROTO;
	}
	if (k >= a->cur + a->cfg.window) {
		a->stats.eagain++;
		return -KW_EAGAIN;
	}
	len = a->parts[a->first[a->g.self] + k].len;
	if (!d->has_part || d->part.compression != (int32_t)a->cfg.compression ||
	    strcmp(d->part.dtype, "float32") || kw_tensor_msg_numel(&d->part, &numel) ||
	    numel != len || !isfinite(d->weight) || d->weight < 0) {
		const char *why = !d->has_part ? "part without a tensor" :
			d->part.compression != (int32_t)a->cfg.compression ? "part with the wrong codec" :
			strcmp(d->part.dtype, "float32") ? "part dtype is not float32" :
			(!isfinite(d->weight) || d->weight < 0) ? "bad weight" : "part of the wrong size";
		send_code(a, from, KW_AVG_INTERNAL_ERROR);
		a->stats.parts_rejected++;
		exclude(a, from, why, 0);
		return -KW_EBADMSG;
	}
	/* kept as it came (decoded run by run into the sum at reduction), tested for NaN/Inf
	 * now: in the copy's pass for NONE, from the layout for FLOAT16 / BLOCKWISE_8BIT */
	dst = slot(a, from, k);
	err = part_len_ok(a, d->part.buf_len, len);
	if (!err && a->raw) {
		memcpy(dst, d->part.buf, d->part.buf_len);
		err = all_finite((const float *)(const void *)dst, len) ? 0 : -KW_ERANGE;
	} else if (!err) {
		memcpy(dst, d->part.buf, d->part.buf_len);
		err = kw_codec_finite(a->cfg.codec, a->cfg.compression, KW_CODEC_F32, dst,
				      d->part.buf_len, len, NULL);
		if (err == -KW_ENOTSUP) {
			err = kw_codec_decode(a->cfg.codec, a->cfg.compression, KW_CODEC_F32, dst,
					      d->part.buf_len, len, len, a->tmp);
			if (!err && !all_finite(a->tmp, len))
				err = -KW_ERANGE;
		}
	}
	if (err) {
		send_code(a, from, KW_AVG_INTERNAL_ERROR);
		a->stats.parts_rejected++;
		exclude(a, from, err == -KW_ERANGE ? "part holds NaN or Inf" : "part does not decode", err);
		return err;
	}
	a->slot_w[(size_t)from * a->cfg.window + k % a->cfg.window] = d->weight;
	p->rx++;
	p->last_rx_ms = kw_loop_now(a->loop);
	try_reduce(a);
	finish_if_done(a);
	return 0;
}

/* An averaged delta from reducer `from`. */
static int on_delta(struct kw_avg *a, unsigned from, const struct kw_avg_data *d)
{
	struct peer *p = &a->peers[from];
	uint32_t k, len;
	size_t numel;
	float *x;
	int err;

	if (!is_sender(a, a->g.self) || p->replies >= p->tx) {
		exclude(a, from, "averaged part we did not ask for", 0);
		return -KW_EPROTO;
	}
	k = a->first[from] + p->replies;
	len = a->parts[k].len;
	if (!d->has_part || d->part.compression != (int32_t)a->cfg.compression ||
	    strcmp(d->part.dtype, "float32") || kw_tensor_msg_numel(&d->part, &numel) || numel != len) {
		a->stats.parts_rejected++;
		exclude(a, from, !d->has_part ? "averaged part without a tensor" :
			d->part.compression != (int32_t)a->cfg.compression ?
			"averaged part with the wrong codec" : "averaged part of the wrong size", 0);
		return -KW_EBADMSG;
	}
	x = part_ptr(a, k);
	/* Every value is checked before it changes, so a rejected delta leaves the part as it
	 * was. With |d| < 2^103, x + d overflows only where x is NaN or Inf: the exact sum stays
	 * below 2^128 - 2^103, where rounding would reach Inf. send_tensor() noted whether x was
	 * finite. */
	err = part_len_ok(a, d->part.buf_len, len);
	/* NONE: the message's float32 values, read in place: the delta alone when x was finite
	 * and the delta is small, else the delta and x; then added from the message. */
	if (!err && a->raw && !(a->sent_finite[k] && small_bytes(d->part.buf, len))) {
		err = delta_check_bytes(x, d->part.buf, len);
		if (err == 1) {
			a->stats.parts_rejected++;
			exclude(a, from, "averaged part overflows our values", 0);
			return -KW_ERANGE;
		}
	}
	/* Other codecs: a delta the layout shows finite and under 2^103 (kw_codec_finite's
	 * bound) needs no look at its values; decoded and added in one pass. */
	if (!err && !a->raw) {
		float bound = INFINITY;

		err = kw_codec_finite(a->cfg.codec, a->cfg.compression, KW_CODEC_F32, d->part.buf,
				      d->part.buf_len, len, &bound);
		if (!err && bound < 0x1p103f) {
			if (!a->sent_finite[k]) {
				a->stats.parts_rejected++;
				exclude(a, from, "averaged part overflows our values", 0);
				return -KW_ERANGE;
			}
			for (size_t off = 0; off < len; off += a->run) {
				size_t c = KW_MIN(a->run, len - off);

				(void)kw_codec_decode_range(a->cfg.codec, a->cfg.compression,
							    KW_CODEC_F32, d->part.buf, d->part.buf_len,
							    len, len, off, c, a->tmp);  /* checked */
				add_to(x + off, a->tmp, c);   /* tensor.add_(update) */
			}
			goto added;
		}
		if (err == -KW_ENOTSUP || !err)
			err = 0;   /* the layout cannot tell: look at the decoded values */
	}
	/* Otherwise one pass, a decoded run at a time. Each run is checked before it is added;
	 * the values it replaces are saved in a->avg (free outside try_reduce), so a delta
	 * rejected in a later run restores the part as it was. */
	for (size_t off = 0; !err && !a->raw && off < len; off += a->run) {
		size_t c = KW_MIN(a->run, len - off);
		bool overflow = false;

		err = kw_codec_decode_range(a->cfg.codec, a->cfg.compression, KW_CODEC_F32,
					    d->part.buf, d->part.buf_len, len, len, off, c, a->tmp);
		if (!err && !all_finite(a->tmp, c))
			err = -KW_ERANGE;
		if (!err && !sum_finite(x + off, a->tmp, c))
			overflow = true;
		if (err || overflow) {
			memcpy(x, a->avg, off * sizeof(float));
			if (overflow) {
				a->stats.parts_rejected++;
				exclude(a, from, "averaged part overflows our values", 0);
				return -KW_ERANGE;
			}
			break;
		}
		if (c < len)
			memcpy(a->avg + off, x + off, c * sizeof(float));
		add_to(x + off, a->tmp, c);   /* tensor.add_(update), averaging_alpha = 1 */
	}
	if (err) {
		a->stats.parts_rejected++;
		exclude(a, from, err == -KW_ERANGE ? "averaged part holds NaN or Inf" :
			"averaged part does not decode", err);
		return err;
	}
	if (a->raw)
		add_bytes(x, d->part.buf, len);   /* tensor.add_(update), averaging_alpha = 1 */
added:
	p->replies++;
	p->last_reply_ms = kw_loop_now(a->loop);
	pump(a, from);
	finish_if_done(a);
	return 0;
}

int kw_avg_on_message(struct kw_avg *a, unsigned from, const uint8_t *msg, size_t len)
{
	struct kw_avg_data d;
	int err;

	if (!a || !a->running || from >= a->g.n || from == a->g.self || a->peers[from].excluded)
		return -KW_ENOENT;
	err = kw_avg_data_decode(&d, msg, len);
	if (err) {
		a->stats.parts_rejected++;
		send_code(a, from, KW_AVG_INTERNAL_ERROR);   /* hivemind: the stream fails */
		exclude(a, from, "malformed AveragingData", err);
		finish_if_done(a);
		return -KW_EBADMSG;
	}
	a->res.bytes_received += len;
	if (d.code == KW_AVG_AVERAGED_PART)
		err = on_delta(a, from, &d);
	else if (d.code == KW_AVG_PART_FOR_AVERAGING || (d.code == KW_AVG_NO_CODE && a->peers[from].rx))
		err = on_part(a, from, &d);
	else if (d.code == KW_AVG_NO_CODE)
		err = on_part(a, from, &d);   /* rejected there: a stream must open with code 4 */
	else {
		char why[KW_AVG_REASON_MAX];

		snprintf(why, sizeof(why), "peer sent %s", kw_avg_code_name(d.code));
		exclude(a, from, why, 0);
		err = -KW_EPROTO;
	}
	if (err && err != -KW_EAGAIN)
		try_reduce(a);
	finish_if_done(a);
	return err;
}

void kw_avg_on_peer_error(struct kw_avg *a, unsigned peer, int err)
{
	if (!a || !a->running || peer >= a->g.n)
		return;
	exclude(a, peer, "transport lost the peer", err);
	try_reduce(a);
	finish_if_done(a);
}

/* ---- reduction ------------------------------------------------------------------------ */

/* Averages our parts, in order, while every sender still counted has delivered the part. */
static void try_reduce(struct kw_avg *a)
{
	unsigned self = a->g.self;

	while (a->running && a->cur < a->mine) {
		uint32_t k = a->cur, gk = a->first[self] + k, len = a->parts[gk].len;
		float *mine = part_ptr(a, gk);
		double denom = 0.0;
		unsigned contributors = 0, nx;
		bool reply[KW_AVG_GROUP_MAX], fused;
		uint8_t *xs[KW_AVG_GROUP_MAX];   /* NULL: our own part */
		float ws[KW_AVG_GROUP_MAX];

		for (unsigned s = 0; s < a->g.n; s++) {
			const struct peer *p = &a->peers[s];

			if (s == self || !is_sender(a, s))
				continue;
			if (p->failed_after == NOT_FAILED && p->rx <= k)
				return;   /* still waiting for s */
		}
		/* weighted mean with weights normalised in double first (hivemind: float32
		 * accumulator.add_(part, alpha=w) then div_(sum of w)): the same mean up to
		 * rounding, and no overflow however large the weights a sender announces */
		for (unsigned s = 0; s < a->g.n; s++) {
			const struct peer *p = &a->peers[s];

			if (!is_sender(a, s))
				continue;
			if (s == self) {
				denom += a->weight;
			} else if (k < (p->failed_after == NOT_FAILED ? p->rx : p->failed_after)) {
				denom += a->slot_w[(size_t)s * a->cfg.window + k % a->cfg.window];
				contributors++;
			}
		}
		contributors += is_sender(a, self);
		nx = 0;
		for (unsigned s = 0; s < a->g.n && denom > 0; s++) {
			const struct peer *p = &a->peers[s];

			if (!is_sender(a, s))
				continue;
			if (s == self) {
				xs[nx] = NULL;
				reply[nx] = false;
				ws[nx++] = (float)(a->weight / denom);
			} else if (k < (p->failed_after == NOT_FAILED ? p->rx : p->failed_after)) {
				xs[nx] = slot(a, s, k);
				reply[nx] = !p->excluded;
				ws[nx++] = (float)(a->slot_w[(size_t)s * a->cfg.window + k % a->cfg.window] / denom);
			}
		}
		fused = a->raw || (a->fuse && nx * KW_MIN(a->run, (size_t)len) <= a->part_values);
		if (nx && !(fused ? reduce_fused(a, mine, xs, reply, ws, nx, len) :
			    weighted_sum(a, mine, xs, ws, nx, len))) {
			/* only values near FLT_MAX get here: keep ours, answer nobody */
			KW_LOG_WRN(avg, "part %u: the mean overflows float32; left unaveraged", k);
			denom = 0;
		}
		/* every weight 0 (hivemind divides 0 by 0) or overflow: the part stays as it is */
		if (contributors && denom > 0) {
			for (unsigned s = 0; s < a->g.n; s++) {
				struct peer *p = &a->peers[s];

				if (s == self || !is_sender(a, s) || p->excluded)
					continue;
				/* serialize(averaged - part) */
				if (fused ? send_kept(a, s, k, len) : send_delta(a, s, k, len)) {
					exclude(a, s, "send failed", -KW_EPIPE);
					continue;
				}
				if (k + 1 == a->mine && a->tr.end)
					a->tr.end(a->tr.t, s, true);
			}
			if (is_sender(a, self))
				memcpy(mine, a->avg, len * sizeof(float));
		}
		a->stats.parts_reduced++;
		a->cur++;
	}
}

/* ---- round -------------------------------------------------------------------------------- */

static void complete(struct kw_avg *a, int err)
{
	kw_avg_done_fn done = a->done;
	uint64_t part_bytes = a->part_bytes_sent;

	a->running = false;
	kw_timer_cancel(a->loop, &a->timer);
	a->res.err = err;
	a->res.peers_used = a->g.n - a->res.n_excluded;
	a->res.reason = (const char (*)[KW_AVG_REASON_MAX])a->reason;
	a->res.compression_ratio = part_bytes ? (double)a->res.raw_bytes_sent / (double)part_bytes : 0.0;
	a->res.time_ms = kw_loop_now(a->loop) - a->start_ms;
	a->stats.rounds++;
	a->done = NULL;
	if (done)
		done(a, &a->res, a->user);
}

static void finish_if_done(struct kw_avg *a)
{
	unsigned self = a->g.self;

	try_reduce(a);   /* an exclusion may have unblocked a part */
	if (!a->running || a->cur < a->mine)
		return;
	if (is_sender(a, self))
		for (unsigned j = 0; j < a->g.n; j++)
			if (j != self && !a->peers[j].excluded && a->peers[j].replies < nparts_of(a, j))
				return;
	complete(a, 0);
}

static void on_timer(struct kw_loop *l, struct kw_timer *t)
{
	struct kw_avg *a = t->arg;
	uint64_t now = kw_loop_now(l), st = a->cfg.sender_timeout_ms;
	unsigned self = a->g.self;
	bool deadline = now >= a->deadline_ms;
	bool grace_over = now >= a->deadline_ms + DEADLINE_GRACE_MS;

	if (!a->running)
		return;
	for (unsigned i = 0; i < a->g.n; i++) {
		struct peer *p = &a->peers[i];
		bool owes_part = i != self && is_sender(a, i) && p->failed_after == NOT_FAILED &&
				 p->rx <= a->cur && a->cur < a->mine;
		bool owes_reply = i != self && is_sender(a, self) && p->replies < nparts_of(a, i);

		if (p->excluded)
			continue;
		if ((deadline && owes_part) || (grace_over && owes_reply)) {
			exclude(a, i, "round deadline passed", -KW_ETIMEDOUT);
		} else if (owes_part && now - p->last_rx_ms >= st) {
			exclude(a, i, "no part within sender_timeout", -KW_ETIMEDOUT);
		} else if (owes_reply && p->replies < p->tx && now - p->last_reply_ms >= 2 * st) {
			exclude(a, i, "no averaged part within reducer_timeout", -KW_ETIMEDOUT);
		}
	}
	/* at the deadline every sender that owed us was excluded above: what is left reduces */
	finish_if_done(a);
	if (a->running)
		kw_timer_start(a->loop, &a->timer, TICK_MS);
}

int kw_avg_step(struct kw_avg *a, const struct kw_avg_group *g, kw_avg_done_fn done, void *user)
{
	double bw[KW_AVG_GROUP_MAX];
	unsigned reducers = 0;
	size_t pv;
	int err;

	if (!a || !g || !done)
		return -KW_EINVAL;
	if (a->running)
		return -KW_EBUSY;
	if (!g->n || g->n > a->cfg.max_peers || g->self >= g->n || g->group_id_len > KW_AVG_GROUP_ID_MAX)
		return -KW_EINVAL;
	for (unsigned i = 0; i < g->n; i++) {
		if (g->mode[i] > KW_AVG_AUX)
			return -KW_EINVAL;
		/* averager.py: download bandwidth 0 for CLIENT peers */
		bw[i] = g->mode[i] == KW_AVG_CLIENT ? 0.0 : g->bandwidth[i];
		reducers += g->mode[i] != KW_AVG_CLIENT;
	}
	if (!reducers || !a->total)
		return -KW_EINVAL;
	a->g = *g;
	if ((err = kw_avg_load_balance(a->total, bw, g->n, a->alloc)))
		return err;
	pv = a->part_values;
	err = kw_avg_partition(a->cfg.numel, a->cfg.n_tensors, a->alloc, g->n, pv, a->parts,
			       a->cfg.max_parts, a->first, &a->n_parts);
	if (err)
		return err;
	memset(a->peers, 0, g->n * sizeof(*a->peers));
	memset(a->reason, 0, g->n * KW_AVG_REASON_MAX);
	memset(&a->res, 0, sizeof(a->res));
	a->part_bytes_sent = 0;
	a->start_ms = kw_loop_now(a->loop);
	a->deadline_ms = a->start_ms + a->cfg.round_timeout_ms;
	for (unsigned i = 0; i < g->n; i++) {
		a->peers[i].failed_after = NOT_FAILED;
		a->peers[i].last_rx_ms = a->peers[i].last_reply_ms = a->start_ms;
	}
	a->cur = 0;
	a->mine = nparts_of(a, g->self);
	/* the local contribution: accumulated sum / total weight, with that weight */
	if (g->mode[g->self] == KW_AVG_AUX) {
		a->weight = 0.0;
	} else if (a->acc_open) {
		a->weight = a->acc_weight;
		if (a->acc_weight > 0)
			for (size_t t = 0; t < a->cfg.n_tensors; t++)
				for (uint64_t i = 0; i < a->cfg.numel[t]; i++)
					a->cfg.tensors[t][i] = (float)(a->cfg.tensors[t][i] / a->acc_weight);
	} else {
		a->weight = 1.0;
	}
	a->acc_open = false;
	a->done = done;
	a->user = user;
	a->running = true;
	if ((err = kw_timer_start(a->loop, &a->timer, TICK_MS))) {
		a->running = false;
		return err;
	}
	KW_LOG_DBG(avg, "round: %u peers, we are %u (%s), %zu parts, %u ours", g->n, g->self,
		   g->mode[g->self] == KW_AVG_NODE ? "node" :
		   g->mode[g->self] == KW_AVG_CLIENT ? "client" : "aux", a->n_parts, a->mine);
	if (is_sender(a, g->self))
		for (unsigned j = 0; j < g->n && a->running; j++)
			if (j != g->self)
				pump(a, j);
	try_reduce(a);
	/* a round with nothing to exchange (a group of one) completes on the next tick, never
	 * inside this call */
	return 0;
}

void kw_avg_destroy(struct kw_avg *a)
{
	if (!a)
		return;
	if (a->running)
		complete(a, -KW_ECANCELED);
	kw_timer_cancel(a->loop, &a->timer);
}

void kw_avg_get_stats(const struct kw_avg *a, struct kw_avg_stats *st)
{
	*st = a->stats;
}
