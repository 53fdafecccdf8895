/*
 * Private helpers of board/: path joining under the sysfs root and directory listing
 * without the heap (getdents64 into a buffer in the caller's struct; opendir would malloc).
 */
#ifndef KW_BOARD_SYSFS_H
#define KW_BOARD_SYSFS_H

#include <dirent.h>
#include <stddef.h>

#define KW_SYSFS_PATH_MAX 512

/* Joins root and rel with one '/'. Return: 0 or -KW_EINVAL when it does not fit. */
int kw_sysfs_path(const char *root, const char *rel, char *out, size_t cap);

struct kw_sysfs_dir {
	int fd;
	size_t pos, len;
	char buf[2048] __attribute__((aligned(8)));
};
/* Return: 0 or -errno (-KW_ENOENT when the directory does not exist). */
int kw_sysfs_dir_open(const char *root, const char *rel, struct kw_sysfs_dir *d);
/* The next entry's name (not "." entries), valid until the next call; NULL at the end. */
const char *kw_sysfs_dir_next(struct kw_sysfs_dir *d);
void kw_sysfs_dir_close(struct kw_sysfs_dir *d);

#endif
