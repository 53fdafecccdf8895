/*
 * libFuzzer target: the text form of Hivemind DHT values (app/hm_text.c). First byte 0: the
 * rest is msgpack bytes a DHT peer sent (kwnode hivemind get prints them); whatever prints
 * must parse back (kw_hm_text_to_mp) and print to the same text, unless it holds a form the
 * parser does not read back (ext, NaN, Infinity). Otherwise the rest is text a user typed:
 * what parses is one well-formed msgpack value that prints. Errors must be the documented
 * codes. The peer's bytes also go through the JSON writer (kw_hm_mp_to_json): it prints
 * exactly what the reader takes, with balanced brackets and no raw control byte, its
 * counting pass agrees with what it wrote, and the JSON parses back (kw_hm_text_to_mp reads
 * the "$" objects) to a value that prints the same JSON. Built against libkw.a, so the app's hm_text.o is linked in.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <kw/err.h>
#include <kw/net/msgpack.h>

#include "../../app/hivemind.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_json(const uint8_t *mp, size_t len)
{
	static char json[1 << 17];
	int r = kw_hm_mp_to_json(mp, len, json, sizeof(json)), depth = 0;
	bool in_str = false;

	if (r < 0 && r != -KW_EBADMSG && r != -KW_ELIMIT && r != -KW_ENOSPC && r != -KW_ENOENT)
		__builtin_trap();
	if (kw_mp_validate(mp, len, 0, NULL) != 0 && r >= 0)
		__builtin_trap();          /* printed something the reader refuses */
	if (r < 0)
		return;
	if ((size_t)r != strlen(json) || kw_hm_mp_json_emit(mp, len, NULL, NULL) != r)
		__builtin_trap();
	for (int i = 0; i < r; i++) {
		char c = json[i];

		if ((unsigned char)c < 0x20 || c == 0x7f)
			__builtin_trap();
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = false;
		} else if (c == '"') {
			in_str = true;
		} else if (c == '[' || c == '{') {
			depth++;
		} else if ((c == ']' || c == '}') && --depth < 0) {
			__builtin_trap();
		}
	}
	if (in_str || depth)
		__builtin_trap();
	/* typed back as a VALUE it is the same value: it prints the same JSON again */
	{
		static uint8_t mp2[1 << 17];
		static char json2[1 << 17];
		long n = kw_hm_text_to_mp(json, mp2, sizeof(mp2), NULL, 0);

		if (n == -KW_EINVAL && r > 2000)
			return;            /* a string or bytes longer than the parser holds */
		if (n < 0 || kw_hm_mp_to_json(mp2, (size_t)n, json2, sizeof(json2)) != r ||
		    strcmp(json, json2))
			__builtin_trap();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char text[65536], text2[65536], in[8192];
	static uint8_t mp[16384];
	long n;
	int t, t2;

	if (size < 1 || size > sizeof(in))
		return 0;
	if (data[0] == 0) {
		check_json(data + 1, size - 1);
		t = kw_hm_mp_to_text(data + 1, size - 1, text, sizeof(text));
		if (t < 0 && t != -KW_EBADMSG && t != -KW_ELIMIT && t != -KW_ENOSPC &&
		    t != -KW_ENOENT)
			__builtin_trap();
		if (t < 0 || strstr(text, "ext(") || strstr(text, "NaN") || strstr(text, "Infinity"))
			return 0;
		n = kw_hm_text_to_mp(text, mp, sizeof(mp), NULL, 0);
		if (n == -KW_EINVAL && strlen(text) > 2000)
			return 0;              /* a string or bytes longer than the parser holds */
		if (n < 0)
			__builtin_trap();
		t2 = kw_hm_mp_to_text(mp, (size_t)n, text2, sizeof(text2));
		if (t2 != t || strcmp(text, text2))
			__builtin_trap();
		return 0;
	}
	memcpy(in, data + 1, size - 1);
	in[size - 1] = '\0';
	n = kw_hm_text_to_mp(in, mp, sizeof(mp), text, 128);
	if (n < 0 && n != -KW_EINVAL && n != -KW_ENOSPC)
		__builtin_trap();
	if (n < 0)
		return 0;
	if (kw_mp_validate(mp, (size_t)n, 0, NULL) != 0)
		__builtin_trap();
	t = kw_hm_mp_to_text(mp, (size_t)n, text, sizeof(text));
	if (t < 0 && t != -KW_ENOSPC && t != -KW_ELIMIT)
		__builtin_trap();
	return 0;
}
