// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Reference classifiers for bench/pkt.sh, built by the benchmark itself:
 *   ref_empty  returns TC_ACT_OK and does nothing else: the cost of the
 *              hook and of BPF_PROG_TEST_RUN themselves;
 *   ref_drop   returns TC_ACT_SHOT and does nothing else: bench/rulecount.sh
 *              drops a frame with it at once, the baseline of what a filter
 *              adds to the receive path;
 *   ref_floor  parses Ethernet, IPv4 or IPv6 and TCP/UDP ports, and looks
 *              the 5-tuple up once in a hash that is never filled: the
 *              least a stateful classifier does for a packet it has not
 *              seen (a lookup that misses);
 *   ref_floor_hit  the same parse and lookup in a hash that remembers every
 *              5-tuple it sees, and a count on the entry found: the least a
 *              stateful classifier does for a packet of a known flow (a
 *              lookup that hits, which walks the bucket and compares the
 *              whole key, ~10 ns more than a miss here).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct ref_key {
	__u8 src[16];
	__u8 dst[16];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ref_key);
	__type(value, __u64);
} ref_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ref_key);
	__type(value, __u64);
} ref_known SEC(".maps");

SEC("tc")
int ref_empty(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

SEC("tc")
int ref_drop(struct __sk_buff *skb)
{
	return TC_ACT_SHOT;
}

static __always_inline int ref_parse(struct __sk_buff *skb, struct ref_key *k)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	void *l4;

	if ((void *)(eth + 1) > end)
		return -1;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end || ip->ihl < 5)
			return -1;
		k->src[10] = k->src[11] = k->dst[10] = k->dst[11] = 0xff;
		__builtin_memcpy(k->src + 12, &ip->saddr, 4);
		__builtin_memcpy(k->dst + 12, &ip->daddr, 4);
		k->proto = ip->protocol;
		l4 = (void *)ip + ip->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end)
			return -1;
		__builtin_memcpy(k->src, &ip6->saddr, 16);
		__builtin_memcpy(k->dst, &ip6->daddr, 16);
		k->proto = ip6->nexthdr;
		l4 = ip6 + 1;
	} else {
		return -1;
	}
	if (k->proto == IPPROTO_TCP || k->proto == IPPROTO_UDP) {
		__u16 *ports = l4;

		if ((void *)(ports + 2) > end)
			return -1;
		k->sport = bpf_ntohs(ports[0]);
		k->dport = bpf_ntohs(ports[1]);
	}
	return 0;
}

SEC("tc")
int ref_floor(struct __sk_buff *skb)
{
	struct ref_key k = {};
	__u64 *hits;

	if (ref_parse(skb, &k))
		return TC_ACT_OK;
	hits = bpf_map_lookup_elem(&ref_flows, &k);
	if (hits)
		__sync_fetch_and_add(hits, 1);
	return TC_ACT_OK;
}

SEC("tc")
int ref_floor_hit(struct __sk_buff *skb)
{
	struct ref_key k = {};
	__u64 one = 1, *hits;

	if (ref_parse(skb, &k))
		return TC_ACT_OK;
	hits = bpf_map_lookup_elem(&ref_known, &k);
	if (hits)
		*hits += 1;
	else
		bpf_map_update_elem(&ref_known, &k, &one, BPF_NOEXIST);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
