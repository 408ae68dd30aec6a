/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Events for `mseg log`: denies, log verdicts, protective drops, pressure
 * levels and SYN floods, through the mseg_events ring buffer. A flood of
 * denies must not become a flood of events: at most
 * mseg_config.event_rate events a second leave the data path, and the next
 * one that does carries the number suppressed before it.
 */
#ifndef MSEG_EVENTS_H
#define MSEG_EVENTS_H

#include "mseg_abi.h"
#include "mseg_clock.h"
#include "mseg_maps.h"
#include "mseg_parse.h"
#include "mseg_timeout.h"

/* May this event go out? Counts it as suppressed if not. */
static __always_inline bool mseg_event_allowed(struct mseg_event_limit *lim,
					       const struct mseg_config *cfg,
					       __u64 now)
{
	__u64 start = lim->window_start_ns;
	__u64 rate = MSEG_CFG_OR(cfg, event_rate, MSEG_DEF_EVENT_RATE);

	if (now - start >= MSEG_NSEC_PER_SEC &&
	    __sync_val_compare_and_swap(&lim->window_start_ns, start, now) ==
		    start)
		__sync_lock_test_and_set(&lim->count, 0);
	if (__sync_fetch_and_add(&lim->count, 1) < rate)
		return true;
	__sync_fetch_and_add(&lim->pending, 1);
	__sync_fetch_and_add(&lim->suppressed_total, 1);
	return false;
}

/*
 * What an event says besides its flow, packed in one scalar: a BPF function
 * takes at most five arguments.
 */
static __always_inline __u64 mseg_ev(__u8 kind, __u8 reason, __u8 action,
				     __u8 flags, __u32 value)
{
	return kind | (__u64)reason << 8 | (__u64)action << 16 |
	       (__u64)flags << 24 | (__u64)value << 32;
}

/*
 * A real function: it is called from many places, and its ring-buffer
 * record never sits on the callers' stacks. A global one: the verifier
 * checks it once, not again at each of its callers' paths (the gc program
 * reaches five of them in a row). `t` may be NULL for events that concern
 * the table, not a flow. `what` comes from mseg_ev().
 */
__noinline int mseg_event(const struct mseg_config *cfg,
				 struct mseg_stats *st,
				 const struct mseg_tuple *t, __u64 what)
{
	struct mseg_event_limit *lim;
	struct mseg_event *e;
	__u32 zero = 0;
	/* the jiffy clock: reading the clocksource was ~9 % of a denied flow */
	__u64 now = mseg_now();

	lim = bpf_map_lookup_elem(&mseg_evlimit, &zero);
	if (!lim || !cfg || !st || !mseg_event_allowed(lim, cfg, now))
		return 0;
	e = bpf_ringbuf_reserve(&mseg_events, sizeof(*e), 0);
	if (!e) {
		/* the reader is too slow: count it, never wait */
		st->events_lost++;
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = now;
	if (t) {
		__builtin_memcpy(e->src, t->saddr, 16);
		__builtin_memcpy(e->dst, t->daddr, 16);
		e->sport = t->sport;
		e->dport = t->dport;
		e->proto = t->proto;
	}
	e->kind = what & 0xff;
	e->reason = (what >> 8) & 0xff;
	e->action = (what >> 16) & 0xff;
	e->flags = (what >> 24) & 0xff;
	e->value = what >> 32;
	e->suppressed = __sync_lock_test_and_set(&lim->pending, 0);
	__sync_fetch_and_add(&lim->emitted_total, 1);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

#endif /* MSEG_EVENTS_H */
