/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Sessions: the direction-normalised key, the originator's tuple, per-state
 * timeouts and expiry. An expired entry is treated as absent at once; the
 * garbage collector reclaims it later.
 */
#ifndef MSEG_CONNTRACK_H
#define MSEG_CONNTRACK_H

#include "mseg_abi.h"
#include "mseg_parse.h"

#define MSEG_NSEC_PER_SEC 1000000000ULL

/* Order two endpoints: address as a big-endian 128-bit number, then port. */
static __always_inline bool mseg_endpoint_less(const __u32 *a, __u16 ap,
					       const __u32 *b, __u16 bp)
{
	int i;

#pragma unroll
	for (i = 0; i < 4; i++) {
		__u32 x = bpf_ntohl(a[i]), y = bpf_ntohl(b[i]);

		if (x != y)
			return x < y;
	}
	return ap < bp;
}

/* Build the key; returns true when the packet's sender is the "hi" end. */
static __always_inline bool mseg_session_key(const struct mseg_tuple *t,
					     struct mseg_session_key *k)
{
	bool sender_hi = !mseg_endpoint_less(t->saddr, t->sport, t->daddr,
					     t->dport);

	if (sender_hi) {
		__builtin_memcpy(k->addr_lo, t->daddr, 16);
		__builtin_memcpy(k->addr_hi, t->saddr, 16);
		k->port_lo = t->dport;
		k->port_hi = t->sport;
	} else {
		__builtin_memcpy(k->addr_lo, t->saddr, 16);
		__builtin_memcpy(k->addr_hi, t->daddr, 16);
		k->port_lo = t->sport;
		k->port_hi = t->dport;
	}
	k->proto = t->proto;
	return sender_hi;
}

/* The session's flow as originator -> responder, for policy lookups. */
static __always_inline void mseg_session_orig(const struct mseg_session_key *k,
					      const struct mseg_session *s,
					      __u8 family,
					      struct mseg_tuple *t)
{
	if (s->orig_is_hi) {
		__builtin_memcpy(t->saddr, k->addr_hi, 16);
		__builtin_memcpy(t->daddr, k->addr_lo, 16);
		t->sport = k->port_hi;
		t->dport = k->port_lo;
	} else {
		__builtin_memcpy(t->saddr, k->addr_lo, 16);
		__builtin_memcpy(t->daddr, k->addr_hi, 16);
		t->sport = k->port_lo;
		t->dport = k->port_hi;
	}
	t->proto = k->proto;
	t->family = family;
}

#define MSEG_CFG_OR(cfg, field, def) ((cfg)->field ? (cfg)->field : (def))

static __always_inline __u64 mseg_tcp_timeout(const struct mseg_config *cfg,
					      __u8 state)
{
	switch (state) {
	case MSEG_TCP_SYN_SENT:
		return MSEG_CFG_OR(cfg, to_syn_sent, MSEG_DEF_TO_SYN_SENT);
	case MSEG_TCP_SYN_RECV:
		return MSEG_CFG_OR(cfg, to_syn_recv, MSEG_DEF_TO_SYN_RECV);
	case MSEG_TCP_ESTABLISHED:
		return MSEG_CFG_OR(cfg, to_established,
				   MSEG_DEF_TO_ESTABLISHED);
	case MSEG_TCP_FIN_WAIT1:
	case MSEG_TCP_FIN_WAIT2:
	case MSEG_TCP_CLOSING:
		return MSEG_CFG_OR(cfg, to_fin_wait, MSEG_DEF_TO_FIN_WAIT);
	case MSEG_TCP_CLOSE_WAIT:
		return MSEG_CFG_OR(cfg, to_close_wait, MSEG_DEF_TO_CLOSE_WAIT);
	case MSEG_TCP_LAST_ACK:
		return MSEG_CFG_OR(cfg, to_last_ack, MSEG_DEF_TO_LAST_ACK);
	case MSEG_TCP_TIME_WAIT:
		return MSEG_CFG_OR(cfg, to_time_wait, MSEG_DEF_TO_TIME_WAIT);
	case MSEG_TCP_CLOSE:
		return MSEG_CFG_OR(cfg, to_close, MSEG_DEF_TO_CLOSE);
	}
	return MSEG_CFG_OR(cfg, to_syn_sent, MSEG_DEF_TO_SYN_SENT);
}

static __always_inline __u64 mseg_timeout_ns(const struct mseg_config *cfg,
					      const struct mseg_session_key *k,
					      const struct mseg_session *s)
{
	__u64 sec;

	switch (k->proto) {
	case IPPROTO_TCP:
		sec = mseg_tcp_timeout(cfg, s->state);
		break;
	case IPPROTO_UDP:
		sec = (s->flags & MSEG_SESS_REPLIED) ?
			      MSEG_CFG_OR(cfg, to_udp_replied,
					  MSEG_DEF_TO_UDP_REPLIED) :
			      MSEG_CFG_OR(cfg, to_udp, MSEG_DEF_TO_UDP);
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		sec = MSEG_CFG_OR(cfg, to_icmp, MSEG_DEF_TO_ICMP);
		break;
	default:
		sec = MSEG_CFG_OR(cfg, to_other, MSEG_DEF_TO_OTHER);
	}
	return sec * MSEG_NSEC_PER_SEC;
}

static __always_inline bool mseg_session_expired(const struct mseg_config *cfg,
						 const struct mseg_session_key *k,
						 const struct mseg_session *s,
						 __u64 now)
{
	/* another CPU may have stamped last_seen after we read the clock */
	return now > s->last_seen_ns &&
	       now - s->last_seen_ns > mseg_timeout_ns(cfg, k, s);
}

#endif /* MSEG_CONNTRACK_H */
