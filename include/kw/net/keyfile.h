/*
 * The node's identity key on disk: <data_dir>/identity.key holding the libp2p PrivateKey
 * protobuf (the format go/js/rust libp2p tools read and write), mode 0600.
 *
 * Rules, because a node that silently changes identity loses its place in every peer's
 * routing table and every record it signed:
 *   - created only when missing, written atomically (temp file in the same directory, fsync,
 *     link/rename into place, fsync the directory), never replaced unless the caller asks;
 *   - a file that exists but is unreadable, too permissive, empty, truncated, non-canonical,
 *     of an unknown type or with bad key material is an error naming the file, never a
 *     reason to make a new key.
 *
 * Owner: net/peer. Users: kwnode run (via net/swarm), kwnode keygen / id. Start-up code only
 * (blocking file I/O), never the event loop.
 */
#ifndef KW_NET_KEYFILE_H
#define KW_NET_KEYFILE_H

#include <stdbool.h>
#include <stddef.h>

#include <kw/net/key.h>

#define KW_KEYFILE_NAME      "identity.key"
#define KW_KEYFILE_MAX_BYTES 8192  /* larger than any PrivateKey protobuf we accept */
#define KW_KEYFILE_ERR_MAX   512   /* comfortable size for err buffers: messages name paths */
/* A temp key file younger than this may belong to a save in progress: left alone. */
#define KW_KEYFILE_TMP_MIN_AGE_S 10

/* "<data_dir>/identity.key" into out. Return: 0 or -KW_EINVAL (does not fit). */
int kw_keyfile_path(const char *data_dir, char *out, size_t cap);

/*
 * Reads and validates a key file; err (may be NULL) gets "<path>: <what is wrong>".
 * Return: 0; -KW_ENOENT no such file; -KW_EACCES group/other permission bits set or not
 * readable; -KW_ECORRUPT not a canonical PrivateKey protobuf with valid key material (empty,
 * truncated, trailing bytes, unknown key type, oversized, not a regular file: a FIFO is
 * refused without waiting for a writer); -KW_EKEYTYPE
 * a known type this build leaves out; other -errno from the file system.
 */
int kw_keyfile_load(const char *path, struct kw_privkey *out, char *err, size_t errcap);

/*
 * Writes k atomically with mode 0600. Without overwrite an existing file is kept and
 * -KW_EEXIST returned (checked atomically, so two racing writers cannot both win).
 * Return: 0, -KW_EEXIST, or -errno (the temp file is removed on every failure).
 */
int kw_keyfile_save(const char *path, const struct kw_privkey *k, bool overwrite, char *err,
		    size_t errcap);

/*
 * Removes the temp files a crash between creating and renaming left in data_dir: each holds
 * a full private key. Only entries named exactly "identity.key.tmp" + 6 letters or digits
 * (kw_keyfile_save's pattern), regular files (not symlinks), owned by our effective uid and
 * unmodified for KW_KEYFILE_TMP_MIN_AGE_S; each removal is logged as a warning.
 * Return: the number removed (0 when data_dir does not exist), or -errno reading it.
 */
int kw_keyfile_clean_tmp(const char *data_dir);

/*
 * Start-up: removes leftover temp key files (kw_keyfile_clean_tmp), then loads
 * <data_dir>/identity.key, or when (and only when) it does not exist,
 * generates a key of the given type (bits for RSA) and saves it. *created says which
 * happened. Returns kw_keyfile_load's codes for an existing file; generation/save codes
 * otherwise.
 */
int kw_keyfile_load_or_create(const char *data_dir, enum kw_key_type type, int bits,
			      struct kw_privkey *out, bool *created, char *err, size_t errcap);

/* The type and RSA size Kconfig picks for a first start (KW_NET_KEY_DEFAULT_*). */
void kw_keyfile_default_type(enum kw_key_type *type, int *bits);

#endif /* KW_NET_KEYFILE_H */
