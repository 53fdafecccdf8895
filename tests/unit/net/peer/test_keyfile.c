/*
 * net/peer/keyfile.c and cli.c: the identity key file is created once, reloaded as the same
 * identity, and every damaged or foreign file is an error that leaves the file untouched.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "hex.h"
#include "vectors.h"
#include <kw/err.h>
#include <kw/net/keyfile.h>

int kw_cmd_keygen(int argc, char **argv);
int kw_cmd_id(int argc, char **argv);

struct fx {
	char dir[64];
	char path[128];
	char err[KW_KEYFILE_ERR_MAX];
	struct kw_privkey key;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/kw_keyfile_XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/%s", f->dir, KW_KEYFILE_NAME);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	struct dirent *e;
	DIR *d = opendir(f->dir);
	char p[512];

	while (d && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", f->dir, e->d_name);
		if (unlink(p) < 0)
			rmdir(p);
	}
	if (d)
		closedir(d);
	rmdir(f->dir);
	free(f);
	return 0;
}

static int count_entries(const char *dir)
{
	struct dirent *e;
	DIR *d = opendir(dir);
	int n = 0;

	while (d && (e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	if (d)
		closedir(d);
	return n;
}

static void write_file(const char *path, const void *buf, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	fchmod(fd, mode);
	close(fd);
}

static size_t read_file(const char *path, uint8_t *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, cap);
	close(fd);
	assert_true(n >= 0);
	return (size_t)n;
}

/* Writes content, loads, expects want, and checks the file kept every byte. */
static void expect_refused(struct fx *f, const void *content, size_t len, mode_t mode, int want)
{
	uint8_t after[KW_KEYFILE_MAX_BYTES + 16];
	bool created = true;

	write_file(f->path, content, len, mode);
	f->err[0] = '\0';
	assert_int_equal(kw_keyfile_load(f->path, &f->key, f->err, sizeof(f->err)), want);
	assert_non_null(strstr(f->err, f->path));
	/* The start-up path must not "fix" it with a new identity either. */
	assert_int_equal(kw_keyfile_load_or_create(f->dir, KW_KEY_ED25519, 0, &f->key, &created,
						   f->err, sizeof(f->err)), want);
	assert_false(created);
	assert_int_equal(read_file(f->path, after, sizeof(after)), len);
	assert_memory_equal(after, content, len);
	assert_int_equal(count_entries(f->dir), 1);
}

static void test_keyfile_first_start_creates_then_reloads_same_identity(void **state)
{
	struct fx *f = *state;
	struct kw_peer_id a, b;
	struct stat st;
	bool created = false;

	assert_int_equal(kw_keyfile_load_or_create(f->dir, KW_KEY_ED25519, 0, &f->key, &created,
						   f->err, sizeof(f->err)), 0);
	assert_true(created);
	assert_int_equal(kw_peer_id_from_pubkey(&f->key.pub, &a), 0);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(kw_keyfile_load_or_create(f->dir, KW_KEY_ED25519, 0, &f->key, &created,
						   f->err, sizeof(f->err)), 0);
	assert_false(created);
	assert_int_equal(kw_peer_id_from_pubkey(&f->key.pub, &b), 0);
	assert_true(kw_peer_id_equal(&a, &b));
	assert_int_equal(count_entries(f->dir), 1);  /* no temp files left behind */
}

static void test_keyfile_holds_the_libp2p_private_key_protobuf(void **state)
{
	struct fx *f = *state;
	uint8_t want[128], got[256];
	int n = test_unhex(ED25519_PRIV_PB, want, sizeof(want));

	assert_int_equal(kw_privkey_decode(want, (size_t)n, &f->key), 0);
	assert_int_equal(kw_keyfile_save(f->path, &f->key, false, f->err, sizeof(f->err)), 0);
	assert_int_equal(read_file(f->path, got, sizeof(got)), n);
	assert_memory_equal(got, want, (size_t)n);
}

static void test_keyfile_truncated_file_is_an_error_and_untouched(void **state)
{
	struct fx *f = *state;
	uint8_t pb[128];
	int n = test_unhex(ED25519_PRIV_PB, pb, sizeof(pb));

	expect_refused(f, pb, (size_t)n - 1, 0600, -KW_ECORRUPT);
	expect_refused(f, pb, 2, 0600, -KW_ECORRUPT);
}

static void test_keyfile_empty_file_is_an_error(void **state)
{
	expect_refused(*state, "", 0, 0600, -KW_ECORRUPT);
}

static void test_keyfile_foreign_file_is_an_error(void **state)
{
	static const char pem[] = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n";

	expect_refused(*state, pem, sizeof(pem) - 1, 0600, -KW_ECORRUPT);
}

static void test_keyfile_unknown_key_type_is_an_error(void **state)
{
	uint8_t pb[128];
	int n = test_unhex(ED25519_PRIV_PB, pb, sizeof(pb));

	pb[1] = 7;
	expect_refused(*state, pb, (size_t)n, 0600, -KW_ECORRUPT);
}

static void test_keyfile_trailing_or_reordered_bytes_are_an_error(void **state)
{
	uint8_t pb[160], re[160];
	int n = test_unhex(ED25519_PRIV_PB, pb, sizeof(pb));

	pb[n] = 0x00;
	expect_refused(*state, pb, (size_t)n + 1, 0600, -KW_ECORRUPT);
	/* Data field first, then Type: the same key, but not the canonical encoding. */
	memcpy(re, pb + 2, (size_t)n - 2);
	memcpy(re + n - 2, pb, 2);
	expect_refused(*state, re, (size_t)n, 0600, -KW_ECORRUPT);
}

static void test_keyfile_bad_key_material_is_an_error(void **state)
{
	uint8_t pb[128];
	int n = test_unhex(ED25519_PRIV_PB, pb, sizeof(pb));

	pb[n - 1] ^= 1;  /* public half no longer matches the seed */
	expect_refused(*state, pb, (size_t)n, 0600, -KW_ECORRUPT);
}

static void test_keyfile_group_readable_file_is_refused(void **state)
{
	uint8_t pb[128];
	int n = test_unhex(ED25519_PRIV_PB, pb, sizeof(pb));

	expect_refused(*state, pb, (size_t)n, 0640, -KW_EACCES);
}

static void test_keyfile_oversized_file_is_an_error(void **state)
{
	static uint8_t big[KW_KEYFILE_MAX_BYTES + 1];

	memset(big, 0x08, sizeof(big));
	expect_refused(*state, big, sizeof(big), 0600, -KW_ECORRUPT);
}

static void test_keyfile_directory_in_its_place_is_an_error(void **state)
{
	struct fx *f = *state;
	bool created;

	assert_int_equal(mkdir(f->path, 0700), 0);
	assert_int_equal(kw_keyfile_load_or_create(f->dir, KW_KEY_ED25519, 0, &f->key, &created,
						   f->err, sizeof(f->err)), -KW_ECORRUPT);
	assert_false(created);
}

static void test_keyfile_save_never_replaces_without_overwrite(void **state)
{
	struct fx *f = *state;
	struct kw_privkey other;
	struct kw_peer_id a, b;

	assert_int_equal(kw_key_generate(KW_KEY_ED25519, 0, &f->key), 0);
	assert_int_equal(kw_key_generate(KW_KEY_ED25519, 0, &other), 0);
	assert_int_equal(kw_keyfile_save(f->path, &f->key, false, f->err, sizeof(f->err)), 0);
	assert_int_equal(kw_keyfile_save(f->path, &other, false, f->err, sizeof(f->err)),
			 -KW_EEXIST);
	assert_int_equal(kw_keyfile_load(f->path, &other, NULL, 0), 0);
	kw_peer_id_from_pubkey(&f->key.pub, &a);
	kw_peer_id_from_pubkey(&other.pub, &b);
	assert_true(kw_peer_id_equal(&a, &b));
	/* Explicit overwrite replaces. */
	assert_int_equal(kw_key_generate(KW_KEY_ED25519, 0, &other), 0);
	assert_int_equal(kw_keyfile_save(f->path, &other, true, f->err, sizeof(f->err)), 0);
	assert_int_equal(kw_keyfile_load(f->path, &f->key, NULL, 0), 0);
	assert_true(kw_pubkey_equal(&f->key.pub, &other.pub));
	assert_int_equal(count_entries(f->dir), 1);
}

static void test_keyfile_save_into_missing_directory_fails_cleanly(void **state)
{
	struct fx *f = *state;
	char p[200];

	snprintf(p, sizeof(p), "%s/nope/%s", f->dir, KW_KEYFILE_NAME);
	assert_int_equal(kw_key_generate(KW_KEY_ED25519, 0, &f->key), 0);
	assert_int_equal(kw_keyfile_save(p, &f->key, false, f->err, sizeof(f->err)), -KW_ENOENT);
	assert_non_null(strstr(f->err, p));
	assert_int_equal(count_entries(f->dir), 0);
}

static void test_keyfile_missing_file_is_enoent(void **state)
{
	struct fx *f = *state;

	assert_int_equal(kw_keyfile_load(f->path, &f->key, f->err, sizeof(f->err)), -KW_ENOENT);
}

static void test_keyfile_loads_every_key_type(void **state)
{
	struct fx *f = *state;
	static const enum kw_key_type types[] = { KW_KEY_ED25519, KW_KEY_SECP256K1, KW_KEY_ECDSA };
	struct kw_privkey back;

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		if (!kw_key_type_supported(types[i]))
			continue;
		assert_int_equal(kw_key_generate(types[i], 0, &f->key), 0);
		assert_int_equal(kw_keyfile_save(f->path, &f->key, true, f->err, sizeof(f->err)), 0);
		assert_int_equal(kw_keyfile_load(f->path, &back, f->err, sizeof(f->err)), 0);
		assert_int_equal(back.type, types[i]);
		assert_true(kw_pubkey_equal(&back.pub, &f->key.pub));
	}
}

/* ---- CLI ------------------------------------------------------------------------------ */

static int run(int (*fn)(int, char **), const char *a0, const char *a1, const char *a2,
	       const char *a3, const char *a4)
{
	char *argv[6] = { (char *)a0, (char *)a1, (char *)a2, (char *)a3, (char *)a4, NULL };
	int argc = 0;

	while (argc < 5 && argv[argc])
		argc++;
	return fn(argc, argv);
}

static void test_cli_keygen_creates_once_and_id_reads_it(void **state)
{
	struct fx *f = *state;
	uint8_t first[128], second[128];
	size_t n1, n2;

	assert_int_equal(run(kw_cmd_id, "id", "--data-dir", f->dir, NULL, NULL), 1);
	assert_int_equal(count_entries(f->dir), 0);  /* id creates nothing */
	assert_int_equal(run(kw_cmd_keygen, "keygen", "--data-dir", f->dir, NULL, NULL), 0);
	n1 = read_file(f->path, first, sizeof(first));
	assert_int_equal(run(kw_cmd_keygen, "keygen", "--data-dir", f->dir, NULL, NULL), 1);
	n2 = read_file(f->path, second, sizeof(second));
	assert_int_equal(n1, n2);
	assert_memory_equal(first, second, n1);
	assert_int_equal(run(kw_cmd_id, "id", "--data-dir", f->dir, NULL, NULL), 0);
	assert_int_equal(run(kw_cmd_id, "id", "--data-dir", f->dir, "--cid", NULL), 0);
	assert_int_equal(run(kw_cmd_keygen, "keygen", "--data-dir", f->dir, "--force", NULL), 0);
	n2 = read_file(f->path, second, sizeof(second));
	assert_false(n1 == n2 && memcmp(first, second, n1) == 0);
}

static void test_cli_keygen_writes_requested_type_to_out_file(void **state)
{
	struct fx *f = *state;
	char p[200];

	snprintf(p, sizeof(p), "%s/s.key", f->dir);
	if (!kw_key_type_supported(KW_KEY_SECP256K1)) {
		/* Left out by Kconfig: a clear failure, and no file. */
		assert_int_equal(run(kw_cmd_keygen, "keygen", "--type", "secp256k1", "--out", p), 1);
		assert_int_equal(count_entries(f->dir), 0);
		return;
	}
	assert_int_equal(run(kw_cmd_keygen, "keygen", "--type", "secp256k1", "--out", p), 0);
	assert_int_equal(kw_keyfile_load(p, &f->key, NULL, 0), 0);
	assert_int_equal(f->key.type, KW_KEY_SECP256K1);
	assert_int_equal(run(kw_cmd_id, "id", "--key", p, NULL, NULL), 0);
}

static void test_cli_rejects_bad_usage(void **state)
{
	struct fx *f = *state;

	assert_int_equal(run(kw_cmd_keygen, "keygen", "--help", NULL, NULL, NULL), 0);
	assert_int_equal(run(kw_cmd_id, "id", "--help", NULL, NULL, NULL), 0);
	assert_int_equal(run(kw_cmd_keygen, "keygen", "--type", "dsa", NULL, NULL), 2);
	assert_int_equal(run(kw_cmd_keygen, "keygen", "--bits", "1024", NULL, NULL), 2);
	assert_int_equal(run(kw_cmd_keygen, "keygen", "--out", "x", "--data-dir", f->dir), 2);
	assert_int_equal(run(kw_cmd_id, "id", "extra", NULL, NULL, NULL), 2);
	assert_int_equal(count_entries(f->dir), 0);
}

static void test_keyfile_fifo_is_refused_without_blocking(void **state)
{
	struct fx *f = *state;
	bool created = true;

	assert_int_equal(mkfifo(f->path, 0600), 0);
	alarm(5);  /* the old open() waited for a writer for ever: die instead of hanging */
	assert_int_equal(kw_keyfile_load(f->path, &f->key, f->err, sizeof(f->err)), -KW_ECORRUPT);
	assert_non_null(strstr(f->err, "not a regular file"));
	assert_int_equal(kw_keyfile_load_or_create(f->dir, KW_KEY_ED25519, 0, &f->key, &created,
						   f->err, sizeof(f->err)), -KW_ECORRUPT);
	alarm(0);
	assert_false(created);
}

/* Creates dir/name as a 0600 file whose mtime is age_s seconds in the past. */
static void make_aged(const struct fx *f, const char *name, int age_s)
{
	char p[256];
	struct timespec ts[2];

	snprintf(p, sizeof(p), "%s/%s", f->dir, name);
	write_file(p, "secret", 6, 0600);
	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[0].tv_sec -= age_s;
	ts[1] = ts[0];
	assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
}

static bool exists_in(const struct fx *f, const char *name)
{
	char p[256];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", f->dir, name);
	return lstat(p, &st) == 0;
}

static void test_keyfile_start_removes_leftover_temp_keys_only(void **state)
{
	struct fx *f = *state;
	static const char *const kept[] = {
		"identity.key.tmpABC",      /* not mkostemp's 6 characters */
		"identity.key.tmpABCDEFG",
		"identity.key.tmpAB_12Z",
		"identity.key.tmpFRESH1",   /* young: a save may be writing it right now */
		"other.key.tmpAb12Z9",
	};
	char target[256], link[256];
	bool created = false;

	make_aged(f, "identity.key.tmpAb12Z9", 3600);
	make_aged(f, "identity.key.tmp0zZ9aA", 3600);
	for (size_t i = 0; i < 5; i++)
		make_aged(f, kept[i], i == 3 ? 0 : 3600);
	/* A symlink with the exact name: never followed or removed. */
	make_aged(f, "target", 3600);
	snprintf(target, sizeof(target), "%s/target", f->dir);
	snprintf(link, sizeof(link), "%s/identity.key.tmpLINK00", f->dir);
	assert_int_equal(symlink(target, link), 0);

	assert_int_equal(kw_keyfile_load_or_create(f->dir, KW_KEY_ED25519, 0, &f->key, &created,
						   f->err, sizeof(f->err)), 0);
	assert_true(created);
	assert_false(exists_in(f, "identity.key.tmpAb12Z9"));
	assert_false(exists_in(f, "identity.key.tmp0zZ9aA"));
	for (size_t i = 0; i < 5; i++)
		assert_true(exists_in(f, kept[i]));
	assert_true(exists_in(f, "identity.key.tmpLINK00"));
	assert_true(exists_in(f, "target"));
	/* Nothing left to clean on the next start; a missing directory is not an error. */
	assert_int_equal(kw_keyfile_clean_tmp(f->dir), 0);
	assert_int_equal(kw_keyfile_clean_tmp("/nonexistent/kw_keyfile_dir"), 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_keyfile_first_start_creates_then_reloads_same_identity),
		T(test_keyfile_holds_the_libp2p_private_key_protobuf),
		T(test_keyfile_truncated_file_is_an_error_and_untouched),
		T(test_keyfile_empty_file_is_an_error),
		T(test_keyfile_foreign_file_is_an_error),
		T(test_keyfile_unknown_key_type_is_an_error),
		T(test_keyfile_trailing_or_reordered_bytes_are_an_error),
		T(test_keyfile_bad_key_material_is_an_error),
		T(test_keyfile_group_readable_file_is_refused),
		T(test_keyfile_oversized_file_is_an_error),
		T(test_keyfile_directory_in_its_place_is_an_error),
		T(test_keyfile_fifo_is_refused_without_blocking),
		T(test_keyfile_start_removes_leftover_temp_keys_only),
		T(test_keyfile_save_never_replaces_without_overwrite),
		T(test_keyfile_save_into_missing_directory_fails_cleanly),
		T(test_keyfile_missing_file_is_enoent),
		T(test_keyfile_loads_every_key_type),
		T(test_cli_keygen_creates_once_and_id_reads_it),
		T(test_cli_keygen_writes_requested_type_to_out_file),
		T(test_cli_rejects_bad_usage),
	};
	return cmocka_run_group_tests_name("net/peer/keyfile", tests, NULL, NULL);
}
