// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Reading a ruleset input whole, before anything is parsed or locked: a
 * directory, a device or a read error is refused (a read error taken for
 * the end of the file would apply a truncated policy), and so is an input
 * larger than any policy the maps can hold (`mseg apply /dev/zero` must
 * not grow without bound).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "rules.h"

static bool refuse(const char *what, const char *fmt, const char *why)
{
	fprintf(stderr, fmt, what, why);
	return false;
}

bool mr_input_read(const char *path, struct mr_input *in)
{
	bool is_stdin = !strcmp(path, "-");
	const char *what = is_stdin ? "stdin" : path;
	size_t cap = 0, max = MR_INPUT_MAX;
	const char *env = getenv("MSEG_INPUT_MAX");
	struct stat st;
	int fd;

	memset(in, 0, sizeof(*in));
	/* a lower bound for tests and small hosts; never above the built-in one */
	if (env && *env) {
		unsigned long long v = strtoull(env, NULL, 10);

		if (v && v < max)
			max = (size_t)v;
	}
	fd = is_stdin ? 0 : open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return refuse(what, "mseg: cannot read %s: %s\n", strerror(errno));
	if (fstat(fd, &st))
		return refuse(what, "mseg: cannot read %s: %s\n", strerror(errno));
	if (S_ISDIR(st.st_mode)) {
		refuse(what, "mseg: cannot read %s: %s\n", strerror(EISDIR));
		goto fail;
	}
	/* stdin may be a terminal or /dev/null; a named device is a mistake */
	if (!is_stdin && (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))) {
		refuse(what, "mseg: %s is not a ruleset file (%s)\n", "a device");
		goto fail;
	}
	for (;;) {
		ssize_t n;

		if (in->len == cap) {
			char *b;

			cap = cap ? cap * 2 : 65536;
			if (cap > max + 1)
				cap = max + 1;
			b = realloc(in->buf, cap + 1);
			if (!b) {
				refuse(what, "mseg: cannot read %s: %s\n", strerror(ENOMEM));
				goto fail;
			}
			in->buf = b;
		}
		n = read(fd, in->buf + in->len, cap - in->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			refuse(what, "mseg: cannot read %s: %s\n", strerror(errno));
			goto fail;
		}
		if (!n)
			break;
		in->len += (size_t)n;
		if (in->len > max) {
			fprintf(stderr, "mseg: %s is larger than %zu bytes: not a ruleset\n", what,
				max);
			goto fail;
		}
	}
	if (!is_stdin)
		close(fd);
	if (!in->buf)
		in->buf = calloc(1, 1);
	if (!in->buf)
		return refuse(what, "mseg: cannot read %s: %s\n", strerror(ENOMEM));
	in->buf[in->len] = 0;
	return true;
fail:
	if (!is_stdin)
		close(fd);
	free(in->buf);
	memset(in, 0, sizeof(*in));
	return false;
}

char *mr_input_line(struct mr_input *in, size_t *len)
{
	char *s, *nl;

	if (in->pos >= in->len)
		return NULL;
	s = in->buf + in->pos;
	nl = memchr(s, '\n', in->len - in->pos);
	*len = nl ? (size_t)(nl - s) : in->len - in->pos;
	in->pos += *len + (nl != NULL);
	return s;
}

bool mr_input_write(const struct mr_input *in, const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	size_t off = 0;

	if (fd < 0)
		return refuse(path, "mseg: cannot write %s: %s\n", strerror(errno));
	while (off < in->len) {
		ssize_t n = write(fd, in->buf + off, in->len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			refuse(path, "mseg: cannot write %s: %s\n", strerror(errno));
			close(fd);
			return false;
		}
		off += (size_t)n;
	}
	if (close(fd))
		return refuse(path, "mseg: cannot write %s: %s\n", strerror(errno));
	return true;
}

void mr_input_free(struct mr_input *in)
{
	free(in->buf);
	memset(in, 0, sizeof(*in));
}
