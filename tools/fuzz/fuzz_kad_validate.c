/*
 * libFuzzer target: the DHT record validators (net/kad/validate.c) and the record store
 * (net/kad/store.c), which take whatever a remote peer sends in PUT_VALUE and GET_VALUE
 * answers. Input byte 0 picks the mode:
 *   even: byte 1 is the key length, then the key, then the value (both from the input);
 *         the validator must return a documented code with a printable reason, a value it
 *         accepts must open (/kwaai/), select and store, and the store must give it back.
 *   odd:  the rest is a /kwaai/ value sealed here with a fixed Ed25519 key; it must validate,
 *         and with any one bit flipped (position from bytes 1..2) it must not.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <kw/arena.h>
#include <kw/err.h>
#include <kw/net/kad_store.h>
#include <kw/net/key.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1764633600000ull

static struct kw_privkey key;
static struct kw_peer_id from;
static uint8_t arena_mem[1 << 20];
static struct kw_arena arena;
static struct kw_kad_store *st;
static uint8_t env[20000];
static char err[256];

static void init(void)
{
	/* A fixed key (the Ed25519 PrivateKey of tests/unit/net/peer/vectors.h), so crashes
	 * reproduce. */
	static const uint8_t pb[] = {
		0x08, 0x01, 0x12, 0x40, 0x7e, 0x08, 0x30, 0x61, 0x7c, 0x4a, 0x7d, 0xe8,
		0x39, 0x25, 0xdf, 0xb2, 0x69, 0x45, 0x56, 0xb1, 0x29, 0x36, 0xc4, 0x77,
		0xa0, 0xe1, 0xfe, 0xb2, 0xe1, 0x48, 0xec, 0x9d, 0xa6, 0x0f, 0xee, 0x7d,
		0x1e, 0xd1, 0xe8, 0xfa, 0xe2, 0xc4, 0xa1, 0x44, 0xb8, 0xbe, 0x8f, 0xd4,
		0xb4, 0x7b, 0xf3, 0xd3, 0xb3, 0x4b, 0x87, 0x1c, 0x3c, 0xac, 0xf6, 0x01,
		0x0f, 0x0e, 0x42, 0xd4, 0x74, 0xfc, 0xe2, 0x7e,
	};
	struct kw_kad_store_cfg cfg;

	if (kw_privkey_decode(pb, sizeof(pb), &key) < 0 ||
	    kw_peer_id_from_pubkey(&key.pub, &from) < 0)
		__builtin_trap();
	memset(&cfg, 0, sizeof(cfg));
	cfg.max_records = 64;
	cfg.max_total_bytes = 65536;
	cfg.max_record_bytes = 16896;
	cfg.max_records_per_peer = 64;
	kw_arena_init(&arena, arena_mem, sizeof(arena_mem));
	if (kw_kad_store_init(&arena, &cfg, &st) < 0)
		__builtin_trap();
}

static void check_reason(void)
{
	size_t i, n = strnlen(err, sizeof(err));

	if (n == 0 || n == sizeof(err))
		__builtin_trap();
	for (i = 0; i < n; i++)
		if ((unsigned char)err[i] < 0x20 || (unsigned char)err[i] > 0x7e)
			__builtin_trap();
}

static void raw(const uint8_t *data, size_t size)
{
	const uint8_t *k, *v, *got, *inner;
	size_t klen, vlen, glen, ilen;
	int r;

	if (size < 2)
		return;
	klen = data[1];
	if (klen > size - 2)
		klen = size - 2;
	k = data + 2;
	v = k + klen;
	vlen = size - 2 - klen;
	err[0] = '\0';
	r = kw_kad_validate(k, klen, v, vlen, NOW, err, sizeof(err));
	if (r < 0) {
		if (r != -KW_ENOPROTO && r != -KW_EBADMSG && r != -KW_ESIG && r != -KW_ETIMEDOUT &&
		    r != -KW_ELIMIT)
			__builtin_trap();
		check_reason();
		return;
	}
	if (klen >= 7 && !memcmp(k, "/kwaai/", 7) &&
	    kw_kad_kwaai_open(v, vlen, &inner, &ilen, NULL) != 0)
		__builtin_trap();
	if (kw_kad_select(k, klen, (const uint8_t *const[]){ v, v }, (const size_t[]){ vlen, vlen },
			  2) != 0)
		__builtin_trap();
	r = kw_kad_store_put(st, k, klen, v, vlen, &from, 0, NOW, err, sizeof(err));
	if (r == 0) {
		if (kw_kad_store_get(st, k, klen, 0, &got, &glen) != 0 || glen != vlen ||
		    memcmp(got, v, vlen))
			__builtin_trap();
	} else if (r != -KW_EALREADY && r != -KW_ELIMIT && r != -KW_ENOBUFS && r != -KW_EBADMSG) {
		__builtin_trap();
	}
	/* Keep the store from filling up across runs. */
	kw_kad_store_expire(st, UINT64_MAX);
}

static void sealed(const uint8_t *data, size_t size)
{
	static const uint8_t k[] = "/kwaai/fuzz";
	size_t pos;
	long n;

	if (size < 3)
		return;
	n = kw_kad_kwaai_seal(&key, k, sizeof(k) - 1, data + 3, size - 3, data[1], NOW + 1, env,
			      sizeof(env));
	if (n <= 0)
		__builtin_trap();
	if (kw_kad_validate(k, sizeof(k) - 1, env, (size_t)n, NOW, err, sizeof(err)) != 0)
		__builtin_trap();
	pos = ((size_t)data[1] << 8 | data[2]) % ((size_t)n * 8);
	env[pos / 8] ^= (uint8_t)(1u << (pos % 8));
	err[0] = '\0';
	if (kw_kad_validate(k, sizeof(k) - 1, env, (size_t)n, NOW, err, sizeof(err)) == 0)
		__builtin_trap();
	check_reason();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;

	if (!ready) {
		init();
		ready = true;
	}
	if (size == 0)
		return 0;
	if (data[0] & 1)
		sealed(data, size);
	else
		raw(data, size);
	return 0;
}
