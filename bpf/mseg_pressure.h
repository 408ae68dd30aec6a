/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Session-table pressure and SYN floods (docs/DESIGN.md, "Pressure and SYN
 * floods"). The level is the table's real occupancy, read from the kernel's
 * own per-CPU element counters at every admission decision, so it is exact
 * and falls as soon as mseg-gc reclaims entries. Several CPUs update
 * mseg_pressure at once: counters are atomic, and the once-a-second SYN
 * window is rolled by whichever CPU wins a compare-and-swap.
 */
#ifndef MSEG_PRESSURE_H
#define MSEG_PRESSURE_H

#include "mseg_abi.h"
#include "mseg_maps.h"
#include "mseg_timeout.h"
#include "mseg_events.h"

/*
 * kfunc (kernel >= 6.6). libbpf 1.1 matches the prototype strictly: the
 * kernel's takes a non-const pointer, and wants a struct, not a forward
 * declaration.
 */
struct bpf_map {};
extern __s64 bpf_map_sum_elem_count(struct bpf_map *map) __ksym;

static __always_inline struct mseg_pressure *mseg_pressure_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&mseg_pressure, &zero);
}

static __always_inline __s64 mseg_half_open(const struct mseg_pressure *pr)
{
	struct mseg_gc_state *gc;
	__u32 zero = 0;
	__s64 n = pr->half_open_opened - pr->half_open_closed;

	gc = bpf_map_lookup_elem(&mseg_gc, &zero);
	if (gc)
		n -= gc->half_open_reaped;
	return n > 0 ? n : 0;
}

/*
 * Set or clear `flag`; count each entry into it in *entered. True only for
 * the one CPU that set it, so one event goes out per entry.
 */
static __always_inline bool mseg_pressure_flag(struct mseg_pressure *pr,
					       __u32 flag, bool on,
					       __u64 *entered)
{
	if (on && !(pr->flags & flag)) {
		if (!(__sync_fetch_and_or(&pr->flags, flag) & flag)) {
			__sync_fetch_and_add(entered, 1);
			return true;
		}
	} else if (!on && (pr->flags & flag)) {
		__sync_fetch_and_and(&pr->flags, ~flag);
	}
	return false;
}

static __always_inline void mseg_flood_event(const struct mseg_config *cfg,
					     struct mseg_stats *st,
					     __u64 syns, __u64 syn_max,
					     __u64 half_open)
{
	if (syns > syn_max)
		mseg_event(cfg, st, NULL,
			   mseg_ev(MSEG_EV_FLOOD, MSEG_RSN_SYN_RATE,
				   MSEG_ACT_ALLOW, 0, syns));
	else
		mseg_event(cfg, st, NULL,
			   mseg_ev(MSEG_EV_FLOOD, MSEG_RSN_HALF_OPEN,
				   MSEG_ACT_ALLOW, 0, half_open));
}

/* Above pct percent of capacity, compared exactly (no rounding). */
static __always_inline bool mseg_above(__u64 n, __u32 pct)
{
	return n * 100 > (__u64)pct * MSEG_MAX_SESSIONS;
}

/* Set or clear one level flag; an entry into it is an event. */
static __always_inline void mseg_level(struct mseg_pressure *pr,
				       const struct mseg_config *cfg,
				       struct mseg_stats *st, __u64 n,
				       __u32 flag, __u32 pct, __u64 *entered,
				       __u8 reason)
{
	if (mseg_pressure_flag(pr, flag, mseg_above(n, pct), entered))
		mseg_event(cfg, st, NULL,
			   mseg_ev(MSEG_EV_PRESSURE, reason, MSEG_ACT_ALLOW, 0,
				   pr->level));
}

/* Recount the table and move the levels up or down. */
static __always_inline void mseg_pressure_recount(struct mseg_pressure *pr,
						  const struct mseg_config *cfg,
						  struct mseg_stats *st,
						  __u64 now)
{
	__s64 cnt = bpf_map_sum_elem_count((struct bpf_map *)&mseg_sessions);
	__u64 n = cnt > 0 ? cnt : 0;

	pr->sessions = n;
	pr->level = n * 100 / MSEG_MAX_SESSIONS;
	pr->updated_ns = now;
	mseg_level(pr, cfg, st, n, MSEG_PRESSURE_WARN,
		   MSEG_CFG_OR(cfg, warn_pct, MSEG_DEF_WARN_PCT),
		   &pr->warn_count, MSEG_RSN_WARN);
	mseg_level(pr, cfg, st, n, MSEG_PRESSURE_CRIT,
		   MSEG_CFG_OR(cfg, crit_pct, MSEG_DEF_CRIT_PCT),
		   &pr->crit_count, MSEG_RSN_CRIT);
	mseg_level(pr, cfg, st, n, MSEG_PRESSURE_DEGRADED,
		   MSEG_CFG_OR(cfg, degrade_pct, MSEG_DEF_DEGRADE_PCT),
		   &pr->degrade_count, MSEG_RSN_DEGRADE);
}

/*
 * Once a second, on any packet: close the SYN window (the flood state is
 * decided on the complete second, so it also clears here) and recount the
 * table, so the levels fall after mseg-gc reclaims entries even when no
 * new flow arrives. One compare on the fast path; whichever CPU wins the
 * swap does the rest.
 */
static __always_inline void mseg_pressure_tick(struct mseg_pressure *pr,
					       const struct mseg_config *cfg,
					       struct mseg_stats *st, __u64 now)
{
	__u64 start = pr->window_start_ns;
	__u64 syn_max, half_max, half;
	bool flood;

	if (!mseg_older_than(now, start, MSEG_NSEC_PER_SEC) ||
	    __sync_val_compare_and_swap(&pr->window_start_ns, start, now) !=
		    start)
		return;
	syn_max = MSEG_CFG_OR(cfg, flood_syn_rate, MSEG_DEF_FLOOD_SYN_RATE);
	half_max = MSEG_CFG_OR(cfg, flood_half_open, MSEG_DEF_FLOOD_HALF_OPEN);
	pr->syn_rate = __sync_lock_test_and_set(&pr->syn_count, 0);
	half = mseg_half_open(pr);
	flood = pr->syn_rate > syn_max || half > half_max;
	if (mseg_pressure_flag(pr, MSEG_PRESSURE_FLOOD, flood, &pr->flood_count))
		mseg_flood_event(cfg, st, pr->syn_rate, syn_max, half);
	mseg_pressure_recount(pr, cfg, st, now);
}

/*
 * Called for every packet that would open a session: recount the table,
 * move the levels, count the SYN, raise the flood flag at once when a
 * threshold is crossed mid-window (clearing waits for the tick).
 */
static __always_inline void mseg_pressure_update(struct mseg_pressure *pr,
						 const struct mseg_config *cfg,
						 struct mseg_stats *st,
						 __u64 now, bool syn)
{
	__u64 syn_max = MSEG_CFG_OR(cfg, flood_syn_rate,
				    MSEG_DEF_FLOOD_SYN_RATE);
	__u64 half_max = MSEG_CFG_OR(cfg, flood_half_open,
				     MSEG_DEF_FLOOD_HALF_OPEN);
	__u64 half;

	mseg_pressure_recount(pr, cfg, st, now);
	if (!syn)
		return;
	__sync_fetch_and_add(&pr->syn_count, 1);
	half = mseg_half_open(pr);
	if ((pr->syn_count > syn_max || half > half_max) &&
	    mseg_pressure_flag(pr, MSEG_PRESSURE_FLOOD, true, &pr->flood_count))
		mseg_flood_event(cfg, st, pr->syn_count, syn_max, half);
}

/* The table is full: a refused flow is a map_full, not a pressure drop. */
static __always_inline bool mseg_table_full(const struct mseg_pressure *pr)
{
	return pr->sessions >= MSEG_MAX_SESSIONS;
}

static __always_inline bool mseg_flooded(const struct mseg_pressure *pr)
{
	return pr->flags & MSEG_PRESSURE_FLOOD;
}

static __always_inline bool mseg_degraded(const struct mseg_pressure *pr)
{
	return pr->flags & MSEG_PRESSURE_DEGRADED;
}

#endif /* MSEG_PRESSURE_H */
