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

/*
 * The key's last 8 bytes (ports, protocol, family, zero pad) as one value,
 * stored at once: the map's hash reads the key in 32-bit words, and a word
 * spanning two narrower stores still in flight is a failed store forward
 * (mseg_parse.h, mseg_tuple_v4()).
 */
static __always_inline __u64 mseg_key_tail(__u16 port_lo, __u16 port_hi,
					   __u8 proto, __u8 family)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return port_lo | (__u64)port_hi << 16 | (__u64)proto << 32 |
	       (__u64)family << 40;
#else
	return (__u64)port_lo << 48 | (__u64)port_hi << 32 |
	       (__u64)proto << 24 | (__u64)family << 16;
#endif
}

_Static_assert(__builtin_offsetof(struct mseg_session_key, port_lo) == 32 &&
		       __builtin_offsetof(struct mseg_session_key, port_hi) == 34 &&
		       __builtin_offsetof(struct mseg_session_key, proto) == 36 &&
		       __builtin_offsetof(struct mseg_session_key, family) == 37,
	       "mseg_key_tail() layout");

/* Build the key; returns true when the packet's sender is the "hi" end. */
static __always_inline bool mseg_session_key(const struct mseg_tuple *t,
					     struct mseg_session_key *k)
{
	bool sender_hi = !mseg_endpoint_less((const __u64 *)t->saddr, t->sport,
					     (const __u64 *)t->daddr, t->dport);
	__u64 *tail = (__u64 *)&k->port_lo;

	if (sender_hi) {
		__builtin_memcpy(k->addr_lo, t->daddr, 16);
		__builtin_memcpy(k->addr_hi, t->saddr, 16);
		*tail = mseg_key_tail(t->dport, t->sport, t->proto, t->family);
	} else {
		__builtin_memcpy(k->addr_lo, t->saddr, 16);
		__builtin_memcpy(k->addr_hi, t->daddr, 16);
		*tail = mseg_key_tail(t->sport, t->dport, t->proto, t->family);
	}
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
