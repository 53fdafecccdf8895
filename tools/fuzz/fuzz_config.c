/* libFuzzer target: the runtime config parser (app/config.c) on arbitrary file bytes. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <kw/app.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kw_config c;
	char err[128];
	size_t i;

	kw_config_defaults(&c);
	if (kw_config_parse(&c, (const char *)data, size, err, sizeof(err)) == 0) {
		/* Whatever parsed must be well-formed: bounded strings, counts in range. */
		if (c.n_listen < 0 || c.n_listen > KW_CONFIG_LISTEN_MAX)
			__builtin_trap();
		if (memchr(c.data_dir, '\0', sizeof(c.data_dir)) == NULL || c.node.log_level > 4)
			__builtin_trap();
		for (i = 0; i < (size_t)c.n_listen; i++)
			if (memchr(c.listen[i], '\0', sizeof(c.listen[i])) == NULL)
				__builtin_trap();
		/* averaging: what app/avg_app.c relies on once the file parsed */
		if (memchr(c.averaging_prefix, '\0', sizeof(c.averaging_prefix)) == NULL ||
		    strchr(c.averaging_prefix, '.') || c.averaging_mode > 2)
			__builtin_trap();
		if (c.averaging_prefix[0] &&
		    (c.averaging_min_group_size > c.averaging_target_group_size ||
		     (!c.averaging_size && !c.averaging_tensor[0]) || !c.hivemind))
			__builtin_trap();
	} else {
		/* An error is terminated and printable: file bytes are escaped, never echoed raw. */
		if (memchr(err, '\0', sizeof(err)) == NULL)
			__builtin_trap();
		for (i = 0; err[i]; i++)
			if ((unsigned char)err[i] < 0x20 || (unsigned char)err[i] > 0x7e)
				__builtin_trap();
	}
	return 0;
}
