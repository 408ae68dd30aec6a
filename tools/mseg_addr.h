/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Addresses as the maps hold them (16 bytes, IPv4 as ::ffff:a.b.c.d) to and
 * from text, for the C tools that print sessions and events: IPv4-mapped
 * addresses print as dotted quads, the rest as RFC 5952 IPv6 (inet_ntop).
 * The dotted quad is written by hand: `mseg sessions` prints two addresses
 * for each of a million sessions.
 */
#ifndef MSEG_ADDR_H
#define MSEG_ADDR_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/types.h>

#define MSEG_ADDR_STRLEN INET6_ADDRSTRLEN

static const __u8 mseg_v4mapped_prefix[12] = { 0, 0, 0, 0, 0, 0,
					       0, 0, 0, 0, 0xff, 0xff };

static inline bool mseg_addr_is_v4(const __u8 a[16])
{
	return !memcmp(a, mseg_v4mapped_prefix, sizeof(mseg_v4mapped_prefix));
}

/* Writes the text of `a` into buf (MSEG_ADDR_STRLEN bytes), returns its length. */
static inline size_t mseg_addr_format(const __u8 a[16], char *buf)
{
	char *p = buf;
	int i;

	if (!mseg_addr_is_v4(a)) {
		inet_ntop(AF_INET6, a, buf, MSEG_ADDR_STRLEN);
		return strlen(buf);
	}
	for (i = 12; i < 16; i++) {
		unsigned v = a[i];

		if (v >= 100)
			*p++ = (char)('0' + v / 100);
		if (v >= 10)
			*p++ = (char)('0' + v / 10 % 10);
		*p++ = (char)('0' + v % 10);
		if (i < 15)
			*p++ = '.';
	}
	*p = '\0';
	return (size_t)(p - buf);
}

/* An address with a prefix length over the 16-byte form (IPv4 /n is 96 + n). */
struct mseg_prefix {
	__u8 addr[16];
	unsigned bits; /* 0..128 */
	bool v4;       /* matches IPv4 only; else IPv6 only, as mseg_cidr does */
};

/*
 * Parse ADDR or ADDR/LEN (IPv4 or IPv6). Host bits past LEN are refused, as
 * `mseg cidr` refuses them. Returns 0, or -1 with a reason in err.
 */
static inline int mseg_prefix_parse(const char *text, struct mseg_prefix *p,
				    char *err, size_t errlen)
{
	char host[MSEG_ADDR_STRLEN + 8];
	const char *slash = strchr(text, '/');
	size_t hl = slash ? (size_t)(slash - text) : strlen(text);
	unsigned max, len, i;
	bool v4;

	memset(p, 0, sizeof(*p));
	if (hl == 0 || hl >= sizeof(host)) {
		snprintf(err, errlen, "not an address: '%s'", text);
		return -1;
	}
	memcpy(host, text, hl);
	host[hl] = '\0';
	if (inet_pton(AF_INET, host, p->addr + 12) == 1) {
		memcpy(p->addr, mseg_v4mapped_prefix, sizeof(mseg_v4mapped_prefix));
		v4 = true;
	} else if (inet_pton(AF_INET6, host, p->addr) == 1) {
		v4 = false;
	} else {
		snprintf(err, errlen, "not an address: '%s'", text);
		return -1;
	}
	max = v4 ? 32 : 128;
	len = max;
	if (slash) {
		char *end;
		unsigned long l;

		if (slash[1] < '0' || slash[1] > '9' ||
		    (slash[1] == '0' && slash[2] != '\0')) {
			snprintf(err, errlen, "bad prefix length in '%s'", text);
			return -1;
		}
		l = strtoul(slash + 1, &end, 10);
		if (*end || l > max) {
			snprintf(err, errlen,
				 "bad prefix length in '%s' (0..%u)", text, max);
			return -1;
		}
		len = (unsigned)l;
	}
	p->bits = (v4 ? 96 : 0) + len;
	/* ::ffff:a.b.c.d/96 and longer name IPv4 addresses */
	p->v4 = v4 || (p->bits >= 96 && mseg_addr_is_v4(p->addr));
	for (i = p->bits; i < 128; i++) {
		if (p->addr[i / 8] & (0x80 >> (i % 8))) {
			snprintf(err, errlen,
				 "'%s' has host bits set past /%u", text, len);
			return -1;
		}
	}
	return 0;
}

static inline bool mseg_prefix_match(const struct mseg_prefix *p,
				     const __u8 a[16])
{
	unsigned whole = p->bits / 8, rest = p->bits % 8;

	if (mseg_addr_is_v4(a) != p->v4)
		return false;
	if (memcmp(p->addr, a, whole))
		return false;
	return !rest || !((p->addr[whole] ^ a[whole]) & (0xff00 >> rest));
}

#endif /* MSEG_ADDR_H */
