/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ICMP and ICMPv6 errors (docs/DESIGN.md, "Data path", ICMP). An error
 * quotes the IP header and the first bytes of the packet it is about. When
 * that packet belongs to a live session that is allowed, and the error is
 * addressed to the quoted packet's sender, the error is RELATED (as
 * nf_conntrack says) and passes, whoever sent it: the peer, or any router on
 * the path (path-MTU discovery needs that). Anything else is judged by the
 * policy like any packet, and an error never opens a session of its own.
 */
#ifndef MSEG_ICMP_H
#define MSEG_ICMP_H

#include "mseg_abi.h"
#include "mseg_parse.h"

/* The quoted packet of an error, in and out (mseg_icmp_quoted). */
struct mseg_quoted {
	struct mseg_tuple t; /* out: the quoted packet's flow */
	__u32 off;           /* in: the quoted IP header */
	__u32 end;           /* in: the end of the error */
	__u8 family;         /* in: the error's family, which the quote must share */
	__u8 pad[3];
};

/*
 * The quoted packet's ports as the session key has them; false for what a
 * session can never be about (another error, a non-first fragment).
 */
static __always_inline bool mseg_quoted_ports(struct mseg_tuple *t,
					      const __u8 *l4)
{
	__u16 a = (__u16)l4[0] << 8 | l4[1];
	__u16 b = (__u16)l4[2] << 8 | l4[3];
	__u16 id = (__u16)l4[4] << 8 | l4[5];
	__u8 type = l4[0];
	bool v6 = t->family == 6;

	if (t->proto == IPPROTO_TCP || t->proto == IPPROTO_UDP) {
		t->sport = a;
		t->dport = b;
		return true;
	}
	if ((!v6 && t->proto == IPPROTO_ICMP) ||
	    (v6 && t->proto == IPPROTO_ICMPV6)) {
		if (type == (v6 ? ICMPV6_ECHO_REQUEST : MSEG_ICMP_ECHO))
			t->sport = id;
		else if (type == (v6 ? ICMPV6_ECHO_REPLY : MSEG_ICMP_ECHOREPLY))
			t->dport = id;
		else if (v6 ? type < 128 :
			      (type == MSEG_ICMP_UNREACH ||
			       type == MSEG_ICMP_SOURCE_QUENCH ||
			       type == MSEG_ICMP_REDIRECT ||
			       type == MSEG_ICMP_TIME_EXCEEDED ||
			       type == MSEG_ICMP_PARAMETERPROB))
			return false; /* no error is about an error */
	}
	return true;
}

/*
 * Read the packet an error quotes. A global function, verified once: only
 * ICMP errors get here. Returns 0 when q->t holds the quoted flow.
 */
__noinline int mseg_icmp_quoted(struct __sk_buff *skb, struct mseg_quoted *q)
{
	__u8 l4[8];
	__u32 l4_off;

	if (!skb || !q)
		return -1;
	if (q->family == 4) {
		struct iphdr ip;

		if (q->off + sizeof(ip) > q->end ||
		    bpf_skb_load_bytes(skb, q->off, &ip, sizeof(ip)))
			return -1;
		if (ip.version != 4 || ip.ihl < 5 ||
		    (bpf_ntohs(ip.frag_off) & 0x1fff))
			return -1;
		q->t.family = 4;
		q->t.saddr[2] = bpf_htonl(0xffff);
		q->t.saddr[3] = ip.saddr;
		q->t.daddr[2] = bpf_htonl(0xffff);
		q->t.daddr[3] = ip.daddr;
		q->t.proto = ip.protocol;
		l4_off = q->off + ip.ihl * 4;
	} else {
		/* version, class, flow, length, next header, hop limit */
		__u8 fixed[8];
		struct mseg_ext_walk w = {};

		if (q->off + sizeof(struct ipv6hdr) > q->end ||
		    bpf_skb_load_bytes(skb, q->off, fixed, sizeof(fixed)) ||
		    bpf_skb_load_bytes(skb, q->off + 8, q->t.saddr, 16) ||
		    bpf_skb_load_bytes(skb, q->off + 24, q->t.daddr, 16))
			return -1;
		if ((fixed[0] >> 4) != 6)
			return -1;
		q->t.family = 6;
		w.off = q->off + sizeof(struct ipv6hdr);
		w.end = q->end;
		w.nexthdr = fixed[6];
		if (mseg_ipv6_exthdr(w.nexthdr) &&
		    (mseg_ipv6_walk(skb, &w) != MSEG_PARSE_OK ||
		     w.frag == MSEG_FRAG_LATER))
			return -1;
		q->t.proto = w.nexthdr;
		l4_off = w.off;
	}
	/* RFC 792 and 4443: an error quotes at least 8 bytes past the header */
	if (l4_off + sizeof(l4) > q->end ||
	    bpf_skb_load_bytes(skb, l4_off, l4, sizeof(l4)))
		return -1;
	return mseg_quoted_ports(&q->t, l4) ? 0 : -1;
}

#endif /* MSEG_ICMP_H */
