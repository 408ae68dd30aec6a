/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The policy in the pinned maps (maps.c). */
#ifndef MR_MAPS_H
#define MR_MAPS_H

#include "rules.h"

struct mr_maps {
	int ident, rules, rules_hash, hits, source, config;
};

/* One mseg_source entry. */
struct mr_line {
	__u32 index;
	char text[MSEG_SOURCE_LINE];
};

/* What one rule set holds, as its mseg_source entries tell. */
struct mr_set {
	__u8 set;
	struct mr_line *l; /* by index, the seal left out */
	size_t n, cap;
	char seal[MSEG_SOURCE_LINE];
	bool has_seal; /* an entry at MSEG_SRC_SEAL */
	bool sealed;   /* ... naming these very statements: the compiled form is theirs */
};

/* The policy to write: its statements and what they compile to (set 0). */
struct mr_target {
	struct mr_line *l;
	size_t n;
	const struct mr_compiled *c;
};

/*
 * Where writes go: straight through libbpf (f NULL), or as a `bpftool
 * batch` script into f (the bash commands run it).
 */
struct mr_writer {
	const struct mr_maps *m;
	FILE *f;
	int err; /* the first libbpf error, -errno */
	const char *what;
};

int mr_open_maps(struct mr_maps *m);
bool mr_read_sets(const struct mr_maps *m, struct mr_set s[2]);
void mr_set_free(struct mr_set *s);
bool mr_set_policy(const struct mr_set *s, struct mr_policy *p);
bool mr_read_policy(const struct mr_maps *m, __u8 set, struct mr_policy *p);
bool mr_target_lines(const struct mr_policy *p, struct mr_target *t);
bool mr_same_lines(const struct mr_line *a, size_t na, const struct mr_line *b, size_t nb);
int mr_sync_set(struct mr_writer *w, __u8 set, const struct mr_set *cur,
		const struct mr_compiled *base, const struct mr_target *t);
void mr_zero_new_ids(struct mr_writer *w, const struct mr_policy *p,
		     const struct mr_policy *old);
int mr_clear_set(const struct mr_maps *m, __u8 set);
__u64 mr_hits(const struct mr_maps *m, __u32 id, __u64 *packets, __u64 *audited);
void *mr_keys_of_set(int fd, size_t ksz, size_t set_off, __u8 set, size_t *n);

#endif
