/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The applied policy's fingerprint: one 64-bit hash of what the data path
 * judges new flows by (the default action and the statements of the active
 * rule set), read from the loaded maps, never from a file, so a rule added
 * by hand on one host changes that host's hash (docs/DESIGN.md, "Fleet").
 *
 * The records are the canonical statements the active set's mseg_source
 * holds (docs/policy.md, "where the policy lives"): the compiler derives
 * mseg_ident and mseg_rules from exactly these, and every writer seals a
 * set only once its compiled maps are theirs. Left out, so two hosts that
 * applied the same file hash alike whatever their history:
 *  - '#' lines (the seal names a digest of the statements, not the policy);
 *  - rule ids (`--id N`): numbered per host, in the order rules arrived;
 *  - how a segment's prefixes are split over lines: each (segment, prefix)
 *    is one record.
 * Hit counters are not statements, so the hash moves with the policy and
 * not with the traffic. The records' hashes are added up (mod 2^64), so
 * the result does not depend on the order the map is walked in. It is a
 * fingerprint for spotting drift, not a cryptographic digest.
 *
 * This is the one place that decides what a policy's identity is.
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

/* Record kinds, so a rule and a segment's prefix never hash alike. */
enum { MSEG_PH_STATEMENT = 1, MSEG_PH_SEGMENT_PREFIX = 2 };

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

/*
 * One mseg_source statement of the active set (NUL-terminated within
 * MSEG_SOURCE_LINE). Statements are canonical: single spaces, options in
 * one order, `--id N` where the rule's options end.
 */
static inline void mseg_ph_add_statement(struct mseg_policy_hash *ph,
					 const char *line)
{
	char rec[MSEG_SOURCE_LINE];
	size_t n = strnlen(line, MSEG_SOURCE_LINE - 1), o = 0, i = 0;

	if (!n || line[0] == '#')
		return;
	if (!strncmp(line, "segment add ", 12)) {
		/* "segment add NAME P1 P2 ...": one record "NAME P" per prefix */
		const char *name = line + 12, *p = strchr(name, ' ');
		size_t nl;

		if (!p)
			return;
		nl = (size_t)(p - name);
		while (*p == ' ') {
			size_t pl;

			p++;
			pl = strcspn(p, " ");
			if (!pl)
				break;
			memcpy(rec, name, nl);
			rec[nl] = ' ';
			memcpy(rec + nl + 1, p, pl);
			mseg_ph_add(ph, MSEG_PH_SEGMENT_PREFIX, rec, nl + 1 + pl);
			p += pl;
		}
		return;
	}
	/* the statement without its " --id N" */
	while (i < n) {
		if (!strncmp(line + i, " --id ", 6)) {
			i += 6;
			while (i < n && line[i] != ' ')
				i++;
			continue;
		}
		rec[o++] = line[i++];
	}
	mseg_ph_add(ph, MSEG_PH_STATEMENT, rec, o);
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
