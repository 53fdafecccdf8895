/*
 * Server records (net/hivemind/records.c): Petals' ServerInfo and ModelInfo values and the
 * keys and subkeys they are stored under, byte for byte against the vectors derived from
 * petals' data_structures.py and hivemind's MSGPackSerializer rules; hivemind's expert
 * declarations (moe/server/dht_handler.py _declare_experts); the DictionaryDHTValue walk; and
 * every refusal of the decoders (Petals' pydantic validation, truncation, bounds).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "unit/net/peer/hex.h"

#include <kw/err.h>
#include <kw/net/hivemind_dht.h>
#include <kw/net/hivemind_records.h>
#include <kw/net/msgpack.h>

#define PEER_B "12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSB"

/* ServerInfo(ONLINE, 1234.5, start_block=0, end_block=2, public_name='c-node',
 * version='2.3.0.dev2', network_rps=1000.0, forward_rps=2000.0, inference_rps=300.0,
 * adapters=(), torch_dtype='float16', quant_type='nf4', using_relay=False,
 * cache_tokens_left=65536, next_pings={PEER_B: 0.0125}).to_tuple() */
static const char si_hex[] =
	"c80129409302cb40934a00000000008dab73746172745f626c6f636b00a9656e645f626c6f636b02ab7075"
	"626c69635f6e616d65a6632d6e6f6465a776657273696f6eaa322e332e302e64657632ab6e6574776f726b"
	"5f727073cb408f400000000000ab666f72776172645f727073cb409f400000000000ad696e666572656e63"
	"655f727073cb4072c00000000000a86164617074657273d44090ab746f7263685f6474797065a7666c6f61"
	"743136aa7175616e745f74797065a36e6634ab7573696e675f72656c6179c2b163616368655f746f6b656e"
	"735f6c656674ce00010000aa6e6578745f70696e677381d934313244334b6f6f574134586f70314a615433"
	"4d487877594d6b436570597376346950566f704d5877437a35694859644266655342cb3f8999999999999a";
/* the same record as rpc_find returns it: a DictionaryDHTValue, subkey PEER_B */
static const char dict_hex_head[] =
	"c801845093cb7ff0000000000000cb41d954fc7c0000009193d934313244334b6f6f574134586f70314a61"
	"54334d487877594d6b436570597376346950566f704d5877437a35694859644266655342c5012d";
static const char dict_hex_tail[] = "cb41d954fc7c000000";
static const char model_hex[] =
	"82aa6e756d5f626c6f636b737eaa7265706f7369746f7279d93e68747470733a2f2f68756767696e676661"
	"63652e636f2f6d6574612d6c6c616d612f4d6574612d4c6c616d612d332e312d343035422d496e73747275"
	"6374";
static const char peer_sub_hex[] =
	"d934313244334b6f6f574134586f70314a6154334d487877594d6b436570597376346950566f704d587743"
	"7a35694859644266655342";

static uint8_t want[1024], out[1024], buf[2048];
static struct kw_hm_server_info si, si2;

static size_t unhex(const char *hex, uint8_t *dst)
{
	int n = test_unhex(hex, dst, 1024);

	assert_true(n >= 0);
	return (size_t)n;
}

static void fill_vector_info(struct kw_hm_server_info *s)
{
	memset(s, 0, sizeof(*s));
	s->state = KW_HM_STATE_ONLINE;
	s->throughput = 1234.5;
	s->has = KW_HM_SI_START_BLOCK | KW_HM_SI_END_BLOCK | KW_HM_SI_PUBLIC_NAME |
		 KW_HM_SI_VERSION | KW_HM_SI_NETWORK_RPS | KW_HM_SI_FORWARD_RPS |
		 KW_HM_SI_INFERENCE_RPS | KW_HM_SI_TORCH_DTYPE | KW_HM_SI_QUANT_TYPE |
		 KW_HM_SI_USING_RELAY | KW_HM_SI_CACHE_TOKENS | KW_HM_SI_NEXT_PINGS;
	s->start_block = 0;
	s->end_block = 2;
	strcpy(s->public_name, "c-node");
	strcpy(s->version, "2.3.0.dev2");
	s->network_rps = 1000.0;
	s->forward_rps = 2000.0;
	s->inference_rps = 300.0;
	strcpy(s->torch_dtype, "float16");
	strcpy(s->quant_type, "nf4");
	s->using_relay = false;
	s->cache_tokens_left = 65536;
	s->n_pings = 1;
	strcpy(s->next_pings[0].peer, PEER_B);
	s->next_pings[0].rtt = 0.0125;
}

static void test_hm_records_server_info_encodes_to_the_vector(void **state)
{
	size_t n = unhex(si_hex, want);

	(void)state;
	assert_int_equal(n, 301);
	fill_vector_info(&si);
	assert_int_equal(kw_hm_server_info_encode(&si, out, sizeof(out)), (long)n);
	assert_memory_equal(out, want, n);
}

static void test_hm_records_server_info_vector_decodes_every_field(void **state)
{
	size_t n = unhex(si_hex, want);
	const char *why = NULL;

	(void)state;
	assert_int_equal(kw_hm_server_info_decode(want, n, &si, &why), 0);
	fill_vector_info(&si2);
	assert_int_equal(si.state, KW_HM_STATE_ONLINE);
	assert_true(si.throughput == 1234.5);
	assert_int_equal(si.has, si2.has);
	assert_int_equal(si.end_block, 2);
	assert_string_equal(si.public_name, "c-node");
	assert_string_equal(si.version, "2.3.0.dev2");
	assert_true(si.inference_rps == 300.0);
	assert_int_equal(si.n_adapters, 0);
	assert_string_equal(si.quant_type, "nf4");
	assert_int_equal(si.cache_tokens_left, 65536);
	assert_int_equal(si.n_pings, 1);
	assert_string_equal(si.next_pings[0].peer, PEER_B);
	assert_true(si.next_pings[0].rtt == 0.0125);
	/* and writes back to the same bytes */
	assert_int_equal(kw_hm_server_info_encode(&si, out, sizeof(out)), (long)n);
	assert_memory_equal(out, want, n);
}

static void test_hm_records_unset_fields_are_written_as_nil(void **state)
{
	const char *why;
	long n;

	(void)state;
	memset(&si, 0, sizeof(si));
	si.state = KW_HM_STATE_OFFLINE;
	si.throughput = 0;
	n = kw_hm_server_info_encode(&si, out, sizeof(out));
	assert_true(n > 0);
	/* 13 keys, every value but adapters nil: ext8 header, [0, 0.0, {...}] */
	assert_int_equal(out[0], 0xc7);
	assert_int_equal(out[2], 0x40);
	assert_memory_equal(out + 3, "\x93\x00\xcb\0\0\0\0\0\0\0\0\x8d", 12);
	assert_int_equal(kw_hm_server_info_decode(out, (size_t)n, &si2, &why), 0);
	assert_int_equal(si2.has, 0);
	assert_int_equal(si2.state, KW_HM_STATE_OFFLINE);
}

static void test_hm_records_adapters_round_trip_as_a_tuple(void **state)
{
	long n;

	(void)state;
	memset(&si, 0, sizeof(si));
	si.state = KW_HM_STATE_ONLINE;
	si.throughput = 1.0;
	si.n_adapters = 2;
	strcpy(si.adapters[0], "a/b");
	strcpy(si.adapters[1], "c/d");
	n = kw_hm_server_info_encode(&si, out, sizeof(out));
	assert_true(n > 0);
	/* "adapters" then ext 0x40 of [str, str]: c7 09 40 92 a3 'a/b' a3 'c/d' */
	assert_non_null(memmem(out, (size_t)n, "\xa8" "adapters\xc7\x09\x40\x92\xa3" "a/b\xa3" "c/d",
			       21));
	assert_int_equal(kw_hm_server_info_decode(out, (size_t)n, &si2, NULL), 0);
	assert_int_equal(si2.n_adapters, 2);
	assert_string_equal(si2.adapters[1], "c/d");
}

static void test_hm_records_model_info_encodes_and_decodes_the_vector(void **state)
{
	struct kw_hm_model_info mi = { .num_blocks = 126, .has_repository = true }, m2;
	size_t n = unhex(model_hex, want);

	(void)state;
	strcpy(mi.repository, "https://huggingface.co/meta-llama/Meta-Llama-3.1-405B-Instruct");
	assert_int_equal(kw_hm_model_info_encode(&mi, out, sizeof(out)), (long)n);
	assert_memory_equal(out, want, n);
	assert_int_equal(kw_hm_model_info_decode(want, n, &m2, NULL), 0);
	assert_int_equal(m2.num_blocks, 126);
	assert_true(m2.has_repository);
	assert_string_equal(m2.repository, mi.repository);
}

static void test_hm_records_model_info_refuses_unknown_field_and_missing_count(void **state)
{
	const char *why = NULL;

	(void)state;
	/* {"num_blocks": 3, "x": 1} */
	assert_int_equal(kw_hm_model_info_decode((const uint8_t *)"\x82\xaanum_blocks\x03\xa1x\x01",
						 16, &(struct kw_hm_model_info){ 0 }, &why),
			 -KW_EBADMSG);
	assert_string_equal(why, "ModelInfo has an unknown field");
	/* {"repository": None} */
	assert_int_equal(kw_hm_model_info_decode((const uint8_t *)"\x81\xaarepository\xc0", 13,
						 &(struct kw_hm_model_info){ 0 }, &why),
			 -KW_EBADMSG);
	assert_string_equal(why, "ModelInfo has no num_blocks");
	/* num_blocks 0 */
	assert_int_equal(kw_hm_model_info_decode((const uint8_t *)"\x81\xaanum_blocks\x00", 13,
						 &(struct kw_hm_model_info){ 0 }, &why),
			 -KW_EBADMSG);
	assert_int_equal(kw_hm_model_info_encode(&(struct kw_hm_model_info){ 0 }, out, 64),
			 -KW_EINVAL);
}

static void test_hm_records_keys_and_subkeys_match_the_vectors(void **state)
{
	struct kw_hm_dhtid id, want_id;
	char uid[128];
	int n;

	(void)state;
	n = kw_hm_block_uid("Meta-Llama-3-1-405B-Instruct-hf", 0, uid, sizeof(uid));
	assert_int_equal(n, 33);
	assert_int_equal(kw_hm_dhtid_of_str(uid, (size_t)n, &id), 0);
	unhex("9b14d861b958d4bf27a484d3361000dfb86d791f", want_id.b);
	assert_memory_equal(id.b, want_id.b, KW_HM_DHTID_LEN);
	assert_int_equal(kw_hm_dhtid_of_str(KW_HM_MODELS_KEY, strlen(KW_HM_MODELS_KEY), &id), 0);
	unhex("0a63ed21831f3f7d24f07949cea69a94476b4faf", want_id.b);
	assert_memory_equal(id.b, want_id.b, KW_HM_DHTID_LEN);
	assert_int_equal(kw_hm_str_subkey(PEER_B, out, sizeof(out)), (long)unhex(peer_sub_hex, want));
	assert_memory_equal(out, want, 54);
	assert_int_equal(kw_hm_str_subkey("Meta-Llama-3-1-405B-Instruct-hf", out, sizeof(out)), 32);
	assert_int_equal(out[0], 0xbf);
}

static void test_hm_records_prefix_with_dot_or_space_is_refused(void **state)
{
	char uid[64];

	(void)state;
	assert_int_equal(kw_hm_block_uid("a.b", 1, uid, sizeof(uid)), -KW_EINVAL);
	assert_int_equal(kw_hm_block_uid("a b", 1, uid, sizeof(uid)), -KW_EINVAL);
	assert_int_equal(kw_hm_block_uid("", 1, uid, sizeof(uid)), -KW_EINVAL);
	assert_int_equal(kw_hm_block_uid("model", 12, uid, 8), -KW_ENOSPC);
	assert_int_equal(kw_hm_block_uid("model", 12, uid, 9), 8);
	assert_string_equal(uid, "model.12");
}

struct seen {
	int n;
	uint8_t sub[64];
	size_t sub_len;
	uint8_t val[512];
	size_t val_len;
	double exp;
};

static int on_entry(const uint8_t *sub, size_t sub_len, const uint8_t *val, size_t val_len,
		    double exp, void *arg)
{
	struct seen *s = arg;

	s->n++;
	assert_true(sub_len <= sizeof(s->sub) && val_len <= sizeof(s->val));
	memcpy(s->sub, sub, sub_len);
	s->sub_len = sub_len;
	memcpy(s->val, val, val_len);
	s->val_len = val_len;
	s->exp = exp;
	return 0;
}

static size_t dict_vector(uint8_t *dst)
{
	size_t n = unhex(dict_hex_head, dst);

	n += unhex(si_hex, dst + n);
	n += unhex(dict_hex_tail, dst + n);
	return n;
}

static void test_hm_records_dictionary_vector_walks_to_the_server_info(void **state)
{
	static struct seen s;
	size_t n = dict_vector(buf);

	(void)state;
	assert_int_equal(n, 0x184 + 4);
	memset(&s, 0, sizeof(s));
	assert_int_equal(kw_hm_dict_walk(buf, n, on_entry, &s, NULL), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.sub_len, 54);
	assert_memory_equal(s.sub, buf + 25, 54);
	assert_int_equal(s.val_len, 301);
	assert_true(s.exp == 1700000240.0);
	assert_int_equal(kw_hm_server_info_decode(s.val, s.val_len, &si, NULL), 0);
	assert_string_equal(si.public_name, "c-node");
}

static void test_hm_records_dictionary_truncated_anywhere_is_refused(void **state)
{
	static struct seen s;
	size_t n = dict_vector(buf);

	(void)state;
	for (size_t i = 0; i < n; i++) {
		const char *why = NULL;

		assert_int_equal(kw_hm_dict_walk(buf, i, on_entry, &s, &why), -KW_EBADMSG);
		assert_non_null(why);
		assert_true(why[0] != '\0');
	}
	/* a plain value is not a dictionary */
	assert_int_equal(kw_hm_dict_walk((const uint8_t *)"\xc0", 1, on_entry, &s, NULL),
			 -KW_EBADMSG);
}

static void test_hm_records_server_info_truncated_or_trailing_is_refused(void **state)
{
	size_t n = unhex(si_hex, want);

	(void)state;
	for (size_t i = 0; i < n; i++)
		assert_int_equal(kw_hm_server_info_decode(want, i, &si, NULL), -KW_EBADMSG);
	want[n] = 0xc0;
	assert_int_equal(kw_hm_server_info_decode(want, n + 1, &si, NULL), -KW_EBADMSG);
}

/* Decodes a msgpack value given as hex; returns the error and *why. */
static int dec(const char *hex, const char **why)
{
	size_t n = unhex(hex, want);

	*why = NULL;
	return kw_hm_server_info_decode(want, n, &si, why);
}

static void test_hm_records_pydantic_refusals_name_the_field(void **state)
{
	const char *why;

	(void)state;
	/* throughput an int: (2, 5) */
	assert_int_equal(dec("c70340920205", &why), -KW_EBADMSG);
	assert_string_equal(why, "throughput is not a finite float >= 0");
	/* state 3 */
	assert_int_equal(dec("c70b409203cb0000000000000000", &why), -KW_EBADMSG);
	assert_string_equal(why, "state is not a ServerState (0, 1 or 2)");
	/* negative throughput */
	assert_int_equal(dec("c70b409202cbbff0000000000000", &why), -KW_EBADMSG);
	/* NaN throughput */
	assert_int_equal(dec("c70b409202cb7ff8000000000000", &why), -KW_EBADMSG);
	/* one item only */
	assert_int_equal(dec("d5409102", &why), -KW_EBADMSG);
	assert_string_equal(why, "ServerInfo tuple has fewer than 2 items");
	/* extra info not a map: (2, 0.0, None) */
	assert_int_equal(dec("c70c409302cb0000000000000000c0", &why), -KW_EBADMSG);
	assert_string_equal(why, "ServerInfo extra info is not a map");
	/* start_block 5, end_block 5 */
	assert_int_equal(dec("c724409302cb000000000000000082ab73746172745f626c6f636b05a9656e64"
			     "5f626c6f636b05", &why), -KW_EBADMSG);
	assert_string_equal(why, "start_block is not below end_block");
	/* start_block -1 */
	assert_int_equal(dec("c719409302cb000000000000000081ab73746172745f626c6f636bff", &why),
			 -KW_EBADMSG);
	assert_string_equal(why, "start_block is not an int >= 0 or None");
	/* a map key that is an int (msgpack-python strict_map_key refuses it) */
	assert_int_equal(dec("c70e409302cb00000000000000008101c0", &why), -KW_EBADMSG);
	/* next_pings value NaN */
	assert_int_equal(dec("c723409302cb000000000000000081aa6e6578745f70696e677381a170cb7ff8"
			     "000000000000", &why), -KW_EBADMSG);
	assert_string_equal(why, "next_pings value is not a float >= 0");
}

static void test_hm_records_lenient_forms_python_accepts(void **state)
{
	const char *why;

	(void)state;
	/* a plain array, two items (no extra info) */
	assert_int_equal(dec("9202cb3ff0000000000000", &why), 0);
	assert_int_equal(si.state, KW_HM_STATE_ONLINE);
	assert_true(si.throughput == 1.0);
	/* an unknown key with a nested value is skipped; items after the map are ignored */
	assert_int_equal(dec("c724409401cb000000000000000082a3666f6f9201d44090ab7075626c69635f6e"
			     "616d65a178c3", &why), 0);
	assert_int_equal(si.state, KW_HM_STATE_JOINING);
	assert_string_equal(si.public_name, "x");
	/* next_pings +inf is allowed (an unreachable server) */
	assert_int_equal(dec("c723409302cb000000000000000081aa6e6578745f70696e677381a170cb7ff0"
			     "000000000000", &why), 0);
	assert_true(isinf(si.next_pings[0].rtt));
}

static void test_hm_records_string_longer_than_the_struct_is_elimit(void **state)
{
	struct kw_mp_writer w;
	char name[KW_HM_REC_TEXT_MAX + 1];
	const char *why;
	size_t tup;
	long n;

	(void)state;
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	kw_mp_writer_init(&w, buf, sizeof(buf));
	kw_mp_put_ext_begin(&w, KW_MP_EXT_TUPLE, &tup);
	kw_mp_put_array(&w, 3);
	kw_mp_put_uint(&w, 2);
	kw_mp_put_float64(&w, 1.0);
	kw_mp_put_map(&w, 1);
	kw_mp_put_cstr(&w, "public_name");
	kw_mp_put_cstr(&w, name);
	kw_mp_put_ext_end(&w, tup);
	n = kw_mp_writer_finish(&w);
	assert_true(n > 0);
	assert_int_equal(kw_hm_server_info_decode(buf, (size_t)n, &si, &why), -KW_ELIMIT);
	assert_string_equal(why, "public_name longer than KW_HM_REC_TEXT_MAX");
}

static void test_hm_records_encoder_refuses_what_petals_would_not_read(void **state)
{
	(void)state;
	fill_vector_info(&si);
	si.state = 3;
	assert_int_equal(kw_hm_server_info_encode(&si, out, sizeof(out)), -KW_EINVAL);
	fill_vector_info(&si);
	si.throughput = NAN;
	assert_int_equal(kw_hm_server_info_encode(&si, out, sizeof(out)), -KW_EINVAL);
	fill_vector_info(&si);
	si.forward_rps = INFINITY;
	assert_int_equal(kw_hm_server_info_encode(&si, out, sizeof(out)), -KW_EINVAL);
	fill_vector_info(&si);
	si.start_block = 2;
	assert_int_equal(kw_hm_server_info_encode(&si, out, sizeof(out)), -KW_EINVAL);
	fill_vector_info(&si);
	assert_int_equal(kw_hm_server_info_encode(&si, out, 300), -KW_ENOSPC);
}

static void test_hm_records_expert_grid_uid_declares_each_prefix(void **state)
{
	struct kw_hm_rec r;
	char hex[512];

	(void)state;
	/* ffn.3.7: key "ffn.3.7" = peer; key "ffn.3." subkey 7 = ("ffn.3.7", peer) */
	assert_int_equal(kw_hm_expert_record("ffn.3.7", PEER_B, 0, &r), 0);
	assert_string_equal(r.key, "ffn.3.7");
	assert_int_equal(r.sub_len, 0);
	assert_int_equal(r.val_len, 54);
	unhex(peer_sub_hex, want);
	assert_memory_equal(r.val, want, 54);
	assert_int_equal(kw_hm_expert_record("ffn.3.7", PEER_B, 1, &r), 0);
	assert_string_equal(r.key, "ffn.3.");
	assert_int_equal(r.sub_len, 1);
	assert_int_equal(r.sub[0], 0x07);
	/* c7 3f 40 92 a7 "ffn.3.7" d9 34 PEER_B */
	snprintf(hex, sizeof(hex), "c73f4092a766666e2e332e37%s", peer_sub_hex);
	assert_int_equal(r.val_len, unhex(hex, want));
	assert_memory_equal(r.val, want, r.val_len);
	assert_int_equal(kw_hm_expert_record("ffn.3.7", PEER_B, 2, &r), -KW_ENOENT);
	/* ffn.1.2.3: "ffn.1.2."[3], then "ffn.1."[2] */
	assert_int_equal(kw_hm_expert_record("ffn.1.2.3", PEER_B, 1, &r), 0);
	assert_string_equal(r.key, "ffn.1.2.");
	assert_int_equal(r.sub[0], 3);
	assert_int_equal(kw_hm_expert_record("ffn.1.2.3", PEER_B, 2, &r), 0);
	assert_string_equal(r.key, "ffn.1.");
	assert_int_equal(r.sub[0], 2);
	assert_int_equal(kw_hm_expert_record("ffn.1.2.3", PEER_B, 3, &r), -KW_ENOENT);
	/* coordinate 300 is a uint16 subkey */
	assert_int_equal(kw_hm_expert_record("e.1.300", PEER_B, 1, &r), 0);
	assert_int_equal(r.sub_len, 3);
	assert_memory_equal(r.sub, "\xcd\x01\x2c", 3);
}

static void test_hm_records_expert_flat_uid_uses_coordinate_minus_one(void **state)
{
	struct kw_hm_rec r;

	(void)state;
	assert_int_equal(kw_hm_expert_record("expert.5", PEER_B, 1, &r), 0);
	assert_string_equal(r.key, "expert.5.");
	assert_int_equal(r.sub_len, 1);
	assert_int_equal(r.sub[0], 0xff);       /* FLAT_EXPERT = -1, a negative fixint */
	assert_int_equal(kw_hm_expert_record("expert.5", PEER_B, 2, &r), -KW_ENOENT);
}

static void test_hm_records_expert_uid_pattern_is_enforced(void **state)
{
	static const char *const bad[] = { "ffn", "ffn.", ".3", "ffn.01", "ffn.3.", "ffn.-1",
					   "ffn.3a", "ffn..3", "ffn.1234567890123456789" };
	struct kw_hm_rec r;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(kw_hm_expert_uid_check(bad[i]), -KW_EINVAL);
	assert_int_equal(kw_hm_expert_uid_check("ffn.0"), 0);
	assert_int_equal(kw_hm_expert_uid_check("my-ffn.10.0.7"), 0);
	assert_int_equal(kw_hm_expert_record("ffn.01", PEER_B, 0, &r), -KW_EINVAL);
	assert_int_equal(kw_hm_expert_record("ffn.1", "", 0, &r), -KW_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hm_records_server_info_encodes_to_the_vector),
		cmocka_unit_test(test_hm_records_server_info_vector_decodes_every_field),
		cmocka_unit_test(test_hm_records_unset_fields_are_written_as_nil),
		cmocka_unit_test(test_hm_records_adapters_round_trip_as_a_tuple),
		cmocka_unit_test(test_hm_records_model_info_encodes_and_decodes_the_vector),
		cmocka_unit_test(test_hm_records_model_info_refuses_unknown_field_and_missing_count),
		cmocka_unit_test(test_hm_records_keys_and_subkeys_match_the_vectors),
		cmocka_unit_test(test_hm_records_prefix_with_dot_or_space_is_refused),
		cmocka_unit_test(test_hm_records_dictionary_vector_walks_to_the_server_info),
		cmocka_unit_test(test_hm_records_dictionary_truncated_anywhere_is_refused),
		cmocka_unit_test(test_hm_records_server_info_truncated_or_trailing_is_refused),
		cmocka_unit_test(test_hm_records_pydantic_refusals_name_the_field),
		cmocka_unit_test(test_hm_records_lenient_forms_python_accepts),
		cmocka_unit_test(test_hm_records_string_longer_than_the_struct_is_elimit),
		cmocka_unit_test(test_hm_records_encoder_refuses_what_petals_would_not_read),
		cmocka_unit_test(test_hm_records_expert_grid_uid_declares_each_prefix),
		cmocka_unit_test(test_hm_records_expert_flat_uid_uses_coordinate_minus_one),
		cmocka_unit_test(test_hm_records_expert_uid_pattern_is_enforced),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
