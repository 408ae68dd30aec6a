// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * For tests/bats/parse_common.bats: runs mseg_parse_common() and
 * mseg_parse_walk() (bpf/mseg_parse.h) on the same frame and returns
 *   0  the fast parse declined the frame and left its mseg_pkt untouched;
 *   1  the fast parse took it, and wrote exactly what the walk writes, which
 *      read the frame whole (MSEG_PARSE_OK);
 *   2  the fast parse took it, and the two disagree;
 *   3  the fast parse declined it, but wrote to its mseg_pkt.
 */
#include "mseg_parse.h"

#define WORDS (sizeof(struct mseg_pkt) / sizeof(__u64))

static __always_inline void pkt_init(struct mseg_pkt *p)
{
	__builtin_memset(p, 0, sizeof(*p));
	p->wscale = 0xff;
}

static __always_inline bool pkt_equal(const struct mseg_pkt *a,
				      const struct mseg_pkt *b)
{
	const __u64 *x = (const void *)a, *y = (const void *)b;
	int i;

	for (i = 0; i < WORDS; i++)
		if (x[i] != y[i])
			return false;
	return true;
}

SEC("tc")
int parse_common_check(struct __sk_buff *skb)
{
	struct mseg_pkt fast, walk, untouched;
	union mseg_hdr_buf buf;

	pkt_init(&fast);
	pkt_init(&untouched);
	if (!mseg_parse_common(skb, &fast))
		return pkt_equal(&fast, &untouched) ? 0 : 3;
	pkt_init(&walk);
	if (mseg_parse_walk(skb, &walk, &buf) != MSEG_PARSE_OK)
		return 2;
	return pkt_equal(&fast, &walk) ? 1 : 2;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
