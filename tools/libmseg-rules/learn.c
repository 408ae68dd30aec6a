// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * `mseg learn`: observed flows into rules (docs/learn.md).
 *
 * 1. Each allowed flow is an item: its sides (a segment's name, else the
 *    host), the protocol as a rule names it, its port.
 * 2. --widen: the host sources of one service (same destination, protocol
 *    and port) that share a /N become that prefix.
 * 3. Items with the same sides and protocol are one rule, their ports a
 *    list (consecutive ports as a range), split where it would outgrow the
 *    grammar (MR_PORTS_MAX items, a MSEG_SOURCE_LINE statement).
 * 4. The text is read back by the parser, compiled, and every flow judged
 *    by mr_lookup(): a denied flow that the rules would pass (it shares a
 *    segment or a widened prefix with allowed ones) gets an exact deny rule,
 *    an exception. Then every allowed flow must pass and every other be
 *    denied (but for the failsafes), or nothing is written.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "learn.h"
#include "mseg_event_fmt.h"

struct side {
	int kind;         /* MR_SEL_SEG or MR_SEL_PFX (a host, or a widened prefix) */
	const char *name; /* a segment's */
	struct mr_pfx p;
};

struct item {
	struct side src, dst;
	int proto;     /* as a rule names it: MR_PROTO_ICMP, or the number */
	__u16 port;    /* 0: a protocol without ports */
	struct ml_count c;
	size_t h0, nh; /* widened: its sources, ctx.hosts[h0, h0 + nh) */
};

struct lrule {
	struct mr_rule r;
	struct ml_count c;
	struct mr_pfx *hosts; /* widened: the sources it stands for */
	size_t nh, caph;
};

/* A flow the ruleset does not allow, and what becomes of it. */
struct left {
	const struct ml_flow *f;
	char note[96];
};

struct ctx {
	const struct mr_policy *segs, *active;
	const struct ml_opts *o;
	struct item *it;
	size_t nit, capit;
	struct mr_pfx *hosts;
	size_t nhosts, caphosts;
	struct lrule *rules;
	size_t nr, capr, nallow; /* rules[0, nallow) allow, the rest are exceptions */
	struct left *left;
	size_t nleft, capleft;
	size_t allowed;
	/* the text read back: allow rules only, then the whole; two places, as
	 * mr_lookup() keeps its index by the compiled set's address */
	struct mr_policy p[2];
	struct mr_compiled c[2];
};

/* --- items ------------------------------------------------------------------ */

static void host_side(struct side *s, const __u8 a[16], int family)
{
	memset(s, 0, sizeof(*s));
	s->kind = MR_SEL_PFX;
	memcpy(s->p.addr, a, 16);
	s->p.family = (__u8)family;
	s->p.len = family == 4 ? 32 : 128;
}

static void seg_side(struct side *s, const struct mr_policy *segs, int seg)
{
	memset(s, 0, sizeof(*s));
	s->kind = MR_SEL_SEG;
	s->name = segs->s[seg].name;
}

static bool seg_dual(const struct mr_policy *segs, int seg)
{
	int fams = 0;

	for (size_t k = 0; k < segs->s[seg].n; k++)
		fams |= 1 << segs->s[seg].p[k].family;
	return fams == (1 << 4 | 1 << 6);
}

static bool has_ports(int proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP;
}

/* Why no rule can allow exactly this flow, or NULL. */
static const char *unnamable(const struct ml_flow *f)
{
	if (!f->proto)
		return "no rule names protocol 0";
	if (f->family == 4 && f->proto == IPPROTO_ICMPV6)
		return "no rule names protocol 58 (icmpv6) between IPv4 sides";
	if (has_ports(f->proto) && !f->dport)
		return "no rule names port 0";
	return NULL;
}

/*
 * A flow's item. A segment of both families cannot be paired with a host
 * (docs/policy.md): that side is its host then.
 */
static void item_of(const struct mr_policy *segs, const struct ml_flow *f, struct item *it)
{
	memset(it, 0, sizeof(*it));
	if (f->src_seg >= 0)
		seg_side(&it->src, segs, f->src_seg);
	else
		host_side(&it->src, f->src, f->family);
	if (f->dst_seg >= 0)
		seg_side(&it->dst, segs, f->dst_seg);
	else
		host_side(&it->dst, f->dst, f->family);
	if (f->src_seg >= 0 && f->dst_seg < 0 && seg_dual(segs, f->src_seg))
		host_side(&it->src, f->src, f->family);
	if (f->dst_seg >= 0 && f->src_seg < 0 && seg_dual(segs, f->dst_seg))
		host_side(&it->dst, f->dst, f->family);
	it->proto = (f->family == 4 && f->proto == IPPROTO_ICMP) ||
				    (f->family == 6 && f->proto == IPPROTO_ICMPV6) ?
			    MR_PROTO_ICMP :
			    f->proto;
	it->port = has_ports(f->proto) ? f->dport : 0;
	it->c = f->c;
}

static void count_add(struct ml_count *to, const struct ml_count *c)
{
	to->connections += c->connections;
	to->packets += c->packets;
	to->bytes += c->bytes;
	if (c->first_ns && (!to->first_ns || c->first_ns < to->first_ns))
		to->first_ns = c->first_ns;
	if (c->last_ns > to->last_ns)
		to->last_ns = c->last_ns;
}

/* Segments (by name) first, then prefixes by family, address, length. */
static int cmp_side(const struct side *a, const struct side *b)
{
	int c;

	if (a->kind != b->kind)
		return a->kind == MR_SEL_SEG ? -1 : 1;
	if (a->kind == MR_SEL_SEG)
		return strcmp(a->name, b->name);
	if (a->p.family != b->p.family)
		return a->p.family - b->p.family;
	c = memcmp(a->p.addr, b->p.addr, 16);
	return c ? c : a->p.len - b->p.len;
}

/* A rule's order: sides, protocol, port. */
static int cmp_item(const void *x, const void *y)
{
	const struct item *a = x, *b = y;
	int c = cmp_side(&a->src, &b->src);

	if (!c)
		c = cmp_side(&a->dst, &b->dst);
	if (!c)
		c = a->proto - b->proto;
	return c ? c : a->port - b->port;
}

/* A service's order: destination, protocol, port, then the source. */
static int cmp_service(const void *x, const void *y)
{
	const struct item *a = x, *b = y;
	int c = cmp_side(&a->dst, &b->dst);

	if (!c)
		c = a->proto - b->proto;
	if (!c)
		c = a->port - b->port;
	return c ? c : cmp_side(&a->src, &b->src);
}

static bool same_service(const struct item *a, const struct item *b)
{
	return !cmp_side(&a->dst, &b->dst) && a->proto == b->proto && a->port == b->port;
}

/* Sort, and add up the items of the same sides, protocol and port. */
static size_t merge_items(struct item *it, size_t n)
{
	size_t i, m = 0;

	qsort(it, n, sizeof(*it), cmp_item);
	for (i = 0; i < n; i++) {
		if (m && !cmp_item(&it[m - 1], &it[i]))
			count_add(&it[m - 1].c, &it[i].c);
		else
			it[m++] = it[i];
	}
	return m;
}

static int widen_bits(const struct ctx *x, const struct side *s)
{
	int bits = s->p.family == 4 ? x->o->widen4 : x->o->widen6;

	if (s->kind != MR_SEL_PFX || !bits || bits >= s->p.len)
		return 0;
	return bits;
}

static void masked(const struct side *s, int bits, struct mr_pfx *out)
{
	*out = s->p;
	out->len = (__u8)bits;
	mr_mask(out->addr, s->p.family == 4 ? 96 + bits : bits);
}

/*
 * --widen: in each service, the host sources of a family that share the
 * family's /N (two or more) become one item whose source is that prefix.
 */
static void widen(struct ctx *x)
{
	struct item *out = calloc(x->nit ? x->nit : 1, sizeof(*out));
	size_t i, j, m = 0;

	if (!out) {
		fprintf(stderr, "mseg: out of memory\n");
		exit(1);
	}
	qsort(x->it, x->nit, sizeof(*x->it), cmp_service);
	for (i = 0; i < x->nit; i = j) {
		int bits = widen_bits(x, &x->it[i].src);
		struct mr_pfx p, q;

		memset(&p, 0, sizeof(p));
		j = i + 1;
		if (bits) {
			masked(&x->it[i].src, bits, &p);
			for (; j < x->nit && same_service(&x->it[i], &x->it[j]) &&
			       widen_bits(x, &x->it[j].src) == bits; j++) {
				masked(&x->it[j].src, bits, &q);
				if (memcmp(&p, &q, sizeof(p)))
					break;
			}
		}
		out[m] = x->it[i];
		if (j - i > 1) {
			out[m].src.p = p;
			out[m].h0 = x->nhosts;
			out[m].nh = j - i;
			for (size_t k = i; k < j; k++) {
				if (k > i)
					count_add(&out[m].c, &x->it[k].c);
				x->hosts = mr_grow(x->hosts, &x->caphosts, x->nhosts, sizeof(*x->hosts));
				x->hosts[x->nhosts++] = x->it[k].src.p;
			}
		}
		m++;
	}
	free(x->it);
	x->it = out;
	x->capit = x->nit ? x->nit : 1;
	x->nit = m;
}

/* --- rules ------------------------------------------------------------------ */

/* A rule's statement fits the grammar: with the longest id, one mseg_source line. */
static bool rule_fits(const struct mr_rule *r)
{
	char line[MSEG_SOURCE_LINE + 1024];
	struct mr_rule t = *r;

	t.id = MR_RULE_ID_MAX;
	mr_rule_text(&t, true, line, sizeof(line));
	return strlen(line) < MSEG_SOURCE_LINE;
}

static struct lrule *rule_new(struct ctx *x, const struct item *it, __u8 action)
{
	struct lrule *l;

	x->rules = mr_grow(x->rules, &x->capr, x->nr, sizeof(*x->rules));
	l = &x->rules[x->nr++];
	memset(l, 0, sizeof(*l));
	l->r.kind = MR_RULE;
	l->r.src.kind = it->src.kind;
	l->r.src.p = it->src.p;
	if (it->src.kind == MR_SEL_SEG)
		snprintf(l->r.src.name, sizeof(l->r.src.name), "%s", it->src.name);
	l->r.dst.kind = it->dst.kind;
	l->r.dst.p = it->dst.p;
	if (it->dst.kind == MR_SEL_SEG)
		snprintf(l->r.dst.name, sizeof(l->r.dst.name), "%s", it->dst.name);
	l->r.proto = it->proto;
	l->r.action = action;
	l->r.priority = MR_DEFAULT_PRIORITY;
	return l;
}

static void rule_take(struct ctx *x, struct lrule *l, const struct item *it)
{
	count_add(&l->c, &it->c);
	for (size_t k = 0; k < it->nh; k++) {
		l->hosts = mr_grow(l->hosts, &l->caph, l->nh, sizeof(*l->hosts));
		l->hosts[l->nh++] = x->hosts[it->h0 + k];
	}
}

/* Add port p to l's list (extending its last range when p follows it); false if it does not fit. */
static bool port_add(struct mr_rule *r, __u16 p)
{
	struct mr_rule before = *r;

	if (r->nports && r->ports[r->nports - 1].hi + 1 == p) {
		r->ports[r->nports - 1].hi = p;
	} else {
		if (r->nports == MR_PORTS_MAX)
			return false;
		r->ports[r->nports].lo = r->ports[r->nports].hi = p;
		r->nports++;
	}
	if (rule_fits(r))
		return true;
	*r = before;
	return false;
}

/* Items it[0, n) (sorted by cmp_item) as rules of action. */
static void make_rules(struct ctx *x, const struct item *it, size_t n, __u8 action)
{
	size_t i, j;

	for (i = 0; i < n; i = j) {
		struct lrule *l = rule_new(x, &it[i], action);

		for (j = i; j < n && !cmp_side(&it[i].src, &it[j].src) &&
			    !cmp_side(&it[i].dst, &it[j].dst) && it[i].proto == it[j].proto;
		     j++) {
			if (it[j].port && !port_add(&l->r, it[j].port)) {
				l = rule_new(x, &it[j], action);
				port_add(&l->r, it[j].port);
			}
			rule_take(x, l, &it[j]);
		}
	}
}

/* --- the text ------------------------------------------------------------------- */

static const char *plural(__u64 n)
{
	return n == 1 ? "" : "s";
}

static void when(__u64 ns, char *buf, size_t len)
{
	if (ns)
		mseg_event_time((long long)ns, buf, len);
	else
		snprintf(buf, len, "unknown");
}

static void count_text(FILE *f, const struct ml_count *c)
{
	char first[64], last[64];

	when(c->first_ns, first, sizeof(first));
	when(c->last_ns, last, sizeof(last));
	fprintf(f, "%llu connection%s, %llu packet%s, %llu byte%s, first seen %s, last seen %s",
		(unsigned long long)c->connections, plural(c->connections),
		(unsigned long long)c->packets, plural(c->packets),
		(unsigned long long)c->bytes, plural(c->bytes), first, last);
}

static int cmp_pfx(const void *x, const void *y)
{
	const struct mr_pfx *a = x, *b = y;

	if (a->family != b->family)
		return a->family - b->family;
	return memcmp(a->addr, b->addr, 16);
}

/* The sources a widened rule stands for, up to 8 of them. */
static void hosts_text(FILE *f, struct lrule *l)
{
	char a[INET6_ADDRSTRLEN], p[INET6_ADDRSTRLEN + 8];
	size_t i, m = 0;

	qsort(l->hosts, l->nh, sizeof(*l->hosts), cmp_pfx);
	for (i = 0; i < l->nh; i++)
		if (!m || cmp_pfx(&l->hosts[m - 1], &l->hosts[i]))
			l->hosts[m++] = l->hosts[i];
	l->nh = m;
	fprintf(f, "# widened to %s: %zu source%s", mr_pfx_text(&l->r.src.p, p), m, plural(m));
	for (i = 0; i < m && i < 8; i++)
		fprintf(f, "%s%s", i ? ", " : ": ", mr_addr_text(l->hosts[i].addr, l->hosts[i].family, a));
	if (m > 8)
		fprintf(f, " and %zu more", m - 8);
	fputc('\n', f);
}

static void rules_text(FILE *f, struct ctx *x, size_t from, size_t to)
{
	char line[MSEG_SOURCE_LINE + 1024];

	for (size_t i = from; i < to; i++) {
		struct lrule *l = &x->rules[i];

		fputs("# ", f);
		count_text(f, &l->c);
		fputc('\n', f);
		if (l->nh)
			hosts_text(f, l);
		mr_rule_text(&l->r, false, line, sizeof(line));
		fprintf(f, "%s\n", line);
	}
}

static void seg_line(void *ctx, __u32 index, const char *line)
{
	if (index >= MSEG_SRC_SEGMENTS && index < MR_SRC_FAILSAFE)
		fprintf(ctx, "%s\n", line);
}

static void side_text(FILE *f, const struct mr_policy *segs, const __u8 a[16], int family, int seg)
{
	char buf[INET6_ADDRSTRLEN];

	fputs(mr_addr_text(a, family, buf), f);
	if (seg >= 0)
		fprintf(f, " (%s)", segs->s[seg].name);
}

static void left_text(FILE *f, const struct ctx *x)
{
	char pbuf[16];

	for (size_t i = 0; i < x->nleft; i++) {
		const struct ml_flow *w = x->left[i].f;

		fprintf(f, "#   %s %s ", w->verdict,
			mseg_event_proto_name((__u8)w->proto, pbuf, sizeof(pbuf)));
		side_text(f, x->segs, w->src, w->family, w->src_seg);
		fputs(" -> ", f);
		side_text(f, x->segs, w->dst, w->family, w->dst_seg);
		if (has_ports(w->proto))
			fprintf(f, " port %u", w->dport);
		if (w->rule_id)
			fprintf(f, ", rule %u: ", w->rule_id);
		else
			fputs(", rule default: ", f);
		count_text(f, &w->c);
		if (x->left[i].note[0])
			fprintf(f, "; %s", x->left[i].note);
		fputc('\n', f);
	}
}

/* The whole ruleset into a new buffer. */
static bool render(struct ctx *x, char **text, size_t *len)
{
	size_t nex = x->nr - x->nallow;
	char line[MSEG_SOURCE_LINE + 64];
	FILE *f = open_memstream(text, len);

	if (!f) {
		fprintf(stderr, "mseg: out of memory\n");
		return false;
	}
	if (x->o->header)
		fputs(x->o->header, f);
	fprintf(f, "# %zu allowed flow%s, allowed by %zu rule%s under default deny", x->allowed,
		plural(x->allowed), x->nallow, plural(x->nallow));
	if (nex)
		fprintf(f, "; %zu exception%s keep%s denied flows denied", nex, plural(nex),
			nex == 1 ? "s" : "");
	fputs(".\n", f);
	if (x->nleft)
		fprintf(f, "# %zu flow%s not allowed (denied, would-deny, or no rule can name %s): listed at the end.\n",
			x->nleft, plural(x->nleft), x->nleft == 1 ? "it" : "them");
	fputs("default deny\n", f);
	mr_failsafe_statement(x->active, line, sizeof(line));
	fprintf(f, "%s\n", line);
	/* only its segment lines are used: a rule line it refuses is no matter here */
	if (!mr_policy_lines(x->segs, seg_line, f))
		mr_err_reset();
	if (x->nallow)
		fputc('\n', f);
	rules_text(f, x, 0, x->nallow);
	if (nex) {
		fprintf(f, "\n# Exceptions: flows seen denied that the rules above would pass (a segment\n"
			   "# or a widened prefix holds their hosts too): each stays denied.\n");
		rules_text(f, x, x->nallow, x->nr);
	}
	if (x->nleft) {
		fprintf(f, "\n# Not allowed by the rules above (%zu flow%s):\n", x->nleft,
			plural(x->nleft));
		left_text(f, x);
	}
	if (fclose(f)) {
		fprintf(stderr, "mseg: out of memory\n");
		return false;
	}
	return true;
}

/* --- the check ---------------------------------------------------------------------- */

static void count_line(void *ctx, __u32 index, const char *line)
{
	(void)index;
	(void)line;
	(*(size_t *)ctx)++;
}

/*
 * Read text back as `mseg apply --check` does (mseg-ruleset's build()),
 * and compile it into x->p[k] and x->c[k]; says why not on stderr.
 * (mr_lookup() indexes a compiled set by its address: each has its own.)
 */
static bool read_back(struct ctx *x, int k, char *text, size_t len)
{
	struct mr_input in = { .buf = text, .len = len, .pos = 0 };
	size_t lines = 0;

	mr_policy_init(&x->p[k]);
	if (!mr_parse_input(&x->p[k], &in, NULL))
		return false; /* it said why */
	mr_assign_ids(&x->p[k], NULL);
	if (!mr_failed() && mr_policy_check(&x->p[k]) && mr_compile(&x->p[k], 0, &x->c[k]) &&
	    mr_policy_lines(&x->p[k], count_line, &lines) && lines + 1 > MSEG_MAX_SOURCE / 2)
		mr_err("the policy has %zu statements; at most %d fit beside the ruleset in force",
		       lines, MSEG_MAX_SOURCE / 2 - 1);
	if (mr_failed()) {
		/* its line numbers are of a text nobody sees: said without them */
		const char *why = mr_error();

		if (!strncmp(why, "line ", 5) && strstr(why, ": "))
			why = strstr(why, ": ") + 2;
		fprintf(stderr, "mseg: learn: the learned ruleset would be refused (%s): nothing written; a narrower --widen or a shorter --since makes it smaller\n",
			why);
		return false;
	}
	return true;
}

/* The verdict of compiled set k on flow w: true if it passes; the deciding rule in *rule. */
static bool passes(const struct ctx *x, int k, const struct ml_flow *w, __u32 *rule)
{
	struct mr_flow q;
	struct mr_decision d;

	memset(&q, 0, sizeof(q));
	memcpy(q.src, w->src, 16);
	memcpy(q.dst, w->dst, 16);
	q.family = w->family;
	q.proto = w->proto;
	q.dport = w->dport;
	mr_lookup(&x->c[k], &q, MSEG_ACT_DENY, &d);
	*rule = d.rule_id;
	return d.action != MSEG_ACT_DENY;
}

static int cmp_exact(const struct ml_flow *a, const struct ml_flow *b)
{
	int c;

	if (a->family != b->family)
		return a->family - b->family;
	c = memcmp(a->src, b->src, 16);
	if (!c)
		c = memcmp(a->dst, b->dst, 16);
	if (!c)
		c = a->proto - b->proto;
	return c ? c : a->dport - b->dport;
}

/* Exact flows together, the allowed first. */
static int cmp_flow(const void *x, const void *y)
{
	const struct ml_flow *a = x, *b = y;
	int c = cmp_exact(a, b);

	if (!c)
		c = (int)b->allowed - (int)a->allowed;
	if (!c)
		c = strcmp(a->verdict, b->verdict);
	return c ? c : (a->rule_id > b->rule_id) - (a->rule_id < b->rule_id);
}

static struct left *left_new(struct ctx *x, const struct ml_flow *f)
{
	struct left *l;

	x->left = mr_grow(x->left, &x->capleft, x->nleft, sizeof(*x->left));
	l = &x->left[x->nleft++];
	l->f = f;
	l->note[0] = 0;
	return l;
}

static void ctx_free(struct ctx *x)
{
	for (size_t i = 0; i < x->nr; i++)
		free(x->rules[i].hosts);
	for (int k = 0; k < 2; k++) {
		mr_policy_free(&x->p[k]);
		mr_compiled_free(&x->c[k]);
	}
	free(x->rules);
	free(x->it);
	free(x->hosts);
	free(x->left);
}

bool ml_learn(const struct mr_policy *segs, const struct mr_policy *active,
	      struct ml_flow *f, size_t n, const struct ml_opts *o, struct ml_learned *out)
{
	struct ctx x = { .segs = segs, .active = active, .o = o };
	struct item *ex = NULL;
	size_t i, j, nex = 0, capex = 0;
	char *text = NULL;
	size_t len = 0;
	bool ok = false;

	memset(out, 0, sizeof(*out));
	qsort(f, n, sizeof(*f), cmp_flow);
	/* 1-3: the allowed flows as allow rules */
	for (i = 0; i < n; i++) {
		const char *why = unnamable(&f[i]);

		if (!f[i].allowed)
			continue;
		if (why) {
			snprintf(left_new(&x, &f[i])->note, sizeof(x.left[0].note), "%s", why);
			continue;
		}
		x.it = mr_grow(x.it, &x.capit, x.nit, sizeof(*x.it));
		item_of(segs, &f[i], &x.it[x.nit++]);
		x.allowed++;
	}
	x.nit = merge_items(x.it, x.nit);
	widen(&x);
	qsort(x.it, x.nit, sizeof(*x.it), cmp_item);
	make_rules(&x, x.it, x.nit, MSEG_ACT_ALLOW);
	x.nallow = x.nr;
	/* 4: the flows not allowed, judged by the allow rules */
	if (!render(&x, &text, &len) || !read_back(&x, 0, text, len))
		goto out;
	for (i = 0; i < n; i = j) {
		bool seen_allowed = f[i].allowed;

		for (j = i; j < n && !cmp_exact(&f[i], &f[j]); j++) {
			struct left *l;
			__u32 rule;

			if (f[j].allowed)
				continue;
			l = left_new(&x, &f[j]);
			if (seen_allowed) {
				snprintf(l->note, sizeof(l->note), "also seen allowed: the rules allow it");
			} else if (passes(&x, 0, &f[j], &rule)) {
				if (rule >= MR_FAILSAFE_ID0) {
					snprintf(l->note, sizeof(l->note),
						 "the failsafe %s/%u passes it whatever the rules say",
						 f[j].proto == IPPROTO_TCP ? "tcp" : "udp", f[j].dport);
					continue;
				}
				snprintf(l->note, sizeof(l->note), "an exception keeps it denied");
				ex = mr_grow(ex, &capex, nex, sizeof(*ex));
				item_of(segs, &f[j], &ex[nex]);
				/* exact: both sides the hosts */
				host_side(&ex[nex].src, f[j].src, f[j].family);
				host_side(&ex[nex].dst, f[j].dst, f[j].family);
				nex++;
			}
		}
	}
	nex = merge_items(ex, nex);
	make_rules(&x, ex, nex, MSEG_ACT_DENY);
	free(text);
	text = NULL;
	if (!render(&x, &text, &len) || !read_back(&x, 1, text, len))
		goto out;
	/* every allowed flow passes, every other is denied, but for a failsafe's
	 * flow and the twin of an allowed one */
	for (i = 0; i < n; i = j) {
		bool twin = f[i].allowed; /* the allowed come first */

		for (j = i; j < n && !cmp_exact(&f[i], &f[j]); j++) {
			bool want = f[j].allowed && !unnamable(&f[j]), got;
			char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
			__u32 rule;

			got = passes(&x, 1, &f[j], &rule);
			if (got == want || (got && (twin || rule >= MR_FAILSAFE_ID0)))
				continue;
			fprintf(stderr, "mseg: learn: the learned rules %s %s -> %s protocol %d port %u (rule %u): a bug\n",
				want ? "deny" : "pass", mr_addr_text(f[j].src, f[j].family, s),
				mr_addr_text(f[j].dst, f[j].family, d), f[j].proto, f[j].dport, rule);
			goto out;
		}
	}
	out->text = text;
	out->len = len;
	out->allowed = x.allowed;
	out->rules = x.nallow;
	out->exceptions = x.nr - x.nallow;
	out->left = x.nleft;
	text = NULL;
	ok = true;
out:
	free(text);
	free(ex);
	ctx_free(&x);
	return ok;
}

void ml_learned_free(struct ml_learned *l)
{
	free(l->text);
	memset(l, 0, sizeof(*l));
}

/* --- --segments FILE ------------------------------------------------------------------- */

int ml_segments_read(const char *path, struct mr_policy *p)
{
	char *line, *argv[80], buf[MR_LINE_MAX + 1], word[64] = "";
	struct mr_input in;
	long lineno = 0, bad = 0;
	size_t len, at;
	bool ok;

	mr_policy_init(p);
	if (!mr_input_read(path, &in))
		return 1;
	/* the first statement that is not `segment add`: the parser reads up to it */
	for (;;) {
		int argc;

		at = in.pos;
		line = mr_input_line(&in, &len);
		if (!line)
			break;
		lineno++;
		/* a line the parser refuses anyway: it says why */
		if (len > MR_LINE_MAX || memchr(line, 0, len))
			break;
		snprintf(buf, sizeof(buf), "%.*s", (int)len, line);
		argc = mr_split(buf, argv, 80);
		if (argc < 0) {
			mr_err_reset();
			break;
		}
		if (argc && (argc < 2 || strcmp(argv[0], "segment") || strcmp(argv[1], "add"))) {
			bad = lineno;
			snprintf(word, sizeof(word), "%s%s%s", argv[0], argc > 1 ? " " : "",
				 argc > 1 ? argv[1] : "");
			in.len = at;
			break;
		}
	}
	ok = mr_parse_input(p, &in, NULL);
	mr_input_free(&in);
	if (!ok)
		return 2;
	if (bad) {
		fprintf(stderr, "mseg: line %ld: '%s': a segments file holds 'segment add NAME PREFIX...' statements only\n",
			bad, word);
		return 2;
	}
	return 0;
}
