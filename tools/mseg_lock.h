/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * mseg's locks, as lib/sh/mseg-common.sh's mseg_lock takes the edit lock:
 * each lock is a directory named after the bpffs instance that holds the
 * pins (its st_dev-st_ino, so every pin set has its own locks), inside
 * $MSEG_LOCK_DIR (default /run/mseg), which must be owned by root (or us)
 * with mode 0700. An unprivileged user can neither open such a lock (flock
 * needs an open descriptor) nor plant a symlink in its place; and a lock is
 * opened with O_NOFOLLOW, read-only, so nothing is ever created through
 * a link.
 *
 * Names in use: "edit" (rule and config edits, the shell commands), "gc"
 * (writers of mseg_gc: mseg gc, mseg sessions del|flush), "events" (the
 * one drainer of the event ring).
 */
#ifndef MSEG_LOCK_H
#define MSEG_LOCK_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>

#define MSEG_LOCK_DIR_DEFAULT "/run/mseg"
#define MSEG_LOCK_BUSY (-2)

static inline const char *mseg_lock_base(void)
{
	const char *d = getenv("MSEG_LOCK_DIR");

	return d && *d ? d : MSEG_LOCK_DIR_DEFAULT;
}

/* A lock directory is ours: root's (or our own uid's), closed to others. */
static inline int mseg_lock_check(int fd, const char *path)
{
	struct stat st;

	if (fstat(fd, &st)) {
		fprintf(stderr, "mseg: cannot stat %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode) || (st.st_uid != 0 && st.st_uid != geteuid()) ||
	    (st.st_mode & 077)) {
		fprintf(stderr,
			"mseg: %s must be a directory owned by root with mode 0700 "
			"(it is %04o, uid %u): refusing to lock there\n",
			path, (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
		return -1;
	}
	return 0;
}

/* Open (creating it 0700 if missing) directory `path` without following a link. */
static inline int mseg_lock_opendir(int at, const char *path)
{
	int fd;

	if (mkdirat(at, path, 0700) && errno != EEXIST) {
		fprintf(stderr, "mseg: cannot create %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	fd = openat(at, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "mseg: cannot open %s: %s%s\n", path,
			strerror(errno),
			errno == ELOOP || errno == ENOTDIR ?
				" (a symlink or a file where mseg keeps its lock)" :
				"");
		return -1;
	}
	if (mseg_lock_check(fd, path)) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Take lock `what` of this pin set. timeout_s < 0 waits for ever, 0 tries
 * once and returns MSEG_LOCK_BUSY (silently) if another process holds it,
 * > 0 waits that long and then fails. Returns the descriptor that holds the
 * lock (closing it releases it), or -1 after one "mseg: ..." line.
 */
static inline int mseg_lock_take(const char *what, int timeout_s)
{
	const char *mnt = getenv("TC_BPF_MNT");
	const char *base = mseg_lock_base();
	char name[96], path[PATH_MAX];
	struct timespec nap = { 0, 50 * 1000 * 1000 };
	struct stat st;
	long waited_ms = 0;
	int dfd, fd;

	if (!mnt || !*mnt)
		mnt = "/sys/fs/bpf";
	if (stat(mnt, &st)) {
		fprintf(stderr, "mseg: cannot stat %s: %s\n", mnt,
			strerror(errno));
		return -1;
	}
	snprintf(name, sizeof(name), "%llu-%llu.%s",
		 (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
		 what);
	snprintf(path, sizeof(path), "%s/%s", base, name);
	dfd = mseg_lock_opendir(AT_FDCWD, base);
	if (dfd < 0)
		return -1;
	fd = mseg_lock_opendir(dfd, name);
	close(dfd);
	if (fd < 0)
		return -1;
	for (;;) {
		if (!flock(fd, LOCK_EX | (timeout_s < 0 ? 0 : LOCK_NB)))
			return fd;
		if (errno != EWOULDBLOCK && errno != EINTR) {
			fprintf(stderr, "mseg: cannot lock %s: %s\n", path,
				strerror(errno));
			break;
		}
		if (timeout_s == 0) {
			close(fd);
			return MSEG_LOCK_BUSY;
		}
		if (timeout_s > 0 && waited_ms >= timeout_s * 1000L) {
			fprintf(stderr, "mseg: timed out waiting for the lock %s\n",
				path);
			break;
		}
		nanosleep(&nap, NULL);
		waited_ms += 50;
	}
	close(fd);
	return -1;
}

#endif /* MSEG_LOCK_H */
