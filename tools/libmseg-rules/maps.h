/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The policy in the pinned maps (maps.c). */
#ifndef MR_MAPS_H
#define MR_MAPS_H

#include "rules.h"

struct mr_maps {
	int ident, rules, hits, source, config;
};

int mr_open_maps(struct mr_maps *m);
bool mr_read_policy(const struct mr_maps *m, __u8 set, struct mr_policy *p);
int mr_clear_set(const struct mr_maps *m, __u8 set);
int mr_write_set(const struct mr_maps *m, __u8 set, const struct mr_policy *p,
		 const struct mr_policy *old, const struct mr_compiled *c);
int mr_encode_batch(const struct mr_maps *m, __u8 set, __u8 old_set,
		    const struct mr_policy *p, const struct mr_policy *old,
		    const struct mr_compiled *c, FILE *wf, FILE *cf);
__u64 mr_hits(const struct mr_maps *m, __u32 id, __u64 *packets);
void *mr_keys_of_set(int fd, size_t ksz, size_t set_off, __u8 set, size_t *n);
bool mr_source_lines(const struct mr_policy *p, struct mseg_source_val **v, size_t *n);

#endif
