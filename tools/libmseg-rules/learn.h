/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * `mseg learn` (docs/learn.md): a least-privilege ruleset, in the policy
 * language, that allows exactly the flows seen allowed. The flows come from
 * `mseg flows`' reader (tools/mseg-flows.c), one exact flow each; this is
 * the grouping, the widening, the text, and the check of that text against
 * the flows with the library's own compiler and lookup.
 */
#ifndef MSEG_LEARN_H
#define MSEG_LEARN_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "rules.h"

/* What was seen of a flow, a rule or a group of flows. */
struct ml_count {
	__u64 connections, packets, bytes;
	__u64 first_ns, last_ns; /* CLOCK_REALTIME; first_ns 0: unknown */
};

/* One exact flow, as `mseg flows` counts it (one verdict, one rule). */
struct ml_flow {
	__u8 src[16], dst[16]; /* as the maps hold them: IPv4 as ::ffff:a.b.c.d */
	int family;            /* 4 or 6 */
	int src_seg, dst_seg;  /* the side's segment (index in the segments' policy), -1: none */
	int proto;             /* the IP protocol */
	__u16 dport;           /* 0 for a protocol without ports */
	bool allowed;          /* the verdict was "allowed" (else denied or would-deny) */
	const char *verdict;   /* the verdict's name, for the list of what was left out */
	__u32 rule_id;         /* the rule that decided, 0: the default */
	struct ml_count c;
};

struct ml_opts {
	int widen4, widen6; /* merge the sources of a service within a /N; 0: hosts exact */
	const char *header; /* '#' lines that open the ruleset (when, from what) */
};

struct ml_learned {
	char *text; /* the ruleset */
	size_t len;
	size_t allowed, rules, exceptions, left; /* flows and rules, for the caller's summary */
};

/*
 * Learn from flows f[0..n) the ruleset that allows the allowed ones under
 * `default deny`: segments from segs (all of them, so the ruleset stands
 * alone), the failsafe setting of active (the policy in force). Reorders f.
 * False after mr_err (the learned text failed its own check: a bug).
 */
bool ml_learn(const struct mr_policy *segs, const struct mr_policy *active,
	      struct ml_flow *f, size_t n, const struct ml_opts *o, struct ml_learned *out);
void ml_learned_free(struct ml_learned *l);

/*
 * A file of `segment add NAME PREFIX...` statements into p. Returns 0, 1
 * when the file cannot be read, 2 on a bad statement (said on stderr as
 * the parser says it: "mseg: line N: ...").
 */
int ml_segments_read(const char *path, struct mr_policy *p);

#endif /* MSEG_LEARN_H */
