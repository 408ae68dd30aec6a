/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The event log: JSON lines (mseg_event_fmt.h) in DIR/events.jsonl, rotated
 * by size to events.jsonl.1 ... .KEEP. One drainer appends (whole lines,
 * one write each, O_APPEND); any number of `mseg log` readers read the
 * files, so no reader takes events from another. DIR is $MSEG_EVENTS_DIR
 * or /var/log/mseg.
 */
#ifndef MSEG_EVLOG_H
#define MSEG_EVLOG_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <linux/types.h>

#define MSEG_EVLOG_DIR_DEFAULT "/var/log/mseg"
#define MSEG_EVLOG_FILE "events.jsonl"
#define MSEG_EVLOG_MAX_BYTES (10ULL << 20)
#define MSEG_EVLOG_KEEP 5
#define MSEG_EVLOG_KEEP_MAX 99

struct mseg_evlog {
	const char *dir;
	__u64 max_bytes; /* rotate before a line would pass this */
	int keep;        /* rotated files kept */
	int fd;          /* events.jsonl, for appending; -1 if closed */
	__u64 size;
};

static inline const char *mseg_evlog_dir(void)
{
	const char *d = getenv("MSEG_EVENTS_DIR");

	return d && *d ? d : MSEG_EVLOG_DIR_DEFAULT;
}

/* DIR/events.jsonl (n == 0) or DIR/events.jsonl.n */
static inline void mseg_evlog_path(const char *dir, int n, char *buf,
				   size_t len)
{
	if (n)
		snprintf(buf, len, "%s/%s.%d", dir, MSEG_EVLOG_FILE, n);
	else
		snprintf(buf, len, "%s/%s", dir, MSEG_EVLOG_FILE);
}

static inline int mseg_evlog_open(struct mseg_evlog *l)
{
	char path[PATH_MAX];
	struct stat st;

	if (mkdir(l->dir, 0750) && errno != EEXIST) {
		fprintf(stderr, "mseg: cannot create %s: %s\n", l->dir,
			strerror(errno));
		return -1;
	}
	mseg_evlog_path(l->dir, 0, path, sizeof(path));
	l->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
		     0640);
	if (l->fd < 0 || fstat(l->fd, &st)) {
		fprintf(stderr, "mseg: cannot open %s: %s\n", path,
			strerror(errno));
		if (l->fd >= 0)
			close(l->fd);
		l->fd = -1;
		return -1;
	}
	l->size = (__u64)st.st_size;
	return 0;
}

static inline void mseg_evlog_close(struct mseg_evlog *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
}

/* events.jsonl.(k-1) -> .k, ..., events.jsonl -> .1, and a new events.jsonl. */
static inline int mseg_evlog_rotate(struct mseg_evlog *l)
{
	char from[PATH_MAX], to[PATH_MAX];
	int i;

	mseg_evlog_close(l);
	for (i = l->keep; i >= 1; i--) {
		mseg_evlog_path(l->dir, i - 1, from, sizeof(from));
		mseg_evlog_path(l->dir, i, to, sizeof(to));
		if (rename(from, to) && errno != ENOENT) {
			fprintf(stderr, "mseg: cannot rename %s: %s\n", from,
				strerror(errno));
			break;
		}
	}
	return mseg_evlog_open(l);
}

/* Append one whole line; -1 (after "mseg: ...") if it could not be written. */
static inline int mseg_evlog_append(struct mseg_evlog *l, const char *line,
				    size_t len)
{
	ssize_t n;

	if (l->fd < 0 && mseg_evlog_open(l))
		return -1;
	if (l->size && l->size + len > l->max_bytes && mseg_evlog_rotate(l))
		return -1;
	n = write(l->fd, line, len);
	if (n != (ssize_t)len) {
		fprintf(stderr, "mseg: cannot write the event log in %s: %s\n",
			l->dir, n < 0 ? strerror(errno) : "short write");
		return -1;
	}
	l->size += len;
	return 0;
}

#endif /* MSEG_EVLOG_H */
