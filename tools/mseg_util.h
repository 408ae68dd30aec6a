/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Small things every C program of mseg needs the same way: the clocks the
 * data path stamps and user space measures with, and the names of the TCP
 * states (docs/DESIGN.md's, as `mseg sessions` prints them).
 */
#ifndef MSEG_UTIL_H
#define MSEG_UTIL_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <linux/types.h>

#include "mseg_abi.h"

#define MSEG_NS_PER_SEC 1000000000ULL

/* `make` sets it from git; a hand-built tool still says something. */
#ifndef MSEG_VERSION
#define MSEG_VERSION "unknown"
#endif

static inline __u64 mseg_clock_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (__u64)ts.tv_sec * MSEG_NS_PER_SEC + (__u64)ts.tv_nsec;
}

/* The clock of every *_ns field in the maps (bpf_ktime_get_boot_ns()). */
static inline __u64 mseg_now_boot_ns(void)
{
	return mseg_clock_ns(CLOCK_BOOTTIME);
}

/* For measuring durations. */
static inline double mseg_now_mono_s(void)
{
	return mseg_clock_ns(CLOCK_MONOTONIC) / 1e9;
}

/* --interval S, shared by the long-running tools: 0 after "mseg: ..." if bad. */
static inline int mseg_parse_interval(const char *s, unsigned *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < 1 || v > 86400) {
		fprintf(stderr,
			"mseg: --interval wants whole seconds from 1 to 86400, not '%s'\n",
			s);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

static const char *const mseg_tcp_state_names[MSEG_TCP_STATE_MAX] = {
	[MSEG_TCP_NONE] = "NONE",
	[MSEG_TCP_SYN_SENT] = "SYN_SENT",
	[MSEG_TCP_SYN_RECV] = "SYN_RECV",
	[MSEG_TCP_ESTABLISHED] = "ESTABLISHED",
	[MSEG_TCP_FIN_WAIT1] = "FIN_WAIT1",
	[MSEG_TCP_FIN_WAIT2] = "FIN_WAIT2",
	[MSEG_TCP_TIME_WAIT] = "TIME_WAIT",
	[MSEG_TCP_CLOSE] = "CLOSE",
	[MSEG_TCP_CLOSE_WAIT] = "CLOSE_WAIT",
	[MSEG_TCP_LAST_ACK] = "LAST_ACK",
	[MSEG_TCP_CLOSING] = "CLOSING",
};

#endif /* MSEG_UTIL_H */
