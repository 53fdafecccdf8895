/*
 * libFuzzer target: the server records a DHT get returns (net/hivemind/records.c). The first
 * byte picks the reader: 0 a Petals ServerInfo, 1 a ModelInfo, else a DictionaryDHTValue walked
 * entry by entry, each entry's value read as a ServerInfo (what `kwnode hivemind servers`
 * does). Only the documented codes; what decodes re-encodes, and the re-encoding decodes to the
 * same struct and is a fixed point; every entry's subkey and value lie in the input.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <kw/err.h>
#include <kw/net/hivemind_records.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t *g_in;
static size_t g_len;

static void check_info(const uint8_t *p, size_t n)
{
	static struct kw_hm_server_info a, b;
	static uint8_t out[8192], out2[8192];
	const char *why = NULL;
	long m, m2;
	int err = kw_hm_server_info_decode(p, n, &a, &why);

	if (err && err != -KW_EBADMSG && err != -KW_ELIMIT)
		__builtin_trap();
	if (err) {
		if (!why || !why[0])
			__builtin_trap();
		return;
	}
	m = kw_hm_server_info_encode(&a, out, sizeof(out));
	if (m < 0 && m != -KW_ENOSPC)
		__builtin_trap();
	if (m < 0 || kw_hm_server_info_decode(out, (size_t)m, &b, &why) != 0)
		__builtin_trap();
	m2 = kw_hm_server_info_encode(&b, out2, sizeof(out2));
	if (m2 != m || memcmp(out, out2, (size_t)m))
		__builtin_trap();
}

static int on_entry(const uint8_t *sub, size_t sub_len, const uint8_t *val, size_t val_len,
		    double exp, void *arg)
{
	(void)exp;
	(void)arg;
	if (sub < g_in || sub + sub_len > g_in + g_len || !sub_len ||
	    (val_len && (val < g_in || val + val_len > g_in + g_len)))
		__builtin_trap();
	check_info(val, val_len);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	g_in = data + 1;
	g_len = size - 1;
	if (data[0] == 0) {
		check_info(g_in, g_len);
	} else if (data[0] == 1) {
		static struct kw_hm_model_info mi, m2;
		static uint8_t out[512];
		const char *why = NULL;
		int err = kw_hm_model_info_decode(g_in, g_len, &mi, &why);
		long m;

		if (err && err != -KW_EBADMSG && err != -KW_ELIMIT)
			__builtin_trap();
		if (err)
			return 0;
		m = kw_hm_model_info_encode(&mi, out, sizeof(out));
		if (m < 0 || kw_hm_model_info_decode(out, (size_t)m, &m2, &why) != 0 ||
		    m2.num_blocks != mi.num_blocks || m2.has_repository != mi.has_repository)
			__builtin_trap();
	} else {
		const char *why = NULL;
		int err = kw_hm_dict_walk(g_in, g_len, on_entry, NULL, &why);

		if (err && err != -KW_EBADMSG && err != -KW_ELIMIT)
			__builtin_trap();
	}
	return 0;
}
