/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Policy lookup for a new flow (docs/policy.md, "how the data path
 * decides"): each address resolves to the identity of its longest matching
 * prefix (one mseg_ident lookup per side); then the compiled rule trie is
 * asked for the keys (src id, dst id), (src id, any), (any, dst id) and
 * (any, any), each returning the winner of its key for the protocol and
 * destination port; the best of them by rank decides, else the default.
 */
#ifndef MSEG_POLICY_H
#define MSEG_POLICY_H

#include "mseg_abi.h"
#include "mseg_maps.h"
#include "mseg_parse.h"

struct mseg_verdict {
	__u64 rank;
	__u32 rule_id; /* 0: the default action */
	__u8 action;   /* enum mseg_action */
	__u8 by;       /* enum mseg_decided_by */
};

static __always_inline struct mseg_ident_val *
mseg_ident_lookup(__u8 set, __u8 family, const __u32 *addr)
{
	struct mseg_ident_key k = {
		.prefixlen = MSEG_IDENT_FULL_BITS,
		.set = set,
		.family = family,
	};

	__builtin_memcpy(k.addr, addr, 16);
	return bpf_map_lookup_elem(&mseg_ident, &k);
}

/*
 * One key of the rule trie: the first candidate whose source port fits,
 * if it beats what *v holds (lower rank, then lower rule id).
 */
static __always_inline void mseg_rules_try(struct mseg_rule_key *k, __u32 src,
					   __u32 dst, __u16 sport,
					   struct mseg_verdict *v)
{
	struct mseg_rule_val *r;
	int i;

	k->src_id = src;
	k->dst_id = dst;
	r = bpf_map_lookup_elem(&mseg_rules, k);
	if (!r)
		return;
#pragma unroll
	for (i = 0; i < MSEG_RULE_CANDS; i++) {
		struct mseg_rule_cand *c = &r->c[i];

		if (!c->rule_id)
			return;
		if (c->sport && c->sport != sport)
			continue;
		if (c->rank < v->rank ||
		    (c->rank == v->rank && c->rule_id < v->rule_id)) {
			v->rank = c->rank;
			v->rule_id = c->rule_id;
			v->action = c->action;
			v->by = c->by;
		}
		return;
	}
}

/*
 * default_action, strict and active_set share one aligned 32-bit word of
 * mseg_config. `mseg apply` switches the set and the default in one config
 * write; reading the word once means a flow is judged by one rule set and
 * that set's default, never by a mix of the old and the new.
 */
_Static_assert(__builtin_offsetof(struct mseg_config, default_action) == 8 &&
		       __builtin_offsetof(struct mseg_config, active_set) == 10,
	       "default_action and active_set share the word at offset 8");

/*
 * Judge a flow given as originator -> responder. A real BPF function, not
 * inlined: its lookup keys then live in its own frame, not in every caller's.
 */
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
	struct mseg_ident_val *si, *di;
	struct mseg_rule_key k = {
		.prefixlen = MSEG_RULE_FULL_BITS,
		.set = set,
		.proto = t->proto,
		.dport = { t->dport >> 8, t->dport & 0xff },
	};
	__u32 s = 0, d = 0, sf = 0, df = 0;

	v->rank = ~0ULL;
	v->rule_id = 0;
	si = mseg_ident_lookup(set, t->family, t->saddr);
	if (si) {
		s = si->id;
		sf = si->flags;
	}
	di = mseg_ident_lookup(set, t->family, t->daddr);
	if (di) {
		d = di->id;
		df = di->flags;
	}
	if ((sf & MSEG_IDF_SRC_PAIR) && (df & MSEG_IDF_DST_PAIR))
		mseg_rules_try(&k, s, d, t->sport, v);
	if (sf & MSEG_IDF_SRC_ANY)
		mseg_rules_try(&k, s, 0, t->sport, v);
	if (df & MSEG_IDF_DST_ANY)
		mseg_rules_try(&k, 0, d, t->sport, v);
	mseg_rules_try(&k, 0, 0, t->sport, v);
	if (v->rule_id)
		return;
	v->action = def == MSEG_ACT_DENY ? MSEG_ACT_DENY : MSEG_ACT_ALLOW;
	v->by = MSEG_BY_DEFAULT;
}

/* Count a decision (flows) or a packet of a decided session (packets). */
static __always_inline void mseg_rule_count(__u32 rule_id, bool flow)
{
	struct mseg_rule_hits *h = bpf_map_lookup_elem(&mseg_rule_hits, &rule_id);

	if (!h)
		return;
	h->packets++;
	if (flow)
		h->flows++;
}

#endif /* MSEG_POLICY_H */
