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
#include "mseg_verdict.h"

/* The identity of an address and its flags (id | flags << 32); 0: none. */
static __always_inline __u64 mseg_ident_lookup(struct mseg_ident_key *k,
					       const __u32 *addr)
{
	struct mseg_ident_val *iv;

	__builtin_memcpy(k->addr, addr, 16);
	iv = bpf_map_lookup_elem(&mseg_ident, k);
	return iv ? iv->id | (__u64)iv->flags << 32 : 0;
}

/* How a key's entries are stored (MSEG_IDF_*_WHOLE, MSEG_IDF_*_IDS). */
enum { MSEG_TRY_BOTH, MSEG_TRY_WHOLE, MSEG_TRY_IDS };

/*
 * One key of the compiled rules (the hash, then the trie as `how` says):
 * the first candidate whose source port fits, if it beats what *v holds
 * (lower rank, then lower rule id).
 */
static __always_inline void mseg_rules_try(struct mseg_rule_key *k, __u32 src,
					   __u32 dst, __u16 sport,
					   struct mseg_verdict *v, __u64 *rank,
					   int how)
{
	struct mseg_rule_val *r;
	__u8 proto;
	__u16 dport;
	int i;

	k->src_id = src;
	k->dst_id = dst;
	if (how == MSEG_TRY_IDS) {
		/* the key's one entry, for any protocol: its own key */
		proto = k->proto;
		__builtin_memcpy(&dport, k->dport, 2);
		k->prefixlen = MSEG_RULE_IDS_BITS;
		k->proto = 0;
		__builtin_memset(k->dport, 0, 2);
		r = bpf_map_lookup_elem(&mseg_rules_hash, k);
		k->prefixlen = MSEG_RULE_FULL_BITS;
		k->proto = proto;
		__builtin_memcpy(k->dport, &dport, 2);
	} else {
		/*
		 * A whole-key entry is the longest match; the trie only
		 * without one, and only if the key has entries the hash does
		 * not hold.
		 */
		r = bpf_map_lookup_elem(&mseg_rules_hash, k);
		if (!r && how != MSEG_TRY_WHOLE)
			r = bpf_map_lookup_elem(&mseg_rules, k);
	}
	if (!r)
		return;
#pragma unroll
	for (i = 0; i < MSEG_RULE_CANDS; i++) {
		struct mseg_rule_cand *c = &r->c[i];

		if (!c->rule_id)
			return;
		if (c->sport && c->sport != sport)
			continue;
		if (c->rank < *rank ||
		    (c->rank == *rank && c->rule_id < v->rule_id)) {
			*rank = c->rank;
			v->rule_id = c->rule_id;
			v->action = c->action;
			v->by = c->by;
		}
		return;
	}
}

_Static_assert(MSEG_IDF_SRC_ANY_WHOLE == 2 << 4 && MSEG_IDF_DST_ANY_WHOLE == 4 << 4 &&
		       MSEG_IDF_ANY_ANY_WHOLE == 8 << 4 && MSEG_IDF_SRC_ANY_IDS == 2 << 8 &&
		       MSEG_IDF_DST_ANY_IDS == 4 << 8 && MSEG_IDF_ANY_ANY_IDS == 8 << 8,
	       "the _WHOLE and _IDS flags are mseg_try_how's bits");

/* mseg_policy_decide's todo bits for key `bit` (2, 4, 8): how to ask it. */
static __always_inline int mseg_try_how(__u32 todo, __u32 bit)
{
	if (todo & (bit << 8))
		return MSEG_TRY_IDS;
	return todo & (bit << 4) ? MSEG_TRY_WHOLE : MSEG_TRY_BOTH;
}

/*
 * default_action, strict, active_set and mode share one aligned 32-bit
 * word of mseg_config. `mseg apply` switches the set and the default in
 * one config write (`--promote` the staged set, its default and the mode);
 * reading the word once means a flow is judged by one rule set and that
 * set's default, never by a mix of the old and the new.
 */
_Static_assert(__builtin_offsetof(struct mseg_config, default_action) == 8 &&
		       __builtin_offsetof(struct mseg_config, active_set) == 10 &&
		       __builtin_offsetof(struct mseg_config, mode) == 11,
	       "default_action, active_set and mode share the word at offset 8");

/*
 * Judge a flow given as originator -> responder, by the policy in force
 * or (staged) by the staged one in the other set. In audit mode a deny
 * comes out as MSEG_ACT_AUDIT. A global BPF function: the verifier checks
 * it once, not once per caller and path (four lookups of four candidates
 * each would multiply the caller's states), and its lookup keys live in
 * its own frame.
 */
__noinline int mseg_policy_decide(const struct mseg_tuple *t,
				  const struct mseg_config *cfg,
				  struct mseg_verdict *v, int staged)
{
	__u32 word;
	__u8 def, set, mode;
	/* one stack slot for both keys: the frame adds to the caller's */
	union {
		struct mseg_ident_key ik;
		struct mseg_rule_key k;
	} u = { .ik = { .prefixlen = MSEG_IDENT_FULL_BITS } };
	struct mseg_rule_key *k = &u.k;
	__u64 rank = ~0ULL, si, di;
	__u32 todo;

	if (!t || !cfg || !v)
		return 0;
	word = *(volatile const __u32 *)&cfg->default_action;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	def = word & 0xff;
	set = (word >> 16) & 0xff;
	mode = word >> 24;
#else
	def = word >> 24;
	set = (word >> 8) & 0xff;
	mode = word & 0xff;
#endif
	if (staged) {
		set ^= 1;
		def = (mode & MSEG_MODE_STAGED_DENY) ? MSEG_ACT_DENY : MSEG_ACT_ALLOW;
	}
	/* the default's verdict until a rule beats it: nothing else stays live */
	v->rule_id = 0;
	v->action = def == MSEG_ACT_DENY ? MSEG_ACT_DENY : MSEG_ACT_ALLOW;
	v->by = MSEG_BY_DEFAULT;
	u.ik.set = set;
	u.ik.family = t->family;
	si = mseg_ident_lookup(&u.ik, t->saddr);
	di = mseg_ident_lookup(&u.ik, t->daddr);
	/*
	 * Which keys to ask, decided now: only the two ids (packed in di) and
	 * these bits stay live across the lookups, so nothing spills onto a
	 * stack the caller's frame already nearly fills.
	 */
	todo = ((si >> 32) & MSEG_IDF_SRC_PAIR) && ((di >> 32) & MSEG_IDF_DST_PAIR) ? 1 : 0;
	if ((si >> 32) & MSEG_IDF_SRC_ANY)
		todo |= 2;
	if ((di >> 32) & MSEG_IDF_DST_ANY)
		todo |= 4;
	if (!(((si | di) >> 32) & MSEG_IDF_NO_ANY_ANY))
		todo |= 8;
	/*
	 * keys whose entries are all in the hash (no trie walk after a miss),
	 * or whose one entry is there for any protocol: the flags are the
	 * bits mseg_try_how reads
	 */
	todo |= ((si >> 32) & (MSEG_IDF_SRC_ANY_WHOLE | MSEG_IDF_SRC_ANY_IDS)) |
		((di >> 32) & (MSEG_IDF_DST_ANY_WHOLE | MSEG_IDF_DST_ANY_IDS)) |
		(((si | di) >> 32) & (MSEG_IDF_ANY_ANY_WHOLE | MSEG_IDF_ANY_ANY_IDS));
	di = (__u32)si | di << 32; /* src id, dst id */
	__builtin_memset(&u, 0, sizeof(u));
	k->prefixlen = MSEG_RULE_FULL_BITS;
	k->set = set;
	k->proto = t->proto;
	k->dport[0] = t->dport >> 8;
	k->dport[1] = t->dport & 0xff;
	if (todo & 1)
		mseg_rules_try(k, (__u32)di, di >> 32, t->sport, v, &rank, MSEG_TRY_BOTH);
	if (todo & 2)
		mseg_rules_try(k, (__u32)di, 0, t->sport, v, &rank, mseg_try_how(todo, 2));
	if (todo & 4)
		mseg_rules_try(k, 0, di >> 32, t->sport, v, &rank, mseg_try_how(todo, 4));
	if (todo & 8)
		mseg_rules_try(k, 0, 0, t->sport, v, &rank, mseg_try_how(todo, 8));
	if (v->action == MSEG_ACT_DENY && (mode & MSEG_MODE_AUDIT))
		v->action = MSEG_ACT_AUDIT;
	return 0;
}

/* Per-packet counts are kept (MSEG_MODE_NO_ACCT clear). */
static __always_inline bool mseg_accounting(const struct mseg_config *cfg)
{
	return !(cfg->mode & MSEG_MODE_NO_ACCT);
}

/*
 * Count a packet of a decided session under its rule. The id is passed
 * where it already lies (the verdict, the session), so no key is copied
 * onto the stack.
 */
static __always_inline void mseg_rule_count(const __u32 *rule_id)
{
	struct mseg_rule_hits *h = bpf_map_lookup_elem(&mseg_rule_hits, rule_id);

	if (h)
		h->packets++;
}

/* Count a decision (a new flow, a re-judged session) under its rule. */
static __always_inline void mseg_rule_count_flow(const struct mseg_config *cfg,
						 const struct mseg_verdict *v,
						 struct mseg_stats *st)
{
	struct mseg_rule_hits *h = bpf_map_lookup_elem(&mseg_rule_hits, &v->rule_id);

	if (v->action == MSEG_ACT_AUDIT)
		st->audit_denied++;
	if (!h)
		return;
	if (mseg_accounting(cfg))
		h->packets++;
	h->flows++;
	if (v->action == MSEG_ACT_AUDIT)
		h->audited++;
}

#endif /* MSEG_POLICY_H */
