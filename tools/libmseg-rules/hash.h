/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* An open-addressing index over an array of fixed-size keys. */
#ifndef MR_HASH_H
#define MR_HASH_H

#include <stdlib.h>
#include <string.h>

struct mr_hash {
	size_t cap; /* a power of two */
	long *slot; /* index into the array, -1 empty */
	const char *base;
	size_t stride, keylen;
};

/* FNV-1a, in steps: a key made of several fields hashes them one after another. */
#define MR_HASH_SEED 1469598103934665603ULL

static inline size_t mr_hash_step(size_t h, const void *k, size_t n)
{
	const unsigned char *p = k;

	while (n--)
		h = (h ^ *p++) * 1099511628211ULL;
	return h;
}

static inline size_t mr_hash_end(size_t h)
{
	return h ^ (h >> 29);
}

static inline size_t mr_hash_bytes(const void *k, size_t n)
{
	return mr_hash_end(mr_hash_step(MR_HASH_SEED, k, n));
}

static inline void mr_hash_init(struct mr_hash *h, size_t n, const void *base,
				size_t stride, size_t keylen)
{
	h->cap = 64;
	while (h->cap < 2 * n + 1)
		h->cap *= 2;
	h->slot = malloc(h->cap * sizeof(long));
	memset(h->slot, 0xff, h->cap * sizeof(long));
	h->base = base;
	h->stride = stride;
	h->keylen = keylen;
}

static inline void mr_hash_free(struct mr_hash *h)
{
	free(h->slot);
	h->slot = NULL;
}

/* The index holding key k, or -1. */
static inline long mr_hash_get(const struct mr_hash *h, const void *k)
{
	size_t i = mr_hash_bytes(k, h->keylen) & (h->cap - 1);

	for (; h->slot[i] >= 0; i = (i + 1) & (h->cap - 1))
		if (!memcmp(h->base + (size_t)h->slot[i] * h->stride, k, h->keylen))
			return h->slot[i];
	return -1;
}

/* Index entry idx (its key is in the array); the array must not move. */
static inline void mr_hash_put(struct mr_hash *h, long idx)
{
	const void *k = h->base + (size_t)idx * h->stride;
	size_t i = mr_hash_bytes(k, h->keylen) & (h->cap - 1);

	while (h->slot[i] >= 0)
		i = (i + 1) & (h->cap - 1);
	h->slot[i] = idx;
}

#endif
