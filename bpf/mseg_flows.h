/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The flow a decision or a session counts under in mseg_flows (mseg_abi.h,
 * docs/DESIGN.md "Flows"), and where it lives there. Shared by the data
 * path, mseg gc's sweep and `mseg flows` (which adds the live sessions'
 * packets to their flows), so all three file a session under the same key.
 */
#ifndef MSEG_FLOWS_H
#define MSEG_FLOWS_H

#include <stdbool.h>
#include <linux/types.h>

#include "mseg_abi.h"

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/*
 * What mseg_new_flow() leaves in the scratch map for mseg_flow_count()
 * (mseg_maps.h): nothing when it judged nothing (a strict-mode drop).
 */
#define MSEG_FLOWN_DECIDED 0x1  /* the policy judged the packet: verdict in rv */
#define MSEG_FLOWN_REVERSED 0x2 /* a pickup whose originator is the receiver */
#define MSEG_FLOWN_SESSION 0x4  /* it opened a session, which counts the packet */

static __always_inline __u8 mseg_flow_verdict_of(__u8 action)
{
	if (action == MSEG_ACT_DENY)
		return MSEG_FLOW_DENIED;
	return action == MSEG_ACT_AUDIT ? MSEG_FLOW_WOULD_DENY : MSEG_FLOW_ALLOWED;
}

/*
 * The set of mseg_flows a flow lives in: a multiplicative hash of its six
 * words (the key is 8-aligned, its padding zero), its top bits: a product's
 * low bits never see the factors' high bits (tests/bats/helpers/flowset.py
 * computes the same).
 */
static __always_inline __u32 mseg_flow_set(const struct mseg_flow_key *k)
{
	const __u64 *w = (const __u64 *)k;
	__u64 h = 0;
	int i;

	for (i = 0; i < (int)(sizeof(*k) / 8); i++)
		h = (h ^ w[i]) * 0x9e3779b97f4a7c15ULL;
	return (__u32)(h >> (64 - MSEG_FLOW_SET_BITS));
}

static __always_inline bool mseg_flow_key_eq(const struct mseg_flow_key *a,
					     const struct mseg_flow_key *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;
	__u64 d = 0;
	int i;

	for (i = 0; i < (int)(sizeof(*a) / 8); i++)
		d |= x[i] ^ y[i];
	return !d;
}

/* The flow of session (k, s): originator, responder and its port, verdict, rule. */
static __always_inline void mseg_flow_key_of_session(const struct mseg_session_key *k,
						     const struct mseg_session *s,
						     struct mseg_flow_key *f)
{
	bool hi = s->orig_is_hi;

	__builtin_memcpy(f->src, hi ? k->addr_hi : k->addr_lo, 16);
	__builtin_memcpy(f->dst, hi ? k->addr_lo : k->addr_hi, 16);
	f->rule_id = s->rule_id;
	f->dport = hi ? k->port_lo : k->port_hi;
	f->proto = k->proto;
	f->family = k->family;
	f->verdict = mseg_flow_verdict_of(s->action);
	__builtin_memset(f->pad, 0, sizeof(f->pad));
}

#endif /* MSEG_FLOWS_H */
