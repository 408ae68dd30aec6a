// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The compiler (docs/policy.md, "compilation"): identities from every
 * prefix, rules expanded onto identity pairs, and per pair the protocol
 * and port space split so that one trie lookup returns the winner.
 */
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "rules.h"

#define MR_MAX_EXPANSION 16000000

struct pkey { /* a prefix as a hash key */
	__u8 family, len, addr[16];
};

struct ident {
	struct pkey k;
	__u32 pub;     /* the identity number the maps carry (stable_ids) */
	int seg;       /* owning segment (longest segment prefix), -1 none */
	int seg_score; /* its specificity */
	int own_seg;   /* this prefix is a prefix of segment own_seg, -1 */
	bool rule_pfx; /* a rule names this prefix */
	__u32 *mem;    /* rule_pfx: identities inside it (itself too) */
	size_t nmem, capmem;
	__u32 flags;
};

struct segmem {
	__u32 *m;
	size_t n, cap;
};

struct arm { /* one way a rule matches: a CIDR has two */
	const struct mr_rule *r;
	struct mr_sel src, dst;
};

struct trip {
	__u32 s, d;
	__u32 arm;
	__u64 rank;
};

struct cand {
	__u64 rank;
	const struct mr_rule *r;
};

__u64 mr_rank(const struct mr_rule *r, int dscore, int sscore)
{
	static const int order[MSEG_ACT_MAX] = { [MSEG_ACT_DENY] = 0,
						 [MSEG_ACT_LOG] = 1,
						 [MSEG_ACT_ALLOW] = 2 };

	/* below every rule's rank: (255 - score) << 24 is at least 126 << 24 */
	if (r->kind == MR_FAILSAFE)
		return MR_FAILSAFE_RANK;
	return (__u64)r->priority << 32 | (__u64)(255 - dscore) << 24 |
	       (__u64)(255 - sscore) << 16 | (__u64)(r->proto == MR_PROTO_ANY) << 15 |
	       (__u64)(r->nports == 0) << 14 | (__u64)(r->sport == 0) << 13 |
	       (__u64)order[r->action] << 11;
}

static struct pkey pkey_of(const struct mr_pfx *p)
{
	struct pkey k = { .family = p->family, .len = p->len };

	memcpy(k.addr, p->addr, 16);
	return k;
}

static int cmp_cand(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	return (x->r->id > y->r->id) - (x->r->id < y->r->id);
}

static int cmp_trip(const void *a, const void *b)
{
	const struct trip *x = a, *y = b;

	if (x->s != y->s)
		return x->s < y->s ? -1 : 1;
	if (x->d != y->d)
		return x->d < y->d ? -1 : 1;
	return (x->arm > y->arm) - (x->arm < y->arm);
}

struct ctx {
	const struct mr_policy *p;
	struct mr_compiled *c;
	__u8 set;
	struct ident *id; /* id[0] unused: identity 0 is "no prefix" */
	size_t nid;
	struct mr_hash h;
	struct segmem *seg; /* per segment: the identities it owns */
};

static __u32 ident_find(struct ctx *x, const struct mr_pfx *p)
{
	struct pkey k = pkey_of(p);
	long i = mr_hash_get(&x->h, &k);

	return i < 0 ? 0 : (__u32)i;
}

static __u32 ident_add(struct ctx *x, const struct mr_pfx *p, size_t *cap)
{
	__u32 i = ident_find(x, p);

	if (i)
		return i;
	x->id = mr_grow(x->id, cap, x->nid, sizeof(*x->id));
	memset(&x->id[x->nid], 0, sizeof(x->id[0]));
	x->id[x->nid].k = pkey_of(p);
	x->id[x->nid].seg = -1;
	x->id[x->nid].own_seg = -1;
	return (__u32)x->nid++;
}

static int cmp_pkey(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct pkey));
}

/*
 * The number of an identity is a hash of its prefix (the next free number
 * on a collision, in prefix order), not its position in the policy: an
 * edit that adds or removes a prefix leaves every other identity's number,
 * and so every compiled entry it does not change, as it was. That is what
 * lets an edit write only the entries that differ (docs/policy.md).
 */
static void stable_ids(struct ctx *x)
{
	size_t n = x->nid - 1, cap = 64;
	struct { struct pkey k; __u32 i; } *o = calloc(n + 1, sizeof(*o));
	__u32 *used;

	while (cap < 2 * n + 1)
		cap *= 2;
	used = calloc(cap, sizeof(*used));
	for (size_t i = 0; i < n; i++) {
		o[i].k = x->id[i + 1].k;
		o[i].i = (__u32)(i + 1);
	}
	qsort(o, n, sizeof(*o), cmp_pkey);
	for (size_t i = 0; i < n; i++) {
		__u32 id = (__u32)mr_hash_bytes(&o[i].k, sizeof(o[i].k));

		for (;;) {
			size_t h;

			id += !id; /* 0 is "no prefix" */
			for (h = id & (cap - 1); used[h] && used[h] != id; h = (h + 1) & (cap - 1))
				;
			if (!used[h]) {
				used[h] = id;
				break;
			}
			id++;
		}
		x->id[o[i].i].pub = id;
	}
	free(used);
	free(o);
}

static bool build_idents(struct ctx *x)
{
	const struct mr_policy *p = x->p;
	size_t cap = 0, total = 1;

	for (size_t i = 0; i < p->ns; i++)
		total += p->s[i].n;
	total += 2 * p->nr;
	x->id = mr_grow(NULL, &cap, 0, sizeof(*x->id));
	cap = total; /* never grows past: the hash points into it */
	x->id = realloc(x->id, cap * sizeof(*x->id));
	x->nid = 1;
	mr_hash_init(&x->h, total, x->id, sizeof(*x->id), sizeof(struct pkey));
	/* mr_hash_put after each add: ident_add must find earlier ones */
	for (size_t i = 0; i < p->ns; i++)
		for (size_t k = 0; k < p->s[i].n; k++) {
			size_t before = x->nid;
			__u32 j = ident_add(x, &p->s[i].p[k], &cap);

			if (x->nid > before)
				mr_hash_put(&x->h, j);
			x->id[j].own_seg = (int)i;
		}
	for (size_t i = 0; i < p->nr; i++) {
		const struct mr_sel *side[2] = { &p->r[i].src, &p->r[i].dst };

		for (int k = 0; k < 2; k++) {
			size_t before = x->nid;
			__u32 j;

			if (side[k]->kind != MR_SEL_PFX)
				continue;
			j = ident_add(x, &side[k]->p, &cap);
			if (x->nid > before)
				mr_hash_put(&x->h, j);
			x->id[j].rule_pfx = true;
		}
	}
	if (x->nid - 1 > MSEG_MAX_IDENTS / 2) {
		mr_err("the policy names %zu prefixes; at most %d fit beside the ruleset in force",
		       x->nid - 1, MSEG_MAX_IDENTS / 2);
		return false;
	}
	/* Walk each identity's shorter prefixes: its segment and the rule prefixes holding it. */
	for (size_t i = 1; i < x->nid; i++) {
		struct ident *d = &x->id[i];

		for (int l = d->k.len; l >= 0; l--) {
			struct mr_pfx q = { .len = (__u8)l, .family = d->k.family };
			__u32 j;

			memcpy(q.addr, d->k.addr, 16);
			mr_mask(q.addr, q.family == 4 ? 96 + l : l);
			j = ident_find(x, &q);
			if (!j)
				continue;
			if (d->seg < 0 && x->id[j].own_seg >= 0) {
				d->seg = x->id[j].own_seg;
				d->seg_score = mr_pfx_score(&q);
			}
			if (x->id[j].rule_pfx) {
				struct ident *o = &x->id[j];

				o->mem = mr_grow(o->mem, &o->capmem, o->nmem, sizeof(__u32));
				o->mem[o->nmem++] = (__u32)i;
			}
		}
	}
	stable_ids(x);
	x->seg = calloc(p->ns + 1, sizeof(*x->seg));
	for (size_t i = 1; i < x->nid; i++) {
		struct segmem *m;

		if (x->id[i].seg < 0)
			continue;
		m = &x->seg[x->id[i].seg];
		m->m = mr_grow(m->m, &m->cap, m->n, sizeof(__u32));
		m->m[m->n++] = (__u32)i;
	}
	return true;
}

/* The identities a side matches ({0} for any) and, per identity, its score. */
static const __u32 *side_ids(struct ctx *x, const struct mr_sel *s, size_t *n,
			     __u32 **tmp, size_t *tmpcap)
{
	static const __u32 zero;

	if (s->kind == MR_SEL_ANY) {
		*n = 1;
		return &zero;
	}
	if (s->kind == MR_SEL_PFX) {
		struct ident *d = &x->id[ident_find(x, &s->p)];

		*n = d->nmem;
		return d->mem;
	}
	(void)tmp;
	(void)tmpcap;
	{
		const struct mr_segment *g = mr_segment_find(x->p, s->name);
		struct segmem *m = &x->seg[g - x->p->s];

		*n = m->n;
		return m->m;
	}
}

static int side_score(struct ctx *x, const struct mr_sel *s, __u32 id)
{
	if (s->kind == MR_SEL_ANY)
		return 0;
	if (s->kind == MR_SEL_PFX)
		return mr_pfx_score(&s->p);
	return x->id[id].seg_score;
}

static void emit(struct ctx *x, __u32 s, __u32 d, int proto, int plen,
		 __u16 port, const struct cand *c, int nc)
{
	struct mr_compiled *o = x->c;
	struct mr_rule_ent *e;

	o->re = mr_grow(o->re, &o->capre, o->nre, sizeof(*o->re));
	e = &o->re[o->nre++];
	memset(e, 0, sizeof(*e));
	e->k.set = x->set;
	e->k.src_id = s ? x->id[s].pub : 0;
	e->k.dst_id = d ? x->id[d].pub : 0;
	if (proto < 0) {
		e->k.prefixlen = MSEG_RULE_IDS_BITS;
	} else {
		e->k.proto = (__u8)proto;
		e->k.prefixlen = (__u32)(MSEG_RULE_PROTO_BITS + plen);
		e->k.dport[0] = port >> 8;
		e->k.dport[1] = port & 0xff;
	}
	e->hashed = e->k.prefixlen == MSEG_RULE_FULL_BITS;
	for (int i = 0; i < nc; i++) {
		e->v.c[i].rank = c[i].rank;
		e->v.c[i].rule_id = c[i].r->id;
		e->v.c[i].sport = c[i].r->sport;
		e->v.c[i].action = mr_rule_action(c[i].r);
		e->v.c[i].by = c[i].r->kind == MR_CIDR ? MSEG_BY_CIDR : MSEG_BY_EXACT;
	}
}

/* Sort, keep up to the first candidate that names no source port. */
static int cand_list(struct cand *c, int n)
{
	int i;

	qsort(c, (size_t)n, sizeof(*c), cmp_cand);
	for (i = 0; i < n; i++)
		if (!c[i].r->sport)
			return i + 1;
	return n;
}

static bool same_list(const struct cand *a, int na, const struct cand *b, int nb)
{
	if (na != nb)
		return false;
	for (int i = 0; i < na; i++)
		if (a[i].r != b[i].r || a[i].rank != b[i].rank)
			return false;
	return true;
}

/* [lo, hi] as port prefixes. */
static void emit_range(struct ctx *x, __u32 s, __u32 d, int proto, __u32 lo,
		       __u32 hi, const struct cand *c, int nc)
{
	while (lo <= hi) {
		int k = 16;

		while (k > 0 && ((lo & ((1u << k) - 1)) || lo + (1u << k) - 1 > hi))
			k--;
		emit(x, s, d, proto, 16 - k, (__u16)lo, c, nc);
		lo += 1u << k;
	}
}

struct parm { /* an arm in one key, with its resolved protocol */
	int proto; /* -1 any */
	struct cand c;
};

static int cmp_parm(const void *a, const void *b)
{
	const struct parm *x = a, *y = b;

	return (x->proto > y->proto) - (x->proto < y->proto);
}

static bool too_many_sports(const struct mr_rule *r)
{
	mr_err("line %ld: more than %d rules naming source ports overlap on one destination port",
	       r->line, MSEG_RULE_CANDS - 1);
	return false;
}

/* One key (s, d): its arms, split by protocol and port. */
static bool compile_key(struct ctx *x, __u32 s, __u32 d, struct parm *pa, size_t n)
{
	struct cand best_any = { 0 }, *cl = NULL, *prev = NULL;
	size_t clcap = 0, prevcap = 0;
	__u32 *bp = NULL;
	size_t bpcap = 0;
	bool have_any = false;
	size_t i = 0;

	qsort(pa, n, sizeof(*pa), cmp_parm);
	for (; i < n && pa[i].proto < 0; i++)
		if (!have_any || cmp_cand(&pa[i].c, &best_any) < 0) {
			best_any = pa[i].c;
			have_any = true;
		}
	if (have_any)
		emit(x, s, d, -1, 0, 0, &best_any, 1);
	while (i < n) {
		size_t j = i, nb = 0;
		int proto = pa[i].proto, np;
		struct cand bestp = best_any;
		bool have_p = false;

		while (j < n && pa[j].proto == proto)
			j++;
		for (size_t k = i; k < j; k++)
			if (!pa[k].c.r->nports && (!(have_p || have_any) ||
						   cmp_cand(&pa[k].c, &bestp) < 0)) {
				bestp = pa[k].c;
				have_p = true;
			}
		if (have_p)
			emit(x, s, d, proto, 0, 0, &bestp, 1);
		/* breakpoints of every port range of this protocol */
		for (size_t k = i; k < j; k++)
			for (int q = 0; q < pa[k].c.r->nports; q++) {
				bp = mr_grow(bp, &bpcap, nb + 1, sizeof(*bp));
				bp[nb++] = pa[k].c.r->ports[q].lo;
				bp[nb++] = (__u32)pa[k].c.r->ports[q].hi + 1;
			}
		for (size_t a = 1; a < nb; a++) /* insertion sort: few per key */
			for (size_t b = a; b > 0 && bp[b] < bp[b - 1]; b--) {
				__u32 t = bp[b];

				bp[b] = bp[b - 1];
				bp[b - 1] = t;
			}
		/* elementary intervals, their candidates, runs of equal ones */
		{
			__u32 run_lo = 0, run_hi = 0;
			int nprev = 0;

			for (size_t a = 0; a + 1 < nb; a++) {
				__u32 lo = bp[a], hi = bp[a + 1] - 1;
				bool ported = false;
				int nc = 0;

				if (bp[a] == bp[a + 1])
					continue;
				for (size_t k = i; k < j; k++) {
					const struct mr_rule *r = pa[k].c.r;
					bool in = !r->nports;

					for (int q = 0; q < r->nports && !in; q++)
						in = r->ports[q].lo <= lo && hi <= r->ports[q].hi;
					if (!in)
						continue;
					ported |= r->nports > 0;
					cl = mr_grow(cl, &clcap, (size_t)nc + 2, sizeof(*cl));
					cl[nc++] = pa[k].c;
				}
				/* only the no-port rules cover it: the proto entry answers */
				if (!ported)
					nc = 0;
				if (nc && have_any)
					cl[nc++] = best_any;
				np = nc ? cand_list(cl, nc) : 0;
				if (np > MSEG_RULE_CANDS ||
				    (np == MSEG_RULE_CANDS && cl[np - 1].r->sport))
					return too_many_sports(cl[0].r);
				if (nprev && np && run_hi + 1 == lo &&
				    same_list(prev, nprev, cl, np)) {
					run_hi = hi;
					continue;
				}
				if (nprev)
					emit_range(x, s, d, proto, run_lo, run_hi, prev, nprev);
				nprev = np;
				if (np) {
					prev = mr_grow(prev, &prevcap, MSEG_RULE_CANDS, sizeof(*prev));
					memcpy(prev, cl, (size_t)np * sizeof(*cl));
					run_lo = lo;
					run_hi = hi;
				}
			}
			if (nprev)
				emit_range(x, s, d, proto, run_lo, run_hi, prev, nprev);
		}
		i = j;
	}
	free(cl);
	free(prev);
	free(bp);
	return true;
}

bool mr_compile(const struct mr_policy *p, __u8 set, struct mr_compiled *c)
{
	struct ctx x = { .p = p, .c = c, .set = set };
	struct arm *arms = NULL;
	size_t narms = 0, armcap = 0, ntrip = 0, tripcap = 0, tmpcap = 0, worst = 0;
	struct trip *t = NULL;
	struct parm *pa = NULL;
	size_t pacap = 0;
	__u32 *tmp = NULL;
	const struct mr_rule *worst_r = NULL, *fs;
	bool ok = false, any_any_whole = false, any_any_ids = false;
	int nfs;

	memset(c, 0, sizeof(*c));
	if (!build_idents(&x))
		goto out;
	nfs = mr_failsafe_rules(p, &fs);
	for (size_t i = 0; i < p->nr + (size_t)nfs; i++) {
		const struct mr_rule *r = i < p->nr ? &p->r[i] : &fs[i - p->nr];

		arms = mr_grow(arms, &armcap, narms + 1, sizeof(*arms));
		if (r->kind == MR_CIDR) {
			/* the destination's prefix, or the source's */
			arms[narms++] = (struct arm){ r, { .kind = MR_SEL_ANY }, r->dst };
			arms[narms++] = (struct arm){ r, r->src, { .kind = MR_SEL_ANY } };
		} else {
			arms[narms++] = (struct arm){ r, r->src, r->dst };
		}
	}
	for (size_t a = 0; a < narms; a++) {
		size_t ns, nd, before = ntrip;
		const __u32 *si, *di;
		__u32 *dcopy;

		di = side_ids(&x, &arms[a].dst, &nd, &tmp, &tmpcap);
		dcopy = malloc((nd + 1) * sizeof(*dcopy));
		memcpy(dcopy, di, nd * sizeof(*dcopy));
		si = side_ids(&x, &arms[a].src, &ns, &tmp, &tmpcap);
		for (size_t i = 0; i < ns; i++)
			for (size_t j = 0; j < nd; j++) {
				__u32 s = si[i], d = dcopy[j];

				if (s && d && x.id[s].k.family != x.id[d].k.family)
					continue;
				if (ntrip >= MR_MAX_EXPANSION) {
					mr_err("line %ld: the policy expands to more than %d (rule, source, destination) entries",
					       arms[a].r->line, MR_MAX_EXPANSION);
					free(dcopy);
					goto out;
				}
				t = mr_grow(t, &tripcap, ntrip, sizeof(*t));
				t[ntrip++] = (struct trip){
					s, d, (__u32)a,
					mr_rank(arms[a].r, side_score(&x, &arms[a].dst, d),
						side_score(&x, &arms[a].src, s))
				};
			}
		free(dcopy);
		if (ntrip - before > worst) {
			worst = ntrip - before;
			worst_r = arms[a].r;
		}
	}
	(void)worst_r;
	c->expansion = ntrip;
	qsort(t, ntrip, sizeof(*t), cmp_trip);
	for (size_t i = 0; i < ntrip;) {
		size_t j = i, n = 0, first;
		bool whole, ids;
		__u32 s = t[i].s, d = t[i].d;
		int fam = s ? x.id[s].k.family : d ? x.id[d].k.family : 0;

		while (j < ntrip && t[j].s == s && t[j].d == d)
			j++;
		for (size_t k = i; k < j; k++) {
			const struct mr_rule *r = arms[t[k].arm].r;
			int proto = r->proto;

			pa = mr_grow(pa, &pacap, n + 2, sizeof(*pa));
			if (proto == MR_PROTO_ICMP && fam != 6)
				pa[n++] = (struct parm){ 1, { t[k].rank, r } };
			if (proto == MR_PROTO_ICMP && fam != 4)
				pa[n++] = (struct parm){ 58, { t[k].rank, r } };
			if (proto != MR_PROTO_ICMP)
				pa[n++] = (struct parm){ proto, { t[k].rank, r } };
		}
		first = c->nre;
		if (!compile_key(&x, s, d, pa, n))
			goto out;
		whole = true;
		for (size_t e = first; e < c->nre; e++)
			whole = whole && c->re[e].k.prefixlen == MSEG_RULE_FULL_BITS;
		/* one entry for any protocol (a CIDR rule's arm): the hash too */
		ids = (!s || !d) && c->nre == first + 1 &&
		      c->re[first].k.prefixlen == MSEG_RULE_IDS_BITS;
		if (ids)
			c->re[first].hashed = true;
		if (s && d) {
			x.id[s].flags |= MSEG_IDF_SRC_PAIR;
			x.id[d].flags |= MSEG_IDF_DST_PAIR;
		} else if (s) {
			x.id[s].flags |= MSEG_IDF_SRC_ANY | (whole ? MSEG_IDF_SRC_ANY_WHOLE : 0) |
					 (ids ? MSEG_IDF_SRC_ANY_IDS : 0);
		} else if (d) {
			x.id[d].flags |= MSEG_IDF_DST_ANY | (whole ? MSEG_IDF_DST_ANY_WHOLE : 0) |
					 (ids ? MSEG_IDF_DST_ANY_IDS : 0);
		} else {
			any_any_whole = whole;
			any_any_ids = ids;
		}
		i = j;
	}
	if (c->nre > MSEG_MAX_RULE_ENTRIES / 2) {
		mr_err("the policy compiles to %zu rule entries; at most %d fit beside the ruleset in force",
		       c->nre, MSEG_MAX_RULE_ENTRIES / 2);
		goto out;
	}
	{
		bool any_any = false;

		for (size_t i = 0; i < ntrip && !any_any; i++)
			any_any = !t[i].s && !t[i].d;
		for (size_t i = 1; !any_any && i < x.nid; i++)
			x.id[i].flags |= MSEG_IDF_NO_ANY_ANY;
		for (size_t i = 1; any_any && any_any_whole && i < x.nid; i++)
			x.id[i].flags |= MSEG_IDF_ANY_ANY_WHOLE;
		for (size_t i = 1; any_any && any_any_ids && i < x.nid; i++)
			x.id[i].flags |= MSEG_IDF_ANY_ANY_IDS;
	}
	c->id = calloc(x.nid, sizeof(*c->id));
	for (size_t i = 1; i < x.nid; i++) {
		struct mr_ident_ent *e = &c->id[c->nid++];
		struct ident *d = &x.id[i];

		e->k.prefixlen = (__u32)((d->k.family == 4 ? MSEG_IDENT_V4_BASE_BITS :
							    MSEG_IDENT_HDR_BITS) + d->k.len);
		e->k.set = set;
		e->k.family = d->k.family;
		memcpy(e->k.addr, d->k.addr, 16);
		e->v.id = d->pub;
		e->v.flags = d->flags;
	}
	ok = true;
out:
	for (size_t i = 1; i < x.nid; i++)
		free(x.id[i].mem);
	free(x.id);
	for (size_t i = 0; x.seg && i < p->ns; i++)
		free(x.seg[i].m);
	free(x.seg);
	mr_hash_free(&x.h);
	free(arms);
	free(t);
	free(pa);
	free(tmp);
	return ok;
}

void mr_compiled_free(struct mr_compiled *c)
{
	free(c->id);
	free(c->re);
	memset(c, 0, sizeof(*c));
}
