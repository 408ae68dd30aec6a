/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The applied policy's fingerprint: one 64-bit hash of what the data path
 * judges new flows by (the default action and every rule of the active set),
 * read from the loaded maps, never from a file, so a rule added by hand on
 * one host changes that host's hash (docs/DESIGN.md, "Fleet").
 *
 * Each rule is one record: its key with the rule-set byte and padding
 * zeroed, and its action (and priority); hit counters are left out, so the
 * hash moves with the policy and not with the traffic. The records'
 * hashes are added up (mod 2^64), so the result does not depend on the
 * order a hash map or trie is walked in: two hosts holding the same rules
 * get the same hash. It is a fingerprint for spotting drift, not a
 * cryptographic digest.
 *
 * This is the one place that decides what a policy's identity is: when the
 * policy gains new maps (segments, ...), their records are added here.
 */
#ifndef MSEG_POLICY_HASH_H
#define MSEG_POLICY_HASH_H

#include <string.h>
#include <linux/types.h>

#include "mseg_abi.h"

struct mseg_policy_hash {
	__u64 sum;   /* of the records' hashes */
	__u64 count; /* records added */
	__u8 default_action;
};

/* Record kinds, so an exact rule and a CIDR rule never hash alike. */
enum { MSEG_PH_EXACT = 1, MSEG_PH_CIDR = 2 };

/* FNV-1a over the bytes, then splitmix64's finaliser to spread them. */
static inline __u64 mseg_ph_bytes(__u8 kind, const void *data, size_t len)
{
	const __u8 *p = data;
	__u64 h = 0xcbf29ce484222325ULL;
	size_t i;

	h = (h ^ kind) * 0x100000001b3ULL;
	for (i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return h;
}

static inline void mseg_ph_init(struct mseg_policy_hash *ph, __u8 default_action)
{
	memset(ph, 0, sizeof(*ph));
	ph->default_action = default_action;
}

static inline void mseg_ph_add(struct mseg_policy_hash *ph, __u8 kind,
			       const void *rec, size_t len)
{
	ph->sum += mseg_ph_bytes(kind, rec, len);
	ph->count++;
}

/* An exact rule of the active set (mseg_policy). */
static inline void mseg_ph_add_exact(struct mseg_policy_hash *ph,
				     const struct mseg_rule_key *k,
				     const struct mseg_rule_val *v)
{
	struct {
		struct mseg_rule_key key;
		__u8 action;
	} rec;

	memset(&rec, 0, sizeof(rec));
	memcpy(rec.key.src, k->src, sizeof(k->src));
	memcpy(rec.key.dst, k->dst, sizeof(k->dst));
	rec.key.sport = k->sport;
	rec.key.dport = k->dport;
	rec.key.proto = k->proto;
	rec.action = v->action;
	mseg_ph_add(ph, MSEG_PH_EXACT, &rec, sizeof(rec));
}

/* A CIDR rule of the active set (mseg_cidr). */
static inline void mseg_ph_add_cidr(struct mseg_policy_hash *ph,
				    const struct mseg_cidr_key *k,
				    const struct mseg_cidr_val *v)
{
	struct {
		__u32 prefixlen;
		__u32 priority;
		__u8 family;
		__u8 action;
		__u8 addr[16];
	} rec;

	memset(&rec, 0, sizeof(rec));
	rec.prefixlen = k->prefixlen;
	rec.priority = v->priority;
	rec.family = k->family;
	rec.action = v->action;
	memcpy(rec.addr, k->addr, sizeof(k->addr));
	mseg_ph_add(ph, MSEG_PH_CIDR, &rec, sizeof(rec));
}

/* The fingerprint: the records' sum, their count and the default action. */
static inline __u64 mseg_ph_final(const struct mseg_policy_hash *ph)
{
	struct {
		__u64 sum;
		__u64 count;
		__u8 default_action;
	} rec;

	memset(&rec, 0, sizeof(rec));
	rec.sum = ph->sum;
	rec.count = ph->count;
	rec.default_action = ph->default_action;
	return mseg_ph_bytes(0, &rec, sizeof(rec));
}

#endif /* MSEG_POLICY_HASH_H */
