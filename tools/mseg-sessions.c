// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * mseg-sessions: `mseg sessions`, the session table as conntrack -L/-D/-F
 * shows it: list (filtered, counted, sorted by address), delete, flush.
 *
 * The table is read with batch lookups and judged with the data path's own
 * expiry rule (bpf/mseg_timeout.h, the pressure shortening included), so a
 * session listed here is one the data path would find. Deletions return
 * each value as it was when deleted (BPF_MAP_LOOKUP_AND_DELETE), and the
 * half-open ones among them are added to mseg_gc.half_open_reaped under the
 * gc lock, as mseg gc does, so the data path's half-open count stays exact;
 * the occupancy (pressure) is the kernel's own element count and follows
 * by itself.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h> /* before linux/in.h (mseg_timeout.h) */
#include <bpf/bpf.h>

#include "mseg_abi.h"
#include "mseg_timeout.h"
#include "mseg_addr.h"
#include "mseg_batch.h"
#include "mseg_count.h"
#include "mseg_lock.h"
#include "mseg_out.h"
#include "mseg_pinned.h"
#include "mseg_util.h"
#include "libmseg-rules/rules.h" /* the failsafes' ids */

#define SESS_BATCH 8192
#define SESS_LOCK_WAIT_S 30

enum sess_cmd { CMD_LIST, CMD_DEL, CMD_FLUSH };

/* Every selector of `mseg sessions`, each matched against the originator's view. */
struct sess_filter {
	bool src_set, dst_set;
	struct mseg_prefix src, dst;
	int proto;  /* -1: any */
	int sport;  /* -1: any */
	int dport;  /* -1: any */
	int state;  /* -1: any; enum mseg_tcp_state */
	int action; /* -1: any; enum mseg_action */
	long rule;  /* -1: any; -2: a failsafe; the deciding rule's id, 0 the default */
	int given;  /* selectors on the command line */
};

struct sess_opts {
	enum sess_cmd cmd;
	struct sess_filter f;
	bool json;
	bool count;
	bool all; /* expired sessions too */
};

/*
 * One session as listed. The first SESS_SORT_LEN bytes are the sort key,
 * compared with one memcmp: IPv4 before IPv6, then the originator's
 * address and port, the responder's, the protocol (all big-endian).
 */
struct sess_row {
	__u8 v6;
	__u8 src[16];
	__u8 sport_be[2];
	__u8 dst[16];
	__u8 dport_be[2];
	__u8 proto;
	/* end of the sort key */
	__u8 state;
	__u8 action;
	__u8 expired;
	__u8 flags; /* MSEG_SESS_* */
	__u32 rule_id; /* 0: the default action */
	__u16 sport;
	__u16 dport;
	__u64 packets;
	__u64 bytes;
	__u64 last_seen_ns;
	__u64 created_ns;
};

#define SESS_SORT_LEN offsetof(struct sess_row, state)

struct sess_walk {
	const struct sess_opts *o;
	struct mseg_config cfg;
	__u64 now;
	bool pressure; /* a SYN flood or degradation shortens timeouts */
	/* listing */
	struct sess_row *rows;
	size_t nrows, cap;
	__u64 counted;
	/* deleting: the keys that matched */
	struct mseg_session_key *keys;
	size_t nkeys, kcap;
};

static const char *const action_names[MSEG_ACT_MAX] = {
	[MSEG_ACT_ALLOW] = "allow",
	[MSEG_ACT_DENY] = "deny",
	[MSEG_ACT_LOG] = "log",
	[MSEG_ACT_AUDIT] = "would-deny",
};

/* --- the originator's view of an entry ------------------------------------ */

static void to_row(const struct mseg_session_key *k, const struct mseg_session *s,
		   struct sess_row *r)
{
	const __u8 *oa = s->orig_is_hi ? k->addr_hi : k->addr_lo;
	const __u8 *ra = s->orig_is_hi ? k->addr_lo : k->addr_hi;

	r->sport = s->orig_is_hi ? k->port_hi : k->port_lo;
	r->dport = s->orig_is_hi ? k->port_lo : k->port_hi;
	r->v6 = k->family == 6;
	memcpy(r->src, oa, 16);
	memcpy(r->dst, ra, 16);
	r->sport_be[0] = (__u8)(r->sport >> 8);
	r->sport_be[1] = (__u8)r->sport;
	r->dport_be[0] = (__u8)(r->dport >> 8);
	r->dport_be[1] = (__u8)r->dport;
	r->proto = k->proto;
	r->state = s->state;
	r->action = s->action;
	r->flags = s->flags;
	r->rule_id = s->rule_id;
	r->packets = s->packets[MSEG_DIR_ORIG] + s->packets[MSEG_DIR_REPLY];
	r->bytes = s->bytes[MSEG_DIR_ORIG] + s->bytes[MSEG_DIR_REPLY];
	r->last_seen_ns = s->last_seen_ns;
	r->created_ns = s->created_ns;
}

static bool matches(const struct sess_filter *f, const struct sess_row *r)
{
	return (!f->src_set || mseg_prefix_match(&f->src, r->src)) &&
	       (!f->dst_set || mseg_prefix_match(&f->dst, r->dst)) &&
	       (f->proto < 0 || f->proto == r->proto) &&
	       (f->sport < 0 || f->sport == r->sport) &&
	       (f->dport < 0 || f->dport == r->dport) &&
	       (f->state < 0 || f->state == r->state) &&
	       (f->action < 0 || f->action == r->action) &&
	       (f->rule == -1 || f->rule == (long)r->rule_id ||
		(f->rule == -2 && r->rule_id >= MR_FAILSAFE_ID0));
}

/* --- walking the table ------------------------------------------------------- */

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
	size_t n = *cap ? *cap : 4096;
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

static int walk_batch(void *ctx, const void *keys, const void *vals, __u32 n)
{
	const struct mseg_session_key *k = keys;
	const struct mseg_session *v = vals;
	struct sess_walk *w = ctx;
	const struct sess_opts *o = w->o;
	struct sess_row row;
	__u32 i;

	for (i = 0; i < n; i++) {
		to_row(&k[i], &v[i], &row);
		row.expired = mseg_session_expired(&w->cfg, &k[i], &v[i],
						   w->now, w->pressure);
		/* del acts on what is in the table, expired or not */
		if ((row.expired && !o->all && o->cmd == CMD_LIST) ||
		    !matches(&o->f, &row))
			continue;
		if (o->cmd == CMD_DEL) {
			if (grow((void **)&w->keys, &w->kcap, w->nkeys + 1,
				 sizeof(*w->keys)))
				return -1;
			w->keys[w->nkeys++] = k[i];
		} else if (o->count) {
			w->counted++;
		} else {
			if (grow((void **)&w->rows, &w->cap, w->nrows + 1,
				 sizeof(*w->rows)))
				return -1;
			w->rows[w->nrows++] = row;
		}
	}
	return 0;
}

/*
 * Sorting a million rows: IPv4 rows (nearly all, usually) by a 128-bit key
 * built from their sort key's significant bytes, compared as two integers
 * in a compact array; IPv6 rows by memcmp of the whole sort key.
 */
struct v4_key {
	__u64 hi; /* src, sport, first half of dst */
	__u64 lo; /* rest of dst, dport, proto */
	const struct sess_row *row;
};

static int cmp_v4(const void *a, const void *b)
{
	const struct v4_key *x = a, *y = b;

	if (x->hi != y->hi)
		return x->hi < y->hi ? -1 : 1;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static int cmp_rowp(const void *a, const void *b)
{
	const struct sess_row *const *x = a, *const *y = b;

	return memcmp(*x, *y, SESS_SORT_LEN);
}

static __u32 be32(const __u8 *p)
{
	return (__u32)p[0] << 24 | (__u32)p[1] << 16 | (__u32)p[2] << 8 | p[3];
}

/* The rows in listing order, as pointers; NULL after "mseg: ..." */
static const struct sess_row **sort_rows(const struct sess_row *rows, size_t n)
{
	const struct sess_row **order = malloc((n ? n : 1) * sizeof(*order));
	struct v4_key *k4 = malloc((n ? n : 1) * sizeof(*k4));
	size_t i, n4 = 0, n6 = 0;

	if (!order || !k4) {
		fprintf(stderr, "mseg: out of memory\n");
		free(order);
		free(k4);
		return NULL;
	}
	for (i = 0; i < n; i++) {
		const struct sess_row *r = &rows[i];
		__u32 dst;

		if (r->v6) {
			order[n - 1 - n6++] = r;
			continue;
		}
		dst = be32(r->dst + 12);
		k4[n4].hi = (__u64)be32(r->src + 12) << 32 | (__u64)r->sport << 16 |
			    dst >> 16;
		k4[n4].lo = (__u64)(dst & 0xffff) << 48 | (__u64)r->dport << 32 |
			    (__u64)r->proto << 24;
		k4[n4++].row = r;
	}
	qsort(k4, n4, sizeof(*k4), cmp_v4);
	for (i = 0; i < n4; i++)
		order[i] = k4[i].row;
	free(k4);
	qsort(order + n4, n6, sizeof(*order), cmp_rowp);
	return order;
}

/* --- printing ------------------------------------------------------------------ */

static const char *proto_str(__u8 proto, char *buf)
{
	switch (proto) {
	case IPPROTO_TCP:
		return "tcp";
	case IPPROTO_UDP:
		return "udp";
	case IPPROTO_ICMP:
		return "icmp";
	case IPPROTO_ICMPV6:
		return "icmpv6";
	}
	mseg_fmt_u64(buf, proto);
	return buf;
}

static const char *state_str(__u8 state, char *buf)
{
	if (state < MSEG_TCP_STATE_MAX)
		return mseg_tcp_state_names[state];
	mseg_fmt_u64(buf, state);
	return buf;
}

static const char *action_str(__u8 action, char *buf)
{
	if (action < MSEG_ACT_MAX)
		return action_names[action];
	mseg_fmt_u64(buf, action);
	return buf;
}

/* Tenths of a second from now back to `then` (0 if `then` is ahead). */
static __u64 tenths_since(__u64 now, __u64 then)
{
	return now > then ? (now - then + 50000000ULL) / 100000000ULL : 0;
}

enum { COL_PROTO, COL_SRC, COL_SPORT, COL_DST, COL_DPORT, COL_STATE,
       COL_PACKETS, COL_BYTES, COL_IDLE, COL_CONFIRMED, COL_ACTION, COL_RULE,
       COL_EXPIRED, COL_MAX };

static const char *const col_names[COL_MAX] = {
	"PROTO", "SRC", "SPORT", "DST", "DPORT", "STATE",
	"PACKETS", "BYTES", "IDLE_S", "CONFIRMED", "ACTION", "RULE", "EXPIRED",
};

/*
 * Whether the responder has answered: "yes"; "pickup" for a TCP session
 * picked up mid-stream (loose mode) and unconfirmed until the other side
 * answers, with a short timeout of its own; "no" otherwise.
 */
static const char *confirmed_str(const struct sess_row *r)
{
	if (r->flags & MSEG_SESS_REPLIED)
		return "yes";
	return (r->flags & MSEG_SESS_PICKUP) ? "pickup" : "no";
}

/* Room one row takes at most, in text or JSON. */
#define ROW_MAX 512

static char *put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

#define PUT_LIT(p, lit) put(p, lit, sizeof(lit) - 1)

static char *put_str(char *p, const char *s)
{
	return put(p, s, strlen(s));
}

static char *put_u64(char *p, __u64 v)
{
	return p + mseg_fmt_u64(p, v);
}

static char *put_tenths(char *p, __u64 t)
{
	return p + mseg_fmt_tenths(p, t);
}

static char *put_addr(char *p, const __u8 a[16])
{
	return p + mseg_addr_format(a, p);
}

static char *pad_to(char *p, const char *start, size_t width)
{
	size_t n = (size_t)(p - start);

	if (n < width) {
		memset(p, ' ', width - n);
		p += width - n;
	}
	return p;
}

static size_t digits(__u64 v)
{
	size_t n = 1;

	while (v >= 10) {
		v /= 10;
		n++;
	}
	return n;
}

/*
 * The rows are read in listing order, which is random in memory: fetch a
 * few rows ahead, or every row costs a cache miss or two.
 */
#define PREFETCH_AHEAD 16

static const struct sess_row *row_at(const struct sess_row **order, size_t i,
				     size_t n)
{
	if (i + PREFETCH_AHEAD < n)
		__builtin_prefetch(order[i + PREFETCH_AHEAD]);
	return order[i];
}

/*
 * Columns two spaces apart, as every table of mseg. The widths come from a
 * first pass over the rows as they lie in memory (`rows`), the lines from
 * a second in listing order (`order`).
 */
static void print_table(struct mseg_out *out, const struct sess_row *rows,
			const struct sess_row **order, size_t n, __u64 now,
			bool all)
{
	int ncols = all ? COL_MAX : COL_EXPIRED;
	size_t w[COL_MAX], i;
	char buf[32], a[MSEG_ADDR_STRLEN];
	__u64 max_pk = 0, max_by = 0, max_idle = 0;
	int c;

	for (c = 0; c < ncols; c++)
		w[c] = strlen(col_names[c]);
	for (i = 0; i < n; i++) {
		const struct sess_row *r = &rows[i];
		size_t l;

		l = strlen(proto_str(r->proto, buf));
		w[COL_PROTO] = l > w[COL_PROTO] ? l : w[COL_PROTO];
		l = mseg_addr_format(r->src, a);
		w[COL_SRC] = l > w[COL_SRC] ? l : w[COL_SRC];
		l = mseg_addr_format(r->dst, a);
		w[COL_DST] = l > w[COL_DST] ? l : w[COL_DST];
		l = strlen(state_str(r->state, buf));
		w[COL_STATE] = l > w[COL_STATE] ? l : w[COL_STATE];
		l = strlen(action_str(r->action, buf));
		w[COL_ACTION] = l > w[COL_ACTION] ? l : w[COL_ACTION];
		l = r->rule_id ? digits(r->rule_id) : strlen("default");
		if (r->rule_id >= MR_FAILSAFE_ID0)
			l += strlen("failsafe:");
		w[COL_RULE] = l > w[COL_RULE] ? l : w[COL_RULE];
		max_pk = r->packets > max_pk ? r->packets : max_pk;
		max_by = r->bytes > max_by ? r->bytes : max_by;
		if (tenths_since(now, r->last_seen_ns) > max_idle)
			max_idle = tenths_since(now, r->last_seen_ns);
	}
	if (n) {
		w[COL_SPORT] = 5;
		w[COL_DPORT] = 5;
	}
	w[COL_PACKETS] = digits(max_pk) > w[COL_PACKETS] ? digits(max_pk) : w[COL_PACKETS];
	w[COL_BYTES] = digits(max_by) > w[COL_BYTES] ? digits(max_by) : w[COL_BYTES];
	if (digits(max_idle / 10) + 2 > w[COL_IDLE])
		w[COL_IDLE] = digits(max_idle / 10) + 2;
	for (c = 0; c < ncols; c++)
		w[c] += 2; /* the gap */
	{
		char line[ROW_MAX], *p = line, *s = line;

		for (c = 0; c < ncols; c++) {
			s = p;
			p = put_str(p, col_names[c]);
			if (c < ncols - 1)
				p = pad_to(p, s, w[c]);
		}
		*p++ = '\n';
		mseg_out_mem(out, line, (size_t)(p - line));
	}
	for (i = 0; i < n; i++) {
		const struct sess_row *r = row_at(order, i, n);
		char *p = mseg_out_reserve(out, ROW_MAX), *s = p, *start = p;

		p = pad_to(put_str(p, proto_str(r->proto, buf)), s, w[COL_PROTO]);
		s = p;
		p = pad_to(put_addr(p, r->src), s, w[COL_SRC]);
		s = p;
		p = pad_to(put_u64(p, r->sport), s, w[COL_SPORT]);
		s = p;
		p = pad_to(put_addr(p, r->dst), s, w[COL_DST]);
		s = p;
		p = pad_to(put_u64(p, r->dport), s, w[COL_DPORT]);
		s = p;
		p = pad_to(put_str(p, state_str(r->state, buf)), s, w[COL_STATE]);
		s = p;
		p = pad_to(put_u64(p, r->packets), s, w[COL_PACKETS]);
		s = p;
		p = pad_to(put_u64(p, r->bytes), s, w[COL_BYTES]);
		s = p;
		p = pad_to(put_tenths(p, tenths_since(now, r->last_seen_ns)), s,
			   w[COL_IDLE]);
		s = p;
		p = pad_to(put_str(p, confirmed_str(r)), s, w[COL_CONFIRMED]);
		s = p;
		p = pad_to(put_str(p, action_str(r->action, buf)), s, w[COL_ACTION]);
		s = p;
		/* a failsafe's id says so (docs/policy.md, "failsafes") */
		if (r->rule_id >= MR_FAILSAFE_ID0)
			p = PUT_LIT(p, "failsafe:");
		p = r->rule_id ? put_u64(p, r->rule_id) : PUT_LIT(p, "default");
		if (all) {
			p = pad_to(p, s, w[COL_RULE]);
			p = r->expired ? PUT_LIT(p, "yes") : PUT_LIT(p, "no");
		}
		*p++ = '\n';
		mseg_out_commit(out, (size_t)(p - start));
	}
}

/* docs/json.md: a list is one array of objects, on one line. */
static void print_json(struct mseg_out *out, const struct sess_row **order,
		       size_t n, __u64 now)
{
	char buf[8];
	size_t i;

	mseg_out_chr(out, '[');
	for (i = 0; i < n; i++) {
		const struct sess_row *r = row_at(order, i, n);
		char *p = mseg_out_reserve(out, ROW_MAX), *start = p;

		if (i)
			*p++ = ',';
		p = PUT_LIT(p, "{\"proto\":\"");
		p = put_str(p, proto_str(r->proto, buf));
		p = PUT_LIT(p, "\",\"src\":\"");
		p = put_addr(p, r->src);
		p = PUT_LIT(p, "\",\"sport\":");
		p = put_u64(p, r->sport);
		p = PUT_LIT(p, ",\"dst\":\"");
		p = put_addr(p, r->dst);
		p = PUT_LIT(p, "\",\"dport\":");
		p = put_u64(p, r->dport);
		p = PUT_LIT(p, ",\"state\":\"");
		p = put_str(p, state_str(r->state, buf));
		p = PUT_LIT(p, "\",\"packets\":");
		p = put_u64(p, r->packets);
		p = PUT_LIT(p, ",\"bytes\":");
		p = put_u64(p, r->bytes);
		p = PUT_LIT(p, ",\"idle_s\":");
		p = put_tenths(p, tenths_since(now, r->last_seen_ns));
		p = PUT_LIT(p, ",\"age_s\":");
		p = put_tenths(p, tenths_since(now, r->created_ns));
		p = (r->flags & MSEG_SESS_REPLIED) ?
			    PUT_LIT(p, ",\"confirmed\":true") :
			    PUT_LIT(p, ",\"confirmed\":false");
		p = (r->flags & MSEG_SESS_PICKUP) ?
			    PUT_LIT(p, ",\"pickup\":true") :
			    PUT_LIT(p, ",\"pickup\":false");
		p = PUT_LIT(p, ",\"action\":\"");
		p = put_str(p, action_str(r->action, buf));
		/* the rule that decided it (docs/policy.md), or the default */
		if (r->rule_id) {
			p = PUT_LIT(p, "\",\"rule\":");
			p = put_u64(p, r->rule_id);
			p = PUT_LIT(p, ",");
		} else {
			p = PUT_LIT(p, "\",\"rule\":\"default\",");
		}
		p = r->expired ? PUT_LIT(p, "\"expired\":true}") :
				 PUT_LIT(p, "\"expired\":false}");
		mseg_out_commit(out, (size_t)(p - start));
	}
	mseg_out_str(out, "]\n");
}

/* --- deleting -------------------------------------------------------------------- */

struct sess_deleted {
	__u64 sessions;
	__u64 half_open;
};

/*
 * Tell the data path's half-open count what went: mseg_gc has one writer at
 * a time, whoever holds the gc lock (mseg gc, or this).
 */
static int publish_reaped(int gc_fd, __u64 half_open)
{
	struct mseg_gc_state st;
	__u32 zero = 0;

	if (!half_open)
		return 0;
	if (bpf_map_lookup_elem(gc_fd, &zero, &st)) {
		fprintf(stderr, "mseg: cannot read mseg_gc: %s\n",
			strerror(errno));
		return -1;
	}
	st.half_open_reaped += half_open;
	if (bpf_map_update_elem(gc_fd, &zero, &st, BPF_ANY)) {
		fprintf(stderr, "mseg: cannot write mseg_gc: %s\n",
			strerror(errno));
		return -1;
	}
	return 0;
}

/* Delete the matched keys one by one, each with its value as it went. */
static int delete_keys(int fd, const struct sess_walk *w, struct sess_deleted *d)
{
	struct mseg_session v;
	size_t i;

	for (i = 0; i < w->nkeys; i++) {
		if (bpf_map_lookup_and_delete_elem(fd, &w->keys[i], &v)) {
			if (errno == ENOENT)
				continue; /* gone meanwhile (gc, the data path) */
			fprintf(stderr, "mseg: cannot delete a session: %s\n",
				strerror(errno));
			return -1;
		}
		d->sessions++;
		d->half_open += mseg_session_half_open(&w->keys[i], &v);
	}
	return 0;
}

/* Empty the table with batch lookup-and-deletes: values as they went, too. */
static int flush_all(int fd, __u32 max_entries, struct sess_deleted *d)
{
	struct mseg_batch b;
	__u32 in = 0, out = 0;
	bool first = true;
	__u64 calls;
	int rc = -1;

	if (mseg_batch_init(&b, sizeof(struct mseg_session_key),
			    sizeof(struct mseg_session), SESS_BATCH))
		return -1;
	for (calls = 0; calls <= (__u64)max_entries + 1; calls++) {
		const struct mseg_session_key *k = b.keys;
		const struct mseg_session *v = b.vals;
		__u32 count = b.cap, i;
		int err = bpf_map_lookup_and_delete_batch(fd, first ? NULL : &in,
							  &out, b.keys, b.vals,
							  &count, NULL);
		bool done = err && errno == ENOENT;

		if (err && !done) {
			fprintf(stderr, "mseg: cannot flush mseg_sessions: %s\n",
				strerror(errno));
			goto out;
		}
		for (i = 0; i < count; i++) {
			d->sessions++;
			d->half_open += mseg_session_half_open(&k[i], &v[i]);
		}
		if (done) {
			rc = 0;
			goto out;
		}
		in = out;
		first = false;
	}
	fprintf(stderr, "mseg: flushing mseg_sessions did not progress\n");
out:
	mseg_batch_free(&b);
	return rc;
}

/* --- the command ------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mseg sessions [list] [FILTER...] [--count] [--all] [--json]\n"
		"       mseg sessions del FILTER... [--json]\n"
		"       mseg sessions flush [--json]\n"
		"\n"
		"List the session table as the data path sees it, one connection a\n"
		"line: protocol, the originator's address and port (SRC, SPORT), the\n"
		"responder's (DST, DPORT), the TCP state as the originator sees it\n"
		"(NONE for non-TCP), packets and bytes both ways, seconds since the\n"
		"last packet (IDLE_S; JSON also age_s, since the first), whether the\n"
		"responder has answered (CONFIRMED: yes, no, or pickup for a TCP\n"
		"session picked up mid-stream in loose mode and not answered yet; JSON\n"
		"confirmed and pickup), the cached verdict and the rule that decided it\n"
		"(RULE: its id, or default); IPv4 first, sorted by address, port and\n"
		"protocol. A session idle for longer than its timeout (by TCP state or\n"
		"protocol; timeout_unconfirmed for an unconfirmed pickup;\n"
		"flood_syn_timeout for unanswered ones while the table is under a SYN\n"
		"flood or degraded, as the data path judges it) is not listed: the data\n"
		"path treats it as absent and 'mseg gc' deletes it.\n"
		"\n"
		"del deletes the sessions the filters select (expired or not), flush\n"
		"every session; both print how many went. A deleted connection's next\n"
		"packet is judged again as a new flow.\n"
		"\n"
		"filters (all must hold):\n"
		"  --src ADDR[/LEN]  the originator's address, or within that prefix\n"
		"  --dst ADDR[/LEN]  the responder's\n"
		"  --proto P         tcp, udp, icmp, icmpv6 or a number\n"
		"  --sport N         the originator's port (ICMP: the echo id)\n"
		"  --dport N         the responder's port\n"
		"  --state NAME      NONE, SYN_SENT, SYN_RECV, ESTABLISHED, FIN_WAIT1,\n"
		"                    FIN_WAIT2, TIME_WAIT, CLOSE, CLOSE_WAIT, LAST_ACK,\n"
		"                    CLOSING\n"
		"  --action A        the cached verdict: allow, deny or log\n"
		"  --rule ID         the rule that decided it (its id in 'mseg rule list'),\n"
		"                    default, or failsafe (any of the failsafes: the RULE\n"
		"                    column shows failsafe:ID)\n"
		"options:\n"
		"  --count           print the number of sessions selected, not them\n"
		"  --all             list (or count) expired sessions too (EXPIRED column)\n"
		"  --json            one JSON array of objects (docs/json.md); del and\n"
		"                    flush: {\"deleted\":N,\"half_open\":N}\n"
		"  --version         print the version\n"
		"Maps are read from $TC_BPF_MNT/tc/globals (default /sys/fs/bpf/tc/globals).\n");
}

static int bad(const char *fmt, const char *arg)
{
	fprintf(stderr, "mseg: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	return 2;
}

static int parse_port(const char *s, const char *opt, int *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || end == s || *s == '-' || *s == '+' || v > 65535) {
		fprintf(stderr, "mseg: %s wants a port 0..65535, not '%s'\n",
			opt, s);
		return 2;
	}
	*out = (int)v;
	return 0;
}

/* --rule ID|default|failsafe: a rule id as `mseg rule list` shows it. */
static int parse_rule(const char *arg, long *out)
{
	const char *s = arg;
	char *end;
	unsigned long v;

	if (!strcmp(s, "default") || !strcmp(s, "failsafe")) {
		*out = s[0] == 'd' ? 0 : -2;
		return 0;
	}
	/* the RULE column's spelling of a failsafe's id */
	if (!strncmp(s, "failsafe:", 9) && strlen(s) > 9)
		s += 9;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || end == s || *s == '-' || *s == '+' || !v ||
	    v >= MSEG_MAX_RULE_IDS) {
		fprintf(stderr, "mseg: --rule wants a rule id 1..%u, default or failsafe, not '%s'\n",
			MSEG_MAX_RULE_IDS - 1, arg);
		return 2;
	}
	*out = (long)v;
	return 0;
}

static int parse_proto(const char *s, int *out)
{
	static const struct { const char *name; int num; } names[] = {
		{ "tcp", IPPROTO_TCP }, { "udp", IPPROTO_UDP },
		{ "icmp", IPPROTO_ICMP }, { "icmpv6", IPPROTO_ICMPV6 },
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!strcmp(s, names[i].name)) {
			*out = names[i].num;
			return 0;
		}
	}
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || end == s || *s < '0' || *s > '9' || v > 255) {
		fprintf(stderr,
			"mseg: --proto wants tcp, udp, icmp, icmpv6 or 0..255, not '%s'\n",
			s);
		return 2;
	}
	*out = (int)v;
	return 0;
}

static int parse_name(const char *s, const char *opt,
		      const char *const *names, int n, int *out)
{
	int i;

	for (i = 0; i < n; i++) {
		if (names[i] && !strcasecmp(s, names[i])) {
			*out = i;
			return 0;
		}
	}
	fprintf(stderr, "mseg: unknown %s: '%s'\n", opt, s);
	return 2;
}

static int parse_prefix(const char *s, const char *opt, struct mseg_prefix *p,
			bool *set)
{
	char err[128];

	if (mseg_prefix_parse(s, p, err, sizeof(err))) {
		fprintf(stderr, "mseg: %s: %s\n", opt, err);
		return 2;
	}
	*set = true;
	return 0;
}

/* 0: go on, 1: --help or --version printed, 2: bad command line. */
static int parse_args(int argc, char **argv, struct sess_opts *o)
{
	static const struct option opts[] = {
		{ "src", required_argument, NULL, 's' },
		{ "dst", required_argument, NULL, 'd' },
		{ "proto", required_argument, NULL, 'p' },
		{ "sport", required_argument, NULL, 'S' },
		{ "dport", required_argument, NULL, 'D' },
		{ "state", required_argument, NULL, 't' },
		{ "action", required_argument, NULL, 'a' },
		{ "rule", required_argument, NULL, 'r' },
		{ "count", no_argument, NULL, 'c' },
		{ "all", no_argument, NULL, 'A' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct sess_filter *f = &o->f;
	int c, rc = 0;

	if (argc > 1 && argv[1][0] != '-') {
		if (!strcmp(argv[1], "list"))
			o->cmd = CMD_LIST;
		else if (!strcmp(argv[1], "del") || !strcmp(argv[1], "delete"))
			o->cmd = CMD_DEL;
		else if (!strcmp(argv[1], "flush"))
			o->cmd = CMD_FLUSH;
		else
			return bad("sessions: unknown subcommand '%s' (list, del or flush)",
				   argv[1]);
		argv++;
		argc--;
	}
	opterr = 0;
	while (!rc && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			rc = parse_prefix(optarg, "--src", &f->src, &f->src_set);
			break;
		case 'd':
			rc = parse_prefix(optarg, "--dst", &f->dst, &f->dst_set);
			break;
		case 'p':
			rc = parse_proto(optarg, &f->proto);
			break;
		case 'S':
			rc = parse_port(optarg, "--sport", &f->sport);
			break;
		case 'D':
			rc = parse_port(optarg, "--dport", &f->dport);
			break;
		case 't':
			rc = parse_name(optarg, "state", mseg_tcp_state_names,
					MSEG_TCP_STATE_MAX, &f->state);
			break;
		case 'a':
			rc = parse_name(optarg, "action", action_names,
					MSEG_ACT_MAX, &f->action);
			break;
		case 'r':
			rc = parse_rule(optarg, &f->rule);
			break;
		case 'c':
			o->count = true;
			continue;
		case 'A':
			o->all = true;
			continue;
		case 'j':
			o->json = true;
			continue;
		case 'h':
			usage(stdout);
			return 1;
		case 'V':
			printf("mseg-sessions %s (abi %d)\n", MSEG_VERSION,
			       MSEG_ABI_VERSION);
			return 1;
		default:
			if (optopt)
				return bad("sessions: option '%s' wants a value",
					   argv[optind - 1]);
			return bad("sessions: unknown option '%s'",
				   argv[optind - 1]);
		}
		f->given++;
	}
	if (rc)
		return rc;
	if (optind < argc)
		return bad("sessions: unexpected argument '%s'", argv[optind]);
	if (o->cmd == CMD_DEL && !f->given)
		return bad("%s", "sessions del needs a filter (to delete every session: 'mseg sessions flush')");
	if (o->cmd == CMD_FLUSH && f->given)
		return bad("%s", "sessions flush takes no filter (to delete some: 'mseg sessions del FILTER...')");
	if (o->cmd != CMD_LIST && (o->count || o->all))
		return bad("%s", "--count and --all are for listing");
	return 0;
}

struct sess_maps {
	int sessions, config, pressure, gc;
	__u32 max_entries;
};

static int open_maps(struct sess_maps *m)
{
	struct bpf_map_info info;

	m->sessions = mseg_open_map("mseg_sessions",
				    sizeof(struct mseg_session_key),
				    sizeof(struct mseg_session), &info);
	if (m->sessions < 0)
		return -1;
	m->max_entries = info.max_entries;
	m->config = mseg_open_map("mseg_config", sizeof(__u32),
				  sizeof(struct mseg_config), NULL);
	if (m->config < 0)
		return -1;
	m->pressure = mseg_open_map("mseg_pressure", sizeof(__u32),
				    sizeof(struct mseg_pressure), NULL);
	if (m->pressure < 0)
		return -1;
	m->gc = mseg_open_map("mseg_gc", sizeof(__u32),
			      sizeof(struct mseg_gc_state), NULL);
	return m->gc < 0 ? -1 : 0;
}

static void close_maps(const struct sess_maps *m)
{
	if (m->sessions >= 0)
		close(m->sessions);
	if (m->config >= 0)
		close(m->config);
	if (m->pressure >= 0)
		close(m->pressure);
	if (m->gc >= 0)
		close(m->gc);
}

static int walk(const struct sess_maps *m, struct sess_walk *w)
{
	struct mseg_pressure pr;
	struct mseg_batch b;
	__u32 zero = 0;
	int rc;

	if (mseg_read_config(m->config, &w->cfg))
		return -1;
	if (bpf_map_lookup_elem(m->pressure, &zero, &pr)) {
		fprintf(stderr, "mseg: cannot read mseg_pressure: %s\n",
			strerror(errno));
		return -1;
	}
	w->pressure = mseg_pressure_shortens(pr.flags);
	w->now = mseg_now_boot_ns();
	if (mseg_batch_init(&b, sizeof(struct mseg_session_key),
			    sizeof(struct mseg_session), SESS_BATCH))
		return -1;
	rc = mseg_batch_foreach(m->sessions, "mseg_sessions", m->max_entries,
				&b, walk_batch, w);
	mseg_batch_free(&b);
	return rc;
}

static int print_deleted(const struct sess_opts *o, const struct sess_deleted *d)
{
	if (o->json)
		printf("{\"deleted\":%llu,\"half_open\":%llu}\n",
		       (unsigned long long)d->sessions,
		       (unsigned long long)d->half_open);
	else
		printf("deleted %llu session%s (%llu half-open)\n",
		       (unsigned long long)d->sessions,
		       d->sessions == 1 ? "" : "s",
		       (unsigned long long)d->half_open);
	return fflush(stdout) ? 1 : 0;
}

static int run_delete(const struct sess_opts *o, const struct sess_maps *m,
		      struct sess_walk *w)
{
	struct sess_deleted d = { 0 };
	int lock, rc = 1;

	lock = mseg_lock_take("gc", SESS_LOCK_WAIT_S);
	if (lock < 0)
		return 1;
	if (o->cmd == CMD_FLUSH) {
		if (flush_all(m->sessions, m->max_entries, &d))
			goto out;
	} else if (walk(m, w) || delete_keys(m->sessions, w, &d)) {
		goto out;
	}
	if (publish_reaped(m->gc, d.half_open))
		goto out;
	rc = print_deleted(o, &d);
out:
	close(lock);
	return rc;
}

/* The number of entries, expired ones too: the kernel counts them. */
static int run_count_entries(const struct sess_opts *o, const struct sess_maps *m)
{
	long long n = mseg_map_elem_count(m->sessions, "mseg_sessions");

	if (n < 0)
		return 1;
	if (o->json)
		printf("{\"count\":%lld}\n", n);
	else
		printf("%lld\n", n);
	return fflush(stdout) ? 1 : 0;
}

static int run_list(const struct sess_opts *o, const struct sess_maps *m,
		    struct sess_walk *w)
{
	const struct sess_row **order;
	struct mseg_out out;

	if (o->count && o->all && !o->f.given)
		return run_count_entries(o, m);
	if (walk(m, w))
		return 1;
	if (o->count) {
		if (o->json)
			printf("{\"count\":%llu}\n", (unsigned long long)w->counted);
		else
			printf("%llu\n", (unsigned long long)w->counted);
		return fflush(stdout) ? 1 : 0;
	}
	order = sort_rows(w->rows, w->nrows);
	if (!order)
		return 1;
	if (mseg_out_init(&out, stdout)) {
		free(order);
		return 1;
	}
	if (o->json)
		print_json(&out, order, w->nrows, w->now);
	else
		print_table(&out, w->rows, order, w->nrows, w->now, o->all);
	free(order);
	return mseg_out_close(&out) ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct sess_opts o = {
		.f = { .proto = -1, .sport = -1, .dport = -1, .state = -1,
		       .action = -1, .rule = -1 },
	};
	struct sess_maps m = { -1, -1, -1, -1, 0 };
	struct sess_walk w = { .o = &o };
	int rc;

	rc = parse_args(argc, argv, &o);
	if (rc)
		return rc == 1 ? 0 : rc;
	if (open_maps(&m)) {
		close_maps(&m);
		return 1;
	}
	if (o.cmd == CMD_LIST)
		rc = run_list(&o, &m, &w);
	else
		rc = run_delete(&o, &m, &w);
	free(w.rows);
	free(w.keys);
	close_maps(&m);
	return rc;
}
