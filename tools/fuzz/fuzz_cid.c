/*
 * libFuzzer target: CID and multihash parsing (net/kad/cid.c), which reads what a user types
 * on the command line and the provider keys remote peers send. The input is tried as text
 * (cut at the first NUL), as a binary CID and as a bare multihash. Whatever parses must print
 * and parse back to the same version, codec and multihash; every refusal must carry a
 * printable reason.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <kw/err.h>
#include <kw/net/cid.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char err[KW_CID_ERR_MAX];

static void check_reason(void)
{
	size_t i, n = strnlen(err, sizeof(err));

	if (n == 0 || n == sizeof(err))
		__builtin_trap();
	for (i = 0; i < n; i++)
		if ((unsigned char)err[i] < 0x20 || (unsigned char)err[i] > 0x7e)
			__builtin_trap();
}

static void same(const struct kw_cid *a, const struct kw_cid *b)
{
	if (a->version != b->version || a->codec != b->codec || a->mhlen != b->mhlen ||
	    memcmp(a->mh, b->mh, a->mhlen))
		__builtin_trap();
}

/* c must print, and the text must parse back to c. */
static void round_trip(const struct kw_cid *c)
{
	char text[KW_CID_TEXT_MAX];
	struct kw_cid back;
	int n;

	if (kw_multihash_check(c->mh, c->mhlen, NULL, 0) != 0)
		__builtin_trap();
	n = kw_cid_to_text(c, text, sizeof(text));
	if (n <= 0 || (size_t)n != strlen(text))
		__builtin_trap();
	if (kw_cid_from_text(text, &back, err, sizeof(err)) != 0)
		__builtin_trap();
	/* A bare multihash prints as base58btc and parses back as a bare multihash. */
	same(c, &back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[KW_CID_TEXT_MAX + 8];
	struct kw_cid c;
	size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;
	int r;

	memcpy(text, data, n);
	text[n] = '\0';
	err[0] = '\0';
	r = kw_cid_from_text(text, &c, err, sizeof(err));
	if (r == 0) {
		if (c.version == 1)
			round_trip(&c);
	} else if (r != -KW_EINVAL) {
		__builtin_trap();
	} else {
		check_reason();
	}

	err[0] = '\0';
	r = kw_cid_from_bytes(data, size, &c, err, sizeof(err));
	if (r == 0)
		round_trip(&c);
	else if (r != -KW_EINVAL)
		__builtin_trap();
	else
		check_reason();

	err[0] = '\0';
	r = kw_multihash_check(data, size, err, sizeof(err));
	if (r == 0) {
		char t[KW_CID_TEXT_MAX];
		struct kw_cid back;

		if (kw_cid_raw_text(data, size, t, sizeof(t)) <= 0 ||
		    kw_cid_from_text(t, &back, err, sizeof(err)) != 0 || back.mhlen != size ||
		    memcmp(back.mh, data, size) || back.codec != KW_CODEC_RAW)
			__builtin_trap();
	} else if (r != -KW_EINVAL) {
		__builtin_trap();
	} else {
		check_reason();
	}
	return 0;
}
