/*
 * libFuzzer target: libp2p PublicKey/PrivateKey protobuf decoding and peer-ID text parsing
 * (net/peer/key*.c, peer_id.c). A decoded public key must re-encode to a key that decodes
 * equal; a decoded private key must sign something its own public half verifies.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <kw/net/key.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct kw_privkey priv;
	static uint8_t enc[KW_KEY_PB_MAX];
	struct kw_pubkey pub, pub2;
	struct kw_peer_id id, id2;
	uint8_t sig[KW_SIG_MAX];
	char text[KW_PEER_ID_TEXT_MAX + 8];
	size_t len, slen;

	if (kw_pubkey_decode(data, size, &pub) == 0) {
		if (kw_pubkey_encode(&pub, enc, sizeof(enc), &len) != 0 ||
		    kw_pubkey_decode(enc, len, &pub2) != 0 || !kw_pubkey_equal(&pub, &pub2))
			__builtin_trap();
		if (kw_peer_id_from_pubkey(&pub, &id) != 0 ||
		    kw_peer_id_to_text(&id, text, sizeof(text)) != 0 ||
		    kw_peer_id_from_text(text, &id2) != 0 || !kw_peer_id_equal(&id, &id2))
			__builtin_trap();
	}
	if (kw_privkey_decode(data, size, &priv) == 0) {
		slen = sizeof(sig);
		if (kw_key_sign(&priv, data, size, sig, &slen) != 0 ||
		    kw_pubkey_verify(&priv.pub, data, size, sig, slen) != 0)
			__builtin_trap();
	}
	if (kw_peer_id_from_bytes(data, size, &id) == 0) {
		if (kw_peer_id_to_cid_text(&id, text, sizeof(text)) != 0 ||
		    kw_peer_id_from_text(text, &id2) != 0 || !kw_peer_id_equal(&id, &id2))
			__builtin_trap();
	}
	if (size < sizeof(text)) {
		memcpy(text, data, size);
		text[size] = '\0';
		(void)kw_peer_id_from_text(text, &id);
	}
	return 0;
}
