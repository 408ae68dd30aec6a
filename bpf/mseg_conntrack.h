/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Sessions: the direction-normalised key and the originator's tuple. An
 * expired entry (mseg_timeout.h) is treated as absent at once; the garbage
 * collector reclaims it later.
 */
#ifndef MSEG_CONNTRACK_H
#define MSEG_CONNTRACK_H

#include "mseg_abi.h"
#include "mseg_parse.h"
#include "mseg_timeout.h"

/*
 * Order two endpoints: address as a big-endian 128-bit number, then port.
 * In two 64-bit halves: the tuple is 8-byte aligned (mseg_parse.h), and an
 * IPv4 address's first half (0, ::ffff) is the same on both sides.
 */
static __always_inline bool mseg_endpoint_less(const __u64 *a, __u16 ap,
					       const __u64 *b, __u16 bp)
{
	__u64 x = __builtin_bswap64(a[0]), y = __builtin_bswap64(b[0]);

	if (x != y)
		return x < y;
	x = __builtin_bswap64(a[1]);
	y = __builtin_bswap64(b[1]);
	if (x != y)
		return x < y;
	return ap < bp;
}

/* Build the key; returns true when the packet's sender is the "hi" end. */
static __always_inline bool mseg_session_key(const struct mseg_tuple *t,
					     struct mseg_session_key *k)
{
	bool sender_hi = !mseg_endpoint_less((const __u64 *)t->saddr, t->sport,
					     (const __u64 *)t->daddr, t->dport);

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
	k->family = t->family;
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

#endif /* MSEG_CONNTRACK_H */
