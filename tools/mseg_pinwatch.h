/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Noticing that the pins a long-running helper opened were replaced: a
 * re-attach after the pins were removed, an upgrade to another layout. The
 * helper still holds the old maps, which nothing uses any more (gc would
 * sweep a table no packet sees, and pressure would never fall). Each pin is
 * remembered by its bpffs inode and its map id; any difference, or a pin
 * gone, is a replacement. The helper then waits a while for the new pins
 * (MSEG_PIN_GRACE_S) and opens them, or exits 1 so its service restarts.
 */
#ifndef MSEG_PINWATCH_H
#define MSEG_PINWATCH_H

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <bpf/bpf.h>

#include "mseg_pinned.h"

#define MSEG_PIN_GRACE_S 10

struct mseg_pin_id {
	const char *name; /* e.g. "mseg_sessions" */
	ino_t ino;
	__u32 map_id; /* 0: not there */
};

/* What pin `name` holds now; map_id 0 if there is none. */
static inline void mseg_pin_read(const char *name, struct mseg_pin_id *id)
{
	char dir[PATH_MAX], path[PATH_MAX + 32];
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	struct stat st;
	int fd;

	id->name = name;
	id->ino = 0;
	id->map_id = 0;
	snprintf(path, sizeof(path), "%s/%s", mseg_pin_dir(dir, sizeof(dir)),
		 name);
	if (stat(path, &st))
		return;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return;
	memset(&info, 0, sizeof(info));
	if (!bpf_obj_get_info_by_fd(fd, &info, &len)) {
		id->ino = st.st_ino;
		id->map_id = info.id;
	}
	close(fd);
}

/* Remember pin `name` as the map `fd` a helper just opened from it. */
static inline void mseg_pin_remember(const char *name, int fd,
				     struct mseg_pin_id *id)
{
	char dir[PATH_MAX], path[PATH_MAX + 32];
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	struct stat st;

	id->name = name;
	id->ino = 0;
	id->map_id = 0;
	snprintf(path, sizeof(path), "%s/%s", mseg_pin_dir(dir, sizeof(dir)),
		 name);
	memset(&info, 0, sizeof(info));
	if (!stat(path, &st) && !bpf_obj_get_info_by_fd(fd, &info, &len)) {
		id->ino = st.st_ino;
		id->map_id = info.id;
	}
}

/*
 * Whether any of the n pins remembered in ids changed since. If so, prints
 * "mseg: PROG: the pins under DIR were replaced (NAME: map id A -> B)"
 * (B is "gone" when the pin is missing) and returns true.
 */
static inline bool mseg_pins_replaced(const char *prog,
				      const struct mseg_pin_id *ids, int n)
{
	struct mseg_pin_id now;
	char dir[PATH_MAX];
	int i;

	for (i = 0; i < n; i++) {
		mseg_pin_read(ids[i].name, &now);
		if (now.map_id == ids[i].map_id && now.ino == ids[i].ino)
			continue;
		if (now.map_id)
			fprintf(stderr,
				"mseg: %s: the pins under %s were replaced (%s: map id %u -> %u)\n",
				prog, mseg_pin_dir(dir, sizeof(dir)), ids[i].name,
				ids[i].map_id, now.map_id);
		else
			fprintf(stderr,
				"mseg: %s: the pins under %s were replaced (%s: map id %u -> gone)\n",
				prog, mseg_pin_dir(dir, sizeof(dir)), ids[i].name,
				ids[i].map_id);
		return true;
	}
	return false;
}

/*
 * After a replacement: wait up to `seconds` for every pin to be back (a
 * re-attach removes and re-creates them), checking twice a second. True if
 * they all are; `stop` cuts the wait short.
 */
static inline bool mseg_pins_wait(const struct mseg_pin_id *ids, int n,
				  int seconds, volatile const int *stop)
{
	struct timespec half = { 0, 500 * 1000 * 1000 };
	struct mseg_pin_id now;
	int tries, i;

	for (tries = 0; tries <= 2 * seconds && !(stop && *stop); tries++) {
		for (i = 0; i < n; i++) {
			mseg_pin_read(ids[i].name, &now);
			if (!now.map_id)
				break;
		}
		if (i == n)
			return true;
		nanosleep(&half, NULL);
	}
	return false;
}

#endif /* MSEG_PINWATCH_H */
