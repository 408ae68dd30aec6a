/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Opening mseg's pinned maps from user space, honouring TC_BPF_MNT exactly
 * as tc does, and refusing a map whose layout is not this build's.
 */
#ifndef MSEG_PINNED_H
#define MSEG_PINNED_H

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>

static inline const char *mseg_pin_dir(char *buf, size_t len)
{
	const char *mnt = getenv("TC_BPF_MNT");

	snprintf(buf, len, "%s/tc/globals", mnt && *mnt ? mnt : "/sys/fs/bpf");
	return buf;
}

/* Returns the fd of pinned object NAME, or -1 after printing "mseg: ...". */
static inline int mseg_open_pinned(const char *name)
{
	char dir[PATH_MAX], path[PATH_MAX + 32];
	int fd;

	mseg_pin_dir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = bpf_obj_get(path);
	if (fd < 0)
		fprintf(stderr, "mseg: cannot open %s: %s%s\n", path,
			strerror(errno),
			errno == ENOENT ? " (run 'mseg attach DEV' first)" : "");
	return fd;
}

/* Like mseg_open_pinned(), refusing a map whose layout is not this build's. */
static inline int mseg_open_map(const char *name, __u32 key_size,
				__u32 value_size, struct bpf_map_info *info_out)
{
	struct bpf_map_info info;
	__u32 info_len = sizeof(info);
	int fd = mseg_open_pinned(name);

	if (fd < 0)
		return -1;
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &info_len)) {
		fprintf(stderr, "mseg: cannot read map %s: %s\n", name,
			strerror(errno));
		close(fd);
		return -1;
	}
	if (info.key_size != key_size || info.value_size != value_size) {
		char dir[PATH_MAX];

		fprintf(stderr,
			"mseg: %s/%s has key/value sizes %u/%u, this build expects %u/%u: "
			"the pinned maps are from another mseg version\n",
			mseg_pin_dir(dir, sizeof(dir)), name, info.key_size,
			info.value_size, key_size, value_size);
		close(fd);
		return -1;
	}
	if (info_out)
		*info_out = info;
	return fd;
}

static inline int mseg_read_config(int cfg_fd, struct mseg_config *cfg)
{
	__u32 zero = 0;

	if (bpf_map_lookup_elem(cfg_fd, &zero, cfg)) {
		fprintf(stderr, "mseg: cannot read mseg_config: %s\n",
			strerror(errno));
		return -1;
	}
	return 0;
}

#endif /* MSEG_PINNED_H */
