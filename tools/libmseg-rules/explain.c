// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Judging a flow in user space: mr_lookup() runs the data path's lookups
 * (bpf/mseg_policy.h) over the compiled entries, mr_matching() lists every
 * rule that matches by docs/policy.md's definition, best first.
 */
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "rules.h"

bool mr_flow_parse(int argc, char **argv, struct mr_flow *f)
{
	const char *src = NULL, *dst = NULL, *proto = "tcp", *sport = "0", *dport = "0";
	unsigned long long n;
	int fs, fd;

	memset(f, 0, sizeof(*f));
	for (int i = 0; i < argc; i++) {
		const char **v = !strcmp(argv[i], "--src")   ? &src :
				 !strcmp(argv[i], "--dst")   ? &dst :
				 !strcmp(argv[i], "--proto") ? &proto :
				 !strcmp(argv[i], "--sport") ? &sport :
				 !strcmp(argv[i], "--dport") ? &dport :
							       NULL;

		if (!v)
			return mr_err("explain: unknown argument: %s", argv[i]), false;
		if (i + 1 >= argc)
			return mr_err("%s needs a value", argv[i]), false;
		*v = argv[++i];
	}
	if (!src || !dst)
		return mr_err("explain: give --src ADDRESS and --dst ADDRESS"), false;
	if (!mr_addr_parse(src, f->src, &fs))
		return mr_err("invalid address for --src: '%s'", src), false;
	if (!mr_addr_parse(dst, f->dst, &fd))
		return mr_err("invalid address for --dst: '%s'", dst), false;
	if (fs != fd || (strchr(src, ':') != NULL) != (strchr(dst, ':') != NULL))
		return mr_err("--src and --dst must be the same address family"), false;
	/* the packet's family: an IPv4-mapped IPv6 address travels in IPv6 */
	f->family = strchr(src, ':') ? 6 : 4;
	f->proto = mr_proto_parse(proto);
	if (f->proto == MR_PROTO_ICMP)
		f->proto = f->family == 4 ? 1 : 58;
	if (f->proto < 0)
		return mr_err("unknown --proto: '%s' (expected tcp, udp, icmp, icmpv6 or a number 1..255)",
			      proto),
		       false;
	if (!mr_uint(sport, 65535, &n))
		return mr_err("invalid --sport: '%s' (expected an integer 0..65535)", sport), false;
	f->sport = (__u16)n;
	if (!mr_uint(dport, 65535, &n))
		return mr_err("invalid --dport: '%s' (expected an integer 0..65535)", dport), false;
	f->dport = (__u16)n;
	return true;
}

/* Indexes over one compiled set, built on first use. */
static const struct mr_compiled *indexed;
static struct mr_hash hid, hre;

static void index_compiled(const struct mr_compiled *c)
{
	if (indexed == c)
		return;
	mr_hash_free(&hid);
	mr_hash_free(&hre);
	mr_hash_init(&hid, c->nid, c->id, sizeof(*c->id), sizeof(struct mseg_ident_key));
	for (size_t i = 0; i < c->nid; i++)
		mr_hash_put(&hid, (long)i);
	mr_hash_init(&hre, c->nre, c->re, sizeof(*c->re), sizeof(struct mseg_rule_key));
	for (size_t i = 0; i < c->nre; i++)
		mr_hash_put(&hre, (long)i);
	indexed = c;
}

/* Longest-prefix match as the kernel's LPM trie does it. */
static const struct mseg_ident_val *ident_lpm(const struct mr_compiled *c, int family,
					      const __u8 a[16])
{
	__u8 set = c->nid ? c->id[0].k.set : 0;
	int base = family == 4 ? MSEG_IDENT_V4_BASE_BITS : MSEG_IDENT_HDR_BITS;

	for (int l = MSEG_IDENT_FULL_BITS - base; l >= 0; l--) {
		struct mseg_ident_key k = { .prefixlen = (__u32)(base + l), .set = set,
					    .family = (__u8)family };
		long i;

		memcpy(k.addr, a, 16);
		mr_mask(k.addr, family == 4 ? 96 + l : l);
		i = mr_hash_get(&hid, &k);
		if (i >= 0)
			return &c->id[i].v;
	}
	return NULL;
}

static void rules_try(const struct mr_compiled *c, __u8 set, __u32 s, __u32 d,
		      const struct mr_flow *f, struct mr_decision *v)
{
	const struct mseg_rule_val *r = NULL;

	for (int l = MSEG_RULE_FULL_BITS; l >= MSEG_RULE_IDS_BITS && !r; l--) {
		struct mseg_rule_key k = { .prefixlen = (__u32)l, .set = set,
					   .src_id = s, .dst_id = d };
		long i;

		if (l < MSEG_RULE_PROTO_BITS && l > MSEG_RULE_IDS_BITS)
			continue;
		if (l >= MSEG_RULE_PROTO_BITS) {
			__u16 port = f->dport;
			int pl = l - MSEG_RULE_PROTO_BITS;

			k.proto = (__u8)f->proto;
			port = pl ? (__u16)(port & (0xffffu << (16 - pl))) : 0;
			k.dport[0] = port >> 8;
			k.dport[1] = port & 0xff;
		}
		i = mr_hash_get(&hre, &k);
		if (i >= 0)
			r = &c->re[i].v;
	}
	if (!r)
		return;
	for (int i = 0; i < MSEG_RULE_CANDS; i++) {
		const struct mseg_rule_cand *x = &r->c[i];

		if (!x->rule_id)
			return;
		if (x->sport && x->sport != f->sport)
			continue;
		if (x->rank < v->rank || (x->rank == v->rank && x->rule_id < v->rule_id)) {
			v->rank = x->rank;
			v->rule_id = x->rule_id;
			v->action = x->action;
		}
		return;
	}
}

/* bpf/mseg_policy.h's mseg_policy_decide(), over the compiled entries. */
void mr_lookup(const struct mr_compiled *c, const struct mr_flow *f, int def,
	       struct mr_decision *v)
{
	const struct mseg_ident_val *si, *di;
	__u32 s = 0, d = 0, sf = 0, df = 0;
	__u8 set = c->nid ? c->id[0].k.set : c->nre ? c->re[0].k.set : 0;

	index_compiled(c);
	v->rank = ~0ULL;
	v->rule_id = 0;
	si = ident_lpm(c, f->family, f->src);
	di = ident_lpm(c, f->family, f->dst);
	if (si) {
		s = si->id;
		sf = si->flags;
	}
	if (di) {
		d = di->id;
		df = di->flags;
	}
	if ((sf & MSEG_IDF_SRC_PAIR) && (df & MSEG_IDF_DST_PAIR))
		rules_try(c, set, s, d, f, v);
	if (sf & MSEG_IDF_SRC_ANY)
		rules_try(c, set, s, 0, f, v);
	if (df & MSEG_IDF_DST_ANY)
		rules_try(c, set, 0, d, f, v);
	if (!((sf | df) & MSEG_IDF_NO_ANY_ANY))
		rules_try(c, set, 0, 0, f, v);
	if (!v->rule_id)
		v->action = (__u8)def;
}

/* docs/policy.md: the segment of an address is that of its longest segment prefix. */
static const struct mr_segment *segment_of(const struct mr_policy *p, const __u8 a[16],
					   int family, int *score)
{
	const struct mr_segment *best = NULL;
	int len = -1;

	for (size_t i = 0; i < p->ns; i++)
		for (size_t k = 0; k < p->s[i].n; k++)
			if (p->s[i].p[k].len > len && mr_pfx_has_addr(&p->s[i].p[k], a, family)) {
				best = &p->s[i];
				len = p->s[i].p[k].len;
				*score = mr_pfx_score(&p->s[i].p[k]);
			}
	return best;
}

/* Does a side match an address? Its specificity in *score. */
static bool side_match(const struct mr_policy *p, const struct mr_sel *s, const __u8 a[16],
		       int family, int *score)
{
	if (s->kind == MR_SEL_ANY) {
		*score = 0;
		return true;
	}
	if (s->kind == MR_SEL_PFX) {
		*score = mr_pfx_score(&s->p);
		return mr_pfx_has_addr(&s->p, a, family);
	}
	{
		const struct mr_segment *g = segment_of(p, a, family, score);

		return g && !strcmp(g->name, s->name);
	}
}

static int cmp_dec(const void *a, const void *b)
{
	const struct mr_decision *x = a, *y = b;

	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	return (x->rule_id > y->rule_id) - (x->rule_id < y->rule_id);
}

size_t mr_matching(const struct mr_policy *p, const struct mr_flow *f,
		   struct mr_decision **out)
{
	struct mr_decision *d = NULL;
	size_t n = 0, cap = 0;

	const struct mr_rule *fs;
	int nfs = mr_failsafe_rules(p, &fs);

	for (size_t i = 0; i < p->nr + (size_t)nfs; i++) {
		const struct mr_rule *r = i < p->nr ? &p->r[i] : &fs[i - p->nr];
		struct mr_sel any = { .kind = MR_SEL_ANY };
		const struct mr_sel *arms[2][2] = { { &r->src, &r->dst }, { &any, &r->dst } };
		bool have = false;
		__u64 best = 0;
		int proto = r->proto;

		if (r->kind == MR_CIDR) {
			arms[0][1] = &any; /* src prefix, dst any; then dst prefix */
			arms[1][0] = &any;
		}
		if (proto == MR_PROTO_ICMP)
			proto = f->family == 4 ? 1 : 58;
		if (proto != MR_PROTO_ANY && proto != f->proto)
			continue;
		if (r->sport && r->sport != f->sport)
			continue;
		if (r->nports) {
			bool in = false;

			for (int q = 0; q < r->nports; q++)
				in |= r->ports[q].lo <= f->dport && f->dport <= r->ports[q].hi;
			if (!in)
				continue;
		}
		for (int a = 0; a < (r->kind == MR_CIDR ? 2 : 1); a++) {
			int ss, ds;
			__u64 rank;

			if (!side_match(p, arms[a][0], f->src, f->family, &ss) ||
			    !side_match(p, arms[a][1], f->dst, f->family, &ds))
				continue;
			rank = mr_rank(r, ds, ss);
			if (!have || rank < best)
				best = rank;
			have = true;
		}
		if (!have)
			continue;
		d = mr_grow(d, &cap, n, sizeof(*d));
		d[n++] = (struct mr_decision){ r->id, mr_rule_action(r), best };
	}
	qsort(d, n, sizeof(*d), cmp_dec);
	*out = d;
	return n;
}
