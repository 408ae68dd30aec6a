/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Early drop (docs/DESIGN.md, "Pressure and SYN floods"), as nf_conntrack's
 * early_drop: when the table has no room for a flow that may still open a
 * session, it takes the slot of a session nobody answered (half-open,
 * picked up and unconfirmed, unreplied UDP or ICMP), of a finished TCP
 * session or of an expired one; never of an established, confirmed one.
 *
 * A BPF hash cannot be searched for such an entry without walking it, so
 * the data path remembers candidates as it opens them: every new session's
 * key goes into one of two rings (mseg_evict: TCP, and everything else),
 * and a TCP key again when its session reaches TIME_WAIT or CLOSE. A
 * victim is looked for from a ring's oldest end, MSEG_EVICT_SCAN keys at
 * most: a key whose session has gone or become established is skipped
 * (and the ring's tail moves past it), the first that still qualifies is
 * claimed (mseg_session.h) and deleted. The rings hold the last
 * MSEG_EVICT_SLOTS keys each; older candidates still expire on their own.
 */
#ifndef MSEG_EVICT_H
#define MSEG_EVICT_H

#include "mseg_abi.h"
#include "mseg_maps.h"
#include "mseg_conntrack.h"
#include "mseg_timeout.h"
#include "mseg_session.h"
#include "mseg_events.h"
#include "mseg_pressure.h"

#define MSEG_EVICT_SCAN 16

_Static_assert((MSEG_EVICT_SLOTS & (MSEG_EVICT_SLOTS - 1)) == 0,
	       "the early-drop rings are a power of two");

/* Remember `key` as a future candidate in `ring`. */
static __always_inline void mseg_evict_push(struct mseg_pressure *pr, int ring,
					    const struct mseg_session_key *key)
{
	__u64 n = __sync_fetch_and_add(&pr->evict_head[ring & 1], 1);
	__u32 idx = (ring & 1) * MSEG_EVICT_SLOTS + (n & (MSEG_EVICT_SLOTS - 1));
	struct mseg_session_key *slot = bpf_map_lookup_elem(&mseg_evict, &idx);

	if (slot)
		__builtin_memcpy(slot, key, sizeof(*key));
}

static __always_inline int mseg_evict_ring(const struct mseg_session_key *key)
{
	return key->proto == IPPROTO_TCP ? MSEG_EVICT_RING_TCP :
					   MSEG_EVICT_RING_OTHER;
}

/* Why `s` (read as `last`) may be dropped early: a reason, or 0. */
static __always_inline __u8 mseg_evictable(const struct mseg_config *cfg,
					   const struct mseg_session_key *k,
					   const struct mseg_session *s,
					   __u64 last, __u64 now, bool pressure)
{
	if (last == MSEG_SESSION_DYING)
		return 0;
	if (mseg_session_expired_at(cfg, k, s, last, now, pressure))
		return MSEG_RSN_EXPIRED;
	if (mseg_session_half_open(k, s))
		return MSEG_RSN_HALF_OPEN;
	if (mseg_session_unreplied(k, s))
		return MSEG_RSN_UNREPLIED;
	if (k->proto == IPPROTO_TCP &&
	    (s->state == MSEG_TCP_TIME_WAIT || s->state == MSEG_TCP_CLOSE))
		return MSEG_RSN_CLOSED;
	return 0;
}

/*
 * One search of a ring: bpf_loop()'s context, which must live on the
 * stack. Pointers are looked up again in the callback rather than carried:
 * early drop runs at the bottom of the deepest call chain, and every byte
 * here counts against the verifier's combined stack bound.
 */
struct mseg_evict_scan {
	__u64 head;
	__u64 tail;
	__u64 now;
	__u32 ring;
	__u32 pressure;
};

/*
 * Look at key tail + i of the ring. A bpf_loop() callback: the verifier
 * checks its body once, where an unrolled loop of lookups would have it
 * walk every path of every iteration.
 */
static long mseg_evict_scan_one(__u32 i, void *ctx)
{
	struct mseg_evict_scan *c = ctx;
	__u64 pos = c->tail + i;
	__u32 idx = (c->ring & 1) * MSEG_EVICT_SLOTS +
		    (pos & (MSEG_EVICT_SLOTS - 1)), zero = 0;
	struct mseg_session_key *slot;
	struct mseg_config *cfg;
	struct mseg_session *s;
	struct mseg_scratch *x;
	struct mseg_victim *v;

	if (pos >= c->head)
		return 1;
	cfg = bpf_map_lookup_elem(&mseg_config, &zero);
	x = bpf_map_lookup_elem(&mseg_scratch, &zero);
	slot = bpf_map_lookup_elem(&mseg_evict, &idx);
	if (!slot || !cfg || !x)
		return 1;
	v = &x->victim[c->ring & 1];
	/* another CPU may overwrite the slot: work on a copy */
	__builtin_memcpy(&v->key, slot, sizeof(v->key));
	s = bpf_map_lookup_elem(&mseg_sessions, &v->key);
	if (!s)
		return 0;
	v->last = s->last_seen_ns;
	v->why = mseg_evictable(cfg, &v->key, s, v->last, c->now,
				c->pressure);
	if (!v->why)
		return 0;
	v->pos = pos;
	return 1;
}

/*
 * The oldest candidate of `ring` within MSEG_EVICT_SCAN keys of its tail,
 * into *v; moves the tail past the keys that no longer qualify.
 */
static __always_inline bool mseg_evict_find(struct mseg_pressure *pr,
					    int ring, __u64 now, bool pressure,
					    struct mseg_victim *v)
{
	struct mseg_evict_scan c = {
		.head = pr->evict_head[ring & 1],
		.tail = pr->evict_tail[ring & 1],
		.now = now,
		.ring = ring & 1,
		.pressure = pressure,
	};
	long n;

	if (c.head - c.tail > MSEG_EVICT_SLOTS)
		c.tail = c.head - MSEG_EVICT_SLOTS;
	v->why = 0;
	n = bpf_loop(MSEG_EVICT_SCAN, mseg_evict_scan_one, &c, 0);
	if (v->why) {
		pr->evict_tail[ring & 1] = v->pos;
		return true;
	}
	if (n > 0)
		pr->evict_tail[ring & 1] = c.tail + n;
	return false;
}

/*
 * Claim and delete the candidate of `ring`, and count it; the caller tells
 * `mseg log` (mseg_evict_tell()). The claim fails when the session moved
 * since it was judged.
 */
static __always_inline bool mseg_evict_take(struct mseg_pressure *pr,
					    struct mseg_stats *st,
					    struct mseg_scratch *x, int ring,
					    struct mseg_victim *v)
{
	struct mseg_session *s = bpf_map_lookup_elem(&mseg_sessions, &v->key);
	bool half_open;

	if (!s)
		return false;
	half_open = mseg_session_half_open(&v->key, s);
	if (!mseg_session_claim(s, v->last))
		return false;
	pr->evict_tail[ring & 1] = v->pos + 1;
	v->action = s->action;
	mseg_session_orig(&v->key, s, v->key.family, &x->t);
	if (bpf_map_delete_elem(&mseg_sessions, &v->key))
		return false;
	if (half_open)
		__sync_fetch_and_add(&pr->half_open_closed, 1);
	__sync_fetch_and_sub(&pr->sessions, 1);
	st->early_drop++;
	x->evicted = 1 + (ring & 1);
	return true;
}

/*
 * The event of the session early drop took, if it took one. Told by the
 * new flow, not by mseg_early_drop(): an event from there would be one
 * call deeper on the deepest call chain, past the verifier's stack bound.
 */
static __always_inline void mseg_evict_tell(const struct mseg_config *cfg,
					    struct mseg_stats *st,
					    struct mseg_scratch *x, __u64 now)
{
	struct mseg_victim *v;

	if (!x->evicted)
		return;
	/* mseg_evict_take() left the victim's flow in x->t */
	v = &x->victim[(x->evicted - 1) & 1];
	x->evicted = 0;
	mseg_event(cfg, st, &x->t,
		   mseg_ev(MSEG_EV_EVICT, v->why, v->action, 0,
			   now > v->last ? (now - v->last) / MSEG_NSEC_PER_SEC : 0));
}

#define MSEG_EVICT_PRESSURE 0x1 /* the short timeouts are in force */
#define MSEG_EVICT_ANY_RING 0x2 /* TCP sessions may go too */

/*
 * Make room for one new session. A flow an exact rule allows
 * (MSEG_EVICT_ANY_RING) takes the older of the two rings' candidates; DNS
 * and ICMP admitted under degradation only recycle the ring of non-TCP
 * sessions, so they never drop a TCP handshake in progress. A global
 * function: the verifier checks it once. Returns 1 when it made room.
 */
__noinline int mseg_early_drop(__u64 now, __u32 how)
{
	struct mseg_pressure *pr = mseg_pressure_get();
	bool pressure = how & MSEG_EVICT_PRESSURE;
	struct mseg_victim *a, *b;
	bool have_a = false, have_b;
	struct mseg_scratch *x;
	struct mseg_config *cfg;
	struct mseg_stats *st;
	__u32 zero = 0;

	cfg = bpf_map_lookup_elem(&mseg_config, &zero);
	st = bpf_map_lookup_elem(&mseg_stats, &zero);
	x = bpf_map_lookup_elem(&mseg_scratch, &zero);
	if (!cfg || !st || !pr || !x)
		return 0;
	a = &x->victim[MSEG_EVICT_RING_TCP];
	b = &x->victim[MSEG_EVICT_RING_OTHER];
	if (how & MSEG_EVICT_ANY_RING)
		have_a = mseg_evict_find(pr, MSEG_EVICT_RING_TCP, now,
					 pressure, a);
	have_b = mseg_evict_find(pr, MSEG_EVICT_RING_OTHER, now,
				 pressure, b);
	if (have_a && (!have_b || a->last <= b->last)) {
		if (mseg_evict_take(pr, st, x, MSEG_EVICT_RING_TCP, a))
			return 1;
		return have_b && mseg_evict_take(pr, st, x,
						 MSEG_EVICT_RING_OTHER, b);
	}
	if (have_b &&
	    mseg_evict_take(pr, st, x, MSEG_EVICT_RING_OTHER, b))
		return 1;
	return have_a &&
	       mseg_evict_take(pr, st, x, MSEG_EVICT_RING_TCP, a);
}

#endif /* MSEG_EVICT_H */
