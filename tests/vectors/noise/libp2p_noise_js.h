/*
 * libp2p Noise handshake transcript produced by js-libp2p (@chainsafe/libp2p-noise 17.0.0's
 * XXHandshakeState and createHandshakePayload, driven by a small known-answer script with
 * fixed keys; the bytes were captured once and are kept here). Deterministic: X25519 statics/ephemerals are the
 * cacophony XX keys (noise_xx_vectors.h), prologue empty; initiator identity = libp2p peer-id
 * spec Ed25519 key, responder identity = spec secp256k1 key (RFC 6979, low-S); both payloads
 * carry stream_muxers = ["/yamux/1.0.0"]. Frames include the u16 length prefix.
 */
#ifndef KW_TEST_VECTORS_LIBP2P_NOISE_JS_H
#define KW_TEST_VECTORS_LIBP2P_NOISE_JS_H

/* libp2p peer-id spec keys (PrivateKey protobufs) */
#define JS_INIT_IDENTITY_PRIV "080112407e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e"
#define JS_RESP_IDENTITY_PRIV "0802122053DADF1D5A164D6B4ACDB15E24AA4C5B1D3461BDBD42ABEDB0A4404D56CED8FB"
/* their peer ids (multihash bytes) */
#define JS_INIT_PEER_ID "0024080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e"
#define JS_RESP_PEER_ID "002508021221037777e994e452c21604f91de093ce415f5432f701dd8cd1a7a6fea0e630bfca99"

#define JS_INIT_STATIC_PUB \
	"6bc3822a2aa7f4e6981d6538692b3cdf3e6df9eea6ed269eb41d93c22757b75a"
#define JS_RESP_STATIC_PUB \
	"31e0303fd6418d2f8c0e78b91f22e8caed0fbe48656dcf4767e4834f701b8f62"
#define JS_INIT_PAYLOAD \
	"0a24080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e1240" \
	"e292a4b36dcd264cb7933551567462bf4b6bdc79bcc37af23ea723110cf8cfde08000f9e95441ba4" \
	"fd4b82844305554004fc4be681ce33c277510b6332588c09220e120c2f79616d75782f312e302e30"
#define JS_RESP_PAYLOAD \
	"0a2508021221037777e994e452c21604f91de093ce415f5432f701dd8cd1a7a6fea0e630bfca9912" \
	"473045022100ffc20f2e34e85f2a7691b178cb57f6fcb4e32fe921d3378cb7446779bd76f1030220" \
	"2f67ecb5af4d71e93aa98e900452ce2358b2fbc1c39c8672b75e51fd159edfff220e120c2f79616d" \
	"75782f312e302e30"
#define JS_MSG1 \
	"0020ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944"
#define JS_MSG2 \
	"00e095ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f14480884381cbad1f276e" \
	"038c48378ffce2b65285e08d6b68aaa3629a5a8639392490e5b90b20f024c6abdc05d618c61c13a3" \
	"fe07127882e85ca62a9b83c1bda9b9bdc7a7149d7c6078fb1a0490d6dbe8474a021fdf6c134379a5" \
	"427982aa106b98620c06a2d50cc5ea74b7bd47b2ec3c13b59ccb5e1a40a24db2627764c9616f7eec" \
	"0b57fb0738ea502deaf6b79b7c555b9a04edc15036325653dacec5693754f002bb6c288063b5ce1c" \
	"217aedfc362ca9a9d107bc3928bf00b12a4e64d0f026da0a97be"
#define JS_MSG3 \
	"00b8c7195ffacac1307ff99046f219750fc47693e23c3cb08b89c2af808b444850a8240ef19607b0" \
	"f33b90f962e1f78d86ca14c3d6e0e8ecd41217ddfdf0afb41507a1be308a2142c5bd7aa453330567" \
	"7b3e694b63076f9d2df0fe4d73b419771080a6cf96b373850176596856cd9886b5ccf7b92fd0b13c" \
	"9d40153da17beeda35f1631e57da5fabbc42aaeea8ff1a68839842fe9190823c6eb044e1b00c760b" \
	"0081d2628ff15e062ef3b4f97135b576be2a9d7064a83d95625d"
#define JS_HANDSHAKE_HASH \
	"531c76ce518742031a9315a98f0619b4359db1b46f150583df0299103ee5c1d8"
#define JS_T_I2R \
	"001f1c40fc5d2d5855bb43723921f9f4f85c6432665fc29aab9d35e840a1c83ac0"
#define JS_T_R2I \
	"001fbd7220d73c95e87bbd6034557d5d8c2b44a2daaa3f73b633a12c8205cbae76"
#define JS_T_I2R_PLAIN "hello responder"
#define JS_T_R2I_PLAIN "hello initiator"

#endif
