/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The data path's clock: CLOCK_BOOTTIME nanoseconds, as every *_ns field in
 * the maps (mseg_abi.h), at jiffy resolution. bpf_ktime_get_boot_ns() reads
 * the clocksource and took about a third of an established packet's time
 * here (bench/pkt.sh); each CPU reads it once per jiffy and reuses it until
 * jiffies64 moves. Timeouts are whole seconds, so being up to one jiffy
 * (1 to 10 ms) behind changes nothing an operator can see.
 */
#ifndef MSEG_CLOCK_H
#define MSEG_CLOCK_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "mseg_maps.h"

/*
 * mseg_now() from this CPU's cache `c`, and in *moved whether this CPU's
 * jiffy moved since its last packet: work that is due once a second (the
 * pressure tick) need not look at every packet, only at the first of each
 * jiffy. The classifier passes the cache in the scratch map it has already
 * looked up.
 */
static __always_inline __u64 mseg_clock_read(struct mseg_clock *c, bool *moved)
{
	__u64 j = bpf_jiffies64();

	*moved = c->jiffies != j;
	if (*moved) {
		c->jiffies = j;
		c->ns = bpf_ktime_get_boot_ns();
	}
	return c->ns;
}

static __always_inline __u64 mseg_now(void)
{
	struct mseg_scratch *x;
	__u32 zero = 0;
	bool moved;

	x = bpf_map_lookup_elem(&mseg_scratch, &zero);
	if (!x)
		return bpf_ktime_get_boot_ns();
	return mseg_clock_read(&x->clock, &moved);
}

#endif /* MSEG_CLOCK_H */
