// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * mseg: a microsegmentation classifier for tc. Load it with plain iproute2:
 *   tc qdisc add dev D clsact
 *   tc filter add dev D ingress bpf da obj build/mseg.bpf.o sec tc
 * Every attachment shares the pinned maps (mseg_maps.h).
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "mseg_abi.h"
#include "mseg_maps.h"
#include "mseg_clock.h"
#include "mseg_parse.h"
#include "mseg_policy.h"
#include "mseg_conntrack.h"
#include "mseg_tcp.h"
#include "mseg_pressure.h"
#include "mseg_frag.h"
#include "mseg_icmp.h"

#ifndef E2BIG
#define E2BIG 7
#endif
#ifndef EEXIST
#define EEXIST 17
#endif

/* Not a tc verdict: mseg_existing() hands the packet to mseg_new_flow(). */
#define MSEG_TCP_REOPEN_VERDICT (-1000)

/* A verdict's origin is its event's reason. */
_Static_assert(MSEG_BY_EXACT == MSEG_RSN_EXACT && MSEG_BY_CIDR == MSEG_RSN_CIDR &&
		       MSEG_BY_DEFAULT == MSEG_RSN_DEFAULT,
	       "verdict origins double as event reasons");

/* Denies and log verdicts are told to `mseg log`. */
static __always_inline void mseg_verdict_event(const struct mseg_config *cfg,
					       struct mseg_stats *st,
					       const struct mseg_tuple *t,
					       const struct mseg_verdict *v,
					       __u8 flags)
{
	if (v->action == MSEG_ACT_DENY)
		mseg_event(cfg, st, t,
			   mseg_ev(MSEG_EV_DENY, v->by, v->action, flags, 0));
	else if (v->action == MSEG_ACT_LOG)
		mseg_event(cfg, st, t,
			   mseg_ev(MSEG_EV_LOG, v->by, v->action, flags, 0));
}

static __always_inline int mseg_pass(struct mseg_stats *st, __u8 action)
{
	st->allowed++;
	if (action == MSEG_ACT_LOG)
		st->logged++;
	return TC_ACT_OK;
}

static __always_inline int mseg_drop(struct mseg_stats *st)
{
	st->dropped++;
	return TC_ACT_SHOT;
}

static __always_inline void mseg_count_decision(struct mseg_stats *st,
						const struct mseg_verdict *v)
{
	if (v->by == MSEG_BY_EXACT)
		st->policy_hit++;
	else if (v->by == MSEG_BY_CIDR)
		st->ip_range_hit++;
	else
		st->default_hit++;
}

static __always_inline void mseg_judge_new(const struct mseg_tuple *t,
					   const struct mseg_config *cfg,
					   struct mseg_stats *st,
					   struct mseg_verdict *v)
{
	mseg_policy_decide(t, cfg, v);
	mseg_count_decision(st, v);
}

/*
 * What a flow that cannot get a session may still do (docs/DESIGN.md, pressure):
 * pass if an exact rule explicitly allows it, or it is ICMP or DNS.
 */
static __always_inline bool
mseg_admit_without_session(const struct mseg_tuple *t,
			   const struct mseg_verdict *v)
{
	if (v->by == MSEG_BY_EXACT && v->action != MSEG_ACT_DENY)
		return true;
	if (t->proto == IPPROTO_ICMP || t->proto == IPPROTO_ICMPV6)
		return true;
	return (t->proto == IPPROTO_UDP || t->proto == IPPROTO_TCP) &&
	       (t->dport == 53 || t->sport == 53);
}

static __always_inline void mseg_tuple_reverse(struct mseg_tuple *t)
{
	__u32 a[4];
	__u16 port = t->sport;

	__builtin_memcpy(a, t->saddr, 16);
	__builtin_memcpy(t->saddr, t->daddr, 16);
	__builtin_memcpy(t->daddr, a, 16);
	t->sport = t->dport;
	t->dport = port;
}

static __always_inline void mseg_account(struct mseg_session *s, int dir,
					 __u32 len, __u64 now)
{
	__sync_fetch_and_add(&s->packets[dir & 1], 1);
	__sync_fetch_and_add(&s->bytes[dir & 1], len);
	s->last_seen_ns = now;
	if (dir == MSEG_DIR_REPLY && !(s->flags & MSEG_SESS_REPLIED))
		s->flags |= MSEG_SESS_REPLIED;
}

/*
 * A connection picked up mid-stream (mseg attached to live traffic) has no
 * SYN to tell who opened it, and the first packet seen may be the
 * responder's. Its originator is the side the policy lets open it; when
 * both or neither may, the side on the higher port (the ephemeral one).
 * Taking the first sender would make the responder the originator, and a
 * policy allowing "client -> server:port" would deny the connection the
 * next time it judges it (the fleet's SSH, cut by the rollout it carried).
 * Decides `t` into `v`; true when the originator is t's receiver, and then
 * `v` is the reversed tuple's verdict. A separate frame: two tuples.
 */
static __noinline bool mseg_pickup_reversed(const struct mseg_tuple *t,
					    const struct mseg_config *cfg,
					    struct mseg_verdict *v)
{
	struct mseg_tuple r = *t;
	struct mseg_verdict rv;
	bool own, rev;

	mseg_tuple_reverse(&r);
	mseg_policy_decide(t, cfg, v);
	mseg_policy_decide(&r, cfg, &rv);
	own = v->action != MSEG_ACT_DENY;
	rev = rv.action != MSEG_ACT_DENY;
	if (own == rev ? t->sport >= t->dport : own)
		return false;
	*v = rv;
	return true;
}

/* The rules moved since the session was judged: judge it again. */
static __always_inline void mseg_rejudge(const struct mseg_config *cfg,
					 struct mseg_stats *st,
					 const struct mseg_session_key *key,
					 struct mseg_session *s)
{
	struct mseg_verdict v;
	struct mseg_tuple t;

	if (s->policy_gen == cfg->policy_gen)
		return;
	mseg_session_orig(key, s, key->family, &t);
	/* A picked-up session's orientation was a guess: either may be right. */
	if (s->flags & MSEG_SESS_PICKUP)
		mseg_pickup_reversed(&t, cfg, &v);
	else
		mseg_policy_decide(&t, cfg, &v);
	if (v.action != s->action)
		mseg_verdict_event(cfg, st, &t, &v, MSEG_EVF_REJUDGED);
	s->action = v.action;
	s->policy_gen = cfg->policy_gen;
	st->rejudged++;
}

/*
 * The session is live: re-judge it if the rules moved, track, count. A SYN
 * that reopens a finished connection's tuple is not this session's: it
 * counts no session hit and goes on as a new flow (one packet, one decision).
 */
static __always_inline int mseg_existing(struct __sk_buff *skb,
					 const struct mseg_pkt *p,
					 const struct mseg_config *cfg,
					 struct mseg_stats *st,
					 struct mseg_pressure *pr,
					 const struct mseg_session_key *key,
					 struct mseg_session *s, int dir,
					 __u64 now)
{
	__u8 old_state = s->state;

	mseg_rejudge(cfg, st, key, s);
	if (s->action == MSEG_ACT_DENY) {
		st->session_hit++;
		st->denied++;
		return TC_ACT_SHOT;
	}

	if (p->t.proto == IPPROTO_TCP && p->frag != MSEG_FRAG_LATER) {
		int r = mseg_tcp_update(s, dir, p);

		if (r == MSEG_TCP_REOPEN)
			return MSEG_TCP_REOPEN_VERDICT;
		if (r == MSEG_TCP_RST_IGNORED)
			st->rst_ignored++;
		if (s->state != old_state) {
			if (mseg_half_open_state(old_state) &&
			    !mseg_half_open_state(s->state))
				__sync_fetch_and_add(&pr->half_open_closed, 1);
			if (s->state == MSEG_TCP_ESTABLISHED)
				st->tcp_established++;
			else if (s->state == MSEG_TCP_CLOSE)
				st->tcp_closed++;
		}
	}
	st->session_hit++;
	mseg_account(s, dir, skb->len, now);
	return mseg_pass(st, s->action);
}

/*
 * A packet with no live session: judge it and, when it may start one, open
 * a session for it. `old` is the expired or finished entry it replaces.
 */
static __always_inline int mseg_new_flow(struct __sk_buff *skb,
					 const struct mseg_pkt *p,
					 const struct mseg_config *cfg,
					 struct mseg_stats *st,
					 struct mseg_pressure *pr,
					 const struct mseg_session_key *key,
					 const struct mseg_session *old,
					 bool sender_hi, bool trackable,
					 __u64 now)
{
	struct mseg_tuple t = p->t;
	struct mseg_session ns = {};
	struct mseg_verdict v;
	bool orig_is_hi = sender_hi;
	__u8 state = MSEG_TCP_NONE;
	int dir, err;

	if (trackable && t.proto == IPPROTO_TCP) {
		state = mseg_tcp_first_state(p);
		if (state == MSEG_TCP_NONE ||
		    (state != MSEG_TCP_SYN_SENT && cfg->strict)) {
			/* Fits no connection: judged, never tracked. */
			st->invalid++;
			if (cfg->strict) {
				st->strict_drop++;
				return mseg_drop(st);
			}
			trackable = false;
		} else if (state == MSEG_TCP_SYN_RECV) {
			/* A SYN+ACK first: its receiver sent the SYN. */
			orig_is_hi = !sender_hi;
			mseg_tuple_reverse(&t);
		}
	}

	if (trackable)
		mseg_pressure_update(pr, cfg, st, now,
				     state == MSEG_TCP_SYN_SENT);
	if (trackable && state != MSEG_TCP_NONE &&
	    state != MSEG_TCP_SYN_SENT && state != MSEG_TCP_SYN_RECV) {
		if (mseg_pickup_reversed(&t, cfg, &v)) {
			orig_is_hi = !sender_hi;
			mseg_tuple_reverse(&t);
		}
		mseg_count_decision(st, &v);
	} else {
		mseg_judge_new(&t, cfg, st, &v);
	}
	if (v.action == MSEG_ACT_DENY) {
		mseg_verdict_event(cfg, st, &t, &v, 0);
		st->denied++;
		return TC_ACT_SHOT;
	}
	if (!trackable)
		return mseg_pass(st, v.action);
	if (mseg_degraded(pr) && !mseg_admit_without_session(&t, &v)) {
		bool full = mseg_table_full(pr);

		if (full) {
			st->map_full++;
			__sync_fetch_and_add(&pr->refused, 1);
		} else {
			st->pressure_drop++;
		}
		mseg_event(cfg, st, &t,
			   mseg_ev(MSEG_EV_DROP,
				   full ? MSEG_RSN_FULL : MSEG_RSN_DEGRADED,
				   MSEG_ACT_DENY, 0, pr->level));
		return mseg_drop(st);
	}

	dir = sender_hi == orig_is_hi ? MSEG_DIR_ORIG : MSEG_DIR_REPLY;
	ns.created_ns = now;
	ns.policy_gen = cfg->policy_gen;
	ns.state = state;
	ns.action = v.action;
	ns.orig_is_hi = orig_is_hi;
	if (state != MSEG_TCP_NONE && state != MSEG_TCP_SYN_SENT)
		ns.flags |= MSEG_SESS_PICKUP;
	if (t.proto == IPPROTO_TCP)
		mseg_tcp_track(&ns.tcp[dir & 1], &ns.tcp[!(dir & 1)], p);
	mseg_account(&ns, dir, skb->len, now);

	/* A plain hash never evicts (mseg_maps.h): when the table is full
	 * this insertion fails and an established session keeps its slot.
	 * Replacing `old` reuses its slot. */
	err = bpf_map_update_elem(&mseg_sessions, key, &ns,
				  old ? BPF_ANY : BPF_NOEXIST);
	if (err == -EEXIST) {
		/* Another CPU opened it first; its session serves from now. */
		return mseg_pass(st, v.action);
	}
	if (err) {
		st->map_full++;
		__sync_fetch_and_add(&pr->refused, 1);
		if (!mseg_admit_without_session(&t, &v)) {
			mseg_event(cfg, st, &t,
				   mseg_ev(MSEG_EV_DROP, MSEG_RSN_FULL,
					   MSEG_ACT_DENY, 0, pr->level));
			return mseg_drop(st);
		}
		return mseg_pass(st, v.action);
	}
	if (old && mseg_half_open_state(old->state) &&
	    key->proto == IPPROTO_TCP)
		__sync_fetch_and_add(&pr->half_open_closed, 1);
	if (mseg_half_open_state(state))
		__sync_fetch_and_add(&pr->half_open_opened, 1);
	if (!old)
		__sync_fetch_and_add(&pr->sessions, 1);
	if (v.action == MSEG_ACT_LOG)
		mseg_verdict_event(cfg, st, &t, &v, 0);
	st->new_session++;
	return mseg_pass(st, v.action);
}

/* A frame the parser refused: counted under its reason, dropped. */
static __always_inline int mseg_refuse(struct mseg_stats *st, __u8 reason)
{
	switch (reason) {
	case MSEG_DROP_VLAN_LIMIT:
		st->vlan_limit++;
		break;
	case MSEG_DROP_V4_MAPPED:
		st->v4_mapped++;
		break;
	case MSEG_DROP_EXTHDR_LIMIT:
		st->exthdr_limit++;
		break;
	case MSEG_DROP_FRAG_TINY:
		st->frag_tiny++;
		break;
	default:
		st->frag_overlap++;
	}
	return mseg_drop(st);
}

/* mseg_icmp_related() found no live, allowed session the error is about. */
#define MSEG_NOT_RELATED (-1001)

/*
 * An ICMP error: passed as RELATED when it is about a live, allowed session
 * (mseg_icmp.h). `key` is the classifier's, free at this point.
 */
static __always_inline int mseg_icmp_related(struct __sk_buff *skb,
					     struct mseg_scratch *sc,
					     const struct mseg_config *cfg,
					     struct mseg_stats *st,
					     const struct mseg_pressure *pr,
					     struct mseg_session_key *key,
					     __u64 now)
{
	const struct mseg_pkt *p = &sc->pkt;
	struct mseg_quoted *q = &sc->quoted;
	struct mseg_session *s;

	__builtin_memset(q, 0, sizeof(*q));
	q->off = p->l4_off + sizeof(struct mseg_icmp_echo);
	q->end = p->l4_off + p->l4_len;
	q->family = p->t.family;
	if (mseg_icmp_quoted(skb, q))
		return MSEG_NOT_RELATED;
	/* to the quoted packet's sender, as nf_conntrack checks too */
	if (q->t.saddr[0] != p->t.daddr[0] || q->t.saddr[1] != p->t.daddr[1] ||
	    q->t.saddr[2] != p->t.daddr[2] || q->t.saddr[3] != p->t.daddr[3])
		return MSEG_NOT_RELATED;
	mseg_session_key(&q->t, key);
	s = bpf_map_lookup_elem(&mseg_sessions, key);
	if (!s || mseg_session_expired(cfg, key, s, now, mseg_flooded(pr)))
		return MSEG_NOT_RELATED;
	mseg_rejudge(cfg, st, key, s);
	if (s->action == MSEG_ACT_DENY)
		return MSEG_NOT_RELATED;
	st->related++;
	return mseg_pass(st, s->action);
}

SEC("tc")
int mseg_classifier(struct __sk_buff *skb)
{
	struct mseg_session_key key = {};
	struct mseg_scratch *sc;
	struct mseg_pressure *pr;
	struct mseg_config *cfg;
	struct mseg_session *s = NULL;
	struct mseg_stats *st;
	struct mseg_pkt *p;
	bool sender_hi = false, trackable = true, ports = true;
	__u32 zero = 0;
	__u64 now;
	int r;

	cfg = bpf_map_lookup_elem(&mseg_config, &zero);
	st = bpf_map_lookup_elem(&mseg_stats, &zero);
	sc = bpf_map_lookup_elem(&mseg_scratch, &zero);
	pr = mseg_pressure_get();
	if (!cfg || !st || !sc || !pr)
		return TC_ACT_OK;
	st->total++;
	p = &sc->pkt;

	r = mseg_parse(skb, p, &sc->buf);
	if (r == MSEG_PARSE_NON_IP) {
		st->non_ip++;
		return TC_ACT_OK;
	}
	if (r == MSEG_PARSE_DROP)
		return mseg_refuse(st, p->drop);
	now = mseg_now();
	if (r != MSEG_PARSE_OK) {
		st->malformed++;
		if (cfg->strict) {
			st->strict_drop++;
			return mseg_drop(st);
		}
		if (r == MSEG_PARSE_UNREAD) {
			/* no addresses to judge: the kernel discards it */
			st->unjudged++;
			return TC_ACT_OK;
		}
		/* Judged by what could be read: addresses and protocol. */
		p->t.sport = 0;
		p->t.dport = 0;
		trackable = false;
		goto judge;
	}
	if (p->exempt) {
		st->exempt++;
		return mseg_pass(st, MSEG_ACT_ALLOW);
	}

	mseg_pressure_tick(pr, cfg, st, now);
	if (p->icmp == MSEG_ICMPK_ERROR) {
		r = mseg_icmp_related(skb, sc, cfg, st, pr, &key, now);
		if (r != MSEG_NOT_RELATED)
			return r;
		/* judged by the policy; an error never opens a session */
		trackable = false;
		goto judge;
	}
	if (p->frag == MSEG_FRAG_FIRST) {
		mseg_frag_remember(p, st, &sc->frag_reclaim_ns, now);
	} else if (p->frag == MSEG_FRAG_LATER) {
		/* joins its datagram's session, never opens one */
		st->fragments++;
		ports = mseg_frag_recall(p, now);
		trackable = false;
	}

	sender_hi = mseg_session_key(&p->t, &key);
	if (ports)
		s = bpf_map_lookup_elem(&mseg_sessions, &key);
	if (s && !mseg_session_expired(cfg, &key, s, now, mseg_flooded(pr))) {
		int dir = sender_hi == s->orig_is_hi ? MSEG_DIR_ORIG :
						       MSEG_DIR_REPLY;

		r = mseg_existing(skb, p, cfg, st, pr, &key, s, dir, now);
		if (r != MSEG_TCP_REOPEN_VERDICT)
			return r;
	}
	if (p->icmp == MSEG_ICMPK_ECHO_REP && trackable) {
		/* an echo reply answers a request: it never opens a session */
		st->invalid++;
		if (cfg->strict) {
			st->strict_drop++;
			return mseg_drop(st);
		}
		trackable = false;
	}
judge:
	return mseg_new_flow(skb, p, cfg, st, pr, &key, s, sender_hi,
			     trackable, now);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
