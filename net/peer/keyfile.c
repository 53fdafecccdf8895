/* The identity key file: see include/kw/net/keyfile.h for the rules this enforces. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/log.h>
#include <kw/net/keyfile.h>

int kw_keyfile_path(const char *data_dir, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/%s", data_dir, KW_KEYFILE_NAME);

	return (n < 0 || (size_t)n >= cap) ? -KW_EINVAL : 0;
}

void kw_keyfile_default_type(enum kw_key_type *type, int *bits)
{
	*type = KW_KEY_ED25519;
	*bits = 0;
#if defined(CONFIG_KW_NET_KEY_DEFAULT_SECP256K1)
	*type = KW_KEY_SECP256K1;
#elif defined(CONFIG_KW_NET_KEY_DEFAULT_RSA)
	*type = KW_KEY_RSA;
	*bits = CONFIG_KW_NET_KEY_RSA_BITS;
#endif
}

static int read_all(int fd, uint8_t *buf, size_t cap, size_t *len)
{
	size_t o = 0;

	while (o < cap) {
		ssize_t n = read(fd, buf + o, cap - o);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		o += (size_t)n;
	}
	*len = o;
	return 0;
}

int kw_keyfile_load(const char *path, struct kw_privkey *out, char *err, size_t errcap)
{
	static const char *const what[] = { "rsa", "ed25519", "secp256k1", "ecdsa" };
	uint8_t buf[KW_KEYFILE_MAX_BYTES + 1], enc[KW_KEY_PB_MAX];
	size_t len = 0, elen;
	struct stat st;
	int fd, ret;

	memset(out, 0, sizeof(*out));
	/* O_NONBLOCK: a FIFO must not block open() waiting for a writer (start-up would hang with
	 * SIGTERM already blocked); regular files ignore the flag. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		ret = -errno;
		return kw_errf(ret, err, errcap, "%s: %s", path, kw_strerror(ret));
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		close(fd);
		return kw_errf(ret, err, errcap, "%s: %s", path, kw_strerror(ret));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return kw_errf(-KW_ECORRUPT, err, errcap,
			       "%s: not a regular file (a FIFO, device or directory cannot hold a key)",
			       path);
	}
	/* A private key others can read may already be someone else's: refuse, like ssh. */
	if (st.st_mode & 077) {
		close(fd);
		return kw_errf(-KW_EACCES, err, errcap,
			       "%s: permissions %04o are too open (the key must be private: chmod 600)",
			       path, (unsigned)(st.st_mode & 07777));
	}
	ret = read_all(fd, buf, sizeof(buf), &len);
	close(fd);
	if (ret < 0)
		return kw_errf(ret, err, errcap, "%s: %s", path, kw_strerror(ret));
	if (len == 0) {
		ret = kw_errf(-KW_ECORRUPT, err, errcap, "%s: empty (truncated?) key file", path);
		goto out;
	}
	if (len > KW_KEYFILE_MAX_BYTES) {
		ret = kw_errf(-KW_ECORRUPT, err, errcap, "%s: larger than %d bytes: not a key file",
			      path, KW_KEYFILE_MAX_BYTES);
		goto out;
	}
	ret = kw_privkey_decode(buf, len, out);
	if (ret == -KW_EKEYTYPE) {
		/* Known libp2p type this build leaves out, or a number libp2p never assigned? */
		if (len > 2 && buf[0] == 0x08 && buf[1] < KW_ARRAY_SIZE(what))
			ret = kw_errf(-KW_EKEYTYPE, err, errcap,
				      "%s: %s keys are not built in (Kconfig KW_NET_KEY_*)", path,
				      what[buf[1]]);
		else
			ret = kw_errf(-KW_ECORRUPT, err, errcap, "%s: unknown key type", path);
		goto out;
	}
	if (ret < 0) {
		ret = kw_errf(-KW_ECORRUPT, err, errcap,
			      "%s: not a valid libp2p PrivateKey (%s): refusing to use or replace it",
			      path, ret == -KW_EBADMSG ? "truncated or not a key protobuf"
			      : "invalid key material");
		goto out;
	}
	/* Byte-exact canonical form: catches reordered/duplicated fields and unknown extras. */
	ret = kw_privkey_encode(out, enc, sizeof(enc), &elen);
	if (ret < 0 || elen != len || memcmp(enc, buf, len) != 0) {
		ret = kw_errf(-KW_ECORRUPT, err, errcap,
			      "%s: trailing or non-canonical bytes after the key: refusing to use it",
			      path);
		goto out;
	}
	ret = 0;
out:
	sodium_memzero(buf, sizeof(buf));
	sodium_memzero(enc, sizeof(enc));
	if (ret < 0)
		kw_privkey_wipe(out);
	return ret;
}

static int write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The directory part of path ("." when there is none). */
static int dir_of(const char *path, char *dir, size_t cap)
{
	const char *slash = strrchr(path, '/');
	size_t n;

	if (!slash) {
		if (cap < 2)
			return -KW_EINVAL;
		strcpy(dir, ".");
		return 0;
	}
	n = slash == path ? 1 : (size_t)(slash - path);
	if (n >= cap)
		return -KW_EINVAL;
	memcpy(dir, path, n);
	dir[n] = '\0';
	return 0;
}

/* Moves tmp to path; without overwrite, atomically fails with -KW_EEXIST if path exists. */
static int install(const char *tmp, const char *path, bool overwrite)
{
	if (overwrite)
		return rename(tmp, path) == 0 ? 0 : -errno;
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	/* File systems without RENAME_NOREPLACE: link() also refuses to replace. */
	if (link(tmp, path) < 0)
		return -errno;
	unlink(tmp);
	return 0;
}

int kw_keyfile_save(const char *path, const struct kw_privkey *k, bool overwrite, char *err,
		    size_t errcap)
{
	uint8_t enc[KW_KEY_PB_MAX];
	char tmp[4096], dir[4096];
	size_t len;
	int fd, dfd, ret, n;

	ret = kw_privkey_encode(k, enc, sizeof(enc), &len);
	if (ret < 0)
		return kw_errf(ret, err, errcap, "%s: cannot encode key: %s", path, kw_strerror(ret));
	n = snprintf(tmp, sizeof(tmp), "%s.tmpXXXXXX", path);
	if (n < 0 || (size_t)n >= sizeof(tmp) || dir_of(path, dir, sizeof(dir)) < 0)
		return kw_errf(-KW_EINVAL, err, errcap, "%s: path too long", path);
	if (!overwrite && access(path, F_OK) == 0)
		return kw_errf(-KW_EEXIST, err, errcap, "%s: already exists (not replaced)", path);
	/* mkostemp creates the file 0600 whatever the umask. */
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		sodium_memzero(enc, sizeof(enc));
		return kw_errf(ret, err, errcap, "%s: cannot create a temporary file: %s", path,
			       kw_strerror(ret));
	}
	ret = write_all(fd, enc, len);
	sodium_memzero(enc, sizeof(enc));
	if (ret == 0 && fchmod(fd, 0600) < 0)
		ret = -errno;
	if (ret == 0 && fsync(fd) < 0)
		ret = -errno;
	if (close(fd) < 0 && ret == 0)
		ret = -errno;
	if (ret == 0)
		ret = install(tmp, path, overwrite);
	if (ret < 0) {
		unlink(tmp);
		if (ret == -KW_EEXIST)
			return kw_errf(ret, err, errcap, "%s: already exists (not replaced)", path);
		return kw_errf(ret, err, errcap, "%s: cannot write key: %s", path, kw_strerror(ret));
	}
	/* The rename is durable only once the directory entry is. */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		if (fsync(dfd) < 0)
			ret = -errno;
		close(dfd);
	} else {
		ret = -errno;
	}
	if (ret < 0)
		return kw_errf(ret, err, errcap, "%s: written, but syncing %s failed: %s", path, dir,
			       kw_strerror(ret));
	return 0;
}

/* "identity.key.tmp" followed by exactly the six random characters mkostemp writes. */
static bool is_tmp_name(const char *n)
{
	static const char prefix[] = KW_KEYFILE_NAME ".tmp";
	size_t i, plen = sizeof(prefix) - 1;

	if (strncmp(n, prefix, plen) != 0 || strlen(n) != plen + 6)
		return false;
	for (i = plen; i < plen + 6; i++) {
		char c = n[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
			return false;
	}
	return true;
}

int kw_keyfile_clean_tmp(const char *data_dir)
{
	uint8_t buf[4096] __attribute__((aligned(8)));
	struct timespec now;
	int dfd, removed = 0;
	ssize_t n;

	/* getdents64 on a stack buffer: opendir would allocate. */
	dfd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return errno == ENOENT ? 0 : -errno;
	clock_gettime(CLOCK_REALTIME, &now);
	while ((n = getdents64(dfd, buf, sizeof(buf))) > 0) {
		for (ssize_t o = 0; o < n;) {
			struct dirent64 *e = (struct dirent64 *)(void *)(buf + o);
			struct stat st;

			o += e->d_reclen;
			if (!is_tmp_name(e->d_name) ||
			    fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			/* Only our own regular files, and not one a concurrent save is writing. */
			if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
			    now.tv_sec - st.st_mtim.tv_sec < KW_KEYFILE_TMP_MIN_AGE_S)
				continue;
			if (unlinkat(dfd, e->d_name, 0) == 0) {
				removed++;
				KW_LOG_WRN(peer, "removed %s/%s: a private key left behind by an "
					   "interrupted key save (the identity key itself is untouched)",
					   data_dir, e->d_name);
			} else {
				KW_LOG_WRN(peer, "cannot remove the leftover temporary key %s/%s: %s",
					   data_dir, e->d_name, kw_strerror(-errno));
			}
		}
	}
	n = n < 0 ? -errno : 0;
	close(dfd);
	return n < 0 ? (int)n : removed;
}

int kw_keyfile_load_or_create(const char *data_dir, enum kw_key_type type, int bits,
			      struct kw_privkey *out, bool *created, char *err, size_t errcap)
{
	char path[4096];
	int ret;

	*created = false;
	if (kw_keyfile_path(data_dir, path, sizeof(path)) < 0)
		return kw_errf(-KW_EINVAL, err, errcap, "%s: path too long", data_dir);
	(void)kw_keyfile_clean_tmp(data_dir);  /* best effort: a failure here changes nothing */
	ret = kw_keyfile_load(path, out, err, errcap);
	if (ret != -KW_ENOENT)
		return ret;  /* loaded, or a problem the owner must look at */
	ret = kw_key_generate(type, bits, out);
	if (ret < 0)
		return kw_errf(ret, err, errcap, "%s: cannot generate a %s key: %s", path,
			       kw_key_type_name(type), kw_strerror(ret));
	ret = kw_keyfile_save(path, out, false, err, errcap);
	if (ret == -KW_EEXIST) {
		/* Another process created it meanwhile: theirs is the identity now. */
		kw_privkey_wipe(out);
		return kw_keyfile_load(path, out, err, errcap);
	}
	if (ret < 0) {
		kw_privkey_wipe(out);
		return ret;
	}
	*created = true;
	KW_LOG_INF(peer, "created a new %s identity key in %s", kw_key_type_name(type), path);
	return 0;
}
