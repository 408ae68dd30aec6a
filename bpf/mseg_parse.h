/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Frame parsing (docs/DESIGN.md, "Data path", step 1): Ethernet, VLAN tags
 * (the one the kernel moved into skb metadata and those still in the frame),
 * IPv4 (with options) or IPv6 (with its extension header chain), then TCP,
 * UDP, ICMP or ICMPv6. Addresses come out as 16 bytes (IPv4-mapped), ports
 * in host order.
 *
 * Fail closed: a frame is read whole (OK), or as far as its addresses
 * (MALFORMED: the caller judges it by them), or not even that (UNREAD: no
 * whole IP header, which the kernel discards), or refused (DROP, with its
 * reason in p->drop). Nothing is half-read and nothing is given up on
 * because it is long: every bound below is one the kernel enforces too, or
 * one no real network reaches, and a frame past it is a DROP.
 *
 * Headers are read in place when they lie in the linear part of the skb and
 * copied out with bpf_skb_load_bytes() when they do not (the idea of the
 * kernel's skb_header_pointer()), so one pass reads any frame and a packet
 * whose headers are linear (every established TCP packet) calls no helper.
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

/*
 * VLAN tags read, metadata and frame together. QinQ is two; a priority tag
 * on top makes three. More are dropped (vlan_limit): the kernel strips
 * VID-0 tags one after the other after tc and delivers the IP packet inside.
 */
#ifndef MSEG_MAX_VLANS
#define MSEG_MAX_VLANS 4
#endif
/*
 * IPv6 extension headers walked: the kernel's own bound
 * (IP6_MAX_EXT_HDRS_CNT, net/ipv6/ip6_input.c and exthdrs_core.c: a 13th
 * header is discarded). A longer chain is dropped (exthdr_limit).
 */
#ifndef MSEG_MAX_EXT_HDRS
#define MSEG_MAX_EXT_HDRS 12
#endif
#define MSEG_MAX_TCP_OPT_BYTES 40
/* Headers are read in place only below this offset: a bound the verifier sees. */
#define MSEG_DIRECT_MASK 511

/* TCP option kinds (RFC 9293, RFC 7323) */
#define MSEG_TCPOPT_EOL 0
#define MSEG_TCPOPT_NOP 1
#define MSEG_TCPOPT_WSCALE 3
#define MSEG_TCPOLEN_WSCALE 3

/*
 * The ICMP header (RFC 792), declared here because <linux/icmp.h>
 * includes <linux/if.h> and through it glibc's <sys/socket.h>, which under
 * -target bpf asks for the 32-bit glibc stubs (libc6-dev-i386).
 */
#define MSEG_ICMP_ECHOREPLY 0
#define MSEG_ICMP_UNREACH 3
#define MSEG_ICMP_SOURCE_QUENCH 4
#define MSEG_ICMP_REDIRECT 5
#define MSEG_ICMP_ECHO 8
#define MSEG_ICMP_TIME_EXCEEDED 11
#define MSEG_ICMP_PARAMETERPROB 12

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
	MSEG_PARSE_MALFORMED, /* addresses (and IP protocol) read, not the rest */
	MSEG_PARSE_UNREAD,    /* not even a whole IP header */
	MSEG_PARSE_DROP,      /* refused: p->drop says why */
};

/* Why a frame was refused; each has its counter in mseg_stats. */
enum mseg_drop_reason {
	MSEG_DROP_NONE,
	MSEG_DROP_VLAN_LIMIT,
	MSEG_DROP_V4_MAPPED,
	MSEG_DROP_EXTHDR_LIMIT,
	MSEG_DROP_FRAG_TINY,
	MSEG_DROP_FRAG_OVERLAP,
};

enum mseg_frag_kind {
	MSEG_FRAG_NONE,
	MSEG_FRAG_FIRST, /* offset 0, more fragments follow: carries the ports */
	MSEG_FRAG_LATER, /* no L4 header */
};

/* What an ICMP or ICMPv6 message is to the data path. */
enum mseg_icmp_kind {
	MSEG_ICMPK_NONE,     /* not ICMP */
	MSEG_ICMPK_ECHO_REQ, /* sport = identifier, dport = 0 */
	MSEG_ICMPK_ECHO_REP, /* sport = 0, dport = identifier */
	MSEG_ICMPK_ERROR,    /* quotes the packet it is about */
	MSEG_ICMPK_OTHER,
};

struct mseg_tuple {
	__u32 saddr[4];
	__u32 daddr[4];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 family; /* 4 or 6 */
	__u8 pad[2];
} __attribute__((aligned(8))); /* addresses compared and copied 8 bytes at a time */

struct mseg_pkt {
	struct mseg_tuple t;
	__u32 seq;
	__u32 ack;
	__u32 frag_id;
	__u32 l4_off;      /* where the L4 header starts in the frame */
	__u16 l4_len;      /* IP payload bytes from l4_off on */
	__u16 win;
	__u16 payload_len; /* L4 payload bytes, for TCP sequence space */
	__u16 frag_off;    /* a later fragment's offset in bytes */
	__u8 tcp_flags;    /* MSEG_TCP_* */
	__u8 wscale;       /* window scale option of a SYN, 0xff if absent */
	__u8 frag;         /* enum mseg_frag_kind */
	__u8 exempt;       /* ND or MLD from the link: never filtered */
	__u8 hop_limit;    /* IPv4 TTL, IPv6 hop limit */
	__u8 icmp;         /* enum mseg_icmp_kind */
	__u8 drop;         /* enum mseg_drop_reason, with MSEG_PARSE_DROP */
	__u8 pad;
} __attribute__((aligned(8))); /* zeroed every packet: in 8-byte stores */

/*
 * The tuple's addresses are written 8 bytes at a time because the session
 * key (mseg_conntrack.h) reads them 8 bytes at a time: on x86 a load that
 * spans two narrower stores still in the store buffer cannot take its value
 * from them and waits until both reach the cache (a failed store forward,
 * a dozen cycles each on an established packet's critical path). p was
 * zeroed, so an IPv4 address's first half (0) is already in place.
 */
static __always_inline __u64 mseg_v4_half(__be32 a)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return (__u64)a << 32 | bpf_htonl(0xffff);
#else
	return (__u64)bpf_htonl(0xffff) << 32 | a;
#endif
}

static __always_inline void mseg_tuple_v4(struct mseg_tuple *t, __be32 saddr,
					  __be32 daddr)
{
	t->family = 4;
	((__u64 *)t->saddr)[1] = mseg_v4_half(saddr);
	((__u64 *)t->daddr)[1] = mseg_v4_half(daddr);
}

/* From packet memory: x86 and arm64 load an unaligned 8 bytes as one. */
static __always_inline void mseg_tuple_v6(struct mseg_tuple *t,
					  const struct ipv6hdr *ip6)
{
	const __u64 *s = (const __u64 *)&ip6->saddr;
	const __u64 *d = (const __u64 *)&ip6->daddr;

	t->family = 6;
	((__u64 *)t->saddr)[0] = s[0];
	((__u64 *)t->saddr)[1] = s[1];
	((__u64 *)t->daddr)[0] = d[0];
	((__u64 *)t->daddr)[1] = d[1];
}

struct mseg_vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

/* A copy of one header that is not in the linear part (the largest: IPv6). */
union mseg_hdr_buf {
	__u8 bytes[sizeof(struct ipv6hdr)];
	__u64 align;
};

/*
 * The IPv6 extension header walk, in and out (mseg_ipv6_walk).
 */
struct mseg_ext_walk {
	__u32 off;      /* in: the first extension header; out: the upper layer */
	__u32 end;      /* in: the end of the IPv6 packet */
	__u32 frag_id;  /* out, when a fragment header was seen */
	__u16 frag_off; /* out: a later fragment's offset in bytes */
	__u8 nexthdr;   /* in: the first header's type; out: the upper layer's
			 * (for a later fragment: its fragment header's next) */
	__u8 frag;      /* out: enum mseg_frag_kind */
};

/*
 * Offset and length of the header at `off`: straight into the packet when
 * the linear part holds it, else copied into `buf`; NULL when the frame is
 * shorter. `len` is a constant at every call.
 */
static __always_inline void *mseg_hdr(struct __sk_buff *skb, __u32 off,
				      __u32 len, void *buf)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	void *h = data + (off & MSEG_DIRECT_MASK);

	if (off <= MSEG_DIRECT_MASK && h + len <= data_end)
		return h;
	if (bpf_skb_load_bytes(skb, off, buf, len))
		return NULL;
	return buf;
}

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

/*
 * The extension headers the kernel's input path walks (ip6_input.c): all
 * below 64, so one mask test, not five comparisons, for every IPv6 packet.
 */
#define MSEG_IPV6_EXTHDRS                                                  \
	(1ULL << IPPROTO_HOPOPTS | 1ULL << IPPROTO_ROUTING |               \
	 1ULL << IPPROTO_FRAGMENT | 1ULL << IPPROTO_DSTOPTS | 1ULL << IPPROTO_AH)

static __always_inline bool mseg_ipv6_exthdr(__u8 nexthdr)
{
	return nexthdr < 64 && ((MSEG_IPV6_EXTHDRS >> nexthdr) & 1);
}

/*
 * Walk an IPv6 extension header chain up to the upper-layer header, or up
 * to a later fragment's fragment header. At most MSEG_MAX_EXT_HDRS headers,
 * each up to 2 KiB, anywhere in the frame: copied out one by one. A global
 * function, verified once; only frames with extension headers get here.
 * Returns MSEG_PARSE_OK, MALFORMED (the chain runs past the packet: in a
 * first fragment that is a tiny fragment, see the caller) or DROP (too
 * many headers).
 */
__noinline int mseg_ipv6_walk(struct __sk_buff *skb, struct mseg_ext_walk *w)
{
	__u8 h[8];
	__u32 off, len;
	__u8 next;
	int i;

	if (!skb || !w)
		return MSEG_PARSE_MALFORMED;
	off = w->off;
	next = w->nexthdr;
	for (i = 0; i <= MSEG_MAX_EXT_HDRS; i++) {
		if (!mseg_ipv6_exthdr(next)) {
			w->off = off;
			w->nexthdr = next;
			return MSEG_PARSE_OK;
		}
		if (i == MSEG_MAX_EXT_HDRS)
			break;
		if (off + sizeof(h) > w->end ||
		    bpf_skb_load_bytes(skb, off, h, sizeof(h)))
			return MSEG_PARSE_MALFORMED;
		if (next == IPPROTO_FRAGMENT) {
			__u16 fo = (__u16)h[2] << 8 | h[3];

			w->frag_id = (__u32)h[4] << 24 | (__u32)h[5] << 16 |
				     (__u32)h[6] << 8 | h[7];
			if (fo & 0xfff8) {
				/* The rest is data, not headers. */
				w->frag = MSEG_FRAG_LATER;
				w->frag_off = fo & 0xfff8;
				w->off = off + sizeof(h);
				w->nexthdr = h[0];
				return MSEG_PARSE_OK;
			}
			if (fo & 1)
				w->frag = MSEG_FRAG_FIRST;
			len = sizeof(h);
		} else if (next == IPPROTO_AH) {
			len = ((__u32)h[1] + 2) * 4;
		} else {
			len = ((__u32)h[1] + 1) * 8;
		}
		next = h[0];
		off += len;
	}
	return MSEG_PARSE_DROP;
}

/* A transport header that does not fit: a tiny first fragment is refused. */
static __always_inline int mseg_l4_short(struct mseg_pkt *p)
{
	if (p->frag == MSEG_FRAG_FIRST) {
		p->drop = MSEG_DROP_FRAG_TINY;
		return MSEG_PARSE_DROP;
	}
	return MSEG_PARSE_MALFORMED;
}

/*
 * A later fragment at `bytes` into its datagram. One that overlaps the TCP
 * header of its datagram could rewrite the flags or the ports that the first
 * fragment was judged by (RFC 1858): refused. That is any offset below the
 * 20 bytes of a TCP header that starts right after the IP header (IPv4, or
 * IPv6 when TCP follows the fragment header).
 */
static __always_inline int mseg_later_fragment(struct mseg_pkt *p, __u32 bytes)
{
	p->frag = MSEG_FRAG_LATER;
	p->frag_off = bytes;
	if (p->t.proto == IPPROTO_TCP && bytes < sizeof(struct tcphdr)) {
		p->drop = MSEG_DROP_FRAG_OVERLAP;
		return MSEG_PARSE_DROP;
	}
	return MSEG_PARSE_OK;
}

/* fe80::/10 */
static __always_inline bool mseg_link_local(const __u32 *a)
{
	return (bpf_ntohl(a[0]) & 0xffc00000) == 0xfe800000;
}

/* ff00::/8 */
static __always_inline bool mseg_multicast(const __u32 *a)
{
	return (bpf_ntohl(a[0]) >> 24) == 0xff;
}

/* ::ffff:0:0/96 (RFC 4291 2.5.5.2): never on the wire, and the spelling of IPv4. */
static __always_inline bool mseg_v4_mapped(const __u32 *a)
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0xffff);
}

/*
 * Neighbour discovery and MLD, which mseg never filters, exactly as they
 * prove they come from the link: ND (RFC 4861, types 133-137) with hop limit
 * 255 from any source but a multicast one (unspecified, link-local or
 * global); MLD (RFC 2710/3810: 130-132, 143) with hop limit 1 from a
 * link-local source. Never a fragment.
 */
static __always_inline bool mseg_nd_mld(const struct mseg_pkt *p, __u8 type)
{
	if (p->frag != MSEG_FRAG_NONE)
		return false;
	if (type >= 133 && type <= 137)
		return p->hop_limit == 255 && !mseg_multicast(p->t.saddr);
	if ((type >= 130 && type <= 132) || type == 143)
		return p->hop_limit == 1 && mseg_link_local(p->t.saddr);
	return false;
}

/* Echo: the identifier is the requester's port, the replier's is 0. */
static __always_inline void mseg_echo(struct mseg_pkt *p, bool request,
				      __u16 id)
{
	p->icmp = request ? MSEG_ICMPK_ECHO_REQ : MSEG_ICMPK_ECHO_REP;
	p->t.sport = request ? id : 0;
	p->t.dport = request ? 0 : id;
}

static __always_inline void mseg_icmp4_kind(struct mseg_pkt *p, __u8 type,
					    __u16 id)
{
	switch (type) {
	case MSEG_ICMP_ECHO:
	case MSEG_ICMP_ECHOREPLY:
		mseg_echo(p, type == MSEG_ICMP_ECHO, id);
		return;
	/* the errors nf_conntrack relates to a connection */
	case MSEG_ICMP_UNREACH:
	case MSEG_ICMP_SOURCE_QUENCH:
	case MSEG_ICMP_REDIRECT:
	case MSEG_ICMP_TIME_EXCEEDED:
	case MSEG_ICMP_PARAMETERPROB:
		p->icmp = MSEG_ICMPK_ERROR;
		return;
	}
	p->icmp = MSEG_ICMPK_OTHER;
}

static __always_inline void mseg_icmp6_kind(struct mseg_pkt *p, __u8 type,
					    __u16 id)
{
	if (type == ICMPV6_ECHO_REQUEST || type == ICMPV6_ECHO_REPLY) {
		mseg_echo(p, type == ICMPV6_ECHO_REQUEST, id);
		return;
	}
	/* RFC 4443: every type below 128 is an error */
	p->icmp = type < 128 ? MSEG_ICMPK_ERROR : MSEG_ICMPK_OTHER;
	p->exempt = mseg_nd_mld(p, type);
}

static __always_inline int mseg_parse_l4(struct __sk_buff *skb, __u32 off,
					 __u32 l4_len, struct mseg_pkt *p,
					 void *buf)
{
	p->l4_off = off;
	p->l4_len = l4_len;
	switch (p->t.proto) {
	case IPPROTO_TCP: {
		struct tcphdr *th;
		__u32 doff;

		if (l4_len < sizeof(*th))
			return mseg_l4_short(p);
		th = mseg_hdr(skb, off, sizeof(*th), buf);
		if (!th)
			return MSEG_PARSE_MALFORMED;
		doff = th->doff * 4;
		if (doff < sizeof(*th))
			return MSEG_PARSE_MALFORMED;
		if (doff > l4_len)
			return mseg_l4_short(p);
		p->t.sport = bpf_ntohs(th->source);
		p->t.dport = bpf_ntohs(th->dest);
		p->seq = bpf_ntohl(th->seq);
		p->ack = bpf_ntohl(th->ack_seq);
		p->win = bpf_ntohs(th->window);
		p->tcp_flags = ((__u8 *)th)[13] & 0x1f;
		p->payload_len = l4_len - doff;
		if (p->tcp_flags & MSEG_TCP_SYN)
			p->wscale = mseg_tcp_wscale(skb, off + sizeof(*th),
						    doff - sizeof(*th));
		return MSEG_PARSE_OK;
	}
	case IPPROTO_UDP: {
		struct udphdr *uh;

		if (l4_len < sizeof(*uh))
			return mseg_l4_short(p);
		uh = mseg_hdr(skb, off, sizeof(*uh), buf);
		if (!uh)
			return MSEG_PARSE_MALFORMED;
		p->t.sport = bpf_ntohs(uh->source);
		p->t.dport = bpf_ntohs(uh->dest);
		return MSEG_PARSE_OK;
	}
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6: {
		/* ICMPv6's header has the same shape */
		struct mseg_icmp_echo *ih;

		if (l4_len < sizeof(*ih))
			return mseg_l4_short(p);
		ih = mseg_hdr(skb, off, sizeof(*ih), buf);
		if (!ih)
			return MSEG_PARSE_MALFORMED;
		if (p->t.family == 4 && p->t.proto == IPPROTO_ICMP)
			mseg_icmp4_kind(p, ih->type, bpf_ntohs(ih->id));
		else if (p->t.family == 6 && p->t.proto == IPPROTO_ICMPV6)
			mseg_icmp6_kind(p, ih->type, bpf_ntohs(ih->id));
		return MSEG_PARSE_OK;
	}
	}
	return MSEG_PARSE_OK;
}

static __always_inline int mseg_parse_ipv4(struct __sk_buff *skb, __u32 off,
					   struct mseg_pkt *p, void *buf)
{
	struct iphdr *iph = mseg_hdr(skb, off, sizeof(*iph), buf);
	__u32 hlen, tot_len;
	__u16 frag_off;

	if (!iph)
		return MSEG_PARSE_UNREAD;
	mseg_tuple_v4(&p->t, iph->saddr, iph->daddr);
	p->t.proto = iph->protocol;
	p->hop_limit = iph->ttl;
	p->frag_id = bpf_ntohs(iph->id);
	frag_off = bpf_ntohs(iph->frag_off);
	hlen = iph->ihl * 4;
	tot_len = bpf_ntohs(iph->tot_len);
	if (iph->version != 4 || hlen < sizeof(*iph) || tot_len < hlen ||
	    off + tot_len > skb->len)
		return MSEG_PARSE_MALFORMED;

	if (frag_off & 0x1fff)
		return mseg_later_fragment(p, (frag_off & 0x1fff) * 8);
	if (frag_off & 0x2000)
		p->frag = MSEG_FRAG_FIRST;
	return mseg_parse_l4(skb, off + hlen, tot_len - hlen, p, buf);
}

static __always_inline int mseg_parse_ipv6(struct __sk_buff *skb, __u32 off,
					   struct mseg_pkt *p, void *buf)
{
	struct ipv6hdr *ip6 = mseg_hdr(skb, off, sizeof(*ip6), buf);
	__u32 end;
	__u8 nexthdr;

	if (!ip6)
		return MSEG_PARSE_UNREAD;
	mseg_tuple_v6(&p->t, ip6);
	p->hop_limit = ip6->hop_limit;
	nexthdr = ip6->nexthdr;
	end = off + sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
	if (ip6->version != 6)
		return MSEG_PARSE_MALFORMED;
	if (mseg_v4_mapped(p->t.saddr) || mseg_v4_mapped(p->t.daddr)) {
		p->drop = MSEG_DROP_V4_MAPPED;
		return MSEG_PARSE_DROP;
	}
	if (end > skb->len)
		return MSEG_PARSE_MALFORMED;
	off += sizeof(*ip6);

	if (mseg_ipv6_exthdr(nexthdr)) {
		struct mseg_ext_walk w = {
			.off = off,
			.end = end,
			.nexthdr = nexthdr,
		};
		int r = mseg_ipv6_walk(skb, &w);

		p->frag = w.frag;
		p->frag_id = w.frag_id;
		if (r == MSEG_PARSE_DROP) {
			p->drop = MSEG_DROP_EXTHDR_LIMIT;
			return r;
		}
		if (r != MSEG_PARSE_OK)
			return mseg_l4_short(p);
		off = w.off;
		nexthdr = w.nexthdr;
		if (w.frag == MSEG_FRAG_LATER) {
			p->t.proto = nexthdr;
			return mseg_later_fragment(p, w.frag_off);
		}
		if (off > end)
			return mseg_l4_short(p);
	}
	p->t.proto = nexthdr;
	return mseg_parse_l4(skb, off, end - off, p, buf);
}

/*
 * Every frame's parse, header by header through mseg_hdr(); p was zeroed by
 * mseg_parse(). Only tagged frames read the metadata tag.
 */
static __always_inline int mseg_parse_walk(struct __sk_buff *skb,
					   struct mseg_pkt *p,
					   union mseg_hdr_buf *buf)
{
	struct ethhdr *eth;
	__u32 off = sizeof(*eth);
	__be16 proto;

	eth = mseg_hdr(skb, 0, sizeof(*eth), buf);
	if (!eth)
		return MSEG_PARSE_UNREAD;
	proto = eth->h_proto;

	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		__u32 tags = skb->vlan_present ? 1 : 0;
		int i;

#pragma unroll
		for (i = 0; i < MSEG_MAX_VLANS; i++) {
			struct mseg_vlan_hdr *vh;

			if ((proto != bpf_htons(ETH_P_8021Q) &&
			     proto != bpf_htons(ETH_P_8021AD)) ||
			    tags >= MSEG_MAX_VLANS)
				break;
			vh = mseg_hdr(skb, off, sizeof(*vh), buf);
			if (!vh)
				return MSEG_PARSE_UNREAD;
			proto = vh->encap_proto;
			off += sizeof(*vh);
			tags++;
		}
		if (proto == bpf_htons(ETH_P_8021Q) ||
		    proto == bpf_htons(ETH_P_8021AD)) {
			p->drop = MSEG_DROP_VLAN_LIMIT;
			return MSEG_PARSE_DROP;
		}
	}

	if (proto == bpf_htons(ETH_P_IP))
		return mseg_parse_ipv4(skb, off, p, buf);
	if (proto == bpf_htons(ETH_P_IPV6))
		return mseg_parse_ipv6(skb, off, p, buf);
	return MSEG_PARSE_NON_IP;
}

/*
 * The shape of nearly every packet of an established flow: Ethernet with no
 * tag in the frame, IPv4 without options and not a fragment or IPv6 without
 * extension headers or a v4-mapped address, then UDP or a TCP segment
 * without SYN, all in the linear part. Read in one pass at constant offsets
 * with direct packet access, where mseg_parse_walk() goes header by header
 * through mseg_hdr() (~18 ns of an established packet here). True when the
 * frame has that shape and p then holds exactly what mseg_parse_walk()
 * writes for it (tests/bats/parse_common.bats checks both on fuzzed
 * frames); false, with p untouched, for every other frame.
 */
static __always_inline bool mseg_parse_common(struct __sk_buff *skb,
					      struct mseg_pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = NULL;
	struct iphdr *iph = NULL;
	struct tcphdr *th = NULL;
	struct udphdr *uh;
	__u32 l4_len, doff = 0;
	void *l4;
	__u8 proto;

	if ((void *)(eth + 1) > end)
		return false;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		iph = (void *)(eth + 1);
		if ((void *)(iph + 1) > end || *(__u8 *)iph != 0x45 ||
		    (iph->frag_off & bpf_htons(0x3fff)))
			return false;
		l4_len = bpf_ntohs(iph->tot_len);
		if (l4_len < sizeof(*iph) || sizeof(*eth) + l4_len > skb->len)
			return false;
		l4_len -= sizeof(*iph);
		proto = iph->protocol;
		l4 = iph + 1;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end || ip6->version != 6 ||
		    mseg_v4_mapped(ip6->saddr.in6_u.u6_addr32) ||
		    mseg_v4_mapped(ip6->daddr.in6_u.u6_addr32))
			return false;
		l4_len = bpf_ntohs(ip6->payload_len);
		if (sizeof(*eth) + sizeof(*ip6) + l4_len > skb->len)
			return false;
		proto = ip6->nexthdr;
		l4 = ip6 + 1;
	} else {
		return false;
	}
	if (proto == IPPROTO_TCP) {
		th = l4;
		if (l4_len < sizeof(*th) || (void *)(th + 1) > end)
			return false;
		doff = th->doff * 4;
		if (doff < sizeof(*th) || doff > l4_len ||
		    (((__u8 *)th)[13] & MSEG_TCP_SYN))
			return false;
	} else if (proto == IPPROTO_UDP) {
		uh = l4;
		if (l4_len < sizeof(*uh) || (void *)(uh + 1) > end)
			return false;
	} else {
		return false;
	}

	if (iph) {
		mseg_tuple_v4(&p->t, iph->saddr, iph->daddr);
		p->hop_limit = iph->ttl;
		p->frag_id = bpf_ntohs(iph->id);
	} else if (ip6) {
		mseg_tuple_v6(&p->t, ip6);
		p->hop_limit = ip6->hop_limit;
	}
	p->t.proto = proto;
	p->l4_off = l4 - data;
	p->l4_len = l4_len;
	/* TCP and UDP carry their ports in the same first four bytes */
	p->t.sport = bpf_ntohs(((__be16 *)l4)[0]);
	p->t.dport = bpf_ntohs(((__be16 *)l4)[1]);
	if (th) {
		p->seq = bpf_ntohl(th->seq);
		p->ack = bpf_ntohl(th->ack_seq);
		p->win = bpf_ntohs(th->window);
		p->tcp_flags = ((__u8 *)th)[13] & 0x1f;
		p->payload_len = l4_len - doff;
	}
	return true;
}

/*
 * Parse the frame at skb->data into p, with buf for headers outside the
 * linear part. Both live in the per-CPU scratch map (mseg_maps.h), not on
 * the stack: the verifier does not track values in map memory, so the many
 * shapes of frame read here do not multiply the classifier's paths, and the
 * classifier's frame stays small enough for the global functions it calls.
 */
static __always_inline int mseg_parse(struct __sk_buff *skb, struct mseg_pkt *p,
				      union mseg_hdr_buf *buf)
{
	__builtin_memset(p, 0, sizeof(*p));
	p->wscale = 0xff;
	if (mseg_parse_common(skb, p))
		return MSEG_PARSE_OK;
	return mseg_parse_walk(skb, p, buf);
}

#endif /* MSEG_PARSE_H */
