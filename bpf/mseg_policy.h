/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Policy lookup for a new flow, first match wins (docs/DESIGN.md, data path 3):
 * exact rules with their wildcard fallbacks, then the longest CIDR prefix
 * containing the destination, else the source, then the default action.
 */
#ifndef MSEG_POLICY_H
#define MSEG_POLICY_H

#include "mseg_abi.h"
#include "mseg_maps.h"
#include "mseg_parse.h"
#include "mseg_verdict.h"

static __always_inline bool mseg_exact_try(struct mseg_rule_key *k,
					   struct mseg_verdict *v)
{
	struct mseg_rule_val *r = bpf_map_lookup_elem(&mseg_policy, k);

	if (!r)
		return false;
	__sync_fetch_and_add(&r->hits, 1);
	v->action = r->action;
	v->by = MSEG_BY_EXACT;
	return true;
}

/*
 * The packet's own tuple, then sport=0, then both ports 0, then protocol 0
 * too: a rule written with fewer fields is a wildcard on the rest.
 */
static __always_inline bool mseg_exact_lookup(const struct mseg_tuple *t,
					      __u8 set, struct mseg_verdict *v)
{
	struct mseg_rule_key k = {};

	__builtin_memcpy(k.src, t->saddr, 16);
	__builtin_memcpy(k.dst, t->daddr, 16);
	k.proto = t->proto;
	k.sport = t->sport;
	k.dport = t->dport;
	k.set = set;
	if (mseg_exact_try(&k, v))
		return true;
	if (k.sport) {
		k.sport = 0;
		if (mseg_exact_try(&k, v))
			return true;
	}
	if (k.dport) {
		k.dport = 0;
		if (mseg_exact_try(&k, v))
			return true;
	}
	k.proto = 0;
	return mseg_exact_try(&k, v);
}

static __always_inline bool mseg_cidr_try(struct mseg_cidr_key *k,
					  const __u32 *addr,
					  struct mseg_verdict *v)
{
	struct mseg_cidr_val *r;

	__builtin_memcpy(k->addr, addr, 16);
	r = bpf_map_lookup_elem(&mseg_cidr, k);
	if (!r)
		return false;
	__sync_fetch_and_add(&r->hits, 1);
	v->action = r->action;
	v->by = MSEG_BY_CIDR;
	return true;
}

static __always_inline bool mseg_cidr_lookup(const struct mseg_tuple *t,
					     __u8 set, struct mseg_verdict *v)
{
	struct mseg_cidr_key k = {
		.prefixlen = MSEG_CIDR_FULL_BITS,
		.set = set,
		.family = t->family,
	};

	return mseg_cidr_try(&k, t->daddr, v) || mseg_cidr_try(&k, t->saddr, v);
}

/*
 * Judge a flow given as originator -> responder. A real BPF function, not
 * inlined: its lookup keys then live in its own frame, not in every caller's.
 */
/*
 * default_action, strict and active_set share one aligned 32-bit word of
 * mseg_config. `mseg apply` switches the set and the default in one config
 * write; reading the word once means a flow is judged by one rule set and
 * that set's default, never by a mix of the old and the new.
 */
_Static_assert(__builtin_offsetof(struct mseg_config, default_action) == 8 &&
		       __builtin_offsetof(struct mseg_config, active_set) == 10,
	       "default_action and active_set share the word at offset 8");

static __noinline void mseg_policy_decide(const struct mseg_tuple *t,
					  const struct mseg_config *cfg,
					  struct mseg_verdict *v)
{
	__u32 word = *(volatile const __u32 *)&cfg->default_action;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	__u8 def = word & 0xff, set = (word >> 16) & 0xff;
#else
	__u8 def = word >> 24, set = (word >> 8) & 0xff;
#endif

	if (mseg_exact_lookup(t, set, v))
		return;
	if (mseg_cidr_lookup(t, set, v))
		return;
	v->action = def == MSEG_ACT_DENY ? MSEG_ACT_DENY : MSEG_ACT_ALLOW;
	v->by = MSEG_BY_DEFAULT;
}

#endif /* MSEG_POLICY_H */
