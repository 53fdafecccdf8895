/*
 * MessagePack writer and reader (net/msgpack): every format's exact bytes (hand-computed
 * from msgpack/spec spec.md and the msgpack-python packer rules hivemind relies on), the
 * Hivemind values of doc/net-hivemind.md (ServerInfo tuple, DictionaryDHTValue, Petals
 * args_structure, BatchTensorDescriptor, DHT key encodings) byte for byte, and hostile input:
 * truncation at every byte, depth bombs, huge declared lengths, bad UTF-8, bad ext payloads.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "unit/net/peer/hex.h"

#include <kw/err.h>
#include <kw/net/msgpack.h>

static uint8_t buf[1 << 17];
static uint8_t want[1 << 17];
static struct kw_mp_writer w;
static struct kw_mp_reader r;
static struct kw_mp_item it;

static void begin(void)
{
	kw_mp_writer_init(&w, buf, sizeof(buf));
}

/* The writer's bytes so far equal the hex. */
static void assert_wrote(const char *hex)
{
	int n = test_unhex(hex, want, sizeof(want));
	long got = kw_mp_writer_finish(&w);

	assert_true(n >= 0);
	assert_int_equal(got, n);
	assert_memory_equal(buf, want, (size_t)n);
}

/* Loads hex into want[] and starts a reader on it; returns the length. */
static size_t read_hex(const char *hex, unsigned flags)
{
	int n = test_unhex(hex, want, sizeof(want));

	assert_true(n >= 0);
	assert_int_equal(kw_mp_reader_init(&r, want, (size_t)n, flags), 0);
	return (size_t)n;
}

/* ---- writer: exact bytes ---------------------------------------------------------- */

static void test_mp_uint_takes_the_smallest_form(void **state)
{
	static const struct { uint64_t v; const char *hex; } cases[] = {
		{ 0, "00" }, { 127, "7f" }, { 128, "cc80" }, { 255, "ccff" }, { 256, "cd0100" },
		{ 65535, "cdffff" }, { 65536, "ce00010000" }, { 4294967295u, "ceffffffff" },
		{ 4294967296u, "cf0000000100000000" }, { UINT64_MAX, "cfffffffffffffffff" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		begin();
		assert_int_equal(kw_mp_put_uint(&w, cases[i].v), 0);
		assert_wrote(cases[i].hex);
		read_hex(cases[i].hex, 0);
		assert_int_equal(kw_mp_read(&r, &it), 0);
		assert_int_equal(it.type, KW_MP_UINT);
		assert_true(it.v.u == cases[i].v);
		assert_int_equal(kw_mp_reader_done(&r), 0);
	}
}

static void test_mp_negative_int_takes_the_smallest_signed_form(void **state)
{
	static const struct { int64_t v; const char *hex; } cases[] = {
		{ -1, "ff" }, { -32, "e0" }, { -33, "d0df" }, { -128, "d080" }, { -129, "d1ff7f" },
		{ -32768, "d18000" }, { -32769, "d2ffff7fff" }, { INT32_MIN, "d280000000" },
		{ (int64_t)INT32_MIN - 1, "d3ffffffff7fffffff" }, { INT64_MIN, "d38000000000000000" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		begin();
		assert_int_equal(kw_mp_put_int(&w, cases[i].v), 0);
		assert_wrote(cases[i].hex);
		read_hex(cases[i].hex, 0);
		assert_int_equal(kw_mp_read(&r, &it), 0);
		assert_int_equal(it.type, KW_MP_INT);
		assert_true(it.v.i == cases[i].v);
	}
	/* A non-negative int goes through the unsigned forms, as msgpack-python writes it. */
	begin();
	assert_int_equal(kw_mp_put_int(&w, 200), 0);
	assert_wrote("ccc8");
}

static void test_mp_signed_forms_holding_non_negative_values_read_as_uint(void **state)
{
	/* Other packers may write 5 as int8 (d0 05) or int64: same value, read as UINT. */
	read_hex("d005", 0);
	assert_int_equal(kw_mp_read(&r, &it), 0);
	assert_int_equal(it.type, KW_MP_UINT);
	assert_int_equal(it.v.u, 5);
	read_hex("d30000000000000100", 0);
	assert_int_equal(kw_mp_read(&r, &it), 0);
	assert_int_equal(it.type, KW_MP_UINT);
	assert_int_equal(it.v.u, 256);
}

static void test_mp_float64_bytes_including_inf_and_nan(void **state)
{
	begin();
	assert_int_equal(kw_mp_put_float64(&w, 1234.5), 0);
	assert_int_equal(kw_mp_put_float64(&w, INFINITY), 0);
	assert_int_equal(kw_mp_put_float64(&w, -INFINITY), 0);
	assert_int_equal(kw_mp_put_float64(&w, NAN), 0);     /* Python's float('nan') bits */
	assert_int_equal(kw_mp_put_float64(&w, 0.0125), 0);
	assert_wrote("cb40934a0000000000 cb7ff0000000000000 cbfff0000000000000 cb7ff8000000000000"
		     " cb3f8999999999999a");
	read_hex("cb40934a0000000000cb7ff0000000000000cb7ff8000000000000", 0);
	assert_int_equal(kw_mp_read(&r, &it), 0);
	assert_int_equal(it.type, KW_MP_FLOAT);
	assert_false(it.is_f32);
	assert_true(it.v.f == 1234.5);
	assert_int_equal(kw_mp_read(&r, &it), 0);
	assert_true(isinf(it.v.f) && it.v.f > 0);
	assert_int_equal(kw_mp_read(&r, &it), 0);
	assert_true(isnan(it.v.f));
}

static void test_mp_float32_is_read_as_double(void **state)
{
	read_hex("ca3f800000 ca7f800000 ca7fc00000 cabf000000", 0);
	assert_int_equal(kw_mp_read(&r, &it), 0);
	assert_int_equal(it.type, KW_MP_FLOAT);
	assert_true(it.is_f32);
	assert_true(it.v.f == 1.0);
	assert_int_equal(kw_mp_read(&r, &it), 0);
	assert_true(isinf(it.v.f));
	assert_int_equal(kw_mp_read(&r, &it), 0);
	assert_true(isnan(it.v.f));
	assert_int_equal(kw_mp_read(&r, &it), 0);
	assert_true(it.v.f == -0.5);
	assert_int_equal(kw_mp_read(&r, &it), -KW_ENOENT);
}

static void test_mp_nil_and_bool_bytes(void **state)
{
	begin();
	kw_mp_put_nil(&w);
	kw_mp_put_bool(&w, true);
	kw_mp_put_bool(&w, false);
	assert_wrote("c0c3c2");
	read_hex("c0c3c2", 0);
	assert_int_equal(kw_mp_read(&r, &it), 0);
	assert_int_equal(it.type, KW_MP_NIL);
	assert_int_equal(kw_mp_read(&r, &it), 0);
	assert_int_equal(it.type, KW_MP_BOOL);
	assert_true(it.v.b);
	assert_int_equal(kw_mp_read(&r, &it), 0);
	assert_false(it.v.b);
}

/* Writes a str or bin of n bytes of 'x' and checks the header bytes that precede them. */
static void check_len_form(bool str, size_t n, const char *hdr_hex)
{
	static char s[70000];
	uint8_t hdr[8];
	int h = test_unhex(hdr_hex, hdr, sizeof(hdr));
	long got;

	memset(s, 'x', n);
	begin();
	if (str)
		assert_int_equal(kw_mp_put_str(&w, s, n), 0);
	else
		assert_int_equal(kw_mp_put_bin(&w, (const uint8_t *)s, n), 0);
	got = kw_mp_writer_finish(&w);
	assert_int_equal(got, (long)(h + n));
	assert_memory_equal(buf, hdr, (size_t)h);
	assert_int_equal(kw_mp_reader_init(&r, buf, (size_t)got, 0), 0);
	if (n > CONFIG_KW_NET_MSGPACK_MAX_BYTES) {
		assert_int_equal(kw_mp_read(&r, &it), -KW_ELIMIT);
		return;
	}
	assert_int_equal(kw_mp_read(&r, &it), 0);
	assert_int_equal(it.type, str ? KW_MP_STR : KW_MP_BIN);
	assert_int_equal(it.len, n);
	assert_ptr_equal(it.data, buf + h);  /* zero copy */
	assert_int_equal(kw_mp_reader_done(&r), 0);
}

static void test_mp_str_header_forms(void **state)
{
	check_len_form(true, 0, "a0");
	check_len_form(true, 31, "bf");
	check_len_form(true, 32, "d920");
	check_len_form(true, 255, "d9ff");
	check_len_form(true, 256, "da0100");
	check_len_form(true, 65535, "daffff");
	check_len_form(true, 65536, "db00010000");
}

static void test_mp_bin_header_forms(void **state)
{
	check_len_form(false, 0, "c400");
	check_len_form(false, 255, "c4ff");
	check_len_form(false, 256, "c50100");
	check_len_form(false, 65536, "c600010000");
}

static void test_mp_array_and_map_header_forms(void **state)
{
	static const struct { uint32_t n; const char *arr, *map; } cases[] = {
		{ 0, "90", "80" }, { 15, "9f", "8f" }, { 16, "dc0010", "de0010" },
		{ 65535, "dcffff", "deffff" }, { 65536, "dd00010000", "df00010000" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		begin();
		assert_int_equal(kw_mp_put_array(&w, cases[i].n), 0);
		assert_wrote(cases[i].arr);
		begin();
		assert_int_equal(kw_mp_put_map(&w, cases[i].n), 0);
		assert_wrote(cases[i].map);
	}
}

static void test_mp_ext_header_forms(void **state)
{
	static const struct { size_t n; const char *hdr; } cases[] = {
		{ 0, "c70040" }, { 1, "d440" }, { 2, "d540" }, { 3, "c70340" }, { 4, "d640" },
		{ 8, "d740" }, { 16, "d840" }, { 17, "c71140" }, { 255, "c7ff40" },
		{ 256, "c8010040" }, { 65536, "c90001000040" },
	};
	static uint8_t payload[65536];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t hdr[8];
		int h = test_unhex(cases[i].hdr, hdr, sizeof(hdr));
		size_t mark;

		/* Whole ext from a payload the caller has. */
		begin();
		assert_int_equal(kw_mp_put_ext(&w, 0x40, payload, cases[i].n), 0);
		assert_int_equal(kw_mp_writer_finish(&w), (long)(h + cases[i].n));
		assert_memory_equal(buf, hdr, (size_t)h);
		/* The same ext built in place: identical bytes. */
		begin();
		assert_int_equal(kw_mp_put_ext_begin(&w, 0x40, &mark), 0);
		for (size_t k = 0; k < cases[i].n; k++)
			kw_mp_put_uint(&w, 0);  /* one 0x00 byte each, like payload[] */
		assert_int_equal(kw_mp_put_ext_end(&w, mark), 0);
		assert_int_equal(kw_mp_writer_finish(&w), (long)(h + cases[i].n));
		assert_memory_equal(buf, hdr, (size_t)h);
		assert_memory_equal(buf + h, payload, cases[i].n);
	}
}

static void test_mp_ext_left_open_is_refused_by_finish(void **state)
{
	size_t mark;

	begin();
	kw_mp_put_ext_begin(&w, 0x40, &mark);
	kw_mp_put_array(&w, 0);
	assert_int_equal(kw_mp_writer_finish(&w), -KW_EINVAL);
	assert_int_equal(kw_mp_put_ext_end(&w, mark), 0);
	assert_wrote("d44090");
}

static void test_mp_writer_refuses_invalid_utf8_and_stays_failed(void **state)
{
	begin();
	assert_int_equal(kw_mp_put_str(&w, "\xc3\x28", 2), -KW_EINVAL);
	assert_int_equal(kw_mp_put_nil(&w), -KW_EINVAL);  /* sticky */
	assert_int_equal(kw_mp_writer_finish(&w), -KW_EINVAL);
	begin();
	assert_int_equal(kw_mp_put_cstr(&w, "caf\xc3\xa9"), 0);  /* "café" is fine */
	assert_wrote("a5636166c3a9");
}

static void test_mp_writer_full_buffer_is_enospc_and_sticky(void **state)
{
	uint8_t small[3];

	kw_mp_writer_init(&w, small, sizeof(small));
	assert_int_equal(kw_mp_put_uint(&w, 1), 0);
	assert_int_equal(kw_mp_put_uint(&w, 300), -KW_ENOSPC);  /* needs 3 bytes, 2 left */
	assert_int_equal(kw_mp_put_nil(&w), -KW_ENOSPC);
	assert_int_equal(kw_mp_writer_finish(&w), -KW_ENOSPC);
}

/* ---- Hivemind values ---------------------------------------------------------------- */

static const char peer_b58[] = "12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSB";

/* Petals ServerInfo(state=ONLINE, ...) as hivemind dumps it: a tuple, so ext 0x40 around the
 * list [state, throughput, {the other fields}]; adapters=() is an empty tuple. */
static const char server_info_hex[] =
	"c80129409302cb40934a00000000008dab73746172745f626c6f636b00a9656e645f626c6f636b02ab7075"
	"626c69635f6e616d65a6632d6e6f6465a776657273696f6eaa322e332e302e64657632ab6e6574776f726b"
	"5f727073cb408f400000000000ab666f72776172645f727073cb409f400000000000ad696e666572656e63"
	"655f727073cb4072c00000000000a86164617074657273d44090ab746f7263685f6474797065a7666c6f61"
	"743136aa7175616e745f74797065a36e6634ab7573696e675f72656c6179c2b163616368655f746f6b656e"
	"735f6c656674ce00010000aa6e6578745f70696e677381d934313244334b6f6f574134586f70314a615433"
	"4d487877594d6b436570597376346950566f704d5877437a35694859644266655342cb3f8999999999999a";

static void put_server_info(struct kw_mp_writer *wr)
{
	size_t tup, adapters;

	kw_mp_put_ext_begin(wr, KW_MP_EXT_TUPLE, &tup);
	kw_mp_put_array(wr, 3);
	kw_mp_put_uint(wr, 2);  /* ServerState.ONLINE */
	kw_mp_put_float64(wr, 1234.5);
	kw_mp_put_map(wr, 13);
	kw_mp_put_cstr(wr, "start_block");        kw_mp_put_uint(wr, 0);
	kw_mp_put_cstr(wr, "end_block");          kw_mp_put_uint(wr, 2);
	kw_mp_put_cstr(wr, "public_name");        kw_mp_put_cstr(wr, "c-node");
	kw_mp_put_cstr(wr, "version");            kw_mp_put_cstr(wr, "2.3.0.dev2");
	kw_mp_put_cstr(wr, "network_rps");        kw_mp_put_float64(wr, 1000.0);
	kw_mp_put_cstr(wr, "forward_rps");        kw_mp_put_float64(wr, 2000.0);
	kw_mp_put_cstr(wr, "inference_rps");      kw_mp_put_float64(wr, 300.0);
	kw_mp_put_cstr(wr, "adapters");
	kw_mp_put_ext_begin(wr, KW_MP_EXT_TUPLE, &adapters);
	kw_mp_put_array(wr, 0);
	kw_mp_put_ext_end(wr, adapters);
	kw_mp_put_cstr(wr, "torch_dtype");        kw_mp_put_cstr(wr, "float16");
	kw_mp_put_cstr(wr, "quant_type");         kw_mp_put_cstr(wr, "nf4");
	kw_mp_put_cstr(wr, "using_relay");        kw_mp_put_bool(wr, false);
	kw_mp_put_cstr(wr, "cache_tokens_left");  kw_mp_put_uint(wr, 65536);
	kw_mp_put_cstr(wr, "next_pings");
	kw_mp_put_map(wr, 1);
	kw_mp_put_cstr(wr, peer_b58);
	kw_mp_put_float64(wr, 0.0125);
	kw_mp_put_ext_end(wr, tup);
}

static void test_mp_server_info_tuple_matches_vector(void **state)
{
	begin();
	put_server_info(&w);
	assert_wrote(server_info_hex);
}

static void expect(int type)
{
	assert_int_equal(kw_mp_read(&r, &it), 0);
	assert_int_equal(it.type, type);
}

static void expect_str(const char *s)
{
	expect(KW_MP_STR);
	assert_int_equal(it.len, strlen(s));
	assert_memory_equal(it.data, s, it.len);
}

static void test_mp_server_info_tuple_reads_back_field_by_field(void **state)
{
	read_hex(server_info_hex, KW_MP_ENTER_EXT | KW_MP_STRICT_MAP_KEYS);
	expect(KW_MP_EXT);
	assert_int_equal(it.ext_type, KW_MP_EXT_TUPLE);
	assert_true(it.entered);
	assert_int_equal(it.len, 297);
	expect(KW_MP_ARRAY);
	assert_int_equal(it.len, 3);
	assert_int_equal(it.depth, 1);
	expect(KW_MP_UINT);
	assert_int_equal(it.v.u, 2);
	expect(KW_MP_FLOAT);
	assert_true(it.v.f == 1234.5);
	expect(KW_MP_MAP);
	assert_int_equal(it.len, 13);
	for (int i = 0; i < 13; i++) {
		expect(KW_MP_STR);
		if (it.len == 8 && memcmp(it.data, "adapters", 8) == 0) {
			expect(KW_MP_EXT);
			assert_true(it.entered);
			expect(KW_MP_ARRAY);
			assert_int_equal(it.len, 0);
		} else if (it.len == 10 && memcmp(it.data, "next_pings", 10) == 0) {
			expect(KW_MP_MAP);
			assert_int_equal(it.len, 1);
			expect_str(peer_b58);
			expect(KW_MP_FLOAT);
			assert_true(it.v.f == 0.0125);
		} else if (it.len == 17 && memcmp(it.data, "cache_tokens_left", 17) == 0) {
			expect(KW_MP_UINT);
			assert_int_equal(it.v.u, 65536);
		} else {
			assert_int_equal(kw_mp_skip_value(&r), 0);
		}
	}
	assert_int_equal(r.depth, 0);
	assert_int_equal(kw_mp_reader_done(&r), 0);
}

/* DictionaryDHTValue (ext 0x50) with the ServerInfo above under the peer's subkey, as
 * rpc_find returns it: [maxsize=+inf, latest_expiration, [[subkey, value bin, expiration]]]. */
static void test_mp_dictionary_dht_value_matches_vector(void **state)
{
	static uint8_t si[512];
	struct kw_mp_writer w2;
	long si_len;
	size_t mark;
	char hex[2048];

	kw_mp_writer_init(&w2, si, sizeof(si));
	put_server_info(&w2);
	si_len = kw_mp_writer_finish(&w2);
	assert_int_equal(si_len, 301);

	begin();
	kw_mp_put_ext_begin(&w, KW_MP_EXT_DHTDICT, &mark);
	kw_mp_put_array(&w, 3);
	kw_mp_put_float64(&w, INFINITY);
	kw_mp_put_float64(&w, 1700000240.0);
	kw_mp_put_array(&w, 1);
	kw_mp_put_array(&w, 3);
	kw_mp_put_cstr(&w, peer_b58);
	kw_mp_put_bin(&w, si, (size_t)si_len);
	kw_mp_put_float64(&w, 1700000240.0);
	kw_mp_put_ext_end(&w, mark);
	snprintf(hex, sizeof(hex), "c801845093cb7ff0000000000000cb41d954fc7c0000009193"
		 "d934313244334b6f6f574134586f70314a6154334d487877594d6b436570597376346950566f70"
		 "4d5877437a35694859644266655342c5012d%scb41d954fc7c000000", server_info_hex);
	assert_wrote(hex);

	/* Read back: the entry's value is bin (opaque), the subkey a str. */
	assert_int_equal(kw_mp_reader_init(&r, buf, (size_t)kw_mp_writer_finish(&w),
					   KW_MP_ENTER_EXT | KW_MP_STRICT_MAP_KEYS), 0);
	expect(KW_MP_EXT);
	assert_int_equal(it.ext_type, KW_MP_EXT_DHTDICT);
	expect(KW_MP_ARRAY);
	expect(KW_MP_FLOAT);
	assert_true(isinf(it.v.f));
	expect(KW_MP_FLOAT);
	assert_true(it.v.f == 1700000240.0);
	expect(KW_MP_ARRAY);
	assert_int_equal(it.len, 1);
	expect(KW_MP_ARRAY);
	assert_int_equal(it.len, 3);
	expect_str(peer_b58);
	expect(KW_MP_BIN);
	assert_int_equal(it.len, 301);
	assert_memory_equal(it.data, si, 301);
	expect(KW_MP_FLOAT);
	assert_int_equal(kw_mp_reader_done(&r), 0);
}

/* Petals args_structure ((b'__T0', b'__T1', b'__T2'), {}): a tuple inside a tuple. */
static void test_mp_nested_tuples_match_petals_args_structure(void **state)
{
	size_t outer, inner;

	begin();
	kw_mp_put_ext_begin(&w, KW_MP_EXT_TUPLE, &outer);
	kw_mp_put_array(&w, 2);
	kw_mp_put_ext_begin(&w, KW_MP_EXT_TUPLE, &inner);
	kw_mp_put_array(&w, 3);
	kw_mp_put_bin(&w, (const uint8_t *)"__T0", 4);
	kw_mp_put_bin(&w, (const uint8_t *)"__T1", 4);
	kw_mp_put_bin(&w, (const uint8_t *)"__T2", 4);
	kw_mp_put_ext_end(&w, inner);
	kw_mp_put_map(&w, 0);
	kw_mp_put_ext_end(&w, outer);
	assert_wrote("c7184092c7134093c4045f5f5430c4045f5f5431c4045f5f543280");
}

/* BatchTensorDescriptor (ext 0x51) for a float16 block of hidden size 4, size (None, 1, 2048, 4)
 * as Petals' rpc_info schema carries it. */
static void test_mp_batch_tensor_descriptor_matches_vector(void **state)
{
	size_t btd, size;

	begin();
	kw_mp_put_ext_begin(&w, KW_MP_EXT_BTD, &btd);
	kw_mp_put_map(&w, 8);
	kw_mp_put_cstr(&w, "size");
	kw_mp_put_ext_begin(&w, KW_MP_EXT_TUPLE, &size);
	kw_mp_put_array(&w, 4);
	kw_mp_put_nil(&w);
	kw_mp_put_uint(&w, 1);
	kw_mp_put_uint(&w, 2048);
	kw_mp_put_uint(&w, 4);
	kw_mp_put_ext_end(&w, size);
	kw_mp_put_cstr(&w, "dtype");          kw_mp_put_cstr(&w, "torch.float16");
	kw_mp_put_cstr(&w, "layout");         kw_mp_put_cstr(&w, "torch.strided");
	kw_mp_put_cstr(&w, "requires_grad");  kw_mp_put_bool(&w, false);
	kw_mp_put_cstr(&w, "pin_memory");     kw_mp_put_bool(&w, false);
	kw_mp_put_cstr(&w, "compression");    kw_mp_put_uint(&w, 0);
	kw_mp_put_cstr(&w, "device_type");    kw_mp_put_nil(&w);
	kw_mp_put_cstr(&w, "device_index");   kw_mp_put_nil(&w);
	kw_mp_put_ext_end(&w, btd);
	assert_wrote("c77c5188a473697a65c7074094c001cd080004a56474797065ad746f7263682e666c6f617431"
		     "36a66c61796f7574ad746f7263682e73747269646564ad72657175697265735f67726164c2aa"
		     "70696e5f6d656d6f7279c2ab636f6d7072657373696f6e00ab6465766963655f74797065c0ac"
		     "6465766963655f696e646578c0");
}

static void test_mp_dht_key_and_gather_encodings_match_vectors(void **state)
{
	begin();
	kw_mp_put_cstr(&w, "_petals.models");
	assert_wrote("ae5f706574616c732e6d6f64656c73");
	begin();
	kw_mp_put_cstr(&w, "Meta-Llama-3-1-405B-Instruct-hf.0");
	assert_wrote("d9214d6574612d4c6c616d612d332d312d343035422d496e7374727563742d68662e30");
	/* averaging gather metadata msgpack([None, 0, msgpack(None)]) */
	begin();
	kw_mp_put_array(&w, 3);
	kw_mp_put_nil(&w);
	kw_mp_put_uint(&w, 0);
	kw_mp_put_bin(&w, (const uint8_t *)"\xc0", 1);
	assert_wrote("93c000c401c0");
}

/* ---- reader: hostile input ---------------------------------------------------------- */

static void test_mp_truncation_at_every_byte_is_bad_message(void **state)
{
	int n = test_unhex(server_info_hex, want, sizeof(want));
	const char *why;

	assert_true(n > 0);
	assert_int_equal(kw_mp_validate(want, (size_t)n, KW_MP_ENTER_EXT, &why), 0);
	for (int k = 0; k < n; k++) {
		int err = kw_mp_validate(want, (size_t)k, KW_MP_ENTER_EXT, &why);

		assert_int_equal(err, -KW_EBADMSG);
		assert_true(why[0] != '\0');
	}
	/* Without entering the ext a cut anywhere inside the payload is still a bad length. */
	for (int k = 0; k < n; k++)
		assert_int_equal(kw_mp_validate(want, (size_t)k, 0, NULL), -KW_EBADMSG);
}

static void test_mp_truncation_of_every_scalar_form_is_bad_message(void **state)
{
	static const char *const forms[] = {
		"cc80", "cd0100", "ce00010000", "cf0000000100000000", "d080", "d18000",
		"d280000000", "d38000000000000000", "ca3f800000", "cb40934a0000000000",
		"d90161", "da000161", "db0000000161", "c40161", "c5000161", "c60000000161", "d44001",
		"c7014001", "c800014001", "c90000000140" "01", "dc0001c0", "dd00000001c0",
		"de0001a0c0", "df00000001a0c0",
	};

	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		int n = test_unhex(forms[i], want, sizeof(want));

		if (n < 0)  /* an odd-length literal above is a typo, not a test */
			fail_msg("bad hex %s", forms[i]);
		assert_int_equal(kw_mp_validate(want, (size_t)n, 0, NULL), 0);
		for (int k = 1; k < n; k++)
			assert_int_equal(kw_mp_validate(want, (size_t)k, 0, NULL), -KW_EBADMSG);
	}
}

static void test_mp_array_depth_bomb_is_refused_at_the_limit(void **state)
{
	static uint8_t bomb[100001];
	struct kw_mp_reader rr;
	const char *why;
	int err;

	memset(bomb, 0x91, sizeof(bomb) - 1);  /* [[[[...]]]] one byte per level */
	bomb[sizeof(bomb) - 1] = 0xc0;
	assert_int_equal(kw_mp_validate(bomb, sizeof(bomb), 0, &why), -KW_ELIMIT);
	assert_non_null(strstr(why, "DEPTH"));
	/* Exactly KW_MP_MAX_DEPTH levels are fine, one more is not. */
	memset(bomb, 0x91, KW_MP_MAX_DEPTH);
	bomb[KW_MP_MAX_DEPTH] = 0xc0;
	assert_int_equal(kw_mp_validate(bomb, KW_MP_MAX_DEPTH + 1, 0, NULL), 0);
	memset(bomb, 0x91, KW_MP_MAX_DEPTH + 1);
	bomb[KW_MP_MAX_DEPTH + 1] = 0xc0;
	kw_mp_reader_init(&rr, bomb, KW_MP_MAX_DEPTH + 2, 0);
	do
		err = kw_mp_read(&rr, &it);
	while (err == 0);
	assert_int_equal(err, -KW_ELIMIT);
	assert_int_equal(rr.err_pos, KW_MP_MAX_DEPTH);  /* names the offending byte */
}

static void test_mp_nested_tuple_bomb_is_refused_at_the_limit(void **state)
{
	size_t marks[KW_MP_MAX_DEPTH + 1];
	int levels;

	/* ext 0x40 payloads each holding the next tuple: an entered ext is a level too. */
	for (levels = KW_MP_MAX_DEPTH; levels <= KW_MP_MAX_DEPTH + 1; levels++) {
		begin();
		for (int i = 0; i < levels; i++)
			kw_mp_put_ext_begin(&w, KW_MP_EXT_TUPLE, &marks[i]);
		kw_mp_put_nil(&w);
		for (int i = levels - 1; i >= 0; i--)
			kw_mp_put_ext_end(&w, marks[i]);
		assert_true(kw_mp_writer_finish(&w) > 0);
		assert_int_equal(kw_mp_validate(buf, (size_t)kw_mp_writer_finish(&w),
						KW_MP_ENTER_EXT, NULL),
				 levels <= KW_MP_MAX_DEPTH ? 0 : -KW_ELIMIT);
		/* Not entered, the same bytes are one opaque ext. */
		assert_int_equal(kw_mp_validate(buf, (size_t)kw_mp_writer_finish(&w), 0, NULL), 0);
	}
}

static void test_mp_huge_declared_lengths_are_limit_errors(void **state)
{
	static const char *const over[] = {
		"dbffffffff", "c6ffffffff", "c9ffffffff40", "ddffffffff", "dfffffffff",
	};

	for (size_t i = 0; i < sizeof(over) / sizeof(over[0]); i++) {
		size_t n = read_hex(over[i], 0);

		assert_int_equal(kw_mp_read(&r, &it), -KW_ELIMIT);
		assert_int_equal(r.err_pos, 0);
		assert_true(strstr(r.why, "KW_NET_MSGPACK_MAX") != NULL);
		assert_int_equal(kw_mp_validate(want, n, 0, NULL), -KW_ELIMIT);
	}
}

static void test_mp_lengths_within_limits_but_past_the_input_are_bad_message(void **state)
{
	/* str8 of 255 with 3 bytes there; array16 of 64 elements with 2; map16 of 32 pairs
	 * (64 items) with 63 bytes. Refused at the header, whatever the limits. */
	read_hex("d9ff616263", 0);
	assert_int_equal(kw_mp_read(&r, &it), -KW_EBADMSG);
	read_hex("dc0040c0c0", 0);
	assert_int_equal(kw_mp_read(&r, &it), -KW_EBADMSG);
	assert_string_equal(r.why, "count exceeds the remaining input");
	memset(want, 0xc0, 80);
	want[0] = 0xde;
	want[1] = 0x00;
	want[2] = 0x20;
	kw_mp_reader_init(&r, want, 3 + 63, 0);
	assert_int_equal(kw_mp_read(&r, &it), -KW_EBADMSG);
	kw_mp_reader_init(&r, want, 3 + 64, 0);
	assert_int_equal(kw_mp_read(&r, &it), 0);
}

static void test_mp_reserved_byte_is_bad_message(void **state)
{
	read_hex("92c0c1", 0);
	assert_int_equal(kw_mp_read(&r, &it), 0);
	assert_int_equal(kw_mp_read(&r, &it), 0);
	assert_int_equal(kw_mp_read(&r, &it), -KW_EBADMSG);
	assert_string_equal(r.why, "reserved byte 0xc1");
	assert_int_equal(r.err_pos, 2);
	assert_int_equal(kw_mp_read(&r, &it), -KW_EBADMSG);  /* sticky */
}

static void test_mp_invalid_utf8_str_is_bad_message(void **state)
{
	static const char *const bad_strs[] = {
		"a2c328",      /* continuation missing */
		"a3eda080",    /* UTF-16 surrogate U+D800 */
		"a2c080",      /* overlong NUL */
		"a4f4908080",  /* above U+10FFFF */
		"a180",        /* lone continuation */
		"a3e08080",    /* overlong 3-byte */
	};

	for (size_t i = 0; i < sizeof(bad_strs) / sizeof(bad_strs[0]); i++) {
		size_t n = read_hex(bad_strs[i], 0);

		assert_int_equal(kw_mp_validate(want, n, 0, NULL), -KW_EBADMSG);
	}
	/* The same bytes as bin are fine; and 4-byte UTF-8 (U+1F600) is a valid str. */
	assert_int_equal(kw_mp_validate((const uint8_t *)"\xc4\x02\xc3\x28", 4, 0, NULL), 0);
	assert_int_equal(kw_mp_validate((const uint8_t *)"\xa4\xf0\x9f\x98\x80", 5, 0, NULL), 0);
}

static void test_mp_entered_ext_payload_must_hold_exactly_one_value(void **state)
{
	const char *why;

	/* Two values in a tuple payload: unpackb raises ExtraData in Python. */
	read_hex("d540c0c0", KW_MP_ENTER_EXT);
	assert_int_equal(kw_mp_validate(want, 4, KW_MP_ENTER_EXT, &why), -KW_EBADMSG);
	assert_string_equal(why, "ext payload holds more than one value");
	assert_int_equal(kw_mp_validate(want, 4, 0, NULL), 0);  /* opaque: fine */
	/* An array in the payload that needs bytes beyond it must not borrow the outer ones. */
	read_hex("92 c70340 92a161 c0", KW_MP_ENTER_EXT);
	assert_int_equal(kw_mp_read(&r, &it), 0);  /* outer array */
	assert_int_equal(kw_mp_read(&r, &it), 0);  /* ext */
	assert_int_equal(kw_mp_read(&r, &it), 0);  /* inner array of 2... */
	assert_int_equal(kw_mp_read(&r, &it), 0);  /* ...its first element, "a" */
	assert_int_equal(kw_mp_read(&r, &it), -KW_EBADMSG);
	assert_string_equal(r.why, "ext payload ends inside a value");
	/* An empty tuple payload holds no value at all. */
	assert_int_equal(kw_mp_validate((const uint8_t *)"\xc7\x00\x40", 3, KW_MP_ENTER_EXT, NULL),
			 -KW_EBADMSG);
}

static void test_mp_unknown_ext_types_stay_opaque(void **state)
{
	read_hex("d5 7f c0c0", KW_MP_ENTER_EXT);
	expect(KW_MP_EXT);
	assert_int_equal(it.ext_type, 0x7f);
	assert_false(it.entered);
	assert_int_equal(it.len, 2);
	assert_int_equal(kw_mp_reader_done(&r), 0);
	/* Negative (msgpack-reserved) type codes are signed. */
	read_hex("d4ff00", KW_MP_ENTER_EXT);
	expect(KW_MP_EXT);
	assert_int_equal(it.ext_type, -1);
}

static void test_mp_strict_map_keys_refuse_non_string_keys(void **state)
{
	read_hex("8101c0", KW_MP_STRICT_MAP_KEYS);
	assert_int_equal(kw_mp_read(&r, &it), 0);
	assert_int_equal(kw_mp_read(&r, &it), -KW_EBADMSG);
	assert_string_equal(r.why, "map key is not str or bin");
	/* Values may be anything; bin keys pass; without the flag int keys pass. */
	assert_int_equal(kw_mp_validate((const uint8_t *)"\x82\xa1k\x01\xc4\x01k\x90", 8,
					KW_MP_STRICT_MAP_KEYS, NULL), 0);
	assert_int_equal(kw_mp_validate((const uint8_t *)"\x81\x01\xc0", 3, 0, NULL), 0);
}

static void test_mp_skip_jumps_over_a_whole_container(void **state)
{
	/* [ {"a": [1, 2], "b": {}}, 7 ] */
	read_hex("92 82 a161 920102 a162 80 07", 0);
	expect(KW_MP_ARRAY);
	expect(KW_MP_MAP);
	assert_int_equal(kw_mp_skip(&r, &it), 0);
	expect(KW_MP_UINT);
	assert_int_equal(it.v.u, 7);
	assert_int_equal(kw_mp_reader_done(&r), 0);
}

static void test_mp_trailing_bytes_and_empty_input_are_refused(void **state)
{
	const char *why;

	assert_int_equal(kw_mp_validate((const uint8_t *)"\xc0\xc0", 2, 0, &why), -KW_EBADMSG);
	assert_string_equal(why, "trailing bytes after the value");
	assert_int_equal(kw_mp_validate((const uint8_t *)"", 0, 0, &why), -KW_EBADMSG);
	assert_string_equal(why, "empty input");
	read_hex("c0", 0);
	assert_int_equal(kw_mp_read(&r, &it), 0);
	assert_int_equal(kw_mp_read(&r, &it), -KW_ENOENT);
	assert_int_equal(kw_mp_reader_done(&r), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mp_uint_takes_the_smallest_form),
		cmocka_unit_test(test_mp_negative_int_takes_the_smallest_signed_form),
		cmocka_unit_test(test_mp_signed_forms_holding_non_negative_values_read_as_uint),
		cmocka_unit_test(test_mp_float64_bytes_including_inf_and_nan),
		cmocka_unit_test(test_mp_float32_is_read_as_double),
		cmocka_unit_test(test_mp_nil_and_bool_bytes),
		cmocka_unit_test(test_mp_str_header_forms),
		cmocka_unit_test(test_mp_bin_header_forms),
		cmocka_unit_test(test_mp_array_and_map_header_forms),
		cmocka_unit_test(test_mp_ext_header_forms),
		cmocka_unit_test(test_mp_ext_left_open_is_refused_by_finish),
		cmocka_unit_test(test_mp_writer_refuses_invalid_utf8_and_stays_failed),
		cmocka_unit_test(test_mp_writer_full_buffer_is_enospc_and_sticky),
		cmocka_unit_test(test_mp_server_info_tuple_matches_vector),
		cmocka_unit_test(test_mp_server_info_tuple_reads_back_field_by_field),
		cmocka_unit_test(test_mp_dictionary_dht_value_matches_vector),
		cmocka_unit_test(test_mp_nested_tuples_match_petals_args_structure),
		cmocka_unit_test(test_mp_batch_tensor_descriptor_matches_vector),
		cmocka_unit_test(test_mp_dht_key_and_gather_encodings_match_vectors),
		cmocka_unit_test(test_mp_truncation_at_every_byte_is_bad_message),
		cmocka_unit_test(test_mp_truncation_of_every_scalar_form_is_bad_message),
		cmocka_unit_test(test_mp_array_depth_bomb_is_refused_at_the_limit),
		cmocka_unit_test(test_mp_nested_tuple_bomb_is_refused_at_the_limit),
		cmocka_unit_test(test_mp_huge_declared_lengths_are_limit_errors),
		cmocka_unit_test(test_mp_lengths_within_limits_but_past_the_input_are_bad_message),
		cmocka_unit_test(test_mp_reserved_byte_is_bad_message),
		cmocka_unit_test(test_mp_invalid_utf8_str_is_bad_message),
		cmocka_unit_test(test_mp_entered_ext_payload_must_hold_exactly_one_value),
		cmocka_unit_test(test_mp_unknown_ext_types_stay_opaque),
		cmocka_unit_test(test_mp_strict_map_keys_refuse_non_string_keys),
		cmocka_unit_test(test_mp_skip_jumps_over_a_whole_container),
		cmocka_unit_test(test_mp_trailing_bytes_and_empty_input_are_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
