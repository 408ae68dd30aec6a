/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What mseg-gc and its sweep program (mseg_gc.bpf.c) exchange: the context
 * of one BPF_PROG_TEST_RUN of the program, filled in by it. Not a map: not
 * part of the ABI of the pinned maps.
 */
#ifndef MSEG_GC_H
#define MSEG_GC_H

#include <linux/types.h>

#include "mseg_abi.h"

struct mseg_gc_run {
	__u64 now_ns;            /* CLOCK_BOOTTIME the sweep judged by */
	__u64 scanned;           /* entries visited */
	__u64 expired;           /* ... past their timeout */
	__u64 deleted;           /* ... deleted by this sweep */
	__u64 deleted_half_open; /* ... of them half-open */
	__u64 live;              /* entries not expired */
	__u64 half_open;         /* ... of them half-open */
	__u64 by_state[MSEG_TCP_STATE_MAX]; /* live TCP sessions by state */
	__u64 sessions;          /* entries left, as the kernel counts them */
	__u32 level;             /* mseg_pressure after the sweep */
	__u32 flags;             /* MSEG_PRESSURE_* after the sweep */
};

#endif /* MSEG_GC_H */
