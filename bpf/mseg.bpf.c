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
#include "mseg_session.h"
#include "mseg_evict.h"
#include "mseg_frag.h"
#include "mseg_icmp.h"
#include "mseg_flows.h"

#ifndef E2BIG
#define E2BIG 7
#endif
#ifndef ENOSPC
#define ENOSPC 28
#endif

/*
 * Not tc verdicts: mseg_conntrack() hands the packet to mseg_new_flow(),
 * either to replace the entry it found (expired, or a finished connection
 * a SYN reopens) or to create one where there is none it may replace (no
 * entry, or one being deleted: mseg_session.h).
 */
#define MSEG_REPLACE_VERDICT (-1000)
#define MSEG_NEW_VERDICT (-1001)
/* Not a tc verdict either: mseg_fast() leaves the packet to mseg_conntrack(). */
#define MSEG_SLOW_VERDICT (-1002)
/*
 * Nor this: the TCP tracker passes a segment of a live session on the
 * session's verdict without committing it (mseg_existing_tcp()).
 */
#define MSEG_UNTRACKED_VERDICT (-1003)
/* mseg_icmp_related() found no live, allowed session the error is about. */
#define MSEG_NOT_RELATED (-1004)

/* A verdict's origin is its event's reason. */
_Static_assert(MSEG_BY_EXACT == MSEG_RSN_EXACT && MSEG_BY_CIDR == MSEG_RSN_CIDR &&
		       MSEG_BY_DEFAULT == MSEG_RSN_DEFAULT,
	       "verdict origins double as event reasons");

/* Denies, log and would-deny (audit) verdicts are told to `mseg log`. */
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
	else if (v->action == MSEG_ACT_AUDIT)
		mseg_event(cfg, st, t,
			   mseg_ev(MSEG_EV_AUDIT, v->by, v->action, flags,
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

/* Count a new flow's decision, under its origin and its rule. */
static __always_inline void mseg_count_decision(const struct mseg_config *cfg,
						struct mseg_stats *st,
						const struct mseg_verdict *v)
{
	mseg_rule_count_flow(cfg, v, st);
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
	mseg_policy_decide(t, cfg, v, 0);
	mseg_count_decision(cfg, st, v);
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

/*
 * A connection picked up mid-stream (mseg attached to live traffic) has no
 * SYN to tell who opened it, and the first packet seen may be the
 * responder's. Its originator is the side the policy lets open it; when
 * both or neither may, the side on the higher port (the ephemeral one).
 * Taking the first sender would make the responder the originator, and a
 * policy allowing "client -> server:port" would deny the connection the
 * next time it judges it (the fleet's SSH, cut by the rollout it carried).
 * Returns 1 when the originator is p's receiver, and leaves the reverse
 * flow and its verdict in the scratch map (t, rv). A global function the
 * classifier calls before mseg_new_flow(): on the deepest call chain, the
 * second policy lookup would not fit the verifier's stack bound.
 */
__noinline int mseg_pickup_decide(const struct mseg_pkt *p)
{
	struct mseg_verdict own;
	struct mseg_config *cfg;
	struct mseg_scratch *x;
	__u32 zero = 0;
	bool o, b;

	cfg = bpf_map_lookup_elem(&mseg_config, &zero);
	x = bpf_map_lookup_elem(&mseg_scratch, &zero);
	if (!p || !cfg || !x)
		return 0;
	x->t = p->t;
	mseg_tuple_reverse(&x->t);
	mseg_policy_decide(&p->t, cfg, &own, 0);
	mseg_policy_decide(&x->t, cfg, &x->rv, 0);
	o = own.action != MSEG_ACT_DENY;
	b = x->rv.action != MSEG_ACT_DENY;
	return o == b ? p->t.sport < p->t.dport : b;
}

/*
 * The direction whose first accepted packet confirms a session: the
 * responder's; for a pickup first seen from its responder, the originator's.
 */
static __always_inline int mseg_answer_dir(const struct mseg_session *s)
{
	return (s->flags & MSEG_SESS_FIRST_REPLY) ? MSEG_DIR_ORIG : MSEG_DIR_REPLY;
}

/* A would-deny (audit) is no allow: it earns no admission under pressure. */
static __always_inline bool mseg_exact_allows(const struct mseg_verdict *v)
{
	return v->by == MSEG_BY_EXACT &&
	       (v->action == MSEG_ACT_ALLOW || v->action == MSEG_ACT_LOG);
}

/*
 * What else may still open a session when the table is degraded
 * (docs/DESIGN.md, pressure): besides a flow a rule (not a cidr statement,
 * not the default) explicitly
 * allows, ICMP and DNS. Refused a session, these three still pass. DNS a
 * failsafe allows is DNS here: a failsafe allows it between any addresses,
 * as spoofable as DNS the default allows.
 */
static __always_inline bool mseg_dns_or_icmp(const struct mseg_tuple *t)
{
	if (t->proto == IPPROTO_ICMP || t->proto == IPPROTO_ICMPV6)
		return true;
	return (t->proto == IPPROTO_UDP || t->proto == IPPROTO_TCP) &&
	       (t->dport == 53 || t->sport == 53);
}

/*
 * Count an accepted packet; the timeout was refreshed by mseg_session_touch().
 * Plain adds, not atomic ones: a locked add on the session's cache line cost
 * ~6 ns of an established packet (bench/RESULTS.md), and a count lost when
 * two CPUs carry the same direction of one flow in the same instant is a
 * statistic, never a verdict (nf_conntrack's acct counters are atomic; its
 * verdicts do not read them either).
 */
static __always_inline void mseg_session_count(struct mseg_session *s,
					       int dir, __u32 len)
{
	s->packets[dir & 1] += 1;
	s->bytes[dir & 1] += len;
}

/* ... with accounting on; and mark the session answered by its first answer. */
static __always_inline void mseg_account(const struct mseg_config *cfg,
					 struct mseg_session *s, int dir,
					 __u32 len)
{
	if (mseg_accounting(cfg))
		mseg_session_count(s, dir, len);
	if (dir == mseg_answer_dir(s) && !(s->flags & MSEG_SESS_REPLIED))
		s->flags |= MSEG_SESS_REPLIED;
}

/* Keep the half-open count (mseg_pressure.h) as a session changes. */
static __always_inline void mseg_half_open_moved(struct mseg_pressure *pr,
						 bool was, bool is)
{
	if (was && !is)
		__sync_fetch_and_add(&pr->half_open_closed, 1);
	else if (!was && is)
		__sync_fetch_and_add(&pr->half_open_opened, 1);
}

/*
 * The TCP tracker's verdict (mseg_tcp.h) on a segment sent in direction
 * `dir_state >> 8` of a session in state `dir_state & 0xff`, judged on the
 * copies of its peer records in the scratch map: MSEG_TCP_* | next << 8.
 * A global function: the verifier checks it once, and its registers spill
 * on a frame of its own.
 */
__noinline int mseg_tcp_judge(const struct mseg_pkt *p, __u32 dir_state)
{
	__u8 state = dir_state & 0xff, next = state;
	struct mseg_scratch *x;
	__u32 zero = 0;
	int r;

	x = bpf_map_lookup_elem(&mseg_scratch, &zero);
	if (!x || !p)
		return MSEG_TCP_INVALID;
	r = mseg_tcp_check(&x->snd, &x->rcv, p, dir_state >> 8, state, &next);
	return r | next << 8;
}

/*
 * A TCP segment of a live session that mseg_fast() left here (a side not
 * seen yet, a SYN, a state change, or a segment the tracker does not simply
 * accept): judged on copies of the peer records in the scratch map by
 * mseg_tcp_judge(); only an accepted one refreshes the timeout and is
 * committed (TC_ACT_OK). MSEG_UNTRACKED_VERDICT: pass it on the session's
 * verdict, nothing committed; TC_ACT_SHOT: strict mode drops it; the caller
 * counts either. MSEG_REPLACE_VERDICT, MSEG_NEW_VERDICT: a new flow.
 */
static __always_inline int mseg_existing_tcp(const struct mseg_pkt *p,
					     const struct mseg_config *cfg,
					     struct mseg_stats *st,
					     struct mseg_pressure *pr,
					     const struct mseg_session_key *key,
					     struct mseg_session *s, __u64 last,
					     int dir, __u64 now)
{
	__u8 old_state = s->state, next;
	struct mseg_scratch *x;
	__u32 zero = 0;
	int r;

	x = bpf_map_lookup_elem(&mseg_scratch, &zero);
	if (!x)
		return MSEG_UNTRACKED_VERDICT;
	x->snd = s->tcp[dir & 1];
	x->rcv = s->tcp[!(dir & 1)];
	r = mseg_tcp_judge(p, (dir & 1) << 8 | old_state);
	next = r >> 8;
	switch (r & 0xff) {
	case MSEG_TCP_ACCEPT:
		break;
	case MSEG_TCP_REOPEN:
		return MSEG_REPLACE_VERDICT;
	case MSEG_TCP_IGNORE:
		return MSEG_UNTRACKED_VERDICT;
	case MSEG_TCP_RST_INEXACT:
		st->rst_ignored++;
		return MSEG_UNTRACKED_VERDICT;
	case MSEG_TCP_OUT_OF_WINDOW:
		st->out_of_window++;
		if (p->tcp_flags & MSEG_TCP_RST)
			st->rst_ignored++;
		return cfg->strict ? TC_ACT_SHOT : MSEG_UNTRACKED_VERDICT;
	default: /* MSEG_TCP_INVALID */
		st->invalid++;
		return cfg->strict ? TC_ACT_SHOT : MSEG_UNTRACKED_VERDICT;
	}
	if (!mseg_session_touch(s, last, now))
		return MSEG_NEW_VERDICT;
	s->tcp[dir & 1] = x->snd;
	s->tcp[!(dir & 1)] = x->rcv;
	if (next != old_state) {
		s->state = next;
		if (next == MSEG_TCP_ESTABLISHED)
			st->tcp_established++;
		else if (next == MSEG_TCP_CLOSE)
			st->tcp_closed++;
		/* a finished connection may make room for a new one */
		if (next == MSEG_TCP_TIME_WAIT || next == MSEG_TCP_CLOSE)
			mseg_evict_push(pr, MSEG_EVICT_RING_TCP, key);
	}
	return TC_ACT_OK;
}

/*
 * The rules moved since the session was judged: judge it again (a decision
 * its rule counts as a flow). *action is the verdict for this packet: the
 * session's, or the one just taken. Returns false when the rules have not
 * moved, or when the new verdict was not written (below).
 */
static __always_inline bool mseg_rejudge(const struct mseg_config *cfg,
					 struct mseg_stats *st,
					 const struct mseg_session_key *key,
					 struct mseg_session *s, __u8 *action)
{
	__u32 gen = *(volatile __u32 *)&s->policy_gen;
	struct mseg_scratch *x;
	struct mseg_verdict v;
	__u32 zero = 0;

	*action = s->action;
	if (gen == cfg->policy_gen)
		return false;
	/* the tuple off the stack: the scratch map's */
	x = bpf_map_lookup_elem(&mseg_scratch, &zero);
	if (!x)
		return false;
	mseg_session_orig(key, s, key->family, &x->t);
	mseg_policy_decide(&x->t, cfg, &v, 0);
	/* A picked-up session's orientation was a guess: either may be right. */
	if (v.action == MSEG_ACT_DENY && (s->flags & MSEG_SESS_PICKUP)) {
		struct mseg_verdict rv;

		mseg_tuple_reverse(&x->t);
		mseg_policy_decide(&x->t, cfg, &rv, 0);
		if (rv.action != MSEG_ACT_DENY)
			v = rv;
		else
			mseg_tuple_reverse(&x->t);
	}
	*action = v.action;
	/*
	 * If the element was deleted and reused while the policy was asked
	 * (docs/DESIGN.md, garbage collection), the session in it now was
	 * judged under the current generation: a verdict taken for another
	 * flow must not become its own. Looking again just before the writes
	 * narrows that window from the policy's lookups to these few
	 * instructions. The generation is still written last (x86 keeps the
	 * order of stores, so another CPU never sees it current beside the old
	 * verdict). This packet gets the verdict taken for it either way.
	 */
	if (*(volatile __u32 *)&s->policy_gen != gen)
		return false;
	mseg_rule_count_flow(cfg, &v, st);
	if (v.action != s->action)
		mseg_verdict_event(cfg, st, &x->t, &v, MSEG_EVF_REJUDGED);
	s->action = v.action;
	s->rule_id = v.rule_id;
	s->policy_gen = cfg->policy_gen;
	st->rejudged++;
	return true;
}

/*
 * The session is live (its last_seen_ns read as `last`): re-judge it if the
 * rules moved, track, count. A SYN that reopens a finished connection's
 * tuple, or a packet that finds its session dying, is not this session's:
 * it counts no session hit and goes on as a new flow (one packet, one
 * decision).
 */
static __always_inline int mseg_existing(struct __sk_buff *skb,
					 const struct mseg_pkt *p,
					 const struct mseg_config *cfg,
					 struct mseg_stats *st,
					 struct mseg_pressure *pr,
					 const struct mseg_session_key *key,
					 struct mseg_session *s, __u64 last,
					 int dir, __u64 now)
{
	__u8 state = s->state, flags = s->flags, action;

	if (!mseg_rejudge(cfg, st, key, s, &action) && mseg_accounting(cfg))
		mseg_rule_count(&s->rule_id);
	if (action == MSEG_ACT_DENY) {
		st->session_hit++;
		st->denied++;
		return TC_ACT_SHOT;
	}

	if (p->t.proto == IPPROTO_TCP && p->frag != MSEG_FRAG_LATER) {
		int r = mseg_existing_tcp(p, cfg, st, pr, key, s, last, dir, now);

		if (r == MSEG_REPLACE_VERDICT || r == MSEG_NEW_VERDICT)
			return r;
		st->session_hit++;
		if (r == TC_ACT_SHOT)
			return mseg_drop(st);
		if (r == MSEG_UNTRACKED_VERDICT)
			return mseg_pass(st, action);
	} else if (!mseg_session_touch(s, last, now)) {
		return MSEG_NEW_VERDICT;
	} else {
		st->session_hit++;
	}
	mseg_account(cfg, s, dir, skb->len);
	/* a session stops (or starts) being half-open only by a state change
	 * or its first answer */
	if (s->state != state || s->flags != flags)
		mseg_half_open_moved(pr,
				     mseg_half_open_of(key->proto, state, flags),
				     mseg_session_half_open(key, s));
	return mseg_pass(st, action);
}

/*
 * A new flow that may open a session when the table is degraded (an exact
 * rule allows it, or it is DNS or ICMP) or full: store `ns`, dropping an
 * unanswered or finished session early when there is no room (mseg_evict.h).
 * Above the degradation line DNS and ICMP only recycle unanswered non-TCP
 * sessions, so a spoofed DNS flood cannot take the last slots from the
 * flows an exact rule allows: -ENOSPC when there is none to recycle.
 * `*replaced` tells whether `old` made room.
 */
static __always_inline int mseg_store(struct mseg_pressure *pr,
				      const struct mseg_session_key *key,
				      const struct mseg_session *ns,
				      struct mseg_session *old, __u64 old_last,
				      bool exact, bool admitted, __u64 now,
				      bool *replaced)
{
	__u32 how = mseg_pressured(pr) ? MSEG_EVICT_PRESSURE : 0;
	int err;

	*replaced = old && mseg_session_claim(old, old_last);
	if (*replaced)
		return bpf_map_update_elem(&mseg_sessions, key, ns, BPF_ANY);
	if (mseg_degraded(pr) && !exact) {
		if (!mseg_early_drop(now, how))
			return -ENOSPC;
		return mseg_session_insert(key, ns);
	}
	err = bpf_map_update_elem(&mseg_sessions, key, ns, BPF_NOEXIST);
	if (err == -E2BIG && admitted &&
	    mseg_early_drop(now, how | (exact ? MSEG_EVICT_ANY_RING : 0)))
		err = bpf_map_update_elem(&mseg_sessions, key, ns, BPF_NOEXIST);
	/* a claimed entry on its way out, or another CPU's new session */
	if (err == -EEXIST && mseg_session_wait_gone(key))
		err = bpf_map_update_elem(&mseg_sessions, key, ns, BPF_NOEXIST);
	return err;
}

#define MSEG_NEW_REPLACE 0x1   /* replace the entry judged on old_last */
#define MSEG_NEW_TRACKABLE 0x2 /* the packet may get a session */
#define MSEG_NEW_REVERSED 0x4  /* a pickup whose originator is its receiver */

/*
 * A packet with no live session: judge it in its own direction and, when it
 * may start one, open a session with its sender as the originator. With
 * MSEG_NEW_REPLACE it replaces the expired or finished entry of its key,
 * judged on `old_last`. A global function: the verifier checks it once.
 */
__noinline int mseg_new_flow(struct __sk_buff *skb, const struct mseg_pkt *p,
			     __u64 old_last, __u32 how)
{
	struct mseg_pressure *pr = mseg_pressure_get();
	bool trackable = how & MSEG_NEW_TRACKABLE;
	bool half_open = false, old_half_open, exact, admitted, replaced;
	struct mseg_session *ns, *old = NULL;
	__u8 state = MSEG_TCP_NONE;
	struct mseg_scratch *x;
	struct mseg_config *cfg;
	struct mseg_stats *st;
	struct mseg_verdict *v;
	__u32 zero = 0;
	__u64 now;
	int err;

	cfg = bpf_map_lookup_elem(&mseg_config, &zero);
	st = bpf_map_lookup_elem(&mseg_stats, &zero);
	x = bpf_map_lookup_elem(&mseg_scratch, &zero);
	if (!skb || !p || !cfg || !st || !pr || !x)
		return TC_ACT_OK;
	now = mseg_now();
	x->flow_now = now;
	x->sender_hi = mseg_session_key(&p->t, &x->key);

	if (trackable && p->t.proto == IPPROTO_TCP) {
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
		}
		/* a SYN, or an ACK picked up mid-stream (unconfirmed) */
		half_open = trackable;
	}

	if (trackable)
		mseg_pressure_update(pr, cfg, st, state == MSEG_TCP_SYN_SENT,
				     half_open);
	if (trackable && (how & MSEG_NEW_REVERSED)) {
		/* mseg_pickup_decide() left the reverse's verdict */
		v = &x->rv;
		mseg_count_decision(cfg, st, v);
		x->flow_note = MSEG_FLOWN_DECIDED | MSEG_FLOWN_REVERSED;
	} else {
		/* judged into the scratch map: the frame is at the stack bound */
		v = &x->rv;
		mseg_judge_new(&p->t, cfg, st, v);
		x->flow_note = MSEG_FLOWN_DECIDED;
	}
	if (v->action == MSEG_ACT_DENY) {
		mseg_verdict_event(cfg, st,
				   (how & MSEG_NEW_REVERSED) ? &x->t : &p->t,
				   v, 0);
		st->denied++;
		return TC_ACT_SHOT;
	}
	if (v->action == MSEG_ACT_AUDIT)
		mseg_verdict_event(cfg, st,
				   (how & MSEG_NEW_REVERSED) ? &x->t : &p->t,
				   v, 0);
	if (!trackable)
		return mseg_pass(st, v->action);
	/*
	 * Recount the table only for a flow that may open a session: a flood
	 * of denied or untracked flows never pays for the kernel's element
	 * count (~50 ns a packet), and the levels are what admission reads.
	 */
	mseg_pressure_recount(now);
	admitted = mseg_dns_or_icmp(&p->t);
	exact = mseg_exact_allows(v) &&
		!(admitted && v->rule_id >= MSEG_FAILSAFE_ID0);
	admitted |= exact;
	if (mseg_degraded(pr) && !admitted) {
		bool full = mseg_table_full(pr);

		if (full) {
			st->map_full++;
			__sync_fetch_and_add(&pr->refused, 1);
		} else {
			st->pressure_drop++;
		}
		mseg_event(cfg, st, &p->t,
			   mseg_ev(MSEG_EV_DROP,
				   full ? MSEG_RSN_FULL : MSEG_RSN_DEGRADED,
				   MSEG_ACT_DENY, 0, pr->level));
		return mseg_drop(st);
	}

	ns = &x->ns;
	__builtin_memset(ns, 0, sizeof(*ns));
	ns->created_ns = now;
	ns->last_seen_ns = now;
	ns->policy_gen = cfg->policy_gen;
	ns->state = state;
	ns->action = v->action;
	ns->rule_id = v->rule_id;
	ns->orig_is_hi = x->sender_hi;
	if (state != MSEG_TCP_NONE && state != MSEG_TCP_SYN_SENT)
		ns->flags |= MSEG_SESS_PICKUP;
	if (how & MSEG_NEW_REVERSED) {
		/* the first packet is the responder's */
		ns->orig_is_hi = !x->sender_hi;
		ns->flags |= MSEG_SESS_FIRST_REPLY;
		if (p->t.proto == IPPROTO_TCP)
			mseg_tcp_open(ns, MSEG_DIR_REPLY, p, state);
		mseg_account(cfg, ns, MSEG_DIR_REPLY, skb->len);
	} else {
		if (p->t.proto == IPPROTO_TCP)
			mseg_tcp_open(ns, MSEG_DIR_ORIG, p, state);
		mseg_account(cfg, ns, MSEG_DIR_ORIG, skb->len);
	}

	if (how & MSEG_NEW_REPLACE)
		old = bpf_map_lookup_elem(&mseg_sessions, &x->key);
	old_half_open = old && mseg_session_half_open(&x->key, old);
	err = mseg_store(pr, &x->key, ns, old, old_last, exact, admitted, now,
			 &replaced);
	mseg_evict_tell(cfg, st, x, now);
	if (err == -EEXIST) {
		/* Another CPU opened it first; its session serves from now. */
		return mseg_pass(st, v->action);
	}
	if (err) {
		__sync_fetch_and_add(&pr->refused, 1);
		if (err != -ENOSPC)
			st->map_full++;
		if (!admitted) {
			mseg_event(cfg, st, &p->t,
				   mseg_ev(MSEG_EV_DROP, MSEG_RSN_FULL,
					   MSEG_ACT_DENY, 0, pr->level));
			return mseg_drop(st);
		}
		return mseg_pass(st, v->action);
	}
	x->flow_note |= MSEG_FLOWN_SESSION;
	if (replaced && old_half_open)
		__sync_fetch_and_add(&pr->half_open_closed, 1);
	if (half_open)
		__sync_fetch_and_add(&pr->half_open_opened, 1);
	if (!replaced)
		__sync_fetch_and_add(&pr->sessions, 1);
	mseg_evict_push(pr, mseg_evict_ring(&x->key), &x->key);
	if (v->action == MSEG_ACT_LOG)
		mseg_verdict_event(cfg, st, &p->t, v, 0);
	st->new_session++;
	return mseg_pass(st, v->action);
}

/*
 * Count mseg_new_flow()'s decision in mseg_flows (docs/DESIGN.md, "Flows")
 * and return its tc verdict. It reads what mseg_new_flow() left in the
 * scratch map (flow_note, the verdict in rv, the packet, the time) and
 * consumes the note. A global function the classifier calls once mseg_new_flow() has
 * returned: off the deepest call chain, the flow's key in the scratch map.
 * The flow's slot is in this CPU's copy of its set (mseg_abi.h): the way
 * that holds it, else the first unused way, else the way seen least
 * recently; a packet that opened no session counts there too.
 */
__noinline int mseg_flow_count(struct __sk_buff *skb, int verdict)
{
	struct mseg_flow_slot *s, *slot = NULL, *old = NULL;
	const struct mseg_tuple *t;
	struct mseg_flow_key *k;
	struct mseg_scratch *x;
	struct mseg_config *cfg;
	struct mseg_stats *st;
	__u32 zero = 0, i, way;
	bool fresh = false;
	__u8 note;
	__u64 now;

	x = bpf_map_lookup_elem(&mseg_scratch, &zero);
	cfg = bpf_map_lookup_elem(&mseg_config, &zero);
	st = bpf_map_lookup_elem(&mseg_stats, &zero);
	if (!skb || !x || !cfg || !st)
		return verdict;
	note = x->flow_note;
	if (!(note & MSEG_FLOWN_DECIDED))
		return verdict;
	x->flow_note = 0;
	t = &x->pkt.t;
	k = &x->fkey;
	if (note & MSEG_FLOWN_REVERSED) {
		__builtin_memcpy(k->src, t->daddr, 16);
		__builtin_memcpy(k->dst, t->saddr, 16);
		k->dport = t->sport;
	} else {
		__builtin_memcpy(k->src, t->saddr, 16);
		__builtin_memcpy(k->dst, t->daddr, 16);
		k->dport = t->dport;
	}
	k->rule_id = x->rv.rule_id;
	k->proto = t->proto;
	k->family = t->family;
	k->verdict = mseg_flow_verdict_of(x->rv.action);
	__builtin_memset(k->pad, 0, sizeof(k->pad));
	i = mseg_flow_set(k) * MSEG_FLOW_WAYS;
#pragma unroll
	for (way = 0; way < MSEG_FLOW_WAYS; way++) {
		__u32 idx = i + way;

		s = bpf_map_lookup_elem(&mseg_flows, &idx);
		if (!s)
			return verdict;
		if (!s->count.last_ns) {
			/* unused, and so are the ways after it */
			slot = s;
			fresh = true;
			break;
		}
		if (mseg_flow_key_eq(&s->flow, k)) {
			slot = s;
			break;
		}
		if (!old || s->count.last_ns < old->count.last_ns)
			old = s;
	}
	if (!slot) {
		if (!old)
			return verdict;
		slot = old;
		fresh = true;
	}
	now = x->flow_now;
	if (fresh) {
		slot->flow = *k;
		__builtin_memset(&slot->count, 0, sizeof(slot->count));
		__builtin_memset(&slot->staged, 0, sizeof(slot->staged));
		slot->count.first_ns = now;
	}
	slot->count.connections++;
	slot->count.last_ns = now;
	/*
	 * A staged policy judges the same flow, the originator's way (into
	 * x->sv: this frame stays small). Its verdict of the flow's last new
	 * flow stands while the staged set is the same (staged_gen) and no
	 * staged rule names a source port, which the flow's key leaves out:
	 * a flow's later connections cost no second policy lookup.
	 */
	if (cfg->mode & MSEG_MODE_STAGED) {
		/*
		 * The generation is read before the judgment: one made while
		 * `mseg apply --staged` rewrote the set is kept under the old
		 * generation, which the rewrite's bump invalidates.
		 */
		__u32 gen = *(volatile const __u32 *)&cfg->staged_gen;

		if (slot->staged.gen != gen || (cfg->mode & MSEG_MODE_STAGED_SPORT)) {
			mseg_policy_decide((note & MSEG_FLOWN_REVERSED) ? &x->t : t,
					   cfg, &x->sv, 1);
			if (slot->staged.gen != gen) {
				__builtin_memset(&slot->staged, 0, sizeof(slot->staged));
				slot->staged.gen = gen;
			}
			slot->staged.verdict = mseg_flow_verdict_of(x->sv.action);
			slot->staged.rule_id = x->sv.rule_id;
		}
		if (slot->staged.verdict != k->verdict) {
			slot->staged.disagreements++;
			st->staged_disagree++;
		}
	}
	if (!(note & MSEG_FLOWN_SESSION)) {
		slot->count.packets++;
		slot->count.bytes += skb->len;
	}
	return verdict;
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

/*
 * An ICMP error: passed as RELATED when it is about a live, allowed session
 * (mseg_icmp.h). It uses the scratch map's key, free at this point. A
 * global function, as the fragment step below: what it keeps on the stack
 * stays off the classifier's frame, which every call chain shares.
 */
__noinline int mseg_icmp_related(struct __sk_buff *skb, __u64 now)
{
	struct mseg_pressure *pr = mseg_pressure_get();
	struct mseg_session_key *key;
	const struct mseg_pkt *p;
	struct mseg_config *cfg;
	struct mseg_scratch *x;
	struct mseg_session *s;
	struct mseg_quoted *q;
	struct mseg_stats *st;
	__u32 zero = 0;
	__u8 action;

	cfg = bpf_map_lookup_elem(&mseg_config, &zero);
	st = bpf_map_lookup_elem(&mseg_stats, &zero);
	x = bpf_map_lookup_elem(&mseg_scratch, &zero);
	if (!skb || !cfg || !st || !pr || !x)
		return MSEG_NOT_RELATED;
	p = &x->pkt;
	q = &x->quoted;
	key = &x->key;
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
	if (!s || mseg_session_expired(cfg, key, s, now, mseg_pressured(pr)))
		return MSEG_NOT_RELATED;
	mseg_rejudge(cfg, st, key, s, &action);
	if (action == MSEG_ACT_DENY)
		return MSEG_NOT_RELATED;
	st->related++;
	return mseg_pass(st, action);
}

/*
 * IP fragments (mseg_frag.h), on the scratch map's packet: a first one is
 * remembered, a later one gets its first's ports. Returns 0 for a later
 * fragment whose first was never seen: only its addresses are known.
 */
__noinline int mseg_fragment(__u64 now)
{
	struct mseg_scratch *x;
	struct mseg_stats *st;
	__u32 zero = 0;

	st = bpf_map_lookup_elem(&mseg_stats, &zero);
	x = bpf_map_lookup_elem(&mseg_scratch, &zero);
	if (!st || !x)
		return 0;
	if (x->pkt.frag == MSEG_FRAG_FIRST) {
		mseg_frag_remember(&x->pkt, st, &x->frag_reclaim_ns, now);
		return 1;
	}
	st->fragments++;
	return mseg_frag_recall(&x->pkt, now);
}

/*
 * Find the packet's session and track it: a tc verdict, or, when the
 * packet is one of a new flow, MSEG_REPLACE_VERDICT (replace the entry
 * judged on *old_last) or MSEG_NEW_VERDICT (there is none it may replace).
 * It asks the table again rather than take the entry mseg_fast() found:
 * an entry deleted meanwhile (mseg gc, an early drop on another CPU) may
 * already hold another session, as a hash map reuses freed elements at
 * once; a fresh lookup finds the key's entry as it is now.
 * A global function: the verifier checks it once, rather than once for every path
 * through the parser (the classifier had grown to within 5 % of the
 * verifier's million-instruction limit); the call costs a few ns.
 */
__noinline int mseg_conntrack(struct __sk_buff *skb, const struct mseg_pkt *p,
			      __u64 now, __u64 *old_last)
{
	struct mseg_pressure *pr = mseg_pressure_get();
	struct mseg_session_key *key;
	struct mseg_scratch *x;
	struct mseg_config *cfg;
	struct mseg_session *s;
	struct mseg_stats *st;
	bool sender_hi;
	__u32 zero = 0;
	__u64 last;
	int dir;

	cfg = bpf_map_lookup_elem(&mseg_config, &zero);
	st = bpf_map_lookup_elem(&mseg_stats, &zero);
	x = bpf_map_lookup_elem(&mseg_scratch, &zero);
	if (!skb || !p || !old_last || !cfg || !st || !pr || !x)
		return TC_ACT_OK;

	key = &x->key;
	sender_hi = mseg_session_key(&p->t, key);
	s = bpf_map_lookup_elem(&mseg_sessions, key);
	if (!s)
		return MSEG_NEW_VERDICT;
	last = *(volatile __u64 *)&s->last_seen_ns;
	*old_last = last;
	if (last == MSEG_SESSION_DYING)
		return MSEG_NEW_VERDICT;
	if (mseg_session_expired_at(cfg, key, s, last, now, mseg_pressured(pr)))
		return MSEG_REPLACE_VERDICT;
	dir = sender_hi == s->orig_is_hi ? MSEG_DIR_ORIG : MSEG_DIR_REPLY;
	return mseg_existing(skb, p, cfg, st, pr, key, s, last, dir, now);
}

/*
 * The fast path, inline in the classifier (mseg_conntrack() is a function
 * call away): a packet of a live session, seen within the last second,
 * whose rules have not moved, and that changes nothing but its counters
 * and, for TCP, the window records: the same checks as mseg_conntrack()
 * and mseg_tcp.h, none of their rare cases. Everything else (a state
 * change, a first answer, a side not seen yet, a SYN, anything the tracker
 * does not simply accept, an idle or a dying session) goes there:
 * MSEG_SLOW_VERDICT, nothing written. No entry at all: MSEG_NEW_VERDICT,
 * so a new flow does not pay for the same key and lookup twice.
 */
static __always_inline int mseg_fast(struct __sk_buff *skb,
				     struct mseg_scratch *x,
				     const struct mseg_config *cfg,
				     struct mseg_stats *st, __u64 now)
{
	const struct mseg_pkt *p = &x->pkt;
	struct mseg_tcp_peer *snd, *rcv;
	struct mseg_session *s;
	bool sender_hi;
	__u8 next;
	int dir, cls;
	__u64 last;

	sender_hi = mseg_session_key(&p->t, &x->key);
	s = bpf_map_lookup_elem(&mseg_sessions, &x->key);
	if (!s)
		return MSEG_NEW_VERDICT;
	last = *(volatile __u64 *)&s->last_seen_ns;
	if (last == MSEG_SESSION_DYING ||
	    mseg_older_than(now, last, MSEG_NSEC_PER_SEC) ||
	    s->policy_gen != cfg->policy_gen || s->action == MSEG_ACT_DENY)
		return MSEG_SLOW_VERDICT;
	dir = sender_hi == s->orig_is_hi ? MSEG_DIR_ORIG : MSEG_DIR_REPLY;
	if (dir == mseg_answer_dir(s) && !(s->flags & MSEG_SESS_REPLIED))
		return MSEG_SLOW_VERDICT; /* the first answer confirms it */
	if (p->t.proto == IPPROTO_TCP && p->frag != MSEG_FRAG_LATER) {
		snd = &s->tcp[dir & 1];
		rcv = &s->tcp[!(dir & 1)];
		if (!mseg_tcp_fast(snd, rcv, p) ||
		    mseg_tcp_check_fast(snd, rcv, p, dir, s->state, &next,
					&cls) != MSEG_TCP_ACCEPT ||
		    next != s->state || !mseg_session_touch(s, last, now))
			return MSEG_SLOW_VERDICT;
		mseg_tcp_commit(snd, rcv, p, cls);
	} else if (!mseg_session_touch(s, last, now)) {
		return MSEG_SLOW_VERDICT;
	}
	st->session_hit++;
	/* mseg_account() without its first-answer check: that one is slow */
	if (mseg_accounting(cfg)) {
		mseg_rule_count(&s->rule_id);
		mseg_session_count(s, dir, skb->len);
	}
	return mseg_pass(st, s->action);
}

SEC("tc")
int mseg_classifier(struct __sk_buff *skb)
{
	bool trackable = true, ports = true, tick;
	struct mseg_scratch *x;
	struct mseg_config *cfg;
	struct mseg_stats *st;
	__u64 now, old_last = 0;
	struct mseg_pkt *p;
	__u32 zero = 0, how = 0;
	int r;

	cfg = bpf_map_lookup_elem(&mseg_config, &zero);
	st = bpf_map_lookup_elem(&mseg_stats, &zero);
	/* the packet lives in the scratch map, off the stack (mseg_maps.h) */
	x = bpf_map_lookup_elem(&mseg_scratch, &zero);
	if (!cfg || !st || !x)
		return TC_ACT_OK;
	st->total++;
	p = &x->pkt;

	r = mseg_parse(skb, p, &x->buf);
	if (r == MSEG_PARSE_NON_IP) {
		st->non_ip++;
		return TC_ACT_OK;
	}
	if (r == MSEG_PARSE_DROP)
		return mseg_refuse(st, p->drop);
	now = mseg_clock_read(&x->clock, &tick);
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

	if (tick) {
		struct mseg_pressure *pr = mseg_pressure_get();

		if (pr)
			mseg_pressure_tick(pr, cfg, st, now);
	}
	if (p->icmp == MSEG_ICMPK_ERROR) {
		r = mseg_icmp_related(skb, now);
		if (r != MSEG_NOT_RELATED)
			return r;
		/* judged by the policy; an error never opens a session */
		trackable = false;
		goto judge;
	}
	if (p->frag != MSEG_FRAG_NONE)
		ports = mseg_fragment(now);
	/* a later fragment joins its datagram's session, never opens one */
	if (p->frag == MSEG_FRAG_LATER)
		trackable = false;

	if (ports) {
		r = mseg_fast(skb, x, cfg, st, now);
		if (r == MSEG_SLOW_VERDICT)
			r = mseg_conntrack(skb, p, now, &old_last);
		if (r != MSEG_REPLACE_VERDICT && r != MSEG_NEW_VERDICT)
			return r;
		if (r == MSEG_REPLACE_VERDICT)
			how |= MSEG_NEW_REPLACE;
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
	if (trackable)
		how |= MSEG_NEW_TRACKABLE;
	if (trackable && p->t.proto == IPPROTO_TCP && !cfg->strict &&
	    mseg_tcp_first_state(p) == MSEG_TCP_ESTABLISHED &&
	    mseg_pickup_decide(p))
		how |= MSEG_NEW_REVERSED;
	return mseg_flow_count(skb, mseg_new_flow(skb, p, old_last, how));
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
