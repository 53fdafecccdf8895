/*
 * `kwnode keygen` and `kwnode id`: create an identity key file and print peer IDs. These are
 * command-line front ends (they print and return exit codes: 0 ok, 1 failure, 2 usage);
 * the work is done by keyfile.c and key.c.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <kw/app.h>
#include <kw/err.h>
#include <kw/net/key.h>
#include <kw/net/keyfile.h>

int kw_cmd_keygen(int argc, char **argv);
int kw_cmd_id(int argc, char **argv);

static void keygen_usage(FILE *f)
{
	enum kw_key_type t;
	int bits;

	kw_keyfile_default_type(&t, &bits);
	fprintf(f,
		"usage: kwnode keygen [options]\n"
		"Creates a libp2p identity key (PrivateKey protobuf, mode 0600) and prints its peer ID.\n"
		"  -t, --type TYPE        ed25519 (default here: %s), secp256k1, ecdsa, rsa\n"
		"  -b, --bits N           RSA modulus size, 2048..8192 (default 2048)\n"
		"  -o, --out FILE         write FILE\n"
		"  -d, --data-dir DIR     write DIR/%s (default %s)\n"
		"  -f, --force            replace an existing key file (the old identity is lost)\n"
		"  -h, --help             this help\n"
		"ecdsa (P-256) identities cannot talk to js-libp2p peers.\n",
		kw_key_type_name(t), KW_KEYFILE_NAME, CONFIG_KW_DATA_DIR);
}

static int print_id(const struct kw_pubkey *pub, bool cid)
{
	struct kw_peer_id id;
	char txt[KW_PEER_ID_TEXT_MAX];
	int ret;

	ret = kw_peer_id_from_pubkey(pub, &id);
	if (ret == 0)
		ret = cid ? kw_peer_id_to_cid_text(&id, txt, sizeof(txt))
			  : kw_peer_id_to_text(&id, txt, sizeof(txt));
	if (ret < 0) {
		fprintf(stderr, "kwnode: cannot derive the peer ID: %s\n", kw_strerror(ret));
		return 1;
	}
	printf("%s\n", txt);
	return 0;
}

int kw_cmd_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "type", required_argument, NULL, 't' },
		{ "bits", required_argument, NULL, 'b' },
		{ "out", required_argument, NULL, 'o' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct kw_privkey key;  /* 6 KiB: keep it off the stack */
	char path[4096], err[KW_KEYFILE_ERR_MAX];
	const char *out = NULL, *dir = NULL;
	enum kw_key_type type;
	bool force = false;
	int bits = 0, c, ret;

	kw_keyfile_default_type(&type, &bits);
	optind = 1;
	while ((c = getopt_long(argc, argv, "t:b:o:d:fh", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (kw_key_type_from_name(optarg, &type) < 0) {
				fprintf(stderr, "kwnode keygen: unknown key type '%s'\n", optarg);
				return 2;
			}
			break;
		case 'b': {
			uint32_t b;

			if (kw_config_parse_u32(optarg, 2048, 8192, &b) < 0) {
				fprintf(stderr, "kwnode keygen: --bits must be 2048..8192\n");
				return 2;
			}
			bits = (int)b;
			break;
		}
		case 'o': out = optarg; break;
		case 'd': dir = optarg; break;
		case 'f': force = true; break;
		case 'h': keygen_usage(stdout); return 0;
		default: keygen_usage(stderr); return 2;
		}
	}
	if (optind < argc || (out && dir)) {
		fprintf(stderr, "kwnode keygen: %s\n", out && dir ? "--out and --data-dir exclude each other"
							: "unexpected argument");
		keygen_usage(stderr);
		return 2;
	}
	if (!kw_key_type_supported(type)) {
		fprintf(stderr, "kwnode keygen: %s keys are not built in (Kconfig KW_NET_KEY_*)\n",
			kw_key_type_name(type));
		return 1;
	}
	if (type != KW_KEY_RSA)
		bits = 0;
	else if (bits == 0)
		bits = 2048;
	if (!out) {
		if (!dir)
			dir = CONFIG_KW_DATA_DIR;
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			fprintf(stderr, "kwnode keygen: cannot create %s: %s\n", dir, strerror(errno));
			return 1;
		}
		if (kw_keyfile_path(dir, path, sizeof(path)) < 0) {
			fprintf(stderr, "kwnode keygen: %s: path too long\n", dir);
			return 1;
		}
		out = path;
	}
	if (!force && access(out, F_OK) == 0) {
		fprintf(stderr, "kwnode keygen: %s already exists; not replacing it (use --force to "
			"discard that identity)\n", out);
		return 1;
	}
	if (type == KW_KEY_RSA)
		fprintf(stderr, "kwnode keygen: generating a %d-bit RSA key (this takes a while)\n",
			bits);
	ret = kw_key_generate(type, bits, &key);
	if (ret < 0) {
		fprintf(stderr, "kwnode keygen: key generation failed: %s\n", kw_strerror(ret));
		return 1;
	}
	ret = kw_keyfile_save(out, &key, force, err, sizeof(err));
	if (ret < 0) {
		kw_privkey_wipe(&key);
		fprintf(stderr, "kwnode keygen: %s\n", err);
		return 1;
	}
	fprintf(stderr, "kwnode keygen: wrote %s (%s)\n", out, kw_key_type_name(type));
	ret = print_id(&key.pub, false);
	kw_privkey_wipe(&key);
	return ret;
}

static void id_usage(FILE *f)
{
	fprintf(f,
		"usage: kwnode id [options]\n"
		"Prints the peer ID of the node's identity key; creates nothing.\n"
		"  -d, --data-dir DIR     read DIR/%s (default %s)\n"
		"  -k, --key FILE         read FILE instead\n"
		"      --cid              print the CIDv1 form (bafz...) instead of base58btc\n"
		"  -h, --help             this help\n",
		KW_KEYFILE_NAME, CONFIG_KW_DATA_DIR);
}

int kw_cmd_id(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "data-dir", required_argument, NULL, 'd' },
		{ "key", required_argument, NULL, 'k' },
		{ "cid", no_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct kw_privkey key;
	char path[4096], err[KW_KEYFILE_ERR_MAX];
	const char *dir = CONFIG_KW_DATA_DIR, *file = NULL;
	bool cid = false;
	int c, ret;

	optind = 1;
	while ((c = getopt_long(argc, argv, "d:k:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'k': file = optarg; break;
		case 'C': cid = true; break;
		case 'h': id_usage(stdout); return 0;
		default: id_usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "kwnode id: unexpected argument '%s'\n", argv[optind]);
		id_usage(stderr);
		return 2;
	}
	if (!file) {
		if (kw_keyfile_path(dir, path, sizeof(path)) < 0) {
			fprintf(stderr, "kwnode id: %s: path too long\n", dir);
			return 1;
		}
		file = path;
	}
	ret = kw_keyfile_load(file, &key, err, sizeof(err));
	if (ret == -KW_ENOENT) {
		fprintf(stderr, "kwnode id: no identity key at %s (create one with 'kwnode keygen' "
			"or by starting the node once)\n", file);
		return 1;
	}
	if (ret < 0) {
		fprintf(stderr, "kwnode id: %s\n", err);
		return 1;
	}
	ret = print_id(&key.pub, cid);
	kw_privkey_wipe(&key);
	return ret;
}
