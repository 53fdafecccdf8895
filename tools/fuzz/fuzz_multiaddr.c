/*
 * libFuzzer target: multiaddr decoding (net/peer/multiaddr.c), binary and text. Whatever
 * decodes must print, re-parse and give the same bytes back; errors must leave a message.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <kw/net/multiaddr.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void round_trip(const struct kw_multiaddr *ma)
{
	struct kw_multiaddr back;
	struct kw_maddr_comp c;
	char txt[KW_MADDR_TEXT_MAX];
	unsigned i;

	if (kw_maddr_to_text(ma, txt, sizeof(txt)) != 0)
		__builtin_trap();
	if (kw_maddr_from_text(txt, &back, NULL, 0) != 0 || !kw_maddr_equal(ma, &back))
		__builtin_trap();
	for (i = 0; i < ma->n; i++)
		if (kw_maddr_component(ma, i, &c) != 0)
			__builtin_trap();
	if (kw_maddr_component(ma, ma->n, &c) == 0)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kw_multiaddr ma;
	char err[KW_MADDR_ERR_MAX];
	char text[KW_MADDR_TEXT_MAX + 8];
	int ret;

	err[0] = '\0';
	ret = kw_maddr_from_bytes(data, size, &ma, err, sizeof(err));
	if (ret == 0)
		round_trip(&ma);
	else if (err[0] == '\0' || !memchr(err, '\0', sizeof(err)))
		__builtin_trap();

	if (size < sizeof(text)) {
		memcpy(text, data, size);
		text[size] = '\0';
		err[0] = '\0';
		ret = kw_maddr_from_text(text, &ma, err, sizeof(err));
		if (ret == 0)
			round_trip(&ma);
		else if (err[0] == '\0')
			__builtin_trap();
	}
	return 0;
}
