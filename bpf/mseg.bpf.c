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
			   mseg_ev(MSEG_EV_DENY, v->by, v->action, flags,
				   v->rule_id));
	else if (v->action == MSEG_ACT_LOG)
		mseg_event(cfg, st, t,
			   mseg_ev(MSEG_EV_LOG, v->by, v->action, flags,
				   v->rule_id));
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

static __always_inline void mseg_judge_new(const struct mseg_tuple *t,
					   const struct mseg_config *cfg,
					   struct mseg_stats *st,
					   struct mseg_verdict *v)
{
	mseg_policy_decide(t, cfg, v);
	mseg_rule_count(&v->rule_id, true);
	if (v->by == MSEG_BY_EXACT)
		st->policy_hit++;
	else if (v->by == MSEG_BY_CIDR)
		st->ip_range_hit++;
	else
		st->default_hit++;
}

/*
 * What a flow that cannot get a session may still do (docs/DESIGN.md, pressure):
 * pass if a rule (not a CIDR statement, not the default) explicitly allows
 * it, or it is ICMP or DNS.
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

/* The session is live: re-judge it if the rules moved, track, count. */
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

	st->session_hit++;
	if (s->policy_gen != cfg->policy_gen) {
		struct mseg_verdict v;
		struct mseg_tuple t;

		mseg_session_orig(key, s, p->t.family, &t);
		mseg_policy_decide(&t, cfg, &v);
		mseg_rule_count(&v.rule_id, true);
		if (v.action != s->action)
			mseg_verdict_event(cfg, st, &t, &v, MSEG_EVF_REJUDGED);
		s->action = v.action;
		s->rule_id = v.rule_id;
		s->policy_gen = cfg->policy_gen;
		st->rejudged++;
	}
	else {
		mseg_rule_count(&s->rule_id, false);
	}
	if (s->action == MSEG_ACT_DENY) {
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
			if (cfg->strict)
				return mseg_drop(st);
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
	mseg_judge_new(&t, cfg, st, &v);
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
	ns.rule_id = v.rule_id;
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

/*
 * Fragments: the first one carries the ports; remember them so the later
 * ones join the same session. Returns false for a later fragment whose
 * first was never seen: it can only be judged by its addresses.
 */
static __always_inline bool mseg_fragment_ports(struct mseg_pkt *p,
						struct mseg_stats *st, __u64 now)
{
	struct mseg_frag_key fk = {};
	struct mseg_frag_val *fv;

	__builtin_memcpy(fk.src, p->t.saddr, 16);
	__builtin_memcpy(fk.dst, p->t.daddr, 16);
	fk.id = p->frag_id;
	fk.proto = p->t.proto;

	if (p->frag == MSEG_FRAG_FIRST) {
		struct mseg_frag_val nv = {
			.seen_ns = now,
			.sport = p->t.sport,
			.dport = p->t.dport,
		};

		bpf_map_update_elem(&mseg_frags, &fk, &nv, BPF_ANY);
		return true;
	}
	st->fragments++;
	fv = bpf_map_lookup_elem(&mseg_frags, &fk);
	if (!fv || mseg_older_than(now, fv->seen_ns, MSEG_FRAG_TIMEOUT_NS))
		return false;
	p->t.sport = fv->sport;
	p->t.dport = fv->dport;
	return true;
}

SEC("tc")
int mseg_classifier(struct __sk_buff *skb)
{
	struct mseg_session_key key = {};
	struct mseg_pkt p = {};
	struct mseg_pressure *pr;
	struct mseg_config *cfg;
	struct mseg_session *s;
	struct mseg_stats *st;
	bool sender_hi, trackable = true;
	__u32 zero = 0;
	__u64 now;
	int r;

	cfg = bpf_map_lookup_elem(&mseg_config, &zero);
	st = bpf_map_lookup_elem(&mseg_stats, &zero);
	pr = mseg_pressure_get();
	if (!cfg || !st || !pr)
		return TC_ACT_OK;
	st->total++;

	r = mseg_parse(skb, &p);
	if (r == MSEG_PARSE_NON_IP) {
		st->non_ip++;
		return TC_ACT_OK;
	}
	if (r != MSEG_PARSE_OK) {
		st->malformed++;
		return cfg->strict ? mseg_drop(st) : TC_ACT_OK;
	}
	if (p.link_local)
		return mseg_pass(st, MSEG_ACT_ALLOW);

	now = mseg_now();
	mseg_pressure_tick(pr, cfg, st, now);
	if (p.frag != MSEG_FRAG_NONE && !mseg_fragment_ports(&p, st, now))
		trackable = false;

	sender_hi = mseg_session_key(&p.t, &key);
	s = trackable ? bpf_map_lookup_elem(&mseg_sessions, &key) : NULL;
	if (s && !mseg_session_expired(cfg, &key, s, now, mseg_flooded(pr))) {
		int dir = sender_hi == s->orig_is_hi ? MSEG_DIR_ORIG :
						       MSEG_DIR_REPLY;

		r = mseg_existing(skb, &p, cfg, st, pr, &key, s, dir, now);
		if (r != MSEG_TCP_REOPEN_VERDICT)
			return r;
	}
	return mseg_new_flow(skb, &p, cfg, st, pr, &key, s, sender_hi,
			     trackable, now);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
