/*
 * libFuzzer target: what `kwnode generate` and `kwnode moe` read from outside
 * (app/client_route.c, app/client_moe.c). The first byte modulo 3 picks the parser: 0, a
 * prompt file (kw_client_tokens_parse, vocabulary 256: every token kept is below it, the
 * count within the room given, an error names a line); 1, a server's answer to a step
 * (kw_client_answer_decode for 1..8 rows of hidden 4, the second byte choosing them: on
 * success every value is finite); 2, an expert declaration entry (kw_client_expert_entry,
 * the second byte the subkey's length: on success uid and peer are NUL-terminated within
 * their room and uid is an expert uid). A first byte from 0xf0 picks the addresses of a kad
 * answer (kw_client_kad_addrs: length-prefixed binary multiaddrs of one peer, the second
 * byte picking how many it may return: each kept one parses and ends in /p2p/<that peer>).
 * Built against libkw.a.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kw/err.h>
#include <kw/ml/codec.h>
#include <kw/net/hivemind_records.h>
#include <kw/net/kad_msg.h>
#include <kw/net/key.h>
#include <kw/net/multiaddr.h>

#include "../../app/client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct kw_codec codec;
static int ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint32_t tok[64];
	static float out[8 * 4];
	char err[160];
	size_t n = 99;
	int ret;

	if (!ready) {
		if (kw_codec_init(&codec, KW_SIMD_AUTO) < 0)
			abort();
		ready = 1;
	}
	if (size < 2)
		return 0;
	if (data[0] >= 0xf0) {
		static const char who[] = "12D3KooWE8zUHfv8s5oq3oR9aZgbS9FcQ9rLmw5szTzZWXDwEsKZ";
		static struct kw_kad_peer kp;
		static char addrs[KW_CLIENT_RESOLVE_ADDRS][KW_CLIENT_ADDR_MAX];
		struct kw_peer_id id, inner;
		struct kw_multiaddr ma;
		uint32_t cap = 1 + data[1] % KW_CLIENT_RESOLVE_ADDRS, got;
		size_t pos = 2;

		if (kw_peer_id_from_text(who, &id) < 0)
			abort();
		memset(&kp, 0, sizeof(kp));
		memcpy(kp.id, id.bytes, id.len);
		kp.id_len = id.len;
		while (pos < size && kp.n_addrs < KW_KAD_MAX_ADDRS) {
			size_t l = data[pos++] % (KW_KAD_ADDR_MAX + 1);

			if (l > size - pos)
				l = size - pos;
			memcpy(kp.addrs[kp.n_addrs], data + pos, l);
			kp.addr_len[kp.n_addrs++] = (uint8_t)l;
			pos += l;
		}
		got = kw_client_kad_addrs(&kp, 1, who, addrs, cap);
		if (got > cap)
			abort();
		for (uint32_t i = 0; i < got; i++) {
			size_t l = strlen(addrs[i]);

			if (l >= KW_CLIENT_ADDR_MAX || kw_maddr_from_text(addrs[i], &ma, NULL, 0) < 0 ||
			    kw_maddr_peer_id(&ma, &inner) < 0 || !kw_peer_id_equal(&inner, &id) ||
			    l < sizeof(who) - 1 || strcmp(addrs[i] + l - (sizeof(who) - 1), who))
				abort();
		}
		return 0;
	}
	if (data[0] % 3 == 2) {
		char uid[KW_HM_REC_UID_MAX], peer[KW_HM_REC_PEER_MAX];
		size_t sl = data[1] < size - 2 ? data[1] : size - 2;
		int64_t c;

		ret = kw_client_expert_entry(data + 2, sl, data + 2 + sl, size - 2 - sl, &c, uid,
					     sizeof(uid), peer, sizeof(peer));
		if (ret == 0 && (strlen(uid) >= sizeof(uid) || strlen(peer) >= sizeof(peer) ||
				 kw_hm_expert_uid_check(uid) < 0))
			abort();
		if (ret != 0 && ret != -KW_EBADMSG)
			abort();
		return 0;
	}
	if (data[0] % 3 == 0) {
		err[0] = '\0';
		ret = kw_client_tokens_parse((const char *)data + 1, size - 1, 256, tok, 64, &n, err,
					     sizeof(err));
		if (ret == 0) {
			if (n < 1 || n > 64)
				abort();
			for (size_t i = 0; i < n; i++)
				if (tok[i] >= 256)
					abort();
		} else if ((ret != -KW_EINVAL && ret != -KW_ENOSPC) || !err[0] ||
			   strlen(err) >= sizeof(err)) {
			abort();
		}
		return 0;
	}
	{
		size_t rows = 1 + (data[1] & 7);

		ret = kw_client_answer_decode(&codec, data + 2, size - 2, rows, 4, out);
		if (ret == 0)
			for (size_t i = 0; i < rows * 4; i++)
				if (!isfinite(out[i]))
					abort();
		if (ret != 0 && ret != -KW_EBADMSG && ret != -KW_ERANGE)
			abort();
	}
	return 0;
}
