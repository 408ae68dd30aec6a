/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * IP fragments (docs/DESIGN.md, "Data path", fragments). The first fragment
 * carries the ports: they are remembered, with the upper-layer protocol, so
 * the later fragments of the same datagram are judged as the same flow and
 * join its session (Cilium does the same). A later fragment whose first was
 * never seen is judged by its addresses and never opens a session.
 *
 * mseg_frags is a plain hash, not an LRU: a flood of first fragments fills
 * it and is then refused (frag_full), as the kernel refuses new datagrams
 * when its reassembly memory is full, but it never pushes out the ports of
 * a datagram already remembered. Entries older than MSEG_FRAG_TIMEOUT_NS
 * count as absent; when an insertion finds the table full, the data path
 * deletes them all in one walk, at most once a second per CPU, so the
 * table recovers from a flood by itself, with no timer to allocate and no
 * collector to run.
 */
#ifndef MSEG_FRAG_H
#define MSEG_FRAG_H

#include "mseg_abi.h"
#include "mseg_maps.h"
#include "mseg_parse.h"
#include "mseg_timeout.h"

#ifndef E2BIG
#define E2BIG 7
#endif

/* The kernel's reassembly key: IPv4 (src, dst, id, protocol), IPv6 (src, dst, id). */
static __always_inline void mseg_frag_key_of(const struct mseg_pkt *p,
					     struct mseg_frag_key *fk)
{
	__builtin_memcpy(fk->src, p->t.saddr, 16);
	__builtin_memcpy(fk->dst, p->t.daddr, 16);
	fk->id = p->frag_id;
	fk->family = p->t.family;
	fk->proto = p->t.family == 4 ? p->t.proto : 0;
}

struct mseg_frag_reclaim {
	__u64 now;
	__u32 deleted;
};

static long mseg_frag_reclaim_one(void *map, struct mseg_frag_key *key,
				  struct mseg_frag_val *val,
				  struct mseg_frag_reclaim *r)
{
	if (mseg_older_than(r->now, val->seen_ns, MSEG_FRAG_TIMEOUT_NS) &&
	    !bpf_map_delete_elem(map, key))
		r->deleted++;
	return 0;
}

/*
 * Delete every expired entry; returns how many. A global function: the
 * verifier checks the walk once, on its own, not in every state of the
 * classifier that reaches it.
 */
__noinline int mseg_frag_reclaim(__u64 now)
{
	struct mseg_frag_reclaim r = { .now = now };

	bpf_for_each_map_elem(&mseg_frags, mseg_frag_reclaim_one, &r, 0);
	return r.deleted;
}

/*
 * A first fragment: remember its ports and protocol. `last_reclaim` is
 * this CPU's time of its last walk over a full table.
 */
static __always_inline void mseg_frag_remember(const struct mseg_pkt *p,
					       struct mseg_stats *st,
					       __u64 *last_reclaim, __u64 now)
{
	struct mseg_frag_key fk = {};
	struct mseg_frag_val nv = {
		.seen_ns = now,
		.sport = p->t.sport,
		.dport = p->t.dport,
		.proto = p->t.proto,
	};
	long err;

	mseg_frag_key_of(p, &fk);
	err = bpf_map_update_elem(&mseg_frags, &fk, &nv, BPF_ANY);
	if (err == -E2BIG &&
	    mseg_older_than(now, *last_reclaim, MSEG_NSEC_PER_SEC)) {
		*last_reclaim = now;
		if (mseg_frag_reclaim(now) > 0)
			err = bpf_map_update_elem(&mseg_frags, &fk, &nv, BPF_ANY);
	}
	if (err)
		st->frag_full++;
}

/*
 * A later fragment: take the ports and the protocol of its first. False
 * when the first was never seen (or is too old): then only the addresses
 * are known.
 */
static __always_inline bool mseg_frag_recall(struct mseg_pkt *p, __u64 now)
{
	struct mseg_frag_key fk = {};
	struct mseg_frag_val *fv;

	mseg_frag_key_of(p, &fk);
	fv = bpf_map_lookup_elem(&mseg_frags, &fk);
	if (!fv || mseg_older_than(now, fv->seen_ns, MSEG_FRAG_TIMEOUT_NS))
		return false;
	p->t.sport = fv->sport;
	p->t.dport = fv->dport;
	p->t.proto = fv->proto;
	return true;
}

#endif /* MSEG_FRAG_H */
