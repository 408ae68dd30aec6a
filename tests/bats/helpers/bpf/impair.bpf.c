// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * impair: a small tc program that makes a link lossy, duplicating and
 * reordering, for the tests (this kernel has no netem). Attached with
 * plain tc on clsact ingress or egress (built once for each: IMPAIR_EGRESS
 * 1 or 0); every attachment shares one pinned
 * configuration and set of counters, impair_cfg (TC_BPF_MNT, by name).
 *
 * Only TCP segments are touched. Per segment, a pseudo-random number from
 * a seeded xorshift (the seed is the test's, printed, so a run can be
 * replayed) decides, in per mille: drop it; send it twice (the copy, marked
 * so this program lets it pass, goes out first through
 * bpf_clone_redirect); or, on egress, put it in the slow class 1:2 of an
 * HTB root qdisc the test sets up (skb->priority), so later segments in
 * class 1:1 overtake it.
 */
#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define IMPAIR_MARK 0x1a2b3c4d
#define IMPAIR_SLOW_CLASS 0x10002 /* HTB class 1:2 */

struct impair_cfg {
	__u32 state;      /* xorshift32 state; the test writes the seed */
	__u32 loss;       /* per mille */
	__u32 dup;        /* per mille */
	__u32 reorder;    /* per mille, egress only */
	__u64 seen;       /* TCP segments looked at */
	__u64 dropped;
	__u64 duplicated;
	__u64 delayed;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct impair_cfg);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} impair_cfg SEC(".maps");

static __always_inline bool is_tcp(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return false;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		return (void *)(ip + 1) <= end && ip->protocol == IPPROTO_TCP;
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		return (void *)(ip6 + 1) <= end && ip6->nexthdr == IPPROTO_TCP;
	}
	return false;
}

static __always_inline int impair(struct __sk_buff *skb, bool egress)
{
	struct impair_cfg *c;
	__u32 zero = 0, x, r;

	if (skb->mark == IMPAIR_MARK || !is_tcp(skb))
		return TC_ACT_OK;
	c = bpf_map_lookup_elem(&impair_cfg, &zero);
	if (!c || !c->state)
		return TC_ACT_OK;
	/* xorshift32; two CPUs at once may draw the same number: harmless */
	x = c->state;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	c->state = x;
	r = x % 1000;
	__sync_fetch_and_add(&c->seen, 1);
	if (r < c->loss) {
		__sync_fetch_and_add(&c->dropped, 1);
		return TC_ACT_SHOT;
	}
	r -= c->loss;
	if (r < c->dup) {
		__sync_fetch_and_add(&c->duplicated, 1);
		skb->mark = IMPAIR_MARK;
		bpf_clone_redirect(skb, skb->ifindex, egress ? 0 : BPF_F_INGRESS);
		skb->mark = 0;
		return TC_ACT_OK;
	}
	r -= c->dup;
	if (egress && r < c->reorder) {
		__sync_fetch_and_add(&c->delayed, 1);
		skb->priority = IMPAIR_SLOW_CLASS;
	}
	return TC_ACT_OK;
}

/* Built twice: -DIMPAIR_EGRESS=1 for an egress hook, 0 for ingress. */
SEC("tc")
int impair_prog(struct __sk_buff *skb)
{
	return impair(skb, IMPAIR_EGRESS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
