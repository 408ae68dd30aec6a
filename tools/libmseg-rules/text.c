// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Addresses, prefixes, protocols and ports as the operator writes them. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"

/* MSEG_ACT_AUDIT is no --action: a deny rule's --audit, or audit mode */
const char *const mr_action_names[MSEG_ACT_MAX] = { "allow", "deny", "log", "would-deny" };

static char errbuf[512];
static bool failed;

void mr_err(const char *fmt, ...)
{
	va_list ap;

	if (failed)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
	va_end(ap);
	failed = true;
}

bool mr_failed(void)
{
	return failed;
}

const char *mr_error(void)
{
	return errbuf;
}

void mr_err_reset(void)
{
	failed = false;
	errbuf[0] = 0;
}

void *mr_grow(void *p, size_t *cap, size_t n, size_t sz)
{
	if (n < *cap)
		return p;
	*cap = *cap ? *cap * 2 : 64;
	p = realloc(p, *cap * sz);
	if (!p) {
		fprintf(stderr, "mseg: out of memory\n");
		exit(1);
	}
	return p;
}

/* Decimal 0..max, no sign, no leading zeros. */
bool mr_uint(const char *s, unsigned long long max, unsigned long long *out)
{
	unsigned long long v = 0;
	const char *p;

	if (!*s || (s[0] == '0' && s[1]))
		return false;
	for (p = s; *p; p++) {
		if (!isdigit((unsigned char)*p) || p - s >= 20)
			return false;
		v = v * 10 + (unsigned)(*p - '0');
		if (v > max)
			return false;
	}
	*out = v;
	return true;
}

int mr_action_num(const char *s)
{
	for (int i = 0; i <= MSEG_ACT_LOG; i++)
		if (!strcmp(s, mr_action_names[i]))
			return i;
	return -1;
}

/* 16 bytes, family 4 for IPv4 and IPv4-mapped IPv6 (the data path cannot tell them apart). */
bool mr_addr_parse(const char *s, __u8 out[16], int *family)
{
	static const __u8 mapped[12] = { [10] = 0xff, [11] = 0xff };

	memset(out, 0, 16);
	if (!strchr(s, ':')) {
		if (inet_pton(AF_INET, s, out + 12) != 1)
			return false;
		out[10] = out[11] = 0xff;
		*family = 4;
		return true;
	}
	if (inet_pton(AF_INET6, s, out) != 1)
		return false;
	*family = memcmp(out, mapped, 12) ? 6 : 4;
	return true;
}

const char *mr_addr_text(const __u8 a[16], int family, char *buf)
{
	inet_ntop(family == 4 ? AF_INET : AF_INET6, family == 4 ? a + 12 : a,
		  buf, INET6_ADDRSTRLEN);
	return buf;
}

const char *mr_pfx_text(const struct mr_pfx *p, char *buf)
{
	char a[INET6_ADDRSTRLEN];

	snprintf(buf, INET6_ADDRSTRLEN + 4, "%s/%u",
		 mr_addr_text(p->addr, p->family, a), p->len);
	return buf;
}

void mr_mask(__u8 a[16], int bits)
{
	for (int i = 0; i < 16; i++) {
		int keep = bits - 8 * i;

		if (keep <= 0)
			a[i] = 0;
		else if (keep < 8)
			a[i] &= (__u8)(0xff << (8 - keep));
	}
}

static int stored_bits(const struct mr_pfx *p)
{
	return p->family == 4 ? 96 + p->len : p->len;
}

bool mr_pfx_has_addr(const struct mr_pfx *p, const __u8 a[16], int family)
{
	__u8 m[16];

	if (family != p->family)
		return false;
	memcpy(m, a, 16);
	mr_mask(m, stored_bits(p));
	return !memcmp(m, p->addr, 16);
}

bool mr_pfx_contains(const struct mr_pfx *outer, const struct mr_pfx *inner)
{
	return inner->len >= outer->len &&
	       mr_pfx_has_addr(outer, inner->addr, inner->family);
}

/*
 * Specificity of a side (docs/policy.md, precedence): any 0, an IPv4 /L
 * 97 + L, an IPv6 /L 1 + L; a host of either family scores 129.
 */
int mr_pfx_score(const struct mr_pfx *p)
{
	return p->family == 4 ? 97 + p->len : 1 + p->len;
}

/*
 * ADDRESS/LENGTH with no host bits; a bare address is a host prefix.
 * The family follows the text: a dotted quad is IPv4, anything with a
 * colon IPv6 (an IPv4-mapped IPv6 prefix is refused: it reads like IPv4
 * but would only match IPv6 packets).
 */
bool mr_pfx_parse(const char *text, struct mr_pfx *p)
{
	char addr[256], buf[INET6_ADDRSTRLEN];
	const char *slash = strchr(text, '/'), *len;
	__u8 a[16], m[16];
	int fam, max;
	unsigned long long n;

	if (!*text) {
		mr_err("invalid CIDR: empty (expected ADDRESS/LENGTH, e.g. 10.0.0.0/8)");
		return false;
	}
	if (!slash) {
		mr_err("invalid CIDR '%s': missing /LENGTH (e.g. 10.0.0.0/8 or 2001:db8::/32)",
		       text);
		return false;
	}
	snprintf(addr, sizeof(addr), "%.*s", (int)(slash - text), text);
	len = slash + 1;
	if (!mr_addr_parse(addr, a, &fam)) {
		mr_err("invalid CIDR '%s': '%s' is not an IPv4 or IPv6 address",
		       text, addr);
		return false;
	}
	fam = strchr(addr, ':') ? 6 : 4;
	max = fam == 6 ? 128 : 32;
	{
		const char *q = len + (*len == '+' || *len == '-');
		bool digits = *q;

		for (; *q; q++)
			if (!isdigit((unsigned char)*q))
				digits = false;
		if (!digits) {
			mr_err("invalid CIDR '%s': prefix length '%s' is not a number",
			       text, len);
			return false;
		}
	}
	if (*len == '+' || *len == '-' || (len[0] == '0' && len[1])) {
		mr_err("invalid CIDR '%s': write the prefix length '%s' without sign or leading zeros",
		       text, len);
		return false;
	}
	if (!mr_uint(len, (unsigned)max, &n)) {
		mr_err("invalid CIDR '%s': an IPv%d prefix length is 0..%d", text,
		       fam, max);
		return false;
	}
	memcpy(m, a, 16);
	if (fam == 6 && a[10] == 0xff && a[11] == 0xff &&
	    !memcmp(a, (__u8[10]){ 0 }, 10) && n >= 96) {
		mr_mask(m, (int)n);
		mr_err("%s is an IPv4-mapped prefix, which only IPv6 packets could match: write it as %s/%llu",
		       text, mr_addr_text(m, 4, buf), n - 96);
		return false;
	}
	mr_mask(m, fam == 4 ? 96 + (int)n : (int)n);
	if (memcmp(m, a, 16)) {
		mr_err("%s has host bits set: did you mean %s/%llu?", text,
		       mr_addr_text(m, fam, buf), n);
		return false;
	}
	memcpy(p->addr, m, 16);
	p->len = (__u8)n;
	p->family = (__u8)fam;
	return true;
}

static const struct {
	const char *name;
	int num;
} protos[] = {
	{ "tcp", 6 },   { "udp", 17 }, { "icmp", MR_PROTO_ICMP },
	{ "icmpv6", 58 }, { "gre", 47 }, { "esp", 50 },
	{ "ah", 51 },   { "sctp", 132 }, { "any", MR_PROTO_ANY },
};

int mr_proto_parse(const char *s)
{
	unsigned long long n;

	for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++)
		if (!strcmp(s, protos[i].name))
			return protos[i].num;
	if (mr_uint(s, 255, &n) && n > 0)
		return (int)n;
	return -2;
}

const char *mr_proto_text(int proto, char *buf)
{
	for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++)
		if (protos[i].num == proto)
			return protos[i].name;
	snprintf(buf, 8, "%d", proto);
	return buf;
}

const char *mr_ports_text(const struct mr_rule *r, char *buf, size_t len)
{
	size_t o = 0;

	buf[0] = 0;
	for (int i = 0; i < r->nports && o < len; i++) {
		if (r->ports[i].lo == r->ports[i].hi)
			o += (size_t)snprintf(buf + o, len - o, "%s%u", i ? "," : "",
					      r->ports[i].lo);
		else
			o += (size_t)snprintf(buf + o, len - o, "%s%u-%u",
					      i ? "," : "", r->ports[i].lo,
					      r->ports[i].hi);
	}
	return buf;
}
