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

/*
 * The table holds n entries: move the levels up or down. A global function:
 * the verifier checks its three levels (each set or cleared, entered or
 * not, on a configured or a default threshold) once, not on every path of
 * its callers.
 */
__noinline int mseg_pressure_levels(__u64 now, __u64 n)
{
	struct mseg_pressure *pr = mseg_pressure_get();
	struct mseg_config *cfg;
	struct mseg_stats *st;
	__u32 zero = 0;

	cfg = bpf_map_lookup_elem(&mseg_config, &zero);
	st = bpf_map_lookup_elem(&mseg_stats, &zero);
	if (!cfg || !st || !pr)
		return 0;
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
	return 0;
}

/* Recount the table (the kernel's own element counters) and move the levels. */
static __always_inline void mseg_pressure_recount(__u64 now)
{
	__s64 cnt = bpf_map_sum_elem_count((struct bpf_map *)&mseg_sessions);

	mseg_pressure_levels(now, cnt > 0 ? cnt : 0);
}

/*
 * Close the SYN window when it is a second old: the flood state is decided
 * on the complete second, so it also clears here. True for the one CPU
 * whose compare-and-swap closed it.
 */
static __always_inline bool mseg_pressure_roll(struct mseg_pressure *pr,
					       const struct mseg_config *cfg,
					       struct mseg_stats *st, __u64 now)
{
	__u64 start = pr->window_start_ns;
	__u64 syn_max, half_max, half;
	bool flood;

	if (!mseg_older_than(now, start, MSEG_NSEC_PER_SEC) ||
	    __sync_val_compare_and_swap(&pr->window_start_ns, start, now) !=
		    start)
		return false;
	syn_max = MSEG_CFG_OR(cfg, flood_syn_rate, MSEG_DEF_FLOOD_SYN_RATE);
	half_max = MSEG_CFG_OR(cfg, flood_half_open, MSEG_DEF_FLOOD_HALF_OPEN);
	pr->syn_rate = __sync_lock_test_and_set(&pr->syn_count, 0);
	half = mseg_half_open(pr);
	flood = pr->syn_rate > syn_max || half > half_max;
	if (mseg_pressure_flag(pr, MSEG_PRESSURE_FLOOD, flood, &pr->flood_count))
		mseg_flood_event(cfg, st, pr->syn_rate, syn_max, half);
	return true;
}

/*
 * Once a second, on any packet: close the SYN window and recount the table,
 * so the levels fall after mseg-gc reclaims entries even when no new flow
 * arrives. The classifier calls it on the first packet of each jiffy on
 * each CPU (mseg_clock_read()), one compare; whichever CPU wins the swap
 * does the rest.
 */
static __always_inline void mseg_pressure_tick(struct mseg_pressure *pr,
					       const struct mseg_config *cfg,
					       struct mseg_stats *st, __u64 now)
{
	if (mseg_pressure_roll(pr, cfg, st, now))
		mseg_pressure_recount(now);
}

/*
 * After an mseg-gc sweep (mseg_gc.bpf.c) that left n entries: close the SYN
 * window if it is due, judge the flood flag again on the last complete
 * second's SYN rate and the half-open count the sweep just lowered, and
 * move the levels, so all of them follow the table whether packets arrive
 * or not.
 */
static __always_inline void mseg_pressure_after_sweep(struct mseg_pressure *pr,
						      const struct mseg_config *cfg,
						      struct mseg_stats *st,
						      __u64 now, __u64 n)
{
	__u64 syn_max = MSEG_CFG_OR(cfg, flood_syn_rate,
				    MSEG_DEF_FLOOD_SYN_RATE);
	__u64 half_max = MSEG_CFG_OR(cfg, flood_half_open,
				     MSEG_DEF_FLOOD_HALF_OPEN);
	__u64 half;

	mseg_pressure_roll(pr, cfg, st, now);
	half = mseg_half_open(pr);
	if (mseg_pressure_flag(pr, MSEG_PRESSURE_FLOOD,
			       pr->syn_rate > syn_max || half > half_max,
			       &pr->flood_count))
		mseg_flood_event(cfg, st, pr->syn_rate, syn_max, half);
	mseg_pressure_levels(now, n);
}

/*
 * Called for every packet that would open a session, before its verdict
 * (mseg_new_flow() recounts the table after it, for allowed flows): count
 * the SYN, raise the flood flag at once when a threshold is crossed
 * mid-window (clearing waits for the tick). A spoofed ACK picked up
 * mid-stream opens a half-open session as a SYN does, so it is checked
 * against the half-open threshold too.
 */
static __always_inline void mseg_pressure_update(struct mseg_pressure *pr,
						 const struct mseg_config *cfg,
						 struct mseg_stats *st, bool syn,
						 bool half_open)
{
	__u64 syn_max = MSEG_CFG_OR(cfg, flood_syn_rate,
				    MSEG_DEF_FLOOD_SYN_RATE);
	__u64 half_max = MSEG_CFG_OR(cfg, flood_half_open,
				     MSEG_DEF_FLOOD_HALF_OPEN);
	__u64 half;

	if (syn)
		__sync_fetch_and_add(&pr->syn_count, 1);
	if (!half_open)
		return;
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

/* Under pressure, unanswered sessions get the short timeout (mseg_timeout.h). */
static __always_inline bool mseg_pressured(const struct mseg_pressure *pr)
{
	return mseg_pressure_shortens(pr->flags);
}

#endif /* MSEG_PRESSURE_H */
