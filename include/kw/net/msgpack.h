/*
 * MessagePack as Hivemind speaks it (msgpack/spec spec.md; the conventions of hivemind's
 * MSGPackSerializer, learning-at-home/hivemind `hivemind/utils/serializer.py` @ 4bd43b7):
 * a writer into a caller buffer and a bounded pull reader over a caller buffer. Neither
 * allocates; the reader hands out pointers into its input (zero copy), valid as long as the
 * caller keeps that input.
 *
 * Writer. Every put picks the smallest encoding, as msgpack-python's packer does
 * (use_bin_type=True): positive fixint / uint8..64 for n >= 0, negative fixint / int8..64
 * below; fixstr / str8 / str16 / str32; bin8..32; fixarray / array16 / array32 and the map
 * equivalents; fixext1..16, else ext8..32. Floats are always float64 (Python floats are
 * doubles; msgpack-python never writes float32 unless asked). Strings must be valid UTF-8:
 * Python decodes str with raw=False and raises on anything else. Errors are sticky: after
 * the first failure every put returns it and writes nothing, so a caller may chain puts and
 * check kw_mp_writer_finish() once.
 *
 * Hivemind's ext types (section "Registered ext types" of doc/net-hivemind.md): 0x40 a
 * Python tuple (payload = msgpack of the tuple as a list), 0x50 DictionaryDHTValue, 0x51
 * BatchTensorDescriptor. Their payloads are msgpack themselves, so the writer builds them in
 * place: kw_mp_put_ext_begin() reserves the largest header, the payload is written with the
 * ordinary puts, kw_mp_put_ext_end() writes the smallest header and moves the payload down.
 *
 * Reader. kw_mp_read() returns one item at a time in document order: a scalar, a str/bin/ext
 * with its bytes, or the header of an array (count = elements) or map (count = pairs, then
 * key, value, key, value ... follow). The reader tracks the open containers itself, so a
 * caller never counts; kw_mp_skip() jumps over a whole value. With KW_MP_ENTER_EXT it also
 * descends into Hivemind's ext types (0x40, 0x50, 0x51): the ext item is returned, then the
 * single msgpack value its payload holds, as a container of one; a payload that is not
 * exactly one value is malformed (msgpack-python's unpackb raises ExtraData). Other ext
 * types are returned opaque, as hivemind leaves them (raw bytes).
 *
 * Bounds (Kconfig, Networking -> MessagePack): containers nested deeper than
 * KW_NET_MSGPACK_MAX_DEPTH (entered ext payloads count as a level), str/bin/ext longer than
 * KW_NET_MSGPACK_MAX_BYTES and arrays/maps with more than KW_NET_MSGPACK_MAX_COUNT entries
 * are refused with -KW_ELIMIT before anything else is read; a declared length or count the
 * remaining input cannot hold is -KW_EBADMSG at once (no waiting on a count of 2^32).
 * After any error the reader stays failed and r->why names what was wrong, r->err_pos where.
 *
 * Owner: net/msgpack. Pure functions over caller-owned structs; no state, no locks.
 */
#ifndef KW_NET_MSGPACK_H
#define KW_NET_MSGPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Hivemind's registered ext type codes (hivemind/utils/serializer.py, hivemind/dht/storage.py,
 * hivemind/utils/tensor_descr.py). */
#define KW_MP_EXT_TUPLE   0x40
#define KW_MP_EXT_DHTDICT 0x50
#define KW_MP_EXT_BTD     0x51

#define KW_MP_MAX_DEPTH CONFIG_KW_NET_MSGPACK_MAX_DEPTH

/*
 * Length of the well-formed UTF-8 sequence at p[0..n) (1..4 bytes), 0 when p does not start
 * one. Well-formed is RFC 3629 as Python's codec reads it: no overlong forms, no surrogates
 * (U+D800..DFFF), nothing above U+10FFFF. kw_mp_utf8_valid() checks a whole string.
 */
size_t kw_mp_utf8_seq(const uint8_t *p, size_t n);
bool kw_mp_utf8_valid(const uint8_t *p, size_t n);

/* ---- writer ------------------------------------------------------------------------- */

struct kw_mp_writer {
	uint8_t *buf;
	size_t cap;
	size_t len;    /* bytes written so far */
	int err;       /* 0, or the first error (sticky) */
	unsigned open_ext;  /* kw_mp_put_ext_begin() calls not yet ended */
};

/* Starts writing into buf[0..cap) (buf may be NULL when cap is 0: every put then fails with
 * -KW_ENOSPC, which measures nothing; size buffers from the bounds instead). */
void kw_mp_writer_init(struct kw_mp_writer *w, uint8_t *buf, size_t cap);

/*
 * Each put appends one item. Return: 0; -KW_ENOSPC when the buffer is full; -KW_EINVAL for a
 * str that is not valid UTF-8 or a NULL pointer with a nonzero length; -KW_EMSGSIZE for a
 * length or count beyond 2^32 - 1 (msgpack's own limit); or the earlier sticky error.
 * kw_mp_put_array/map write only the header: the caller then puts exactly n elements (2n for
 * a map: key, value, ...). The writer does not check the count it was promised.
 */
int kw_mp_put_nil(struct kw_mp_writer *w);
int kw_mp_put_bool(struct kw_mp_writer *w, bool v);
int kw_mp_put_uint(struct kw_mp_writer *w, uint64_t v);
int kw_mp_put_int(struct kw_mp_writer *w, int64_t v);      /* v >= 0 is written as uint */
int kw_mp_put_float64(struct kw_mp_writer *w, double v);   /* NaN and +-inf bit patterns kept */
int kw_mp_put_str(struct kw_mp_writer *w, const char *s, size_t len);
int kw_mp_put_cstr(struct kw_mp_writer *w, const char *s); /* NUL-terminated */
int kw_mp_put_bin(struct kw_mp_writer *w, const uint8_t *b, size_t len);
int kw_mp_put_array(struct kw_mp_writer *w, uint32_t n);
int kw_mp_put_map(struct kw_mp_writer *w, uint32_t n);
/* A whole ext with a payload the caller already has. type is msgpack's signed type byte. */
int kw_mp_put_ext(struct kw_mp_writer *w, int8_t type, const uint8_t *data, size_t len);

/*
 * An ext whose payload is written next with the ordinary puts (a tuple: begin(0x40), array
 * header, elements, end). *mark receives where the ext starts; pass it to the matching end.
 * Begin/end pairs nest. kw_mp_put_ext_end() fixes the header to the smallest form and moves
 * the payload down by the bytes it did not need (at most 5). Return: as the puts;
 * -KW_EINVAL from end for a mark that is not an open ext.
 */
int kw_mp_put_ext_begin(struct kw_mp_writer *w, int8_t type, size_t *mark);
int kw_mp_put_ext_end(struct kw_mp_writer *w, size_t mark);

/*
 * Return: the bytes written (> 0); the sticky error; -KW_EINVAL when an ext begun is still
 * open (its header is a placeholder).
 */
long kw_mp_writer_finish(const struct kw_mp_writer *w);

/* ---- reader ------------------------------------------------------------------------- */

enum kw_mp_type {
	KW_MP_NIL = 0,
	KW_MP_BOOL,
	KW_MP_UINT,    /* positive fixint, uint8..64: v.u */
	KW_MP_INT,     /* negative fixint, int8..64: v.i (a non-negative intN value is KW_MP_UINT) */
	KW_MP_FLOAT,   /* float64 or float32 (then is_f32): v.f */
	KW_MP_STR,     /* data/len: valid UTF-8, not NUL-terminated */
	KW_MP_BIN,     /* data/len */
	KW_MP_ARRAY,   /* len = element count; the elements are the next reads */
	KW_MP_MAP,     /* len = pair count; 2 * len reads follow, key first */
	KW_MP_EXT,     /* ext_type, data/len = payload; entered when KW_MP_ENTER_EXT applies */
};

/* Reader flags. */
#define KW_MP_ENTER_EXT       0x1u  /* descend into ext 0x40, 0x50, 0x51 payloads */
#define KW_MP_STRICT_MAP_KEYS 0x2u  /* map keys must be str or bin (msgpack-python >= 1.0's
				       strict_map_key=True, which hivemind peers run) */

struct kw_mp_item {
	uint8_t type;       /* enum kw_mp_type */
	int8_t ext_type;    /* KW_MP_EXT */
	bool is_f32;        /* KW_MP_FLOAT read from a float32 */
	bool entered;       /* KW_MP_EXT whose payload follows as the next value */
	uint16_t depth;     /* open containers around this item (0 = top level) */
	uint32_t len;       /* STR/BIN/EXT bytes; ARRAY elements; MAP pairs */
	const uint8_t *data;  /* STR/BIN/EXT: into the reader's input */
	union {
		bool b;
		uint64_t u;
		int64_t i;
		double f;
	} v;
};

struct kw_mp_frame {
	uint32_t left;      /* items still to read in this container */
	uint32_t end;       /* byte position this container must not read past */
	uint8_t is_map;
	uint8_t is_ext;     /* an entered ext: must end exactly at `end` */
};

struct kw_mp_reader {
	const uint8_t *buf;
	uint32_t len;
	uint32_t pos;
	unsigned flags;
	uint16_t depth;     /* open containers */
	int err;            /* 0, or the first error (sticky) */
	uint32_t err_pos;   /* byte offset of the item that failed */
	const char *why;    /* static text naming the problem, "" when none */
	struct kw_mp_frame st[KW_MP_MAX_DEPTH];
};

/*
 * Starts reading buf[0..len). flags: KW_MP_ENTER_EXT | KW_MP_STRICT_MAP_KEYS or 0.
 * Return: 0; -KW_EMSGSIZE when len does not fit 32 bits (no msgpack value is that large).
 */
int kw_mp_reader_init(struct kw_mp_reader *r, const uint8_t *buf, size_t len, unsigned flags);

/*
 * Reads the next item into *it. Return: 0; -KW_ENOENT when the input holds no further value
 * (only at the top level, after a complete value); -KW_EBADMSG for a malformed or truncated
 * encoding (reserved byte 0xc1, a length running past the input or past its ext payload,
 * invalid UTF-8 in a str, an ext payload that is not exactly one value, a non-str/bin map
 * key under KW_MP_STRICT_MAP_KEYS); -KW_ELIMIT past a Kconfig bound. r->why says which.
 */
int kw_mp_read(struct kw_mp_reader *r, struct kw_mp_item *it);

/*
 * Skips the rest of the value whose first item was just read into *it (nothing for a
 * scalar, every element of a container, the payload of an entered ext), iteratively.
 * Return: 0 or kw_mp_read's errors.
 */
int kw_mp_skip(struct kw_mp_reader *r, const struct kw_mp_item *it);

/* Reads and skips one whole value. Return: as kw_mp_read. */
int kw_mp_skip_value(struct kw_mp_reader *r);

/*
 * The input must be exactly one complete value, as msgpack-python's unpackb requires.
 * Return: 0 when the reader is back at the top level with every byte consumed;
 * -KW_EBADMSG (r->why: "trailing bytes" or "value incomplete") otherwise; a sticky error.
 */
int kw_mp_reader_done(struct kw_mp_reader *r);

/*
 * Checks buf[0..len) is exactly one valid value under flags (every str, length, nesting and
 * bound), without looking at it further. Return: 0 or kw_mp_read's errors. *why (may be
 * NULL) receives the reason.
 */
int kw_mp_validate(const uint8_t *buf, size_t len, unsigned flags, const char **why);

#endif /* KW_NET_MSGPACK_H */
