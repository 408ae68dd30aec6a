// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The policy grammar (docs/policy.md): statements applied to a policy in
 * order, and the checks of the whole policy that no single statement can
 * make (unknown segments, families, ids).
 */
#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "hash.h"
#include "rules.h"

static int sel_family(const struct mr_sel *s);

static const char *rule_shapes =
	"a rule names --proto tcp or udp to name ports, and --sport only with --dport";

void mr_policy_init(struct mr_policy *p)
{
	memset(p, 0, sizeof(*p));
}

void mr_policy_free(struct mr_policy *p)
{
	free(p->kidx);
	free(p->sidx);
	free(p->ididx);
	free(p->pxidx);
	for (size_t i = 0; i < p->ns; i++)
		free(p->s[i].p);
	free(p->s);
	free(p->r);
	free(p->cfg);
	free(p->fsr);
	mr_policy_init(p);
}

/*
 * Split a line into words: blanks separate, '#' starts a comment, "..."
 * and '...' quote (a backslash escapes the next character inside "...").
 * Rewrites the line in place. Returns the count, or -1 after mr_err.
 */
int mr_split(char *line, char **argv, int max)
{
	char *r = line, *w = line;
	int argc = 0;

	for (;;) {
		while (*r && isspace((unsigned char)*r))
			r++;
		if (!*r || *r == '#')
			return argc;
		if (argc == max) {
			mr_err("too many words");
			return -1;
		}
		argv[argc++] = w;
		while (*r && !isspace((unsigned char)*r)) {
			if (*r == '"' || *r == '\'') {
				char q = *r++;

				while (*r && *r != q) {
					if (q == '"' && *r == '\\' && r[1])
						r++;
					*w++ = *r++;
				}
				if (!*r) {
					mr_err("unterminated %c quote", q);
					return -1;
				}
				r++;
			} else {
				*w++ = *r++;
			}
		}
		if (*r)
			r++;
		*w++ = 0;
	}
}

struct opts {
	int argc;
	char **argv;
	int i;
};

/* Next option and its value; false at the end or after an error. */
static bool next_opt(struct opts *o, const char *cmd, const char *tool,
		     const char *const *known, bool positional, const char **opt,
		     const char **val, char *optbuf, size_t optlen)
{
	const char *a;

	if (mr_failed() || o->i >= o->argc)
		return false;
	a = o->argv[o->i++];
	for (const char *const *k = known; *k; k++) {
		if (!strcmp(a, *k)) {
			if (o->i >= o->argc) {
				mr_err("%s needs a value", a);
				return false;
			}
			*opt = a;
			*val = o->argv[o->i++];
			return true;
		}
	}
	if (!strncmp(a, "--", 2) && strchr(a, '=')) {
		size_t n = (size_t)(strchr(a, '=') - a);

		if (n >= optlen)
			n = optlen - 1;
		memcpy(optbuf, a, n);
		optbuf[n] = 0;
		*opt = optbuf;
		*val = strchr(a, '=') + 1;
		for (const char *const *k = known; *k; k++)
			if (!strcmp(optbuf, *k))
				return true;
		mr_err("%s: unknown option: %s (see '%s --help')", cmd, optbuf, tool);
		return false;
	}
	if (positional && a[0] != '-') {
		*opt = "";
		*val = a;
		return true;
	}
	mr_err("%s: unknown %s: %s (see '%s --help')", cmd,
	       positional ? "option" : "argument", a, tool);
	return false;
}

static bool valid_name(const char *s)
{
	size_t n = strlen(s);

	if (!n || n >= MR_NAME_MAX || !isalpha((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
			return false;
	return strcmp(s, "any") != 0;
}

/* any, an address (a host), a prefix, or a segment's name. */
static bool parse_sel(const char *opt, const char *v, struct mr_sel *s)
{
	memset(s, 0, sizeof(*s));
	if (!strcmp(v, "any")) {
		s->kind = MR_SEL_ANY;
		return true;
	}
	if (strchr(v, '/')) {
		s->kind = MR_SEL_PFX;
		return mr_pfx_parse(v, &s->p);
	}
	if (valid_name(v) && !strchr(v, '.')) {
		s->kind = MR_SEL_SEG;
		snprintf(s->name, sizeof(s->name), "%s", v);
		return true;
	}
	{
		int fam;

		s->kind = MR_SEL_PFX;
		if (!mr_addr_parse(v, s->p.addr, &fam)) {
			mr_err("invalid address for %s: '%s'", opt, v);
			return false;
		}
		s->p.family = (__u8)fam;
		s->p.len = fam == 4 ? 32 : 128;
	}
	return true;
}

/* 80 | 8000-8100 | 80,443,8000-8100: sorted, no overlap, 1..65535. */
static bool parse_ports(const char *v, struct mr_rule *r)
{
	char buf[1024], *item, *save = NULL;

	if (strlen(v) >= sizeof(buf) || !*v) {
		mr_err("invalid --dport: '%s' (a port 1..65535, a range 8000-8100 or a list 80,443)", v);
		return false;
	}
	snprintf(buf, sizeof(buf), "%s", v);
	r->nports = 0;
	for (item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *dash = strchr(item, '-');
		unsigned long long lo, hi;

		if (dash == item)
			dash = NULL;
		if (dash)
			*dash = 0;
		if (!mr_uint(item, 65535, &lo) || (dash && !mr_uint(dash + 1, 65535, &hi))) {
			mr_err("invalid --dport: '%s' (a port 1..65535, a range 8000-8100 or a list 80,443)", v);
			return false;
		}
		if (!dash)
			hi = lo;
		if (lo == 0 || hi == 0) {
			mr_err("invalid --dport: '%s': port 0 is no port (leave --dport out for every port)", v);
			return false;
		}
		if (hi < lo) {
			mr_err("invalid --dport: '%s': the range %llu-%llu is reversed (write %llu-%llu)",
			       v, lo, hi, hi, lo);
			return false;
		}
		if (r->nports == MR_PORTS_MAX) {
			mr_err("invalid --dport: '%s': at most %d ports and ranges", v, MR_PORTS_MAX);
			return false;
		}
		r->ports[r->nports].lo = (__u16)lo;
		r->ports[r->nports].hi = (__u16)hi;
		r->nports++;
	}
	if (!r->nports) {
		mr_err("invalid --dport: '%s' (a port 1..65535, a range 8000-8100 or a list 80,443)", v);
		return false;
	}
	/* sort, then refuse overlaps: an overlap is a typo more often than not */
	for (int i = 1; i < r->nports; i++)
		for (int j = i; j > 0 && r->ports[j].lo < r->ports[j - 1].lo; j--) {
			struct mr_range t = r->ports[j];

			r->ports[j] = r->ports[j - 1];
			r->ports[j - 1] = t;
		}
	for (int i = 1; i < r->nports; i++)
		if (r->ports[i].lo <= r->ports[i - 1].hi) {
			mr_err("invalid --dport: '%s': %u-%u and %u-%u overlap", v,
			       r->ports[i - 1].lo, r->ports[i - 1].hi,
			       r->ports[i].lo, r->ports[i].hi);
			return false;
		}
	return true;
}

const char *mr_sel_text(const struct mr_sel *s, char *buf)
{
	char a[INET6_ADDRSTRLEN];

	if (s->kind == MR_SEL_ANY)
		return "any";
	if (s->kind == MR_SEL_SEG)
		return s->name;
	if (s->p.len == (s->p.family == 4 ? 32 : 128))
		return strcpy(buf, mr_addr_text(s->p.addr, s->p.family, a));
	return mr_pfx_text(&s->p, buf);
}

/*
 * A protocol as written back: "icmp" for the ICMP of the rule's family (so
 * it parses back to the same number), else the name or number.
 */
static const char *rule_proto_text(const struct mr_rule *r, char *buf)
{
	int fam = sel_family(&r->src) ? sel_family(&r->src) : sel_family(&r->dst);

	if ((r->proto == 1 && fam == 4) || (r->proto == 58 && fam == 6))
		return "icmp";
	return mr_proto_text(r->proto, buf);
}

/* "SRC -> DST proto P[ sport N][ dport L]", or the CIDR: messages and keys. */
void mr_rule_match_key(const struct mr_rule *r, char *buf, size_t len)
{
	char a[64], b[64], pb[8], ports[800];

	if (r->kind == MR_CIDR) {
		snprintf(buf, len, "%s", mr_pfx_text(&r->dst.p, a));
		return;
	}
	if (r->kind == MR_FAILSAFE) {
		snprintf(buf, len, "failsafe %s/%u", r->proto == 6 ? "tcp" : "udp", r->ports[0].lo);
		return;
	}
	snprintf(buf, len, "%s -> %s proto %s%s%.0u%s%s",
		 mr_sel_text(&r->src, a), mr_sel_text(&r->dst, b),
		 rule_proto_text(r, pb), r->sport ? " sport " : "",
		 r->sport, r->nports ? " dport " : "",
		 mr_ports_text(r, ports, sizeof(ports)));
}

static void quote(const char *s, char *out, size_t len)
{
	size_t o = 0;

	out[o++] = '"';
	for (; *s && o + 3 < len; s++) {
		if (*s == '"' || *s == '\\')
			out[o++] = '\\';
		out[o++] = *s;
	}
	out[o++] = '"';
	out[o] = 0;
}

/* The canonical statement: what save prints and mseg_source stores. */
const char *mr_rule_proto_text(const struct mr_rule *r, char *buf)
{
	return rule_proto_text(r, buf);
}

void mr_rule_text(const struct mr_rule *r, bool with_id, char *buf, size_t len)
{
	char a[64], b[64], pb[8], ports[800], idb[24] = "", prio[24] = "",
					      com[2 * MR_COMMENT_MAX + 8] = "";

	if (r->kind == MR_FAILSAFE) {
		mr_rule_match_key(r, buf, len);
		return;
	}
	if (with_id)
		snprintf(idb, sizeof(idb), " --id %u", r->id);
	if (r->priority != MR_DEFAULT_PRIORITY)
		snprintf(prio, sizeof(prio), " --priority %u", r->priority);
	if (r->comment[0]) {
		strcpy(com, " --comment ");
		quote(r->comment, com + 11, sizeof(com) - 11);
	}
	if (r->kind == MR_CIDR) {
		snprintf(buf, len, "cidr add %s --action %s%s%s%s%s",
			 mr_pfx_text(&r->dst.p, a), mr_action_names[r->action],
			 r->audit ? " --audit" : "", prio, idb, com);
		return;
	}
	snprintf(buf, len, "rule add --src %s --dst %s%s%s%s%.0u%s%s --action %s%s%s%s%s",
		 mr_sel_text(&r->src, a), mr_sel_text(&r->dst, b),
		 r->proto == MR_PROTO_ANY ? "" : " --proto ",
		 r->proto == MR_PROTO_ANY ? "" : rule_proto_text(r, pb),
		 r->sport ? " --sport " : "", r->sport,
		 r->nports ? " --dport " : "", mr_ports_text(r, ports, sizeof(ports)),
		 mr_action_names[r->action], r->audit ? " --audit" : "", prio, idb, com);
}

static size_t sel_hash(size_t h, const struct mr_sel *s)
{
	h = mr_hash_step(h, &s->kind, sizeof(s->kind));
	if (s->kind == MR_SEL_PFX)
		return mr_hash_step(mr_hash_step(mr_hash_step(h, s->p.addr, 16), &s->p.len, 1),
				    &s->p.family, 1);
	if (s->kind == MR_SEL_SEG)
		return mr_hash_step(h, s->name, strlen(s->name));
	return h;
}

static bool pfx_same(const struct mr_pfx *a, const struct mr_pfx *b)
{
	return a->family == b->family && a->len == b->len && !memcmp(a->addr, b->addr, 16);
}

static bool sel_same(const struct mr_sel *a, const struct mr_sel *b)
{
	if (a->kind != b->kind)
		return false;
	if (a->kind == MR_SEL_PFX)
		return pfx_same(&a->p, &b->p);
	if (a->kind == MR_SEL_SEG)
		return !strcmp(a->name, b->name);
	return true;
}

/*
 * What mr_rule_match_key()'s text names, hashed and compared field by
 * field: formatting that text for every rule was 60 % of the instructions
 * reading a 100,000-rule policy took (callgrind). The two agree because
 * the text is a function of these fields and nothing else, and they are
 * canonical once parsed: prefixes without host bits, ports sorted and
 * disjoint, and one protocol number for one name in one family.
 */
static size_t match_hash(const struct mr_rule *r)
{
	size_t h = mr_hash_step(MR_HASH_SEED, &r->kind, sizeof(r->kind));

	if (r->kind == MR_CIDR)
		return mr_hash_end(sel_hash(h, &r->dst));
	h = mr_hash_step(h, &r->proto, sizeof(r->proto));
	if (r->kind == MR_FAILSAFE)
		return mr_hash_end(mr_hash_step(h, &r->ports[0].lo, sizeof(r->ports[0].lo)));
	h = sel_hash(sel_hash(h, &r->src), &r->dst);
	h = mr_hash_step(h, &r->sport, sizeof(r->sport));
	h = mr_hash_step(h, r->ports, (size_t)r->nports * sizeof(r->ports[0]));
	return mr_hash_end(h);
}

bool mr_rule_same_match(const struct mr_rule *a, const struct mr_rule *b)
{
	if (a->kind != b->kind)
		return false;
	if (a->kind == MR_CIDR)
		return pfx_same(&a->dst.p, &b->dst.p);
	if (a->kind == MR_FAILSAFE)
		return a->proto == b->proto && a->ports[0].lo == b->ports[0].lo;
	return sel_same(&a->src, &b->src) && sel_same(&a->dst, &b->dst) &&
	       a->proto == b->proto && a->sport == b->sport && a->nports == b->nports &&
	       !memcmp(a->ports, b->ports, (size_t)a->nports * sizeof(a->ports[0]));
}

/*
 * The indexes make a 100,000-rule policy linear to read: each is rebuilt
 * in one pass when a change made it stale (mr_policy_touch).
 */
static void policy_touch(const struct mr_policy *cp)
{
	struct mr_policy *p = (struct mr_policy *)cp;

	p->kstale = p->sstale = p->pxstale = true;
}

static void index_segments(struct mr_policy *p)
{
	p->scap = 64;
	while (p->scap < 2 * p->ns + 1)
		p->scap *= 2;
	free(p->sidx);
	p->sidx = malloc(p->scap * sizeof(long));
	memset(p->sidx, 0xff, p->scap * sizeof(long));
	for (size_t i = 0; i < p->ns; i++) {
		size_t h = mr_hash_bytes(p->s[i].name, strlen(p->s[i].name)) & (p->scap - 1);

		while (p->sidx[h] >= 0)
			h = (h + 1) & (p->scap - 1);
		p->sidx[h] = (long)i;
	}
	p->sstale = false;
}

/* After appending segment n: add it to the name index, or mark it stale. */
static void segment_index_add(struct mr_policy *p, size_t n)
{
	size_t h;

	if (!p->sidx || p->sstale || 2 * (p->ns + 1) > p->scap) {
		p->sstale = true;
		return;
	}
	for (h = mr_hash_bytes(p->s[n].name, strlen(p->s[n].name)) & (p->scap - 1); p->sidx[h] >= 0;
	     h = (h + 1) & (p->scap - 1))
		;
	p->sidx[h] = (long)n;
}

static size_t pfx_hash(const struct mr_pfx *x)
{
	const unsigned char *b = (const unsigned char *)x;
	size_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < sizeof(*x); i++)
		h = (h ^ b[i]) * 1099511628211ULL;
	return h ^ (h >> 29);
}

static void pfx_slot_put(struct mr_policy *p, size_t seg, size_t k)
{
	size_t h = pfx_hash(&p->s[seg].p[k]) & (p->pxcap - 1);

	while (p->pxidx[h] >= 0)
		h = (h + 1) & (p->pxcap - 1);
	p->pxidx[h] = (long long)seg << 32 | (long long)k;
}

/* Every segment prefix by value, so `segment add` finds an owner in O(1). */
static void index_prefixes(struct mr_policy *p)
{
	size_t n = 0;

	for (size_t i = 0; i < p->ns; i++)
		n += p->s[i].n;
	p->pxcap = 64;
	while (p->pxcap < 2 * n + 1)
		p->pxcap *= 2;
	free(p->pxidx);
	p->pxidx = malloc(p->pxcap * sizeof(*p->pxidx));
	memset(p->pxidx, 0xff, p->pxcap * sizeof(*p->pxidx));
	for (size_t i = 0; i < p->ns; i++)
		for (size_t k = 0; k < p->s[i].n; k++)
			pfx_slot_put(p, i, k);
	p->pxn = n;
	p->pxstale = false;
}

/* The segment holding prefix x, or -1. */
static long prefix_owner(struct mr_policy *p, const struct mr_pfx *x)
{
	size_t h;

	if (!p->pxidx || p->pxstale)
		index_prefixes(p);
	for (h = pfx_hash(x) & (p->pxcap - 1); p->pxidx[h] >= 0; h = (h + 1) & (p->pxcap - 1)) {
		long seg = (long)(p->pxidx[h] >> 32);
		size_t k = (size_t)(p->pxidx[h] & 0xffffffff);

		if (!memcmp(&p->s[seg].p[k], x, sizeof(*x)))
			return seg;
	}
	return -1;
}

/* After appending prefix k to segment seg: index it, or mark the index stale. */
static void prefix_index_add(struct mr_policy *p, size_t seg, size_t k)
{
	if (!p->pxidx || p->pxstale || 2 * (p->pxn + 1) + 1 > p->pxcap) {
		p->pxstale = true;
		return;
	}
	pfx_slot_put(p, seg, k);
	p->pxn++;
}

struct mr_segment *mr_segment_find(const struct mr_policy *cp, const char *name)
{
	struct mr_policy *p = (struct mr_policy *)cp;
	size_t h;

	if (!p->sidx || p->sstale)
		index_segments(p);
	for (h = mr_hash_bytes(name, strlen(name)) & (p->scap - 1); p->sidx[h] >= 0; h = (h + 1) & (p->scap - 1))
		if (!strcmp(p->s[p->sidx[h]].name, name))
			return &p->s[p->sidx[h]];
	return NULL;
}

static void index_rules(struct mr_policy *p)
{
	p->kcap = 64;
	while (p->kcap < 2 * p->nr + 1)
		p->kcap *= 2;
	free(p->kidx);
	p->kidx = malloc(p->kcap * sizeof(long));
	memset(p->kidx, 0xff, p->kcap * sizeof(long));
	if (!p->ididx)
		p->ididx = malloc(MSEG_MAX_RULE_IDS * sizeof(long));
	memset(p->ididx, 0, MSEG_MAX_RULE_IDS * sizeof(long));
	for (size_t i = 0; i < p->nr; i++) {
		size_t h;

		h = match_hash(&p->r[i]) & (p->kcap - 1);
		while (p->kidx[h] >= 0)
			h = (h + 1) & (p->kcap - 1);
		p->kidx[h] = (long)i;
		if (p->r[i].id < MSEG_MAX_RULE_IDS)
			p->ididx[p->r[i].id] = (long)i + 1;
	}
	p->kstale = false;
}

static struct mr_rule *find_match(struct mr_policy *p, const struct mr_rule *r)
{
	size_t h;

	if (!p->kidx || p->kstale)
		index_rules(p);
	for (h = match_hash(r) & (p->kcap - 1); p->kidx[h] >= 0; h = (h + 1) & (p->kcap - 1)) {
		struct mr_rule *c = &p->r[p->kidx[h]];

		if (mr_rule_same_match(c, r))
			return c;
	}
	return NULL;
}

static struct mr_rule *find_id(struct mr_policy *p, __u32 id)
{
	if (!p->kidx || p->kstale)
		index_rules(p);
	return id && id < MSEG_MAX_RULE_IDS && p->ididx[id] ? &p->r[p->ididx[id] - 1] : NULL;
}

const struct mr_rule *mr_rule_by_id(const struct mr_policy *p, __u32 id)
{
	if (id >= MR_FAILSAFE_ID0) {
		const struct mr_rule *fs;
		int n = mr_failsafe_rules(p, &fs);

		return id < MR_FAILSAFE_ID0 + (__u32)n ? &fs[id - MR_FAILSAFE_ID0] : NULL;
	}
	return find_id((struct mr_policy *)p, id);
}

/* After appending rule r (index n): add it to the indexes, or mark them stale. */
static void index_add(struct mr_policy *p, size_t n)
{
	size_t h;

	if (!p->kidx || p->kstale || 2 * (p->nr + 1) > p->kcap) {
		p->kstale = true;
		return;
	}
	h = match_hash(&p->r[n]) & (p->kcap - 1);
	while (p->kidx[h] >= 0)
		h = (h + 1) & (p->kcap - 1);
	p->kidx[h] = (long)n;
	if (p->r[n].id < MSEG_MAX_RULE_IDS)
		p->ididx[p->r[n].id] = (long)n + 1;
}

/* Family of a fixed selector, 0 for any and segments. */
static int sel_family(const struct mr_sel *s)
{
	return s->kind == MR_SEL_PFX ? s->p.family : 0;
}

/* --audit, the one option without a value: taken where it stands. */
static bool take_audit(struct opts *o, bool *audit)
{
	if (mr_failed() || o->i >= o->argc || strcmp(o->argv[o->i], "--audit"))
		return false;
	o->i++;
	*audit = true;
	return true;
}

/* The options rules and CIDR rules share: action, audit, priority, comment, id. */
static bool parse_common_opts(struct mr_rule *r, const char *action, bool audit,
			      const char *prio, const char *comment, const char *id)
{
	unsigned long long n;

	if (*action) {
		int a = mr_action_num(action);

		if (a < 0)
			return mr_err("invalid --action: '%s' (expected allow, deny or log)", action),
			       false;
		r->action = (__u8)a;
	}
	if (audit && r->action != MSEG_ACT_DENY)
		return mr_err("--audit applies to --action deny (it passes the deny as a would-deny)"),
		       false;
	r->audit = audit;
	if (prio) {
		if (!mr_uint(prio, 4294967295ULL, &n))
			return mr_err("invalid --priority: '%s' (expected an integer 0..4294967295)", prio),
			       false;
		r->priority = (__u32)n;
		r->prio_given = true;
	}
	if (comment) {
		if (strlen(comment) > MR_COMMENT_MAX)
			return mr_err("--comment is longer than %d characters", MR_COMMENT_MAX),
			       false;
		/* a newline would split the statement `mseg save` writes */
		for (const char *c = comment; *c; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				return mr_err("--comment holds a control character"), false;
		snprintf(r->comment, sizeof(r->comment), "%s", comment);
		r->comment_given = true;
	}
	if (id) {
		if (!mr_uint(id, MR_RULE_ID_MAX, &n) || !n)
			return mr_err("invalid --id: '%s' (expected an integer 1..%d; %d..%d are the failsafes')",
				      id, MR_RULE_ID_MAX, MR_FAILSAFE_ID0, MSEG_MAX_RULE_IDS - 1),
			       false;
		r->id = (__u32)n;
	}
	return true;
}

/* rule add|del options. del takes only selectors. */
static bool parse_rule_opts(int argc, char **argv, const char *cmd, struct mr_rule *r)
{
	static const char *const known[] = { "--src",    "--dst",     "--sport",
					      "--dport",  "--proto",   "--action",
					      "--priority", "--comment", "--id",
					      NULL };
	struct opts o = { argc, argv, 0 };
	const char *src = "", *dst = "", *sport = "0", *dport = "", *proto = "any",
		   *action = "", *prio = NULL, *comment = NULL, *id = NULL, *opt, *val;
	char optbuf[64];
	unsigned long long n;
	bool audit = false;
	int fam;

	memset(r, 0, sizeof(*r));
	r->kind = MR_RULE;
	r->priority = MR_DEFAULT_PRIORITY;
	for (bool flag; (flag = take_audit(&o, &audit)) ||
			next_opt(&o, cmd, "mseg rule", known, false, &opt, &val, optbuf, sizeof(optbuf));) {
		if (flag)
			continue;
		if (!strcmp(opt, "--src"))
			src = val;
		else if (!strcmp(opt, "--dst"))
			dst = val;
		else if (!strcmp(opt, "--sport"))
			sport = val;
		else if (!strcmp(opt, "--dport"))
			dport = val;
		else if (!strcmp(opt, "--proto"))
			proto = val;
		else if (!strcmp(opt, "--action"))
			action = val;
		else if (!strcmp(opt, "--priority"))
			prio = val;
		else if (!strcmp(opt, "--comment"))
			comment = val;
		else
			id = val;
	}
	if (mr_failed())
		return false;
	if (!*src)
		return mr_err("%s: missing --src", cmd), false;
	if (!*dst)
		return mr_err("%s: missing --dst", cmd), false;
	if (!strcmp(cmd, "add") && !*action)
		return mr_err("add: missing --action (allow, deny or log)"), false;
	if (!strcmp(cmd, "del") && (*action || audit || prio || comment || id))
		return mr_err("del: give the rule's id or only its selectors (--src --dst --proto --sport --dport)"),
		       false;
	if (!parse_sel("--src", src, &r->src) || !parse_sel("--dst", dst, &r->dst))
		return false;
	if (sel_family(&r->src) && sel_family(&r->dst) &&
	    sel_family(&r->src) != sel_family(&r->dst))
		return mr_err("--src and --dst must be the same address family"), false;
	fam = sel_family(&r->src) ? sel_family(&r->src) : sel_family(&r->dst);
	if (!mr_uint(sport, 65535, &n))
		return mr_err("invalid --sport: '%s' (expected an integer 0..65535)", sport),
		       false;
	r->sport = (__u16)n;
	if (*dport && !parse_ports(dport, r))
		return false;
	r->proto = mr_proto_parse(proto);
	if (r->proto == -2)
		return mr_err("unknown --proto: '%s' (expected tcp, udp, icmp, icmpv6, any or a number 1..255)",
			      proto),
		       false;
	if (r->proto == MR_PROTO_ICMP && fam)
		r->proto = fam == 4 ? 1 : 58;
	if (r->proto == 58 && !strcmp(proto, "icmpv6") && fam == 4)
		return mr_err("--proto icmpv6 needs IPv6 addresses (use icmp)"), false;
	if (r->sport && !r->nports)
		return mr_err("--sport needs --dport as well: %s", rule_shapes), false;
	if ((r->sport || r->nports) && r->proto != 6 && r->proto != 17)
		return mr_err("ports need --proto tcp or udp (not %s): %s", proto, rule_shapes),
		       false;
	return parse_common_opts(r, action, audit, prio, comment, id);
}

/* cidr add|del: the seed's prefix rule (docs/policy.md: two arms). */
static bool parse_cidr_opts(int argc, char **argv, const char *cmd, struct mr_rule *r)
{
	static const char *const known[] = { "--action", "--priority", "--cidr",
					      "--comment", "--id", NULL };
	struct opts o = { argc, argv, 0 };
	const char *cidr = NULL, *action = "", *prio = NULL, *comment = NULL,
		   *id = NULL, *opt, *val;
	char optbuf[64];
	bool audit = false;

	memset(r, 0, sizeof(*r));
	r->kind = MR_CIDR;
	r->priority = MR_DEFAULT_PRIORITY;
	r->proto = MR_PROTO_ANY;
	for (bool flag; (flag = take_audit(&o, &audit)) ||
			next_opt(&o, cmd, "mseg-cidr", known, true, &opt, &val, optbuf, sizeof(optbuf));) {
		if (flag)
			continue;
		if (!*opt || !strcmp(opt, "--cidr")) {
			if (cidr)
				return mr_err("%s: one CIDR at a time (got '%s' and '%s')",
					      cmd, cidr, val),
				       false;
			cidr = val;
		} else if (!strcmp(opt, "--action"))
			action = val;
		else if (!strcmp(opt, "--priority"))
			prio = val;
		else if (!strcmp(opt, "--comment"))
			comment = val;
		else
			id = val;
	}
	if (mr_failed())
		return false;
	if (!cidr)
		return mr_err("%s: missing CIDR (e.g. 10.0.0.0/8 or 2001:db8::/32)", cmd), false;
	if (!strcmp(cmd, "del") && (*action || audit))
		return mr_err("del: --action is not a selector: give only the CIDR"), false;
	if (!strcmp(cmd, "del") && prio)
		return mr_err("del: --priority is not a selector: give only the CIDR"), false;
	if (!strcmp(cmd, "add") && !*action)
		return mr_err("add: missing --action (allow, deny or log)"), false;
	if (!mr_pfx_parse(cidr, &r->dst.p))
		return false;
	r->dst.kind = MR_SEL_PFX;
	r->src = r->dst;
	return parse_common_opts(r, action, audit, prio, comment, id);
}

static void say(char *msg, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void say(char *msg, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!msg)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, len, fmt, ap);
	va_end(ap);
}

static void rule_add(struct mr_policy *p, struct mr_rule *r, char *msg, size_t len)
{
	struct mr_rule *cur = find_match(p, r), *other;
	const char *what = r->kind == MR_CIDR ? "cidr" : "rule";
	char key[1024] = "";

	/* the text is for messages only: a file's statements say nothing */
	if (msg)
		mr_rule_match_key(r, key, sizeof(key));
	if (r->id && (other = find_id(p, r->id)) && other != cur) {
		char k2[1024];

		mr_rule_match_key(other, k2, sizeof(k2));
		mr_err("duplicate rule id %u: it is %s's (line %ld)", r->id, k2, other->line);
		return;
	}
	if (cur && p->replace) {
		/* a whole policy: the later line is the rule, as written */
		__u32 id = r->id ? r->id : cur->id;

		*cur = *r;
		cur->id = id;
		policy_touch(p);
		return;
	}
	if (cur) {
		bool same = cur->action == r->action && cur->audit == r->audit &&
			    (!r->prio_given || cur->priority == r->priority) &&
			    (!r->comment_given || !strcmp(cur->comment, r->comment)) &&
			    (!r->id || r->id == cur->id);

		if (same) {
			say(msg, len, "%s unchanged: %s: %s", what, key,
			    mr_action_names[mr_rule_action(cur)]);
			return;
		}
		cur->action = r->action;
		cur->audit = r->audit;
		if (r->prio_given)
			cur->priority = r->priority;
		if (r->comment_given)
			memcpy(cur->comment, r->comment, sizeof(cur->comment));
		if (r->id && r->id != cur->id) {
			cur->id = r->id;
			policy_touch(p);
		}
		cur->line = r->line;
		say(msg, len, "%s updated: %s: %s", what, key,
		    mr_action_names[mr_rule_action(cur)]);
		return;
	}
	p->r = mr_grow(p->r, &p->capr, p->nr, sizeof(*p->r));
	p->r[p->nr] = *r;
	index_add(p, p->nr);
	p->nr++;
	say(msg, len, "%s added: %s: %s", what, key, mr_action_names[mr_rule_action(r)]);
}

static void rule_del(struct mr_policy *p, struct mr_rule *r, char *msg, size_t len)
{
	struct mr_rule *cur = r->id ? find_id(p, r->id) : find_match(p, r);
	char key[1024];

	if (cur && cur->kind != r->kind && !r->id)
		cur = NULL;
	if (!cur) {
		mr_rule_match_key(r, key, sizeof(key));
		if (r->id)
			mr_err("no such rule: id %u", r->id);
		else if (r->kind == MR_CIDR)
			mr_err("no such CIDR rule: %s", key);
		else
			mr_err("no such rule: %s", key);
		return;
	}
	mr_rule_match_key(cur, key, sizeof(key));
	say(msg, len, "%s deleted: %s", cur->kind == MR_CIDR ? "cidr" : "rule", key);
	*cur = p->r[--p->nr];
	policy_touch(p);
}

/* Refuse (true) when rules name segment s, naming them; `why` prefixes the message. */
static bool segment_in_use(const struct mr_policy *p, const struct mr_segment *s, const char *why)
{
	char ids[256] = "";
	size_t o = 0;

	for (size_t i = 0; i < p->nr && o + 12 < sizeof(ids); i++)
		if ((p->r[i].src.kind == MR_SEL_SEG && !strcmp(p->r[i].src.name, s->name)) ||
		    (p->r[i].dst.kind == MR_SEL_SEG && !strcmp(p->r[i].dst.name, s->name)))
			o += (size_t)snprintf(ids + o, sizeof(ids) - o, "%s%u", o ? ", " : "",
					      p->r[i].id);
	if (!o)
		return false;
	mr_err("segment %s is used by rule%s %s: %sdelete or change %s first", s->name,
	       strchr(ids, ',') ? "s" : "", ids, why, strchr(ids, ',') ? "them" : "it");
	return true;
}

static void segment_drop(struct mr_policy *p, struct mr_segment *s)
{
	free(s->p);
	*s = p->s[--p->ns];
	policy_touch(p);
}

static void segment_stmt(struct mr_policy *p, int argc, char **argv, long line,
			 char *msg, size_t len)
{
	const char *cmd = argc > 1 ? argv[1] : "";
	struct mr_segment *s;
	struct mr_pfx pfx;
	char buf[64];
	int added = 0;

	if (strcmp(cmd, "add") && strcmp(cmd, "del"))
		return mr_err("segment: expected add or del, not '%s'", cmd);
	if (argc < 3)
		return mr_err("segment %s: missing NAME", cmd);
	if (!valid_name(argv[2]))
		return mr_err("invalid segment name '%s' (a letter, then letters, digits, '_' or '-'; not 'any'; at most %d)",
			      argv[2], MR_NAME_MAX - 1);
	s = mr_segment_find(p, argv[2]);
	if (!strcmp(cmd, "add")) {
		if (argc < 4)
			return mr_err("segment add %s: give one or more prefixes or addresses", argv[2]);
		if (!s) {
			p->s = mr_grow(p->s, &p->caps, p->ns, sizeof(*p->s));
			s = &p->s[p->ns++];
			memset(s, 0, sizeof(*s));
			snprintf(s->name, sizeof(s->name), "%s", argv[2]);
			s->line = line;
			segment_index_add(p, p->ns - 1);
		}
		for (int i = 3; i < argc; i++) {
			struct mr_sel sel;
			long owner;

			if (!parse_sel("segment", argv[i], &sel))
				return;
			if (sel.kind != MR_SEL_PFX)
				return mr_err("segment add %s: '%s' is not an address or prefix",
					      argv[2], argv[i]);
			pfx = sel.p;
			owner = prefix_owner(p, &pfx);
			if (owner >= 0 && &p->s[owner] != s)
				return mr_err("%s is already in segment %s", mr_pfx_text(&pfx, buf),
					      p->s[owner].name);
			if (owner >= 0)
				continue;
			s->p = mr_grow(s->p, &s->cap, s->n, sizeof(*s->p));
			s->p[s->n++] = pfx;
			prefix_index_add(p, (size_t)(s - p->s), s->n - 1);
			added++;
		}
		say(msg, len, "segment %s: %d prefix%s added, %zu in all", s->name, added,
		    added == 1 ? "" : "es", s->n);
		return;
	}
	if (!s)
		return mr_err("no such segment: %s", argv[2]);
	if (argc == 3) {
		if (segment_in_use(p, s, ""))
			return;
		segment_drop(p, s);
		say(msg, len, "segment %s deleted", argv[2]);
		return;
	}
	for (int i = 3; i < argc; i++) {
		size_t k;

		if (!mr_pfx_parse(strchr(argv[i], '/') ? argv[i] : "", &pfx))
			return;
		for (k = 0; k < s->n; k++)
			if (!memcmp(&s->p[k], &pfx, sizeof(pfx)))
				break;
		if (k == s->n)
			return mr_err("segment %s has no prefix %s", s->name, argv[i]);
		s->p[k] = s->p[--s->n];
		p->pxstale = true;
	}
	if (!s->n) {
		/* a segment without prefixes is no segment: its last one goes with it */
		if (segment_in_use(p, s, "its last prefix cannot go (that deletes the segment); "))
			return;
		segment_drop(p, s);
		say(msg, len, "segment %s: its last prefix deleted, and the segment with it",
		    argv[2]);
		return;
	}
	say(msg, len, "segment %s: %d prefix%s deleted, %zu left", s->name, argc - 3,
	    argc == 4 ? "" : "es", s->n);
}

void mr_statement(struct mr_policy *p, int argc, char **argv, long line,
		  char *msg, size_t len)
{
	struct mr_rule r;
	unsigned long long n;
	int legacy;

	if (msg)
		msg[0] = 0;
	if (!argc)
		return;
	if (!strcmp(argv[0], "default")) {
		if (argc != 2 || (strcmp(argv[1], "allow") && strcmp(argv[1], "deny")))
			return mr_err("expected 'default allow' or 'default deny'");
		p->def = !strcmp(argv[1], "deny") ? MSEG_ACT_DENY : MSEG_ACT_ALLOW;
		say(msg, len, "default %s", argv[1]);
		return;
	}
	if (!strcmp(argv[0], "segment"))
		return segment_stmt(p, argc, argv, line, msg, len);
	if (!strcmp(argv[0], "failsafe"))
		return mr_failsafe_stmt(p, argc, argv, msg, len);
	if (strcmp(argv[0], "rule") && strcmp(argv[0], "cidr"))
		return mr_err("unknown statement '%s' (expected default, failsafe, segment, rule or cidr)",
			      argv[0]);
	/* `rule --src ...` and `cidr PREFIX ...`: the first ruleset format */
	legacy = argc < 2 || (strcmp(argv[1], "add") && strcmp(argv[1], "del"));
	{
		const char *cmd = legacy ? "add" : argv[1];
		int skip = legacy ? 1 : 2;

		if (!strcmp(cmd, "del") && argv[0][0] == 'r' && argc == 3 &&
		    mr_uint(argv[2], MSEG_MAX_RULE_IDS - 1, &n) && n) {
			if (n >= MR_FAILSAFE_ID0)
				return mr_err("%llu is a failsafe's id, not a rule's: change the failsafes with 'mseg failsafe' (see 'mseg failsafe list')",
					      n);
			memset(&r, 0, sizeof(r));
			r.id = (__u32)n;
			return rule_del(p, &r, msg, len);
		}
		if (argv[0][0] == 'r' ? !parse_rule_opts(argc - skip, argv + skip, cmd, &r) :
					!parse_cidr_opts(argc - skip, argv + skip, cmd, &r))
			return;
		r.line = line;
		if (!strcmp(cmd, "add"))
			rule_add(p, &r, msg, len);
		else
			rule_del(p, &r, msg, len);
	}
}

size_t mr_file_statements;

/* `config KEY VALUE`: words the config command checks; here only their shape. */
static void config_stmt(struct mr_policy *p, int argc, char **argv, long line)
{
	struct mr_config *c;
	size_t i;

	if (argc != 3)
		return mr_err("expected 'config KEY VALUE'");
	if (strlen(argv[1]) >= MR_CONFIG_KEY_MAX || strspn(argv[1], "abcdefghijklmnopqrstuvwxyz_") !=
								 strlen(argv[1]))
		return mr_err("invalid config key '%s'", argv[1]);
	if (strlen(argv[2]) >= MR_CONFIG_VALUE_MAX ||
	    strspn(argv[2], "abcdefghijklmnopqrstuvwxyz0123456789") != strlen(argv[2]))
		return mr_err("invalid config value '%s' for %s", argv[2], argv[1]);
	for (i = 0; i < p->ncfg; i++)
		if (!strcmp(p->cfg[i].key, argv[1]))
			return mr_err("a second 'config %s' line", argv[1]);
	p->cfg = mr_grow(p->cfg, &p->capcfg, p->ncfg + 1, sizeof(*p->cfg));
	c = &p->cfg[p->ncfg++];
	snprintf(c->key, sizeof(c->key), "%s", argv[1]);
	snprintf(c->value, sizeof(c->value), "%s", argv[2]);
	c->line = line;
}

bool mr_parse_file(struct mr_policy *p, const char *path, const char *prefix)
{
	struct mr_input in;
	bool ok;

	/* unreadable input is not bad input: exit 1, as a missing file */
	if (!mr_input_read(path, &in))
		exit(1);
	ok = mr_parse_input(p, &in, prefix);
	mr_input_free(&in);
	return ok;
}

bool mr_parse_input(struct mr_policy *p, struct mr_input *in, const char *prefix)
{
	char *line, *argv[80], buf[MR_LINE_MAX + 1 + 64];
	long lineno = 0;
	size_t len;

	p->replace = !prefix;
	in->pos = 0;
	while ((line = mr_input_line(in, &len))) {
		int argc;

		lineno++;
		if (len > MR_LINE_MAX) {
			mr_err("longer than %d bytes", MR_LINE_MAX);
			break;
		}
		if (memchr(line, 0, len)) {
			mr_err("a NUL byte");
			break;
		}
		snprintf(buf, sizeof(buf), "%s%s%.*s", prefix ? prefix : "", prefix ? " " : "",
			 (int)len, line);
		argc = mr_split(buf, argv, 80);
		if (argc < 0)
			break;
		if (!argc || (prefix && argc == 2) ||
		    (p->config_only && strcmp(argv[0], "config")))
			continue;
		if (!strcmp(argv[0], "default")) {
			if (p->stated_default) {
				mr_err("a second 'default' line");
				break;
			}
			p->stated_default = true;
		}
		if (!prefix && !strcmp(argv[0], "config"))
			config_stmt(p, argc, argv, lineno);
		else
			mr_statement(p, argc, argv, lineno, NULL, 0);
		mr_file_statements++;
		if (mr_failed())
			break;
	}
	p->replace = false;
	if (mr_failed()) {
		fprintf(stderr, "mseg: line %ld: %s\n", lineno, mr_error());
		return false;
	}
	return true;
}

/* Families a selector can match: bit 4 and bit 6. */
static int sel_fams(const struct mr_policy *p, const struct mr_sel *s)
{
	int f = 0;

	if (s->kind == MR_SEL_ANY)
		return 1 << 4 | 1 << 6;
	if (s->kind == MR_SEL_PFX)
		return 1 << s->p.family;
	{
		struct mr_segment *g = mr_segment_find(p, s->name);

		for (size_t i = 0; g && i < g->n; i++)
			f |= 1 << g->p[i].family;
	}
	return f;
}

/*
 * What no statement alone can check: every segment named exists, the two
 * sides of a rule share a family, a one-family side is not paired with a
 * segment of both families, ids are unique. Errors name the rule's line.
 */
bool mr_policy_check(struct mr_policy *p)
{
	for (size_t i = 0; i < p->nr && !mr_failed(); i++) {
		struct mr_rule *r = &p->r[i];
		const struct mr_sel *side[2] = { &r->src, &r->dst };
		const char *opt[2] = { "--src", "--dst" };
		int fs, fd;

		if (r->kind == MR_CIDR)
			continue;
		for (int k = 0; k < 2; k++)
			if (side[k]->kind == MR_SEL_SEG &&
			    !mr_segment_find(p, side[k]->name)) {
				mr_err("line %ld: unknown segment '%s' for %s (add it with 'segment add %s PREFIX...')",
				       r->line, side[k]->name, opt[k], side[k]->name);
				break;
			}
		if (mr_failed())
			break;
		fs = sel_fams(p, &r->src);
		fd = sel_fams(p, &r->dst);
		for (int k = 0; k < 2; k++) {
			int mine = k ? fd : fs, other = k ? fs : fd;
			const struct mr_sel *os = side[!k];

			if (side[k]->kind == MR_SEL_SEG && mine == (1 << 4 | 1 << 6) &&
			    os->kind == MR_SEL_PFX)
				mr_err("line %ld: segment %s holds IPv4 and IPv6 prefixes, but %s %s is IPv%d only: split the segment by family",
				       r->line, side[k]->name, opt[!k],
				       mr_sel_text(os, (char[64]){ 0 }), os->p.family);
			else if (side[k]->kind == MR_SEL_SEG && os->kind == MR_SEL_SEG &&
				 mine && other && !(mine & other))
				mr_err("line %ld: segments %s and %s share no address family: the rule could never match",
				       r->line, r->src.name, r->dst.name);
		}
		if (!mr_failed() && r->proto == 58 && !(fs & fd & 1 << 6) && (fs & fd))
			mr_err("line %ld: --proto icmpv6 needs IPv6 addresses (use icmp)", r->line);
	}
	{
		static long seen[MSEG_MAX_RULE_IDS];

		memset(seen, 0, sizeof(seen));
		for (size_t i = 0; i < p->nr && !mr_failed(); i++) {
			__u32 id = p->r[i].id;

			if (!id || id >= MSEG_MAX_RULE_IDS)
				continue;
			if (seen[id])
				mr_err("line %ld: duplicate rule id %u (line %ld has it too)",
				       p->r[i].line, id, p->r[seen[id] - 1].line);
			seen[id] = (long)i + 1;
		}
	}
	return !mr_failed();
}

/*
 * Ids are stable: a rule without one takes the id of the same rule in
 * `old` (the policy in force), else the lowest free id.
 */
void mr_assign_ids(struct mr_policy *p, const struct mr_policy *old)
{
	static unsigned char used[MSEG_MAX_RULE_IDS];
	__u32 next = 1;

	memset(used, 0, sizeof(used));
	for (size_t i = 0; i < p->nr; i++)
		used[p->r[i].id] = 1;
	for (size_t i = 0; old && i < p->nr; i++) {
		struct mr_rule *o;

		if (p->r[i].id)
			continue;
		o = find_match((struct mr_policy *)old, &p->r[i]);
		if (o && o->kind == p->r[i].kind && !used[o->id]) {
			p->r[i].id = o->id;
			used[o->id] = 1;
		}
	}
	for (size_t i = 0; i < p->nr; i++) {
		if (p->r[i].id)
			continue;
		while (next <= MR_RULE_ID_MAX && used[next])
			next++;
		if (next > MR_RULE_ID_MAX) {
			mr_err("more than %d rules", MR_RULE_ID_MAX);
			return;
		}
		p->r[i].id = next;
		used[next] = 1;
	}
}

static int cmp_rule_id(const void *a, const void *b)
{
	const struct mr_rule *x = a, *y = b;

	return (x->id > y->id) - (x->id < y->id);
}

/*
 * default, segments (several lines for a long one), the failsafes, then
 * rules by id, each with its mseg_source index (bpf/mseg_abi.h), in index
 * order.
 */
bool mr_policy_lines(const struct mr_policy *p,
		     void (*fn)(void *ctx, __u32 index, const char *line), void *ctx)
{
	char line[MSEG_SOURCE_LINE + 64], buf[64];
	__u32 index = MSEG_SRC_SEGMENTS;

	fn(ctx, MSEG_SRC_DEFAULT, p->def == MSEG_ACT_DENY ? "default deny" : "default allow");
	for (size_t i = 0; i < p->ns; i++) {
		const struct mr_segment *s = &p->s[i];
		size_t k = 0;

		while (k < s->n) {
			size_t o = (size_t)snprintf(line, sizeof(line), "segment add %s", s->name);

			while (k < s->n && o + 48 < MSEG_SOURCE_LINE)
				o += (size_t)snprintf(line + o, sizeof(line) - o, " %s",
						      mr_pfx_text(&s->p[k++], buf));
			fn(ctx, index++, line);
		}
	}
	mr_failsafe_statement(p, line, sizeof(line));
	fn(ctx, MR_SRC_FAILSAFE, line);
	/*
	 * a rule is ~500 bytes: sorting 100,000 of them by copying took a
	 * third of a big apply, and a policy read from a file is in id order
	 */
	for (size_t i = 1; i < p->nr; i++) {
		if (p->r[i - 1].id > p->r[i].id) {
			qsort(p->r, p->nr, sizeof(*p->r), cmp_rule_id);
			policy_touch(p);
			break;
		}
	}
	for (size_t i = 0; i < p->nr; i++) {
		mr_rule_text(&p->r[i], true, line, sizeof(line));
		if (strlen(line) >= MSEG_SOURCE_LINE) {
			mr_err("line %ld: the rule is longer than %d characters", p->r[i].line,
			       MSEG_SOURCE_LINE - 1);
			return false;
		}
		fn(ctx, MSEG_SRC_RULES + p->r[i].id, line);
	}
	return true;
}
