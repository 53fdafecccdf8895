/* Read-only file mappings for the model files (safetensors shards, config.json, index). */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <kw/err.h>
#include <kw/ml/model.h>

int kw_model_map(const char *path, const uint8_t **map, size_t *len, char *err, size_t errcap)
{
	struct stat st;
	void *m;
	int fd, r;

	if (!path || !map || !len)
		return -KW_EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		return kw_errf(r, err, errcap, "%s: %s", path, kw_strerror(r));
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		close(fd);
		return kw_errf(r, err, errcap, "%s: %s", path, kw_strerror(r));
	}
	if (!S_ISREG(st.st_mode) || st.st_size <= 0) {
		close(fd);
		return kw_errf(-KW_EBADMSG, err, errcap, "%s: %s", path,
			       S_ISREG(st.st_mode) ? "empty file" : "not a regular file");
	}
	m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	r = -errno;
	close(fd);  /* the mapping keeps the file open */
	if (m == MAP_FAILED)
		return kw_errf(r, err, errcap, "%s: mmap: %s", path, kw_strerror(r));
	*map = m;
	*len = (size_t)st.st_size;
	return 0;
}

void kw_model_unmap(const uint8_t *map, size_t len)
{
	if (map)
		munmap((void *)map, len);
}
