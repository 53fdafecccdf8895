/*
 * libFuzzer target: the libp2p NoiseHandshakePayload decoder (net/noise/noise_payload.c) on
 * arbitrary bytes, then signature verification of whatever decoded (every key type that is
 * built in parses and checks attacker-chosen keys and signatures here).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <kw/net/noise.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct kw_noise_remote_payload p;
	static const uint8_t static_key[KW_NOISE_DH_LEN] = { 9 };

	if (kw_noise_payload_decode(data, size, &p) != 0)
		return 0;
	if (p.sig_len == 0 || p.sig_len > KW_SIG_MAX || p.key.len > KW_PUBKEY_MAX)
		__builtin_trap();
	if (p.n_muxers > KW_NOISE_MUXERS_MAX || p.n_muxers > p.muxers_total)
		__builtin_trap();
	for (int i = 0; i < p.n_muxers; i++)
		if (memchr(p.muxers[i], '\0', KW_NOISE_MUXER_NAME_MAX) == NULL || !p.muxers[i][0])
			__builtin_trap();
	(void)kw_noise_payload_verify(&p, static_key);
	return 0;
}
