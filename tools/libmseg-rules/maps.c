// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The policy in the pinned maps: mseg_source holds its statements per
 * rule set, mseg_ident and mseg_rules its compiled form, mseg_rule_hits
 * the per-CPU counters by rule id.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "maps.h"
#include "mseg_batch.h"
#include "mseg_pinned.h"

int mr_open_maps(struct mr_maps *m)
{
	m->ident = mseg_open_map("mseg_ident", sizeof(struct mseg_ident_key),
				 sizeof(struct mseg_ident_val), NULL);
	m->rules = mseg_open_map("mseg_rules", sizeof(struct mseg_rule_key),
				 sizeof(struct mseg_rule_val), NULL);
	m->hits = mseg_open_map("mseg_rule_hits", sizeof(__u32),
				sizeof(struct mseg_rule_hits), NULL);
	m->source = mseg_open_map("mseg_source", sizeof(struct mseg_source_key),
				  sizeof(struct mseg_source_val), NULL);
	m->config = mseg_open_map("mseg_config", sizeof(__u32),
				  sizeof(struct mseg_config), NULL);
	return m->ident < 0 || m->rules < 0 || m->hits < 0 || m->source < 0 ||
			       m->config < 0 ?
		       -1 :
		       0;
}

struct src_line {
	__u32 index;
	char line[MSEG_SOURCE_LINE];
};

struct collect {
	__u8 set;
	struct src_line *l;
	size_t n, cap;
};

static int collect_fn(void *ctx, const void *keys, const void *vals, __u32 n)
{
	struct collect *c = ctx;
	const struct mseg_source_key *k = keys;
	const struct mseg_source_val *v = vals;

	for (__u32 i = 0; i < n; i++) {
		if (k[i].set != c->set)
			continue;
		c->l = mr_grow(c->l, &c->cap, c->n, sizeof(*c->l));
		c->l[c->n].index = k[i].index;
		memcpy(c->l[c->n].line, v[i].line, MSEG_SOURCE_LINE);
		c->l[c->n].line[MSEG_SOURCE_LINE - 1] = 0;
		c->n++;
	}
	return 0;
}

static int cmp_line(const void *a, const void *b)
{
	const struct src_line *x = a, *y = b;

	return (x->index > y->index) - (x->index < y->index);
}

bool mr_read_policy(const struct mr_maps *m, __u8 set, struct mr_policy *p)
{
	struct collect c = { .set = set };
	struct mseg_batch b;
	char *argv[80];
	bool ok = true;

	mr_policy_init(p);
	if (mseg_batch_init(&b, sizeof(struct mseg_source_key),
			    sizeof(struct mseg_source_val), 4096))
		return false;
	if (mseg_batch_foreach(m->source, "mseg_source", MSEG_MAX_SOURCE, &b,
			       collect_fn, &c))
		ok = false;
	mseg_batch_free(&b);
	qsort(c.l, c.n, sizeof(*c.l), cmp_line);
	for (size_t i = 0; ok && i < c.n; i++) {
		int argc = mr_split(c.l[i].line, argv, 80);

		if (argc > 0)
			mr_statement(p, argc, argv, (long)i + 1, NULL, 0);
		if (mr_failed()) {
			fprintf(stderr, "mseg: the stored policy (mseg_source, set %u, statement %zu) is unreadable: %s\n",
				set, i + 1, mr_error());
			ok = false;
		}
	}
	free(c.l);
	return ok;
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

#define FOR_SET_MAPS(m, X)                                                        \
	X(m->ident, "mseg_ident", struct mseg_ident_key, set)                     \
	X(m->rules, "mseg_rules", struct mseg_rule_key, set)                      \
	X(m->source, "mseg_source", struct mseg_source_key, set)

int mr_clear_set(const struct mr_maps *m, __u8 set)
{
	int err = 0;

#define CLEAR(fd, name, type, field)                                              \
	{                                                                         \
		size_t n;                                                         \
		type *k = mr_keys_of_set(fd, sizeof(type), offsetof(type, field), \
					 set, &n);                                \
		for (size_t i = 0; i < n; i++)                                    \
			if (bpf_map_delete_elem(fd, &k[i]) && errno != ENOENT)    \
				err = -errno;                                     \
		free(k);                                                          \
	}
	FOR_SET_MAPS(m, CLEAR)
#undef CLEAR
	if (err)
		fprintf(stderr, "mseg: emptying rule set %u: %s\n", set, strerror(-err));
	return err;
}

struct lines {
	struct mseg_source_val *v;
	size_t n, cap;
};

static void add_line(void *ctx, const char *line)
{
	struct lines *l = ctx;

	l->v = mr_grow(l->v, &l->cap, l->n, sizeof(*l->v));
	memset(&l->v[l->n], 0, sizeof(l->v[0]));
	snprintf(l->v[l->n].line, MSEG_SOURCE_LINE, "%s", line);
	l->n++;
}

bool mr_source_lines(const struct mr_policy *p, struct mseg_source_val **v, size_t *n)
{
	struct lines l = { 0 };

	if (!mr_policy_lines(p, add_line, &l)) {
		free(l.v);
		return false;
	}
	*v = l.v;
	*n = l.n;
	return true;
}

/* Zero the counters of ids that are new or now name another rule. */
static void new_ids(const struct mr_policy *p, const struct mr_policy *old,
		    void (*fn)(void *ctx, __u32 id), void *ctx)
{
	for (size_t i = 0; i < p->nr; i++) {
		const struct mr_rule *o = old ? mr_rule_by_id(old, p->r[i].id) : NULL;
		char a[1024], b[1024];
		bool same = false;

		if (o && o->kind == p->r[i].kind) {
			mr_rule_match_key(&p->r[i], a, sizeof(a));
			mr_rule_match_key(o, b, sizeof(b));
			same = !strcmp(a, b);
		}
		if (!same)
			fn(ctx, p->r[i].id);
	}
}

static void zero_hits(void *ctx, __u32 id)
{
	const struct mr_maps *m = ctx;
	int ncpu = libbpf_num_possible_cpus();
	struct mseg_rule_hits *z = calloc((size_t)(ncpu > 0 ? ncpu : 1), sizeof(*z));

	bpf_map_update_elem(m->hits, &id, z, BPF_ANY);
	free(z);
}

int mr_write_set(const struct mr_maps *m, __u8 set, const struct mr_policy *p,
		 const struct mr_policy *old, const struct mr_compiled *c)
{
	struct mseg_source_val *v = NULL;
	struct mseg_source_key *k;
	const char *what = "mseg_source";
	size_t n = 0, done = 0;
	int err = 0;

	if (!mr_source_lines(p, &v, &n))
		return -EINVAL;
	k = calloc(n + 1, sizeof(*k));
	for (size_t i = 0; i < n; i++) {
		k[i].set = set;
		k[i].index = (__u32)i;
	}
	while (done < n && !err) {
		__u32 count = (__u32)(n - done);

		if (bpf_map_update_batch(m->source, k + done, v + done, &count, NULL))
			err = -errno;
		done += count;
	}
	free(k);
	free(v);
	if (!err) {
		what = "mseg_ident";
		for (size_t i = 0; i < c->nid && !err; i++)
			if (bpf_map_update_elem(m->ident, &c->id[i].k, &c->id[i].v, BPF_ANY))
				err = -errno;
	}
	if (!err) {
		what = "mseg_rules";
		for (size_t i = 0; i < c->nre && !err; i++)
			if (bpf_map_update_elem(m->rules, &c->re[i].k, &c->re[i].v, BPF_ANY))
				err = -errno;
	}
	if (err) {
		fprintf(stderr, "mseg: writing %s failed: %s%s\n", what, strerror(-err),
			err == -E2BIG || err == -ENOSPC || err == -ENOMEM ?
				" (the map is full: the old and the new rule set must fit together)" :
				"");
		mr_clear_set(m, set);
		return err;
	}
	new_ids(p, old, zero_hits, (void *)m);
	return 0;
}

static void hex(FILE *f, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		fprintf(f, " %02x", b[i]);
}

struct bt {
	FILE *f;
	char path[512];
};

static void bt_update(struct bt *b, const void *k, size_t ks, const void *v, size_t vs)
{
	fprintf(b->f, "map update pinned %s key hex", b->path);
	hex(b->f, k, ks);
	fprintf(b->f, " value hex");
	hex(b->f, v, vs);
	fputc('\n', b->f);
}

static void bt_delete(struct bt *b, const void *k, size_t ks)
{
	fprintf(b->f, "map delete pinned %s key hex", b->path);
	hex(b->f, k, ks);
	fputc('\n', b->f);
}

static void bt_path(struct bt *b, const char *name)
{
	char dir[400];

	snprintf(b->path, sizeof(b->path), "%s/%s", mseg_pin_dir(dir, sizeof(dir)), name);
}

static void bt_zero(void *ctx, __u32 id)
{
	struct bt *b = ctx;
	struct mseg_rule_hits z = { 0 };

	bt_path(b, "mseg_rule_hits");
	bt_update(b, &id, sizeof(id), &z, sizeof(z));
}

static void bt_clear(struct bt *b, const struct mr_maps *m, __u8 set)
{
#define DEL(fd, name, type, field)                                                \
	{                                                                         \
		size_t n;                                                         \
		type *k = mr_keys_of_set(fd, sizeof(type), offsetof(type, field), \
					 set, &n);                                \
		bt_path(b, name);                                                 \
		for (size_t i = 0; i < n; i++)                                    \
			bt_delete(b, &k[i], sizeof(type));                        \
		free(k);                                                          \
	}
	FOR_SET_MAPS(m, DEL)
#undef DEL
}

/*
 * The encoder for the bash commands: `bpftool batch file` scripts that
 * write the compiled policy into set `set` (after removing what an
 * interrupted edit left there) and, once the caller has switched to it,
 * empty the set `old_set`.
 */
int mr_encode_batch(const struct mr_maps *m, __u8 set, __u8 old_set,
		    const struct mr_policy *p, const struct mr_policy *old,
		    const struct mr_compiled *c, FILE *wf, FILE *cf)
{
	struct mseg_source_val *v = NULL;
	struct bt b = { .f = wf };
	size_t n = 0;

	if (!mr_source_lines(p, &v, &n))
		return -EINVAL;
	bt_clear(&b, m, set);
	bt_path(&b, "mseg_source");
	for (size_t i = 0; i < n; i++) {
		struct mseg_source_key k = { .set = set, .index = (__u32)i };

		bt_update(&b, &k, sizeof(k), &v[i], strlen(v[i].line) + 1 > 0 ? sizeof(v[i]) : 0);
	}
	free(v);
	bt_path(&b, "mseg_ident");
	for (size_t i = 0; i < c->nid; i++)
		bt_update(&b, &c->id[i].k, sizeof(c->id[i].k), &c->id[i].v, sizeof(c->id[i].v));
	bt_path(&b, "mseg_rules");
	for (size_t i = 0; i < c->nre; i++)
		bt_update(&b, &c->re[i].k, sizeof(c->re[i].k), &c->re[i].v, sizeof(c->re[i].v));
	new_ids(p, old, bt_zero, &b);
	b.f = cf;
	bt_clear(&b, m, old_set);
	return fflush(wf) || fflush(cf) ? -EIO : 0;
}

__u64 mr_hits(const struct mr_maps *m, __u32 id, __u64 *packets)
{
	int ncpu = libbpf_num_possible_cpus();
	struct mseg_rule_hits *h = calloc((size_t)(ncpu > 0 ? ncpu : 1), sizeof(*h));
	__u64 flows = 0;

	*packets = 0;
	if (h && !bpf_map_lookup_elem(m->hits, &id, h))
		for (int i = 0; i < ncpu; i++) {
			flows += h[i].flows;
			*packets += h[i].packets;
		}
	free(h);
	return flows;
}
