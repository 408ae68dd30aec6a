/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Reading a pinned hash map from user space in batches: one
 * BPF_MAP_LOOKUP_BATCH syscall per `cap` entries, so a million-entry session
 * table is read in a few hundred syscalls instead of two million
 * get_next_key/lookup pairs. Used by mseg-gc and mseg-textfile.
 */
#ifndef MSEG_BATCH_H
#define MSEG_BATCH_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>

struct mseg_batch {
	void *keys;
	void *vals;
	__u32 key_size;
	__u32 val_size;
	__u32 cap; /* entries per syscall */
};

/*
 * Called once per batch with n (> 0) entries laid out as arrays of
 * key_size and val_size bytes. A non-zero return stops the walk and is
 * returned by mseg_batch_foreach (the callback prints its own error).
 */
typedef int (*mseg_batch_fn)(void *ctx, const void *keys, const void *vals,
			     __u32 n);

static inline int mseg_batch_init(struct mseg_batch *b, __u32 key_size,
				  __u32 val_size, __u32 cap)
{
	b->key_size = key_size;
	b->val_size = val_size;
	b->cap = cap;
	b->keys = calloc(cap, key_size);
	b->vals = calloc(cap, val_size);
	if (!b->keys || !b->vals) {
		free(b->keys);
		free(b->vals);
		b->keys = b->vals = NULL;
		fprintf(stderr, "mseg: out of memory\n");
		return -1;
	}
	return 0;
}

static inline void mseg_batch_free(struct mseg_batch *b)
{
	free(b->keys);
	free(b->vals);
	b->keys = b->vals = NULL;
}

/*
 * Walk every entry of the hash map `fd` (named `name` in messages). The
 * kernel walks bucket by bucket, so entries added or deleted meanwhile may
 * or may not be seen, but none is seen twice. Every call but the last
 * returns at least one entry, so the walk takes at most max_entries + 1
 * calls; that bound also guards against a kernel that would not progress.
 */
static inline int mseg_batch_foreach(int fd, const char *name,
				     __u32 max_entries, struct mseg_batch *b,
				     mseg_batch_fn fn, void *ctx)
{
	__u32 in_batch = 0, out_batch = 0;
	__u64 calls;
	bool first = true;

	for (calls = 0; calls <= (__u64)max_entries + 1; calls++) {
		__u32 count = b->cap;
		int err = bpf_map_lookup_batch(fd, first ? NULL : &in_batch,
					       &out_batch, b->keys, b->vals,
					       &count, NULL);
		bool done = err && errno == ENOENT;
		int rc;

		if (err && !done) {
			fprintf(stderr, "mseg: batch lookup of %s failed: %s\n",
				name, strerror(errno));
			return -1;
		}
		if (count) {
			rc = fn(ctx, b->keys, b->vals, count);
			if (rc)
				return rc;
		}
		if (done)
			return 0;
		if (!count)
			break;
		in_batch = out_batch;
		first = false;
	}
	fprintf(stderr, "mseg: batch lookup of %s did not progress\n", name);
	return -1;
}

#endif /* MSEG_BATCH_H */
