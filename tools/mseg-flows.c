// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * mseg-flows: `mseg flows`, traffic aggregated by flow (docs/DESIGN.md,
 * "Flows"), and the DOT graph `mseg graph` renders.
 *
 * mseg_flows holds, per originator and responder address, protocol,
 * responder port, verdict and rule, the connections the new-flow path
 * decided (each CPU its own slots, added up here) and the packets it
 * judged without a session; mseg_flows_gc the counts of the sessions mseg
 * gc deleted; the live sessions (every entry of mseg_sessions, expired or
 * not: their counts are real until mseg gc moves them) add theirs, filed
 * under the same key (bpf/mseg_flows.h). Then each address is named
 * by the segment of its longest prefix in the policy in force (the
 * identity it would get, docs/policy.md), and the flows that share a name,
 * protocol, port, verdict and rule are added up.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/stat.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "mseg_abi.h"
#include "mseg_flows.h"
#include "mseg_addr.h"
#include "mseg_batch.h"
#include "mseg_event_fmt.h"
#include "mseg_out.h"
#include "mseg_pinned.h"
#include "mseg_util.h"
#include "libmseg-rules/hash.h"
#include "libmseg-rules/learn.h"
#include "libmseg-rules/maps.h"
#include "libmseg-rules/rules.h"

#define FLOW_BATCH 4096
#define SESS_BATCH 8192
/* --since: up to ten years */
#define SINCE_MAX_S (3650ULL * 86400ULL)

enum out_form { OUT_TEXT, OUT_JSON, OUT_DOT };

struct opts {
	enum out_form form;
	__u64 since_ns; /* 0: every flow */
	bool staged_diff; /* only the flows the staged policy judges otherwise */
};

/* mseg_config.staged_gen while a staged policy is loaded, else 0. */
static __u32 staged_gen;

/* What the staged policy said of a flow (struct mseg_flow_staged). */
struct staged {
	bool valid; /* judged by the staged policy loaded now */
	__u8 verdict;
	__u32 rule_id;
	__u64 disagreements;
};

/* One flow as the maps hold it: an address pair (mseg_flows' key). */
struct rec {
	struct mseg_flow_key k;
	__u64 connections, packets, bytes;
	__u64 first_ns; /* 0: unknown (only sessions seen) */
	__u64 last_ns;
	struct staged st;
};

struct recs {
	struct rec *r;
	size_t n, cap;
};

/* Room for a side's name: a segment's or an address. */
#define ROW_TEXT (MSEG_ADDR_STRLEN > MR_NAME_MAX ? MSEG_ADDR_STRLEN : MR_NAME_MAX)

/* One flow as listed: each side a segment's name or an address. */
struct row {
	int src_seg, dst_seg; /* index into the policy's segments; -1: an address */
	__u8 src[16], dst[16];
	__u32 rule_id;
	__u16 dport;
	__u8 proto, verdict;
	__u64 connections, packets, bytes, first_ns, last_ns;
	struct staged st;
	char src_text[ROW_TEXT];
	char dst_text[ROW_TEXT];
};

static const char *const verdict_names[MSEG_FLOW_VERDICT_MAX] = {
	[MSEG_FLOW_ALLOWED] = "allowed",
	[MSEG_FLOW_DENIED] = "denied",
	[MSEG_FLOW_WOULD_DENY] = "would-deny",
};

/* The graph's edge per verdict: allowed solid green, denied dashed red,
 * would-deny dotted orange. */
static const char *const verdict_colors[MSEG_FLOW_VERDICT_MAX] = {
	"#2e7d32", "#c62828", "#ef6c00",
};
static const char *const verdict_styles[MSEG_FLOW_VERDICT_MAX] = {
	"solid", "dashed", "dotted",
};

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
	size_t n = *cap ? *cap : 1024;
	void *q;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	q = realloc(*p, n * size);
	if (!q) {
		fprintf(stderr, "mseg: out of memory\n");
		return -1;
	}
	*p = q;
	*cap = n;
	return 0;
}

static struct rec *rec_new(struct recs *rs)
{
	struct rec *r;

	if (grow((void **)&rs->r, &rs->cap, rs->n + 1, sizeof(*rs->r)))
		return NULL;
	r = &rs->r[rs->n++];
	memset(r, 0, sizeof(*r));
	return r;
}

/* --- reading the maps ------------------------------------------------------- */

struct flows_walk {
	struct recs *rs;
	int ncpus;
	size_t vstride; /* bytes per CPU value */
};

/* mseg_flows: every used slot of every CPU, a record each. */
static int flows_batch(void *ctx, const void *keys, const void *vals, __u32 n)
{
	struct flows_walk *w = ctx;
	const char *v = vals;
	__u32 i;
	int c;

	(void)keys;
	for (i = 0; i < n; i++) {
		for (c = 0; c < w->ncpus; c++) {
			const struct mseg_flow_slot *f = (const void *)(v +
				((size_t)i * (size_t)w->ncpus + (size_t)c) * w->vstride);
			struct rec *r;

			if (!f->count.last_ns)
				continue;
			r = rec_new(w->rs);
			if (!r)
				return -1;
			r->k = f->flow;
			r->connections = f->count.connections;
			r->packets = f->count.packets;
			r->bytes = f->count.bytes;
			r->first_ns = f->count.first_ns;
			r->last_ns = f->count.last_ns;
			if (staged_gen && f->staged.gen == staged_gen) {
				r->st.valid = true;
				r->st.verdict = f->staged.verdict;
				r->st.rule_id = f->staged.rule_id;
				r->st.disagreements = f->staged.disagreements;
			}
		}
	}
	return 0;
}

/* mseg_flows_gc: the counts of the sessions mseg gc deleted. */
static int flows_gc_batch(void *ctx, const void *keys, const void *vals, __u32 n)
{
	const struct mseg_flow_key *k = keys;
	const struct mseg_flow_val *v = vals;
	struct recs *rs = ctx;
	__u32 i;

	for (i = 0; i < n; i++) {
		struct rec *r = rec_new(rs);

		if (!r)
			return -1;
		r->k = k[i];
		r->packets = v[i].packets;
		r->bytes = v[i].bytes;
		/* a session's creation is not its flow's first decision */
		r->last_ns = v[i].last_ns;
	}
	return 0;
}

static int read_flows(struct recs *rs)
{
	struct bpf_map_info info;
	struct flows_walk w = { .rs = rs };
	struct mseg_batch b;
	int fd, rc;

	fd = mseg_open_map("mseg_flows", sizeof(__u32),
			   sizeof(struct mseg_flow_slot), &info);
	if (fd < 0)
		return -1;
	w.ncpus = libbpf_num_possible_cpus();
	if (w.ncpus < 1) {
		fprintf(stderr, "mseg: cannot count the possible CPUs\n");
		close(fd);
		return -1;
	}
	w.vstride = (sizeof(struct mseg_flow_slot) + 7) & ~(size_t)7;
	rc = mseg_batch_init(&b, sizeof(__u32), (__u32)(w.vstride * (size_t)w.ncpus),
			     FLOW_BATCH);
	if (!rc)
		rc = mseg_batch_foreach(fd, "mseg_flows", info.max_entries, &b,
					flows_batch, &w);
	mseg_batch_free(&b);
	close(fd);
	if (rc)
		return rc;
	fd = mseg_open_map("mseg_flows_gc", sizeof(struct mseg_flow_key),
			   sizeof(struct mseg_flow_val), &info);
	if (fd < 0)
		return -1;
	rc = mseg_batch_init(&b, sizeof(struct mseg_flow_key),
			     sizeof(struct mseg_flow_val), FLOW_BATCH);
	if (!rc)
		rc = mseg_batch_foreach(fd, "mseg_flows_gc", info.max_entries, &b,
					flows_gc_batch, rs);
	mseg_batch_free(&b);
	close(fd);
	return rc;
}

static int sessions_batch(void *ctx, const void *keys, const void *vals, __u32 n)
{
	const struct mseg_session_key *k = keys;
	const struct mseg_session *s = vals;
	struct recs *rs = ctx;
	__u32 i;

	for (i = 0; i < n; i++) {
		struct rec *r = rec_new(rs);

		if (!r)
			return -1;
		mseg_flow_key_of_session(&k[i], &s[i], &r->k);
		r->packets = s[i].packets[0] + s[i].packets[1];
		r->bytes = s[i].bytes[0] + s[i].bytes[1];
		/* a session being deleted (DYING) has no time left to tell */
		r->last_ns = s[i].last_seen_ns;
	}
	return 0;
}

static int read_sessions(struct recs *rs)
{
	struct bpf_map_info info;
	struct mseg_batch b;
	int fd, rc;

	fd = mseg_open_map("mseg_sessions", sizeof(struct mseg_session_key),
			   sizeof(struct mseg_session), &info);
	if (fd < 0)
		return -1;
	rc = mseg_batch_init(&b, sizeof(struct mseg_session_key),
			     sizeof(struct mseg_session), SESS_BATCH);
	if (!rc)
		rc = mseg_batch_foreach(fd, "mseg_sessions", info.max_entries, &b,
					sessions_batch, rs);
	mseg_batch_free(&b);
	close(fd);
	return rc;
}

/* --- naming addresses by segment ---------------------------------------------- */

/* A segment's prefix as stored (IPv4 at 96 + its length), masked. */
struct seg_pfx {
	__u8 family;
	__u8 bits;
	__u8 addr[16];
	int seg;
};

#define SEG_PFX_KEY offsetof(struct seg_pfx, seg)

struct segs {
	const struct mr_policy *p;
	struct seg_pfx *px;
	size_t n;
	struct mr_hash h;
	/* the stored lengths segment prefixes have, longest first, per family */
	int bits4[129], n4, bits6[129], n6;
};

static int cmp_int_desc(const void *a, const void *b)
{
	return *(const int *)b - *(const int *)a;
}

static int segs_build(struct segs *sg, const struct mr_policy *p)
{
	bool seen4[129] = { false }, seen6[129] = { false };
	size_t i, j, total = 0;

	memset(sg, 0, sizeof(*sg));
	sg->p = p;
	for (i = 0; i < p->ns; i++)
		total += p->s[i].n;
	sg->px = calloc(total ? total : 1, sizeof(*sg->px));
	if (!sg->px) {
		fprintf(stderr, "mseg: out of memory\n");
		return -1;
	}
	for (i = 0; i < p->ns; i++) {
		for (j = 0; j < p->s[i].n; j++) {
			const struct mr_pfx *q = &p->s[i].p[j];
			struct seg_pfx *e = &sg->px[sg->n++];
			int bits = q->family == 4 ? 96 + q->len : q->len;

			e->family = q->family;
			e->bits = (__u8)bits;
			memcpy(e->addr, q->addr, 16);
			mr_mask(e->addr, bits);
			e->seg = (int)i;
			if (q->family == 4 && !seen4[bits]) {
				seen4[bits] = true;
				sg->bits4[sg->n4++] = bits;
			} else if (q->family == 6 && !seen6[bits]) {
				seen6[bits] = true;
				sg->bits6[sg->n6++] = bits;
			}
		}
	}
	qsort(sg->bits4, (size_t)sg->n4, sizeof(int), cmp_int_desc);
	qsort(sg->bits6, (size_t)sg->n6, sizeof(int), cmp_int_desc);
	mr_hash_init(&sg->h, sg->n, sg->px, sizeof(*sg->px), SEG_PFX_KEY);
	if (!sg->h.slot) {
		fprintf(stderr, "mseg: out of memory\n");
		return -1;
	}
	for (i = 0; i < sg->n; i++)
		mr_hash_put(&sg->h, (long)i);
	return 0;
}

static void segs_free(struct segs *sg)
{
	mr_hash_free(&sg->h);
	free(sg->px);
}

/* The segment of an address's longest segment prefix, or -1. */
static int segment_of(const struct segs *sg, const __u8 a[16], __u8 family)
{
	const int *bits = family == 4 ? sg->bits4 : sg->bits6;
	int n = family == 4 ? sg->n4 : sg->n6, i;
	struct seg_pfx k;
	long at;

	memset(&k, 0, sizeof(k));
	k.family = family;
	for (i = 0; i < n; i++) {
		k.bits = (__u8)bits[i];
		memcpy(k.addr, a, 16);
		mr_mask(k.addr, bits[i]);
		at = mr_hash_get(&sg->h, &k);
		if (at >= 0)
			return sg->px[at].seg;
	}
	return -1;
}

/* --- adding up ------------------------------------------------------------------ */

static int cmp_rec(const void *a, const void *b)
{
	return memcmp(&((const struct rec *)a)->k, &((const struct rec *)b)->k,
		      sizeof(struct mseg_flow_key));
}

/* The sort key of a row before it is added up: names, then the rest. */
static int cmp_row_key(const struct row *x, const struct row *y)
{
	int c = strcmp(x->src_text, y->src_text);

	if (!c)
		c = strcmp(x->dst_text, y->dst_text);
	if (!c)
		c = (int)x->proto - (int)y->proto;
	if (!c)
		c = (int)x->dport - (int)y->dport;
	if (!c)
		c = (int)x->verdict - (int)y->verdict;
	if (!c)
		c = x->rule_id < y->rule_id ? -1 : x->rule_id > y->rule_id;
	if (!c)
		c = (int)x->st.valid - (int)y->st.valid;
	if (!c)
		c = (int)x->st.verdict - (int)y->st.verdict;
	if (!c)
		c = x->st.rule_id < y->st.rule_id ? -1 : x->st.rule_id > y->st.rule_id;
	return c;
}

static int cmp_row_same(const void *a, const void *b)
{
	return cmp_row_key(a, b);
}

/* Listing order: most connections first, then the key. */
static int cmp_row_list(const void *a, const void *b)
{
	const struct row *x = a, *y = b;

	if (x->connections != y->connections)
		return x->connections > y->connections ? -1 : 1;
	return cmp_row_key(x, y);
}

static void add_counts(struct row *to, const struct row *r)
{
	to->connections += r->connections;
	to->packets += r->packets;
	to->bytes += r->bytes;
	if (r->first_ns && (!to->first_ns || r->first_ns < to->first_ns))
		to->first_ns = r->first_ns;
	if (r->last_ns > to->last_ns)
		to->last_ns = r->last_ns;
	/* a flow's sessions carry no staged verdict: its map entries do */
	if (r->st.valid && !to->st.valid)
		to->st = r->st;
	else if (r->st.valid)
		to->st.disagreements += r->st.disagreements;
}

static void name_side(const struct segs *sg, const __u8 a[16], __u8 family,
		      int *seg, __u8 out[16], char *text)
{
	*seg = segment_of(sg, a, family);
	memcpy(out, a, 16);
	if (*seg >= 0)
		snprintf(text, MR_NAME_MAX, "%s", sg->p->s[*seg].name);
	else
		mseg_addr_format(a, text);
}

/*
 * The records added up per flow key (the map's entry and its sessions),
 * then named, then added up per name: the rows, in listing order. Flows
 * last seen before `since` (if any) are left out.
 */
static struct row *make_rows(struct recs *rs, const struct segs *sg,
			     __u64 since, size_t *nrows)
{
	struct row *rows = NULL;
	size_t i, n = 0, cap = 0, m;

	qsort(rs->r, rs->n, sizeof(*rs->r), cmp_rec);
	for (i = 0; i < rs->n; i++) {
		const struct rec *r = &rs->r[i];
		struct row x;

		memset(&x, 0, sizeof(x));
		name_side(sg, r->k.src, r->k.family, &x.src_seg, x.src, x.src_text);
		name_side(sg, r->k.dst, r->k.family, &x.dst_seg, x.dst, x.dst_text);
		x.rule_id = r->k.rule_id;
		x.dport = r->k.dport;
		x.proto = r->k.proto;
		x.verdict = r->k.verdict;
		x.connections = r->connections;
		x.packets = r->packets;
		x.bytes = r->bytes;
		x.first_ns = r->first_ns;
		x.last_ns = r->last_ns;
		x.st = r->st;
		/* the same key as the previous record: its session */
		if (n && i && !cmp_rec(r, &rs->r[i - 1])) {
			add_counts(&rows[n - 1], &x);
			continue;
		}
		if (grow((void **)&rows, &cap, n + 1, sizeof(*rows))) {
			free(rows);
			return NULL;
		}
		rows[n++] = x;
	}
	qsort(rows, n, sizeof(*rows), cmp_row_same);
	for (i = 0, m = 0; i < n; i++) {
		if (m && !cmp_row_key(&rows[m - 1], &rows[i]))
			add_counts(&rows[m - 1], &rows[i]);
		else
			rows[m++] = rows[i];
	}
	for (i = 0, n = 0; i < m; i++)
		if (!since || rows[i].last_ns >= since)
			rows[n++] = rows[i];
	qsort(rows, n, sizeof(*rows), cmp_row_list);
	*nrows = n;
	return rows ? rows : calloc(1, sizeof(*rows));
}

/* --- printing ----------------------------------------------------------------------- */

static bool has_ports(__u8 proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP;
}

static const char *verdict_str(__u8 v, char *buf)
{
	if (v < MSEG_FLOW_VERDICT_MAX)
		return verdict_names[v];
	snprintf(buf, 8, "%u", v);
	return buf;
}

static const char *rule_str(__u32 id, char *buf)
{
	if (!id)
		return "default";
	snprintf(buf, 12, "%u", id);
	return buf;
}

static const char *port_str(const struct row *r, char *buf)
{
	if (!has_ports(r->proto))
		return "-";
	snprintf(buf, 8, "%u", r->dport);
	return buf;
}

static void time_str(__u64 boot_ns, long long boot_to_real, char *buf, size_t len)
{
	mseg_event_time((long long)boot_ns + boot_to_real, buf, len);
}

enum { COL_SRC, COL_DST, COL_PROTO, COL_DPORT, COL_VERDICT, COL_RULE,
       COL_STAGED, COL_STAGED_RULE, COL_DISAGREE,
       COL_CONNS, COL_PACKETS, COL_BYTES, COL_FIRST, COL_LAST, COL_MAX };

static const char *const col_names[COL_MAX] = {
	"SRC", "DST", "PROTO", "DPORT", "VERDICT", "RULE", "STAGED", "STAGED_RULE",
	"DISAGREEMENTS", "CONNECTIONS", "PACKETS", "BYTES", "FIRST_SEEN", "LAST_SEEN",
};

/* The staged columns are shown while a staged policy is loaded. */
static bool col_shown(int c)
{
	return staged_gen || (c != COL_STAGED && c != COL_STAGED_RULE && c != COL_DISAGREE);
}

/* The cells of one row, as text. */
struct cells {
	char c[COL_MAX][64];
};

static void row_cells(const struct row *r, long long boot_to_real, struct cells *x)
{
	char buf[16];

	snprintf(x->c[COL_SRC], 64, "%s", r->src_text);
	snprintf(x->c[COL_DST], 64, "%s", r->dst_text);
	snprintf(x->c[COL_PROTO], 64, "%s", mseg_event_proto_name(r->proto, buf, sizeof(buf)));
	snprintf(x->c[COL_DPORT], 64, "%s", port_str(r, buf));
	snprintf(x->c[COL_VERDICT], 64, "%s", verdict_str(r->verdict, buf));
	snprintf(x->c[COL_RULE], 64, "%s", rule_str(r->rule_id, buf));
	snprintf(x->c[COL_STAGED], 64, "%s", r->st.valid ? verdict_str(r->st.verdict, buf) : "-");
	snprintf(x->c[COL_STAGED_RULE], 64, "%s", r->st.valid ? rule_str(r->st.rule_id, buf) : "-");
	snprintf(x->c[COL_DISAGREE], 64, "%llu", (unsigned long long)r->st.disagreements);
	snprintf(x->c[COL_CONNS], 64, "%llu", (unsigned long long)r->connections);
	snprintf(x->c[COL_PACKETS], 64, "%llu", (unsigned long long)r->packets);
	snprintf(x->c[COL_BYTES], 64, "%llu", (unsigned long long)r->bytes);
	if (r->first_ns)
		time_str(r->first_ns, boot_to_real, x->c[COL_FIRST], 64);
	else
		snprintf(x->c[COL_FIRST], 64, "-");
	time_str(r->last_ns, boot_to_real, x->c[COL_LAST], 64);
}

/* Columns two spaces apart, as every table of mseg. */
static void print_table(struct mseg_out *out, const struct row *rows, size_t n,
			long long boot_to_real)
{
	size_t w[COL_MAX], i, l;
	struct cells x;
	int c;

	for (c = 0; c < COL_MAX; c++)
		w[c] = strlen(col_names[c]);
	for (i = 0; i < n; i++) {
		row_cells(&rows[i], boot_to_real, &x);
		for (c = 0; c < COL_MAX; c++) {
			l = strlen(x.c[c]);
			w[c] = l > w[c] ? l : w[c];
		}
	}
	for (i = 0; i <= n; i++) {
		char line[COL_MAX * 72], *p = line;

		if (i)
			row_cells(&rows[i - 1], boot_to_real, &x);
		for (c = 0; c < COL_MAX; c++) {
			const char *s = i ? x.c[c] : col_names[c];

			if (!col_shown(c))
				continue;
			l = strlen(s);
			memcpy(p, s, l);
			p += l;
			if (c < COL_MAX - 1) {
				memset(p, ' ', w[c] - l + 2);
				p += w[c] - l + 2;
			}
		}
		*p++ = '\n';
		mseg_out_mem(out, line, (size_t)(p - line));
	}
}

static const char *kind_str(int seg)
{
	return seg >= 0 ? "segment" : "host";
}

/* docs/json.md: a list is one array of objects, on one line. */
static void print_json(struct mseg_out *out, const struct row *rows, size_t n,
		       long long boot_to_real)
{
	char line[1024], first[64], last[64], pbuf[16], vbuf[8];
	size_t i;
	int l;

	mseg_out_chr(out, '[');
	for (i = 0; i < n; i++) {
		const struct row *r = &rows[i];
		char port[16], rule[16];

		if (has_ports(r->proto))
			snprintf(port, sizeof(port), "%u", r->dport);
		else
			snprintf(port, sizeof(port), "null");
		if (r->rule_id)
			snprintf(rule, sizeof(rule), "%u", r->rule_id);
		else
			snprintf(rule, sizeof(rule), "\"default\"");
		time_str(r->first_ns, boot_to_real, first, sizeof(first));
		time_str(r->last_ns, boot_to_real, last, sizeof(last));
		l = snprintf(line, sizeof(line),
			     "%s{\"src\":\"%s\",\"src_kind\":\"%s\",\"dst\":\"%s\",\"dst_kind\":\"%s\","
			     "\"proto\":\"%s\",\"dport\":%s,\"verdict\":\"%s\",\"rule\":%s,"
			     "\"connections\":%llu,\"packets\":%llu,\"bytes\":%llu,",
			     i ? "," : "", r->src_text, kind_str(r->src_seg), r->dst_text,
			     kind_str(r->dst_seg), mseg_event_proto_name(r->proto, pbuf, sizeof(pbuf)),
			     port, verdict_str(r->verdict, vbuf), rule,
			     (unsigned long long)r->connections,
			     (unsigned long long)r->packets, (unsigned long long)r->bytes);
		mseg_out_mem(out, line, (size_t)l);
		/* a flow only a session has told of (the map forgot it) has no first decision */
		if (r->first_ns)
			l = snprintf(line, sizeof(line), "\"first_seen\":\"%s\",\"first_seen_ns\":%llu,",
				     first, (unsigned long long)r->first_ns);
		else
			l = snprintf(line, sizeof(line), "\"first_seen\":null,\"first_seen_ns\":null,");
		mseg_out_mem(out, line, (size_t)l);
		l = snprintf(line, sizeof(line), "\"last_seen\":\"%s\",\"last_seen_ns\":%llu,",
			     last, (unsigned long long)r->last_ns);
		mseg_out_mem(out, line, (size_t)l);
		/* what a staged policy (if one is loaded) says of it */
		if (r->st.valid) {
			if (r->st.rule_id)
				snprintf(rule, sizeof(rule), "%u", r->st.rule_id);
			else
				snprintf(rule, sizeof(rule), "\"default\"");
			l = snprintf(line, sizeof(line),
				     "\"staged_verdict\":\"%s\",\"staged_rule\":%s,\"disagreements\":%llu}",
				     verdict_str(r->st.verdict, vbuf), rule,
				     (unsigned long long)r->st.disagreements);
		} else {
			l = snprintf(line, sizeof(line),
				     "\"staged_verdict\":null,\"staged_rule\":null,\"disagreements\":0}");
		}
		mseg_out_mem(out, line, (size_t)l);
	}
	mseg_out_str(out, "]\n");
}

/* A DOT double-quoted string: '"' and '\' escaped. */
static void dot_quoted(struct mseg_out *out, const char *s)
{
	mseg_out_chr(out, '"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			mseg_out_chr(out, '\\');
		mseg_out_chr(out, *s);
	}
	mseg_out_chr(out, '"');
}

/*
 * The flows as a Graphviz digraph: a node per host or segment (a segment
 * a box), an edge per flow, its colour and style by verdict, labelled
 * PROTO/PORT and the number of connections.
 */
struct node {
	const char *name;
	int seg;
};

static int cmp_node(const void *a, const void *b)
{
	return strcmp(((const struct node *)a)->name, ((const struct node *)b)->name);
}

static int print_dot(struct mseg_out *out, const struct row *rows, size_t n)
{
	char buf[128], pbuf[16];
	struct node *nodes;
	size_t i;

	mseg_out_str(out, "digraph mseg_flows {\n"
			  "\tgraph [rankdir=LR, fontname=\"Helvetica\"];\n"
			  "\tnode [fontname=\"Helvetica\", shape=ellipse];\n"
			  "\tedge [fontname=\"Helvetica\", fontsize=10];\n");
	/* each node once, by name */
	nodes = malloc((n ? 2 * n : 1) * sizeof(*nodes));
	if (!nodes) {
		fprintf(stderr, "mseg: out of memory\n");
		return -1;
	}
	for (i = 0; i < n; i++) {
		nodes[2 * i].name = rows[i].src_text;
		nodes[2 * i].seg = rows[i].src_seg;
		nodes[2 * i + 1].name = rows[i].dst_text;
		nodes[2 * i + 1].seg = rows[i].dst_seg;
	}
	qsort(nodes, 2 * n, sizeof(*nodes), cmp_node);
	for (i = 0; i < 2 * n; i++) {
		if (i && !strcmp(nodes[i].name, nodes[i - 1].name))
			continue;
		mseg_out_chr(out, '\t');
		dot_quoted(out, nodes[i].name);
		mseg_out_str(out, nodes[i].seg >= 0 ?
			     " [shape=box, style=filled, fillcolor=\"#e3f2fd\"];\n" :
			     ";\n");
	}
	free(nodes);
	for (i = 0; i < n; i++) {
		const struct row *r = &rows[i];
		__u8 v = r->verdict < MSEG_FLOW_VERDICT_MAX ? r->verdict : MSEG_FLOW_DENIED;

		mseg_out_chr(out, '\t');
		dot_quoted(out, r->src_text);
		mseg_out_str(out, " -> ");
		dot_quoted(out, r->dst_text);
		if (has_ports(r->proto))
			snprintf(buf, sizeof(buf), "%s/%u\\n%llu connection%s",
				 mseg_event_proto_name(r->proto, pbuf, sizeof(pbuf)), r->dport,
				 (unsigned long long)r->connections,
				 r->connections == 1 ? "" : "s");
		else
			snprintf(buf, sizeof(buf), "%s\\n%llu connection%s",
				 mseg_event_proto_name(r->proto, pbuf, sizeof(pbuf)),
				 (unsigned long long)r->connections,
				 r->connections == 1 ? "" : "s");
		mseg_out_str(out, " [label=\"");
		mseg_out_str(out, buf);
		mseg_out_str(out, "\", color=\"");
		mseg_out_str(out, verdict_colors[v]);
		mseg_out_str(out, "\", fontcolor=\"");
		mseg_out_str(out, verdict_colors[v]);
		mseg_out_str(out, "\", style=");
		mseg_out_str(out, verdict_styles[v]);
		mseg_out_str(out, "];\n");
	}
	mseg_out_str(out, "}\n");
	return 0;
}

/* --- the command ----------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mseg flows [--since DURATION] [--staged-diff] [--json|--dot]\n"
		"\n"
		"Traffic aggregated by flow, as the data path decided it: one line per\n"
		"source, destination, protocol, destination port, verdict and deciding\n"
		"rule, most connections first. A source or destination is the name of\n"
		"the segment its address belongs to (the segment of its longest prefix\n"
		"in the policy in force), else the address. CONNECTIONS counts the new\n"
		"flows decided (a session opened; a denied flow has none, so every\n"
		"denied packet is an attempt); PACKETS and BYTES both ways, from the\n"
		"sessions (live ones, and those 'mseg gc' deleted) and the packets\n"
		"judged without one; FIRST_SEEN and LAST_SEEN the first decision and\n"
		"the last packet (UTC). VERDICT is allowed, denied or would-deny\n"
		"(passed, a deny would apply: audit mode); RULE the rule's id, or\n"
		"default. DPORT is - for a protocol without ports. While a staged\n"
		"policy is loaded ('mseg apply --staged'), STAGED and STAGED_RULE say\n"
		"what it decided of the flow's last new flow, and DISAGREEMENTS how\n"
		"many of its new flows it judged otherwise than the policy in force.\n"
		"\n"
		"Each CPU keeps %u flows it decided, in sets of %u: a flow whose set is\n"
		"full takes the place of the one seen least recently there.\n"
		"\n"
		"options:\n"
		"  --since DURATION  only the flows seen within DURATION: N seconds, or\n"
		"                    Ns, Nm, Nh, Nd (the counts are since first seen)\n"
		"  --json            one JSON array of objects (docs/json.md)\n"
		"  --dot             the flows as a Graphviz digraph ('mseg graph' draws it)\n"
		"  --staged-diff     only the flows the staged policy judges otherwise\n"
		"                    ('mseg staged diff')\n"
		"  --version         print the version\n"
		"Maps are read from $TC_BPF_MNT/tc/globals (default /sys/fs/bpf/tc/globals).\n",
		MSEG_FLOW_SLOTS, MSEG_FLOW_WAYS);
}

static int bad(const char *fmt, const char *arg)
{
	fprintf(stderr, "mseg: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	return 2;
}

/* DURATION: whole seconds, or a whole number of s, m, h or d. */
static int parse_since(const char *s, __u64 *ns)
{
	unsigned long long v, unit = 1;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *s < '0' || *s > '9')
		return -1;
	if (*end && end[1])
		return -1;
	switch (*end) {
	case '\0':
	case 's':
		break;
	case 'm':
		unit = 60;
		break;
	case 'h':
		unit = 3600;
		break;
	case 'd':
		unit = 86400;
		break;
	default:
		return -1;
	}
	if (!v || v > SINCE_MAX_S / unit)
		return -1;
	*ns = v * unit * MSEG_NS_PER_SEC;
	return 0;
}

/* 0: go on, 1: --help or --version printed, 2: bad command line. */
static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option opts[] = {
		{ "since", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "dot", no_argument, NULL, 'd' },
		{ "staged-diff", no_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (parse_since(optarg, &o->since_ns))
				return bad("flows: --since wants a duration (N, Ns, Nm, Nh or Nd, N >= 1), not '%s'",
					   optarg);
			break;
		case 'j':
			if (o->form == OUT_DOT)
				return bad("%s", "flows: --json or --dot, not both");
			o->form = OUT_JSON;
			break;
		case 'd':
			if (o->form == OUT_JSON)
				return bad("%s", "flows: --json or --dot, not both");
			o->form = OUT_DOT;
			break;
		case 'D':
			o->staged_diff = true;
			break;
		case 'h':
			usage(stdout);
			return 1;
		case 'V':
			printf("mseg-flows %s (abi %d)\n", MSEG_VERSION, MSEG_ABI_VERSION);
			return 1;
		default:
			if (optopt)
				return bad("flows: option '%s' wants a value", argv[optind - 1]);
			return bad("flows: unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return bad("flows: unexpected argument '%s'", argv[optind]);
	return 0;
}

/* The policy in force: the active set's statements. */
static int read_policy(struct mr_policy *p)
{
	struct mseg_config cfg;
	struct mr_maps m;
	int rc = -1;

	mr_policy_init(p);
	if (mr_open_maps(&m))
		goto out;
	if (mseg_read_config(m.config, &cfg))
		goto out;
	if (mr_read_policy(&m, cfg.active_set, p))
		rc = 0;
	staged_gen = (cfg.mode & MSEG_MODE_STAGED) ? cfg.staged_gen : 0;
out:
	if (m.ident >= 0)
		close(m.ident);
	if (m.rules >= 0)
		close(m.rules);
	if (m.hits >= 0)
		close(m.hits);
	if (m.source >= 0)
		close(m.source);
	if (m.config >= 0)
		close(m.config);
	return rc;
}

/* --- mseg learn ------------------------------------------------------------------------- */

/*
 * `mseg learn` (docs/learn.md): the flows read as `mseg flows` reads them,
 * each one exact (make_rows() naming by no segment), each side then given
 * its segment; libmseg-rules/learn.c writes the ruleset.
 */
struct learn_opts {
	__u64 since_ns; /* 0: every flow */
	const char *since, *segments, *out;
	int widen4, widen6;
};

static void learn_usage(FILE *f)
{
	fprintf(f,
		"usage: mseg learn [--since DURATION] [--segments FILE] [--widen BITS4[/BITS6]] [-o FILE]\n"
		"\n"
		"Write a least-privilege ruleset, in the format 'mseg apply' reads, that\n"
		"allows exactly the flows 'mseg flows' lists as allowed, under default\n"
		"deny. A side in a segment (of the policy in force, or of --segments\n"
		"FILE) is named by the segment, any other by its host address; the\n"
		"flows between the same sides on one protocol are one rule with a list\n"
		"of destination ports (split in several rules where one statement would\n"
		"be too long). A comment above each rule says what was seen of it.\n"
		"Denied and would-deny flows are not allowed: they are listed at the\n"
		"end, and one the rules would pass all the same (its hosts share a\n"
		"segment or a widened prefix with allowed ones) gets an exact deny rule.\n"
		"The ruleset holds the segments it names sides by and the failsafes in\n"
		"force, so it stands alone: check it with 'mseg apply --check FILE'.\n"
		"\n"
		"options:\n"
		"  --since DURATION       only the flows seen within DURATION: N seconds,\n"
		"                         or Ns, Nm, Nh, Nd (as 'mseg flows --since')\n"
		"  --segments FILE        name sides by the segments of FILE ('segment add\n"
		"                         NAME PREFIX...' lines), not by the policy's\n"
		"  --widen BITS4[/BITS6]  merge the host sources of one service (the same\n"
		"                         destination, protocol and port) that share an\n"
		"                         IPv4 /BITS4 (8..32) or an IPv6 /BITS6 (16..128)\n"
		"                         into that prefix; without /BITS6, IPv6 sources\n"
		"                         stay hosts. Without --widen every host is exact\n"
		"  -o, --output FILE      write FILE, whole or not at all (not stdout)\n"
		"  --version              print the version\n"
		"Maps are read from $TC_BPF_MNT/tc/globals (default /sys/fs/bpf/tc/globals).\n");
}

/* BITS4[/BITS6]: a prefix per family; IPv4 no wider than /8, IPv6 than /16. */
static int parse_widen(const char *s, struct learn_opts *o)
{
	unsigned long long b4, b6 = 0;
	char buf[16], *slash;

	if (strlen(s) >= sizeof(buf))
		return bad("learn: --widen wants BITS4[/BITS6] (such as 24 or 24/64), not '%s'", s);
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (slash)
		*slash++ = 0;
	if (!mr_uint(buf, 255, &b4) || (slash && !mr_uint(slash, 255, &b6)))
		return bad("learn: --widen wants BITS4[/BITS6] (such as 24 or 24/64), not '%s'", s);
	if (b4 < 8 || b4 > 32)
		return bad("learn: --widen %s: BITS4 is 8..32 (no IPv4 prefix wider than /8)", s);
	if (slash && (b6 < 16 || b6 > 128))
		return bad("learn: --widen %s: BITS6 is 16..128 (no IPv6 prefix wider than /16)", s);
	o->widen4 = (int)b4;
	o->widen6 = (int)b6;
	return 0;
}

/* 0: go on, 1: --help or --version printed, 2: bad command line. */
static int learn_args(int argc, char **argv, struct learn_opts *o)
{
	static const struct option opts[] = {
		{ "since", required_argument, NULL, 's' },
		{ "segments", required_argument, NULL, 'g' },
		{ "widen", required_argument, NULL, 'w' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	char opt[3] = "-?";
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":ho:", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (parse_since(optarg, &o->since_ns))
				return bad("learn: --since wants a duration (N, Ns, Nm, Nh or Nd, N >= 1), not '%s'",
					   optarg);
			o->since = optarg;
			break;
		case 'g':
			if (!*optarg)
				return bad("%s", "learn: --segments wants a file");
			o->segments = optarg;
			break;
		case 'w':
			if (parse_widen(optarg, o))
				return 2;
			break;
		case 'o':
			if (!*optarg)
				return bad("%s", "learn: -o wants a file");
			o->out = optarg;
			break;
		case 'h':
			learn_usage(stdout);
			return 1;
		case 'V':
			printf("mseg-flows %s (abi %d)\n", MSEG_VERSION, MSEG_ABI_VERSION);
			return 1;
		case ':':
			return bad("learn: option '%s' wants a value", argv[optind - 1]);
		default:
			opt[1] = (char)optopt;
			return bad("learn: unknown option '%s' (see 'mseg learn --help')",
				   optopt ? opt : argv[optind - 1]);
		}
	}
	if (optind < argc)
		return bad("learn: unexpected argument '%s' (see 'mseg learn --help')", argv[optind]);
	return 0;
}

/* A word for a '#' line: no control character may end the comment. */
static void comment_word(FILE *f, const char *s)
{
	for (; *s; s++)
		fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, f);
}

/* The ruleset's first lines: the command, where and when, from what. */
static char *learn_header(const struct learn_opts *o, int argc, char **argv,
			  const struct mr_policy *segs, long long now_real)
{
	char host[256] = "this host", at[64], *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	int i;

	if (!f)
		return NULL;
	if (gethostname(host, sizeof(host) - 1))
		snprintf(host, sizeof(host), "this host");
	host[sizeof(host) - 1] = 0;
	mseg_event_time(now_real, at, sizeof(at));
	fputs("# mseg learn", f);
	for (i = 1; i < argc; i++) {
		fputc(' ', f);
		comment_word(f, argv[i]);
	}
	fputs("\n# Learned on ", f);
	comment_word(f, host);
	fprintf(f, " at %s from the flows mseg recorded ('mseg flows'", at);
	if (o->since) {
		fputs(" --since ", f);
		comment_word(f, o->since);
	}
	fprintf(f, "):\n# sides named by the %zu segment%s of ", segs->ns, segs->ns == 1 ? "" : "s");
	if (o->segments)
		comment_word(f, o->segments);
	else
		fputs("the policy in force", f);
	if (!o->widen4 && !o->widen6) {
		fputs(", every other host exact.\n", f);
	} else {
		fputs(", other hosts exact but the sources of one service sharing", f);
		if (o->widen4)
			fprintf(f, " an IPv4 /%d", o->widen4);
		if (o->widen6)
			fprintf(f, "%s an IPv6 /%d", o->widen4 ? " or" : "", o->widen6);
		fputs(" (--widen).\n", f);
	}
	if (fclose(f)) {
		free(text);
		return NULL;
	}
	return text;
}

/* The rows, exact, as learn's flows: each side's segment, real times. */
static struct ml_flow *learn_flows(const struct row *rows, size_t n, const struct segs *sg,
				   long long boot_to_real)
{
	struct ml_flow *f = calloc(n ? n : 1, sizeof(*f));
	size_t i;

	if (!f) {
		fprintf(stderr, "mseg: out of memory\n");
		return NULL;
	}
	for (i = 0; i < n; i++) {
		const struct row *r = &rows[i];
		struct ml_flow *w = &f[i];

		memcpy(w->src, r->src, 16);
		memcpy(w->dst, r->dst, 16);
		w->family = mseg_addr_is_v4(r->src) ? 4 : 6;
		w->src_seg = segment_of(sg, r->src, (__u8)w->family);
		w->dst_seg = segment_of(sg, r->dst, (__u8)w->family);
		w->proto = r->proto;
		w->dport = r->dport;
		w->allowed = r->verdict == MSEG_FLOW_ALLOWED;
		w->verdict = r->verdict < MSEG_FLOW_VERDICT_MAX ? verdict_names[r->verdict] : "unknown";
		w->rule_id = r->rule_id;
		w->c.connections = r->connections;
		w->c.packets = r->packets;
		w->c.bytes = r->bytes;
		w->c.first_ns = r->first_ns ? (__u64)((long long)r->first_ns + boot_to_real) : 0;
		w->c.last_ns = (__u64)((long long)r->last_ns + boot_to_real);
	}
	return f;
}

/* -o FILE must be a file in a writable directory: said before anything is read. */
static int learn_out_check(const char *path)
{
	char *copy = strdup(path);
	struct stat st;
	int rc = 0;

	if (!copy) {
		fprintf(stderr, "mseg: out of memory\n");
		return 1;
	}
	if (!stat(path, &st) && S_ISDIR(st.st_mode)) {
		fprintf(stderr, "mseg: learn: cannot write %s: it is a directory\n", path);
		rc = 1;
	} else if (stat(dirname(copy), &st) || !S_ISDIR(st.st_mode) || access(copy, W_OK)) {
		fprintf(stderr, "mseg: learn: cannot write into %s: not a writable directory\n", copy);
		rc = 1;
	}
	free(copy);
	return rc;
}

/* FILE whole or not at all: written beside it, then renamed over it. */
static int learn_write(const char *path, const char *text, size_t len)
{
	char *copy = strdup(path), *tmp = malloc(strlen(path) + 32);
	size_t off = 0;
	int fd = -1, rc = 1;
	bool made = false;

	if (!copy || !tmp) {
		fprintf(stderr, "mseg: out of memory\n");
		goto out;
	}
	sprintf(tmp, "%s/.mseg-learn.XXXXXX", dirname(copy));
	fd = mkstemp(tmp);
	made = fd >= 0;
	if (fd < 0 || fchmod(fd, 0644)) {
		fprintf(stderr, "mseg: learn: cannot write %s: %s\n", path, strerror(errno));
		goto out;
	}
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			break;
		off += (size_t)w;
	}
	if (off < len || fsync(fd) || close(fd) || (fd = -1, rename(tmp, path))) {
		fprintf(stderr, "mseg: learn: cannot write %s: %s\n", path, strerror(errno));
		goto out;
	}
	fd = -1;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (rc && made)
		unlink(tmp);
	free(tmp);
	free(copy);
	return rc;
}

static int learn_main(int argc, char **argv)
{
	struct learn_opts o = { 0 };
	struct recs rs = { NULL, 0, 0 };
	struct mr_policy active, file, none;
	struct segs sg, exact;
	struct ml_opts mo = { 0 };
	struct ml_learned l = { 0 };
	struct ml_flow *fl = NULL;
	struct row *rows = NULL;
	long long boot_to_real;
	size_t n = 0;
	__u64 now;
	int rc;

	rc = learn_args(argc, argv, &o);
	if (rc)
		return rc == 1 ? 0 : rc;
	mr_policy_init(&file);
	mr_policy_init(&none);
	memset(&sg, 0, sizeof(sg));
	memset(&exact, 0, sizeof(exact));
	if (o.segments) {
		rc = ml_segments_read(o.segments, &file);
		if (rc) {
			mr_policy_free(&file);
			return rc;
		}
	}
	if (o.out && learn_out_check(o.out)) {
		mr_policy_free(&file);
		return 1;
	}
	if (read_flows(&rs) || read_sessions(&rs) || read_policy(&active)) {
		free(rs.r);
		mr_policy_free(&file);
		return 1;
	}
	rc = 1;
	if (segs_build(&sg, o.segments ? &file : &active) || segs_build(&exact, &none))
		goto out;
	now = mseg_now_boot_ns();
	boot_to_real = (long long)mseg_clock_ns(CLOCK_REALTIME) - (long long)now;
	rows = make_rows(&rs, &exact, o.since_ns && now > o.since_ns ? now - o.since_ns : 0, &n);
	if (!rows)
		goto out;
	fl = learn_flows(rows, n, &sg, boot_to_real);
	mo.widen4 = o.widen4;
	mo.widen6 = o.widen6;
	mo.header = learn_header(&o, argc, argv, o.segments ? &file : &active,
				 (long long)now + boot_to_real);
	if (!fl || !mo.header)
		goto out;
	if (!ml_learn(o.segments ? &file : &active, &active, fl, n, &mo, &l))
		goto out;
	if (o.out) {
		rc = learn_write(o.out, l.text, l.len);
	} else {
		rc = fwrite(l.text, 1, l.len, stdout) != l.len || fflush(stdout);
		if (rc)
			fprintf(stderr, "mseg: learn: cannot write the ruleset: %s\n", strerror(errno));
	}
out:
	ml_learned_free(&l);
	free((char *)mo.header);
	free(fl);
	free(rows);
	free(rs.r);
	segs_free(&sg);
	segs_free(&exact);
	mr_policy_free(&active);
	mr_policy_free(&file);
	return rc;
}

int main(int argc, char **argv)
{
	struct opts o = { .form = OUT_TEXT };
	struct recs rs = { NULL, 0, 0 };
	struct row *rows = NULL;
	struct mr_policy p;
	struct mseg_out out;
	struct segs sg;
	long long boot_to_real;
	size_t n = 0;
	__u64 now;
	int rc;

	/* `mseg learn`: build/mseg-flows learn ARGS... */
	if (argc > 1 && !strcmp(argv[1], "learn"))
		return learn_main(argc - 1, argv + 1);
	rc = parse_args(argc, argv, &o);
	if (rc)
		return rc == 1 ? 0 : rc;
	memset(&sg, 0, sizeof(sg));
	/*
	 * The policy (and whether one is staged) first, then the flows, then
	 * the sessions: a session mseg gc moves meanwhile is missed once,
	 * never counted twice.
	 */
	if (read_policy(&p) || read_flows(&rs) || read_sessions(&rs)) {
		free(rs.r);
		return 1;
	}
	rc = 1;
	if (segs_build(&sg, &p))
		goto out;
	now = mseg_now_boot_ns();
	boot_to_real = (long long)mseg_clock_ns(CLOCK_REALTIME) - (long long)now;
	rows = make_rows(&rs, &sg,
			 o.since_ns && now > o.since_ns ? now - o.since_ns : 0, &n);
	if (!rows || mseg_out_init(&out, stdout))
		goto out;
	if (o.staged_diff) {
		size_t i, k = 0;

		for (i = 0; i < n; i++)
			if (rows[i].st.valid && rows[i].st.disagreements)
				rows[k++] = rows[i];
		n = k;
	}
	if (o.form == OUT_JSON)
		print_json(&out, rows, n, boot_to_real);
	else if (o.form == OUT_TEXT)
		print_table(&out, rows, n, boot_to_real);
	rc = o.form == OUT_DOT && print_dot(&out, rows, n);
	if (mseg_out_close(&out))
		rc = 1;
out:
	free(rows);
	free(rs.r);
	segs_free(&sg);
	mr_policy_free(&p);
	return rc;
}
