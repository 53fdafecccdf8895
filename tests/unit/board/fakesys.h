/*
 * A fake sysfs tree for the board and policy tests: a temporary directory under which the
 * tests write /sys/class/... files; every reader takes it as its root. No hardware needed.
 */
#ifndef KW_TEST_FAKESYS_H
#define KW_TEST_FAKESYS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fakesys {
	char root[64];
};

/* mkdir -p of root/rel's directory part */
static inline void fakesys_mkdirs(const char *path)
{
	char p[512];
	char *s;

	snprintf(p, sizeof(p), "%s", path);
	for (s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		mkdir(p, 0755);
		*s = '/';
	}
}

/* Writes `text` to root/rel, creating directories; NULL text removes the file. */
static inline void fakesys_write(const struct fakesys *f, const char *rel, const char *text)
{
	char path[512];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", f->root, rel);
	if (!text) {
		unlink(path);
		return;
	}
	fakesys_mkdirs(path);
	fp = fopen(path, "w");
	if (!fp)
		abort();
	fputs(text, fp);
	fclose(fp);
}

static inline void fakesys_init(struct fakesys *f)
{
	snprintf(f->root, sizeof(f->root), "/tmp/kwsysfsXXXXXX");
	if (!mkdtemp(f->root))
		abort();
}

static inline void fakesys_free(struct fakesys *f)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
	if (system(cmd) != 0)
		abort();
}

#endif
