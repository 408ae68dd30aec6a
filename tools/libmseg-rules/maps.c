// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The policy in the pinned maps: mseg_source holds each rule set's
 * statements, mseg_ident, mseg_rules and mseg_rules_hash their compiled form
 * (the hash holds the rule entries whose prefix is the whole key, the trie
 * the others), mseg_rule_hits the per-CPU counters by rule id.
 *
 * Between commands both sets hold the policy in force: the active one, and
 * the inactive one as its copy. A change writes into the inactive set only
 * the entries that differ from what that set holds, switches to it, then
 * brings the other set up to date the same way (mr_sync_set). What a set
 * holds is known from its statements while its seal (the entry at
 * MSEG_SRC_SEAL) names them: every writer deletes the seal first and writes
 * it last. A set whose seal does not match (an interrupted write, an older
 * compiler, a hand edit) is emptied and written whole.
 */
#include <errno.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "hash.h"
#include "maps.h"
#include "mseg_batch.h"
#include "mseg_pinned.h"

int mr_open_maps(struct mr_maps *m)
{
	m->ident = mseg_open_map("mseg_ident", sizeof(struct mseg_ident_key),
				 sizeof(struct mseg_ident_val), NULL);
	m->rules = mseg_open_map("mseg_rules", sizeof(struct mseg_rule_key),
				 sizeof(struct mseg_rule_val), NULL);
	m->rules_hash = mseg_open_map("mseg_rules_hash", sizeof(struct mseg_rule_key),
				      sizeof(struct mseg_rule_val), NULL);
	m->hits = mseg_open_map("mseg_rule_hits", sizeof(__u32),
				sizeof(struct mseg_rule_hits), NULL);
	m->source = mseg_open_map("mseg_source", sizeof(struct mseg_source_key),
				  sizeof(struct mseg_source_val), NULL);
	m->config = mseg_open_map("mseg_config", sizeof(__u32),
				  sizeof(struct mseg_config), NULL);
	return m->ident < 0 || m->rules < 0 || m->rules_hash < 0 || m->hits < 0 ||
			       m->source < 0 || m->config < 0 ?
		       -1 :
		       0;
}

/* "# sealed ...": the seal a set holding these statements carries. */
static void seal_text(const struct mr_line *l, size_t n, char *buf, size_t len)
{
	unsigned long long h = 1469598103934665603ULL;

	for (size_t i = 0; i < n; i++) {
		const unsigned char *p = (const unsigned char *)&l[i].index;

		for (size_t b = 0; b < sizeof(l[i].index); b++)
			h = (h ^ p[b]) * 1099511628211ULL;
		for (p = (const unsigned char *)l[i].text; *p; p++)
			h = (h ^ *p) * 1099511628211ULL;
		h = (h ^ 0xff) * 1099511628211ULL;
	}
	snprintf(buf, len, "# sealed: compiled by mseg-ruleset v%d from statements %016llx",
		 MR_COMPILER_VERSION, h);
}

static int collect_fn(void *ctx, const void *keys, const void *vals, __u32 n)
{
	struct mr_set *s = ctx;
	const struct mseg_source_key *k = keys;
	const struct mseg_source_val *v = vals;

	for (__u32 i = 0; i < n; i++) {
		struct mr_set *t;

		if (k[i].set > 1)
			continue;
		t = &s[k[i].set];
		if (k[i].index == MSEG_SRC_SEAL) {
			memcpy(t->seal, v[i].line, MSEG_SOURCE_LINE);
			t->seal[MSEG_SOURCE_LINE - 1] = 0;
			t->has_seal = true;
			continue;
		}
		t->l = mr_grow(t->l, &t->cap, t->n, sizeof(*t->l));
		t->l[t->n].index = k[i].index;
		memcpy(t->l[t->n].text, v[i].line, MSEG_SOURCE_LINE);
		t->l[t->n].text[MSEG_SOURCE_LINE - 1] = 0;
		t->n++;
	}
	return 0;
}

static int cmp_line(const void *a, const void *b)
{
	const struct mr_line *x = a, *y = b;

	return (x->index > y->index) - (x->index < y->index);
}

/* Both sets' statements, in one walk of mseg_source. */
bool mr_read_sets(const struct mr_maps *m, struct mr_set s[2])
{
	struct mseg_batch b;
	bool ok = true;

	memset(s, 0, 2 * sizeof(*s));
	s[0].set = 0;
	s[1].set = 1;
	if (mseg_batch_init(&b, sizeof(struct mseg_source_key),
			    sizeof(struct mseg_source_val), 4096))
		return false;
	if (mseg_batch_foreach(m->source, "mseg_source", MSEG_MAX_SOURCE, &b, collect_fn, s))
		ok = false;
	mseg_batch_free(&b);
	for (int i = 0; i < 2; i++) {
		char want[MSEG_SOURCE_LINE];

		qsort(s[i].l, s[i].n, sizeof(*s[i].l), cmp_line);
		seal_text(s[i].l, s[i].n, want, sizeof(want));
		s[i].sealed = s[i].has_seal && !strcmp(s[i].seal, want);
	}
	return ok;
}

void mr_set_free(struct mr_set *s)
{
	free(s->l);
	s->l = NULL;
	s->n = s->cap = 0;
}

/* The statements of a set, applied in index order to an empty policy. */
bool mr_set_policy(const struct mr_set *s, struct mr_policy *p)
{
	char line[MSEG_SOURCE_LINE], *argv[80];

	mr_policy_init(p);
	for (size_t i = 0; i < s->n; i++) {
		int argc;

		memcpy(line, s->l[i].text, sizeof(line));
		argc = mr_split(line, argv, 80);
		if (argc > 0)
			mr_statement(p, argc, argv, (long)i + 1, NULL, 0);
		if (mr_failed()) {
			fprintf(stderr, "mseg: the stored policy (mseg_source, set %u, statement %zu) is unreadable: %s\n",
				s->set, i + 1, mr_error());
			return false;
		}
	}
	return true;
}

bool mr_read_policy(const struct mr_maps *m, __u8 set, struct mr_policy *p)
{
	struct mr_set s[2];
	bool ok;

	mr_policy_init(p);
	ok = mr_read_sets(m, s) && mr_set_policy(&s[set & 1], p);
	mr_set_free(&s[0]);
	mr_set_free(&s[1]);
	return ok;
}

struct lines {
	struct mr_line *l;
	size_t n, cap;
};

static void add_line(void *ctx, __u32 index, const char *text)
{
	struct lines *l = ctx;

	/* the default lives in mseg_config, switched with the set */
	if (index == MSEG_SRC_DEFAULT)
		return;
	l->l = mr_grow(l->l, &l->cap, l->n, sizeof(*l->l));
	memset(&l->l[l->n], 0, sizeof(l->l[0]));
	l->l[l->n].index = index;
	snprintf(l->l[l->n].text, MSEG_SOURCE_LINE, "%s", text);
	l->n++;
}

/*
 * The statements of p as mseg_source entries, the default left out (it is
 * mseg_config's); false (mr_err) if one is too long.
 */
bool mr_target_lines(const struct mr_policy *p, struct mr_target *t)
{
	struct lines l = { 0 };

	if (!mr_policy_lines(p, add_line, &l)) {
		free(l.l);
		return false;
	}
	t->l = l.l;
	t->n = l.n;
	return true;
}

bool mr_same_lines(const struct mr_line *a, size_t na, const struct mr_line *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (a[i].index != b[i].index || strcmp(a[i].text, b[i].text))
			return false;
	return true;
}

/* Every key of a map whose set byte (at set_off) is set. */
void *mr_keys_of_set(int fd, size_t ksz, size_t set_off, __u8 set, size_t *n)
{
	size_t cap = 0, cnt = 0;
	char *keys = NULL, cur[64], next[64];
	void *prev = NULL;

	while (!bpf_map_get_next_key(fd, prev, next)) {
		if ((__u8)next[set_off] == set) {
			keys = mr_grow(keys, &cap, cnt, ksz);
			memcpy(keys + cnt * ksz, next, ksz);
			cnt++;
		}
		memcpy(cur, next, ksz);
		prev = cur;
	}
	*n = cnt;
	return keys;
}

/* --- writing: through libbpf, or as a bpftool batch script --- */

enum { W_IDENT, W_RULES, W_RULES_HASH, W_SOURCE, W_HITS };

static const struct {
	const char *name;
	size_t ksz, vsz, set_off; /* set_off: where the key holds its rule set */
} wmap[] = {
	[W_IDENT] = { "mseg_ident", sizeof(struct mseg_ident_key), sizeof(struct mseg_ident_val),
		      offsetof(struct mseg_ident_key, set) },
	[W_RULES] = { "mseg_rules", sizeof(struct mseg_rule_key), sizeof(struct mseg_rule_val),
		      offsetof(struct mseg_rule_key, set) },
	[W_RULES_HASH] = { "mseg_rules_hash", sizeof(struct mseg_rule_key),
			   sizeof(struct mseg_rule_val), offsetof(struct mseg_rule_key, set) },
	[W_SOURCE] = { "mseg_source", sizeof(struct mseg_source_key),
		       sizeof(struct mseg_source_val), offsetof(struct mseg_source_key, set) },
	[W_HITS] = { "mseg_rule_hits", sizeof(__u32), sizeof(struct mseg_rule_hits), 0 },
};

static int wmap_fd(const struct mr_maps *m, int map)
{
	switch (map) {
	case W_IDENT:
		return m->ident;
	case W_RULES:
		return m->rules;
	case W_RULES_HASH:
		return m->rules_hash;
	case W_SOURCE:
		return m->source;
	default:
		return m->hits;
	}
}

static void hex(FILE *f, const void *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *b = p;
	char buf[3 * sizeof(struct mseg_source_val)];
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		buf[o++] = ' ';
		buf[o++] = digits[b[i] >> 4];
		buf[o++] = digits[b[i] & 15];
	}
	fwrite(buf, 1, o, f);
}

/*
 * Write (v set) or delete (v NULL) key k of map `map`, with the key's set
 * byte made `set` (the compiler lays entries out for set 0). A libbpf
 * delete of an absent key is no error; a script deletes only keys that
 * exist (bpftool batch stops at the first failing command).
 */
static void w_op(struct mr_writer *w, int map, __u8 set, const void *k, const void *v)
{
	static char dir[400];
	unsigned char key[64];

	if (w->err)
		return;
	memcpy(key, k, wmap[map].ksz);
	if (map != W_HITS)
		key[wmap[map].set_off] = set;
	if (w->f) {
		if (!dir[0])
			mseg_pin_dir(dir, sizeof(dir));
		fprintf(w->f, "map %s pinned %s/%s key hex", v ? "update" : "delete", dir,
			wmap[map].name);
		hex(w->f, key, wmap[map].ksz);
		if (v) {
			fputs(" value hex", w->f);
			hex(w->f, v, wmap[map].vsz);
		}
		fputc('\n', w->f);
		return;
	}
	if (v ? bpf_map_update_elem(wmap_fd(w->m, map), key, v, BPF_ANY) :
		bpf_map_delete_elem(wmap_fd(w->m, map), key)) {
		if (!v && errno == ENOENT)
			return;
		w->err = -errno;
		w->what = wmap[map].name;
	}
}

static void w_line(struct mr_writer *w, __u8 set, __u32 index, const char *text)
{
	struct mseg_source_key k = { .set = set, .index = index };
	struct mseg_source_val v;

	memset(&v, 0, sizeof(v));
	snprintf(v.line, sizeof(v.line), "%s", text);
	w_op(w, W_SOURCE, set, &k, &v);
}

/* Delete every entry of set `set` in the policy maps, seal included. */
static void w_clear(struct mr_writer *w, __u8 set)
{
	/* the seal goes first */
	static const int maps[] = { W_SOURCE, W_RULES_HASH, W_RULES, W_IDENT };

	for (size_t m = 0; m < sizeof(maps) / sizeof(maps[0]); m++) {
		size_t n;
		char *k = mr_keys_of_set(wmap_fd(w->m, maps[m]), wmap[maps[m]].ksz,
					 wmap[maps[m]].set_off, set, &n);

		for (size_t i = 0; i < n; i++)
			w_op(w, maps[m], set, k + i * wmap[maps[m]].ksz, NULL);
		free(k);
	}
}

/*
 * The entries of `base` that `tgt` lacks are deleted, those of `tgt` that
 * `base` lacks or holds with another value are written. Entries are
 * (key, value) at stride, the value at voff; both arrays are laid out for
 * set 0.
 */
static void w_delta(struct mr_writer *w, int map, __u8 set, const void *base, size_t nb,
		    const void *tgt, size_t nt, size_t stride, size_t voff)
{
	const char *b = base, *t = tgt;
	size_t ksz = wmap[map].ksz, vsz = wmap[map].vsz;
	struct mr_hash hb, ht;

	mr_hash_init(&hb, nb, base, stride, ksz);
	mr_hash_init(&ht, nt, tgt, stride, ksz);
	for (size_t i = 0; i < nb; i++)
		mr_hash_put(&hb, (long)i);
	for (size_t i = 0; i < nt; i++)
		mr_hash_put(&ht, (long)i);
	for (size_t i = 0; i < nb; i++)
		if (mr_hash_get(&ht, b + i * stride) < 0)
			w_op(w, map, set, b + i * stride, NULL);
	for (size_t i = 0; i < nt; i++) {
		long j = mr_hash_get(&hb, t + i * stride);

		if (j < 0 || memcmp(b + (size_t)j * stride + voff, t + i * stride + voff, vsz))
			w_op(w, map, set, t + i * stride, t + i * stride + voff);
	}
	mr_hash_free(&hb);
	mr_hash_free(&ht);
}

/* The entries of c the hash holds (hashed true), or the trie. */
static struct mr_rule_ent *rule_keys(const struct mr_compiled *c, bool hashed, size_t *n)
{
	struct mr_rule_ent *e = malloc((c->nre ? c->nre : 1) * sizeof(*e));

	*n = 0;
	for (size_t i = 0; e && i < c->nre; i++)
		if (c->re[i].hashed == hashed)
			e[(*n)++] = c->re[i];
	return e;
}

/*
 * The rule entries: those the compiler marked (whole keys, and the single
 * any-protocol entry of a key with one side any) into mseg_rules_hash, the
 * others into the trie (bpf/mseg_maps.h).
 */
static void w_rules_delta(struct mr_writer *w, __u8 set, const struct mr_compiled *base,
			  const struct mr_compiled *c)
{
	static const int maps[] = { W_RULES_HASH, W_RULES };

	for (int m = 0; m < 2; m++) {
		size_t nb, nt;
		struct mr_rule_ent *b = rule_keys(base, m == 0, &nb);
		struct mr_rule_ent *t = rule_keys(c, m == 0, &nt);

		if (!b || !t) {
			if (!w->err) {
				w->err = -ENOMEM;
				w->what = wmap[maps[m]].name;
			}
		} else {
			w_delta(w, maps[m], set, b, nb, t, nt, sizeof(*t),
				offsetof(struct mr_rule_ent, v));
		}
		free(b);
		free(t);
	}
}

/* Statements: both lists are sorted by index. */
static void w_lines_delta(struct mr_writer *w, __u8 set, const struct mr_line *a, size_t na,
			  const struct mr_line *b, size_t nb)
{
	size_t i = 0, j = 0;

	while (i < na || j < nb) {
		if (j == nb || (i < na && a[i].index < b[j].index)) {
			struct mseg_source_key k = { .set = set, .index = a[i++].index };

			w_op(w, W_SOURCE, set, &k, NULL);
		} else if (i == na || b[j].index < a[i].index) {
			w_line(w, set, b[j].index, b[j].text);
			j++;
		} else {
			if (strcmp(a[i].text, b[j].text))
				w_line(w, set, b[j].index, b[j].text);
			i++;
			j++;
		}
	}
}

/*
 * Make set `set` hold target t. `cur` is what its mseg_source holds;
 * `base`, when known, what its compiled maps hold (the compiled form of
 * cur's statements, for set 0): then only the difference is written.
 * Without it the set is emptied and written whole. The seal goes first
 * and comes back last, naming t's statements.
 */
int mr_sync_set(struct mr_writer *w, __u8 set, const struct mr_set *cur,
		const struct mr_compiled *base, const struct mr_target *t)
{
	static const struct mr_compiled none;
	const struct mr_compiled *c = t->c;
	char seal[MSEG_SOURCE_LINE];

	if (base) {
		if (cur->has_seal) {
			struct mseg_source_key k = { .set = set, .index = MSEG_SRC_SEAL };

			w_op(w, W_SOURCE, set, &k, NULL);
		}
	} else {
		w_clear(w, set);
		base = &none;
	}
	w_rules_delta(w, set, base, c);
	w_delta(w, W_IDENT, set, base->id, base->nid, c->id, c->nid, sizeof(*c->id),
		offsetof(struct mr_ident_ent, v));
	if (base == &none)
		w_lines_delta(w, set, NULL, 0, t->l, t->n);
	else
		w_lines_delta(w, set, cur->l, cur->n, t->l, t->n);
	seal_text(t->l, t->n, seal, sizeof(seal));
	w_line(w, set, MSEG_SRC_SEAL, seal);
	if (w->f && (fflush(w->f) || ferror(w->f)))
		w->err = -EIO;
	return w->err;
}

/* Zero the counters of ids that are new or now name another rule. */
/*
 * Zero the hits of ids n ids at once (bpf_map_update_batch: one syscall, not
 * one per id, which an apply of 100,000 new rules felt); element by element
 * where the kernel has no batch update for the map.
 */
static void zero_hits_batch(struct mr_writer *w, const __u32 *ids, __u32 n, int ncpu)
{
	struct mseg_rule_hits *z = calloc((size_t)n * (size_t)ncpu, sizeof(*z));
	__u32 count = n;

	if (w->err)
		goto out;
	if (!z) {
		w->err = -ENOMEM;
		w->what = "mseg_rule_hits";
		goto out;
	}
	if (!bpf_map_update_batch(w->m->hits, ids, z, &count, NULL) && count == n)
		goto out;
	for (__u32 i = 0; i < n; i++)
		w_op(w, W_HITS, 0, &ids[i], z);
out:
	free(z);
}

#define MR_ZERO_BATCH 4096

void mr_zero_new_ids(struct mr_writer *w, const struct mr_policy *p, const struct mr_policy *old)
{
	int ncpu = w->f ? 1 : libbpf_num_possible_cpus();
	struct mseg_rule_hits *z = calloc((size_t)(ncpu > 0 ? ncpu : 1), sizeof(*z));
	__u32 ids[MR_ZERO_BATCH], nids = 0;

	const struct mr_rule *fs;
	int nfs = mr_failsafe_rules(p, &fs);

	for (size_t i = 0; i < p->nr + (size_t)nfs; i++) {
		const struct mr_rule *r = i < p->nr ? &p->r[i] : &fs[i - p->nr];
		const struct mr_rule *o = old ? mr_rule_by_id(old, r->id) : NULL;
		if (o && mr_rule_same_match(r, o))
			continue;
		/* bpftool writes the one value it is given to every CPU */
		if (w->f || ncpu < 1) {
			w_op(w, W_HITS, 0, &r->id, z);
			continue;
		}
		ids[nids++] = r->id;
		if (nids == MR_ZERO_BATCH) {
			zero_hits_batch(w, ids, nids, ncpu);
			nids = 0;
		}
	}
	if (nids)
		zero_hits_batch(w, ids, nids, ncpu);
	free(z);
}

int mr_clear_set(const struct mr_maps *m, __u8 set)
{
	struct mr_writer w = { .m = m };

	w_clear(&w, set);
	if (w.err)
		fprintf(stderr, "mseg: emptying rule set %u: %s: %s\n", set, w.what,
			strerror(-w.err));
	return w.err;
}

__u64 mr_hits(const struct mr_maps *m, __u32 id, __u64 *packets, __u64 *audited)
{
	int ncpu = libbpf_num_possible_cpus();
	struct mseg_rule_hits *h = calloc((size_t)(ncpu > 0 ? ncpu : 1), sizeof(*h));
	__u64 flows = 0;

	*packets = *audited = 0;
	if (h && !bpf_map_lookup_elem(m->hits, &id, h))
		for (int i = 0; i < ncpu; i++) {
			flows += h[i].flows;
			*packets += h[i].packets;
			*audited += h[i].audited;
		}
	free(h);
	return flows;
}
