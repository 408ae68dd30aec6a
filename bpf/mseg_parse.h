/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Frame parsing: Ethernet, up to two VLAN tags, IPv4 (with options) or IPv6
 * (with the usual extension headers), then TCP, UDP, ICMP or ICMPv6.
 * Addresses come out as 16 bytes (IPv4-mapped), ports in host order.
 * A frame that is cut short or inconsistent is reported as malformed and
 * never half-read.
 */
#ifndef MSEG_PARSE_H
#define MSEG_PARSE_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/icmpv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "mseg_abi.h"

#define MSEG_MAX_VLANS 2
#define MSEG_MAX_EXT_HDRS 8
#define MSEG_MAX_TCP_OPT_BYTES 40
/* Headers beyond this offset are not looked for; keeps offsets bounded. */
#define MSEG_MAX_L4_OFF 512
/* Enough to hold every header we read in the linear part of the skb. */
#ifndef MSEG_PULL_LEN
#define MSEG_PULL_LEN 256
#endif

/* TCP option kinds (RFC 9293, RFC 7323) */
#define MSEG_TCPOPT_EOL 0
#define MSEG_TCPOPT_NOP 1
#define MSEG_TCPOPT_WSCALE 3
#define MSEG_TCPOLEN_WSCALE 3

/*
 * The ICMP echo header (RFC 792), declared here because <linux/icmp.h>
 * includes <linux/if.h> and through it glibc's <sys/socket.h>, which under
 * -target bpf asks for the 32-bit glibc stubs (libc6-dev-i386).
 */
#define MSEG_ICMP_ECHOREPLY 0
#define MSEG_ICMP_ECHO 8

struct mseg_icmp_echo {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be16 id;
	__be16 sequence;
};

#define MSEG_TCP_FIN 0x01
#define MSEG_TCP_SYN 0x02
#define MSEG_TCP_RST 0x04
#define MSEG_TCP_PSH 0x08
#define MSEG_TCP_ACK 0x10

enum mseg_parse_result {
	MSEG_PARSE_OK,
	MSEG_PARSE_NON_IP,
	MSEG_PARSE_MALFORMED,
};

enum mseg_frag_kind {
	MSEG_FRAG_NONE,
	MSEG_FRAG_FIRST, /* offset 0, more fragments follow: carries the ports */
	MSEG_FRAG_LATER, /* no L4 header */
};

struct mseg_tuple {
	__u32 saddr[4];
	__u32 daddr[4];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 family; /* 4 or 6 */
	__u8 pad[2];
};

struct mseg_pkt {
	struct mseg_tuple t;
	__u32 seq;
	__u32 ack;
	__u32 frag_id;
	__u16 win;
	__u16 payload_len; /* L4 payload bytes, for TCP sequence space */
	__u8 tcp_flags;    /* MSEG_TCP_* */
	__u8 wscale;       /* window scale option of a SYN, 0xff if absent */
	__u8 frag;         /* enum mseg_frag_kind */
	__u8 link_local;   /* ICMPv6 ND/MLD: never filtered */
};

struct mseg_vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

struct mseg_ipv6_frag_hdr {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;
	__be32 id;
};

#define MSEG_HDR_OK(hdr, data_end) ((void *)((hdr) + 1) <= (data_end))

/*
 * Window scale option of a SYN, or 0xff. A global function: the verifier
 * checks it once on its own instead of once per path that reaches it, and
 * it walks a stack copy of the options, not packet memory.
 */
__noinline int mseg_tcp_wscale(struct __sk_buff *skb, __u64 off, __u64 len)
{
	__u8 opts[MSEG_MAX_TCP_OPT_BYTES];
	__u32 i = 0;
	int n;

	if (!skb || len > MSEG_MAX_TCP_OPT_BYTES)
		return 0xff;
	/* keep clang from merging the two checks into one the verifier
	 * cannot use to bound len */
	barrier_var(len);
	if (len == 0)
		return 0xff;
	if (bpf_skb_load_bytes(skb, off, opts, len))
		return 0xff;
	/* An option takes at least one byte: at most len rounds. */
	for (n = 0; n < MSEG_MAX_TCP_OPT_BYTES; n++) {
		__u8 kind, olen;

		if (i >= len || i >= MSEG_MAX_TCP_OPT_BYTES)
			break;
		kind = opts[i];
		if (kind == MSEG_TCPOPT_EOL)
			break;
		if (kind == MSEG_TCPOPT_NOP) {
			i++;
			continue;
		}
		if (i + 1 >= len || i + 1 >= MSEG_MAX_TCP_OPT_BYTES)
			break;
		olen = opts[i + 1];
		if (olen < 2)
			break;
		if (kind == MSEG_TCPOPT_WSCALE && olen == MSEG_TCPOLEN_WSCALE) {
			if (i + 2 >= len || i + 2 >= MSEG_MAX_TCP_OPT_BYTES)
				break;
			return opts[i + 2] > 14 ? 14 : opts[i + 2];
		}
		i += olen;
	}
	return 0xff;
}

static __always_inline int mseg_parse_l4(struct __sk_buff *skb, void *data,
					 void *data_end, __u32 off,
					 __u32 l4_len, struct mseg_pkt *p)
{
	void *l4 = data + (off & (MSEG_MAX_L4_OFF - 1));

	if (off >= MSEG_MAX_L4_OFF)
		return MSEG_PARSE_MALFORMED;

	switch (p->t.proto) {
	case IPPROTO_TCP: {
		struct tcphdr *th = l4;
		__u32 doff;

		if (!MSEG_HDR_OK(th, data_end))
			return MSEG_PARSE_MALFORMED;
		doff = th->doff * 4;
		if (doff < sizeof(*th) || doff > l4_len)
			return MSEG_PARSE_MALFORMED;
		p->t.sport = bpf_ntohs(th->source);
		p->t.dport = bpf_ntohs(th->dest);
		p->seq = bpf_ntohl(th->seq);
		p->ack = bpf_ntohl(th->ack_seq);
		p->win = bpf_ntohs(th->window);
		p->tcp_flags = ((__u8 *)th)[13] & 0x1f;
		p->payload_len = l4_len - doff;
		if (p->tcp_flags & MSEG_TCP_SYN)
			p->wscale = mseg_tcp_wscale(skb, (void *)(th + 1) - data,
						    doff - sizeof(*th));
		return MSEG_PARSE_OK;
	}
	case IPPROTO_UDP: {
		struct udphdr *uh = l4;

		if (!MSEG_HDR_OK(uh, data_end) || l4_len < sizeof(*uh))
			return MSEG_PARSE_MALFORMED;
		p->t.sport = bpf_ntohs(uh->source);
		p->t.dport = bpf_ntohs(uh->dest);
		return MSEG_PARSE_OK;
	}
	case IPPROTO_ICMP: {
		struct mseg_icmp_echo *ih = l4;

		if (!MSEG_HDR_OK(ih, data_end) || l4_len < sizeof(*ih))
			return MSEG_PARSE_MALFORMED;
		if (ih->type == MSEG_ICMP_ECHO || ih->type == MSEG_ICMP_ECHOREPLY) {
			p->t.sport = bpf_ntohs(ih->id);
			p->t.dport = p->t.sport;
		}
		return MSEG_PARSE_OK;
	}
	case IPPROTO_ICMPV6: {
		struct icmp6hdr *ih = l4;
		__u8 type;

		if (!MSEG_HDR_OK(ih, data_end) || l4_len < sizeof(*ih))
			return MSEG_PARSE_MALFORMED;
		type = ih->icmp6_type;
		if (type == ICMPV6_ECHO_REQUEST || type == ICMPV6_ECHO_REPLY) {
			p->t.sport = bpf_ntohs(ih->icmp6_identifier);
			p->t.dport = p->t.sport;
		}
		/* Neighbour discovery (133-137) and MLD (130-132, 143). */
		if ((type >= 130 && type <= 137) || type == 143)
			p->link_local = 1;
		return MSEG_PARSE_OK;
	}
	}
	return MSEG_PARSE_OK;
}

static __always_inline int mseg_parse_ipv4(struct __sk_buff *skb, void *data, void *data_end,
					   __u32 off, __u32 frame_len,
					   struct mseg_pkt *p)
{
	struct iphdr *iph = data + off;
	__u32 hlen, tot_len;
	__u16 frag_off;

	if (!MSEG_HDR_OK(iph, data_end))
		return MSEG_PARSE_MALFORMED;
	hlen = iph->ihl * 4;
	tot_len = bpf_ntohs(iph->tot_len);
	if (iph->version != 4 || hlen < sizeof(*iph) || tot_len < hlen ||
	    off + tot_len > frame_len)
		return MSEG_PARSE_MALFORMED;

	p->t.family = 4;
	p->t.saddr[2] = bpf_htonl(0xffff);
	p->t.saddr[3] = iph->saddr;
	p->t.daddr[2] = bpf_htonl(0xffff);
	p->t.daddr[3] = iph->daddr;
	p->t.proto = iph->protocol;
	p->frag_id = bpf_ntohs(iph->id);

	frag_off = bpf_ntohs(iph->frag_off);
	if (frag_off & 0x1fff) {
		p->frag = MSEG_FRAG_LATER;
		return MSEG_PARSE_OK;
	}
	if (frag_off & 0x2000)
		p->frag = MSEG_FRAG_FIRST;
	return mseg_parse_l4(skb, data, data_end, off + hlen, tot_len - hlen,
			     p);
}

static __always_inline int mseg_parse_ipv6(struct __sk_buff *skb, void *data, void *data_end,
					   __u32 off, __u32 frame_len,
					   struct mseg_pkt *p)
{
	struct ipv6hdr *ip6 = data + off;
	__u32 l4_off, end;
	__u8 nexthdr;
	int i;

	if (!MSEG_HDR_OK(ip6, data_end))
		return MSEG_PARSE_MALFORMED;
	end = off + sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
	if (ip6->version != 6 || end > frame_len)
		return MSEG_PARSE_MALFORMED;

	p->t.family = 6;
	__builtin_memcpy(p->t.saddr, &ip6->saddr, 16);
	__builtin_memcpy(p->t.daddr, &ip6->daddr, 16);
	nexthdr = ip6->nexthdr;
	l4_off = off + sizeof(*ip6);

	for (i = 0; i < MSEG_MAX_EXT_HDRS; i++) {
		struct ipv6_opt_hdr *oh = data + (l4_off & (MSEG_MAX_L4_OFF - 1));
		struct mseg_ipv6_frag_hdr *fh = (void *)oh;
		__u16 frag_off;

		if (l4_off >= MSEG_MAX_L4_OFF)
			return MSEG_PARSE_MALFORMED;
		switch (nexthdr) {
		case IPPROTO_HOPOPTS:
		case IPPROTO_ROUTING:
		case IPPROTO_DSTOPTS:
			if (!MSEG_HDR_OK(oh, data_end))
				return MSEG_PARSE_MALFORMED;
			nexthdr = oh->nexthdr;
			l4_off += (oh->hdrlen + 1) * 8;
			break;
		case IPPROTO_AH:
			if (!MSEG_HDR_OK(oh, data_end))
				return MSEG_PARSE_MALFORMED;
			nexthdr = oh->nexthdr;
			l4_off += (oh->hdrlen + 2) * 4;
			break;
		case IPPROTO_FRAGMENT:
			if (!MSEG_HDR_OK(fh, data_end))
				return MSEG_PARSE_MALFORMED;
			nexthdr = fh->nexthdr;
			l4_off += sizeof(*fh);
			frag_off = bpf_ntohs(fh->frag_off);
			p->frag_id = bpf_ntohl(fh->id);
			if (frag_off & 0xfff8) {
				p->t.proto = nexthdr;
				p->frag = MSEG_FRAG_LATER;
				return l4_off > end ? MSEG_PARSE_MALFORMED :
						      MSEG_PARSE_OK;
			}
			if (frag_off & 1)
				p->frag = MSEG_FRAG_FIRST;
			break;
		default:
			goto done;
		}
	}
	/* Still inside the extension chain: too long to follow. */
	return MSEG_PARSE_MALFORMED;
done:
	if (l4_off > end)
		return MSEG_PARSE_MALFORMED;
	p->t.proto = nexthdr;
	return mseg_parse_l4(skb, data, data_end, l4_off, end - l4_off, p);
}

/*
 * Parse the frame at skb->data, reading only the linear part of the skb.
 * Inlined at both of its calls: as a subprogram it cost ~10 ns a packet.
 */
static __always_inline int mseg_parse_linear(struct __sk_buff *skb,
					     struct mseg_pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	__u32 off = sizeof(*eth);
	__be16 proto;
	int i;

	if (!MSEG_HDR_OK(eth, data_end))
		return MSEG_PARSE_MALFORMED;
	proto = eth->h_proto;

#pragma unroll
	for (i = 0; i < MSEG_MAX_VLANS; i++) {
		struct mseg_vlan_hdr *vh = data + off;

		if (proto != bpf_htons(ETH_P_8021Q) &&
		    proto != bpf_htons(ETH_P_8021AD))
			break;
		if (!MSEG_HDR_OK(vh, data_end))
			return MSEG_PARSE_MALFORMED;
		proto = vh->encap_proto;
		off += sizeof(*vh);
	}

	p->wscale = 0xff;
	if (proto == bpf_htons(ETH_P_IP))
		return mseg_parse_ipv4(skb, data, data_end, off, skb->len, p);
	if (proto == bpf_htons(ETH_P_IPV6))
		return mseg_parse_ipv6(skb, data, data_end, off, skb->len, p);
	return MSEG_PARSE_NON_IP;
}

/*
 * Parse a frame. The stack and GRO leave the headers in the linear part,
 * so that is read first; only a frame whose headers ran past it is pulled
 * (a copy, and a new head for a cloned skb, as TCP's are) and read again.
 */
static __always_inline int mseg_parse(struct __sk_buff *skb, struct mseg_pkt *p)
{
	int r = mseg_parse_linear(skb, p);
	__u32 len = skb->len;

	if (r != MSEG_PARSE_MALFORMED ||
	    len <= (__u32)(skb->data_end - skb->data))
		return r;
	if (bpf_skb_pull_data(skb, len < MSEG_PULL_LEN ? len : MSEG_PULL_LEN))
		return r;
	__builtin_memset(p, 0, sizeof(*p));
	return mseg_parse_linear(skb, p);
}

#endif /* MSEG_PARSE_H */
