// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * mseg-textfile: mseg's counters, sessions and session-table pressure as
 * Prometheus metrics, written for node_exporter's textfile collector.
 *
 * Every run reopens the pinned maps (so a re-attached mseg is picked up, and
 * said so in the log),
 * sums the per-CPU counters, walks the session table with batch lookups
 * counting the unexpired sessions by protocol and TCP state (with the data
 * path's own expiry rule, bpf/mseg_timeout.h), counts the active rules, and
 * renders the whole file into a growing memory buffer. Only a complete
 * rendering is written: to a temporary file in the target directory (which
 * node_exporter ignores: it reads *.prom only), checked write by write,
 * fsync'ed, renamed over mseg.prom, and the directory fsync'ed. A failure
 * leaves the previous mseg.prom as it was and no temporary file behind.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "mseg_abi.h"
#include "mseg_timeout.h"
#include "mseg_batch.h"
#include "mseg_pinned.h"
#include "mseg_pinwatch.h"
#include "mseg_policy_hash.h"
#include "mseg_util.h"

#ifndef MSEG_VERSION
#define MSEG_VERSION "unknown"
#endif

#define TF_DEFAULT_DIR "/var/lib/prometheus/node-exporter"
#define TF_FILE "mseg.prom"
#define TF_TEMP ".mseg.prom.XXXXXX" /* not *.prom: node_exporter skips it */
#define TF_BATCH 8192

/* The proto label of mseg_sessions; ICMP and ICMPv6 apart, as in `mseg sessions`. */
enum tf_proto { TF_TCP, TF_UDP, TF_ICMP, TF_ICMPV6, TF_OTHER, TF_PROTO_MAX };

static const char *const tf_proto_names[TF_PROTO_MAX] = {
	"tcp", "udp", "icmp", "icmpv6", "other",
};

/* The maps whose fill is exported as mseg_map_* {map="..."}. */
enum tf_map { TF_MAP_SESSIONS, TF_MAP_POLICY, TF_MAP_CIDR, TF_MAP_FLOWS,
	      TF_MAP_MAX };

static const char *const tf_map_names[TF_MAP_MAX] = {
	"mseg_sessions", "mseg_source", "mseg_rules", "mseg_flows",
};

/* The verdict label of mseg_flows' totals (enum mseg_flow_verdict). */
static const char *const tf_verdict_names[MSEG_FLOW_VERDICT_MAX] = {
	"allowed", "denied", "would-deny",
};

struct tf_maps {
	int fd[TF_MAP_MAX];
	__u32 max_entries[TF_MAP_MAX];
	int config;
	int stats;
	int pressure;
	int gc;
	int evlimit;
	int hits; /* mseg_rule_hits */
	__u32 hits_max;
};

/* mseg_rule_hits_total: the rules with the most new flows, at most this many series. */
#define TF_TOP_RULES 10

struct tf_rule_hits {
	__u32 id;
	__u64 flows;
};

/* One collection: everything mseg.prom is rendered from. */
struct tf_sample {
	struct mseg_stats stats; /* summed over CPUs */
	struct mseg_pressure pressure;
	struct mseg_gc_state gc;
	struct mseg_event_limit evlimit;
	struct mseg_config cfg;
	bool shortened; /* a SYN flood or degradation shortens timeouts */
	__u64 now_boot_ns;
	__u64 now_real_ns;
	/* unexpired sessions: TCP by state, the rest by protocol */
	__u64 tcp[MSEG_TCP_STATE_MAX];
	__u64 proto[TF_PROTO_MAX];
	__u64 unconfirmed; /* of them picked up mid-stream, not answered */
	__u64 entries[TF_MAP_MAX];
	__u64 max_entries[TF_MAP_MAX];
	__u64 rules_exact; /* in the active rule set */
	__u64 rules_cidr;
	struct mseg_policy_hash policy; /* of the active set, mseg_policy_hash.h */
	/* mseg_flows' flows (distinct keys over every CPU's slots) and their
	 * connections, by verdict; the keys of the used slots, to count them */
	__u64 flows[MSEG_FLOW_VERDICT_MAX];
	__u64 flow_connections[MSEG_FLOW_VERDICT_MAX];
	struct mseg_flow_key *flow_keys;
	size_t nflow_keys;
	/* the rules (0: the default) with the most new flows, most first */
	struct tf_rule_hits top[TF_TOP_RULES];
	int ntop;
	int ncpus;
	double seconds;
};

/* Buffers kept from one collection to the next. */
struct tf_state {
	const char *dir;
	struct mseg_pin_id pins[TF_MAP_MAX]; /* the last run's maps */
	bool have_pins;
	struct mseg_batch sessions;
	struct mseg_batch policy;
	struct mseg_batch flows; /* values: one struct mseg_flow_slot per possible CPU */
	struct mseg_batch hits; /* values: one struct mseg_rule_hits per possible CPU */
	struct mseg_flow_key *flow_keys; /* room for every slot of every CPU */
	void *percpu; /* one struct mseg_stats per possible CPU */
	int ncpus;
};

/* --- reading the maps ------------------------------------------------------ */

static void close_maps(struct tf_maps *m)
{
	int i;

	for (i = 0; i < TF_MAP_MAX; i++)
		if (m->fd[i] >= 0)
			close(m->fd[i]);
	if (m->config >= 0)
		close(m->config);
	if (m->stats >= 0)
		close(m->stats);
	if (m->pressure >= 0)
		close(m->pressure);
	if (m->gc >= 0)
		close(m->gc);
	if (m->evlimit >= 0)
		close(m->evlimit);
	if (m->hits >= 0)
		close(m->hits);
}

/* Open every map, or print one "mseg: ..." line and return -1. */
static int open_maps(struct tf_maps *m)
{
	static const __u32 key_size[TF_MAP_MAX] = {
		sizeof(struct mseg_session_key),
		sizeof(struct mseg_source_key),
		sizeof(struct mseg_rule_key),
		sizeof(__u32),
	};
	static const __u32 val_size[TF_MAP_MAX] = {
		sizeof(struct mseg_session),
		sizeof(struct mseg_source_val),
		sizeof(struct mseg_rule_val),
		sizeof(struct mseg_flow_slot),
	};
	struct bpf_map_info info;
	char dir[PATH_MAX];
	int i;

	for (i = 0; i < TF_MAP_MAX; i++) {
		m->fd[i] = mseg_open_map(tf_map_names[i], key_size[i],
					 val_size[i], &info);
		if (m->fd[i] < 0)
			return -1;
		m->max_entries[i] = info.max_entries;
	}
	m->config = mseg_open_map("mseg_config", sizeof(__u32),
				  sizeof(struct mseg_config), NULL);
	if (m->config < 0)
		return -1;
	m->stats = mseg_open_map("mseg_stats", sizeof(__u32),
				 sizeof(struct mseg_stats), &info);
	if (m->stats < 0)
		return -1;
	if (info.type != BPF_MAP_TYPE_PERCPU_ARRAY) {
		fprintf(stderr,
			"mseg: %s/mseg_stats is not a per-CPU array: the pinned maps are from another mseg version\n",
			mseg_pin_dir(dir, sizeof(dir)));
		return -1;
	}
	m->pressure = mseg_open_map("mseg_pressure", sizeof(__u32),
				    sizeof(struct mseg_pressure), NULL);
	if (m->pressure < 0)
		return -1;
	m->gc = mseg_open_map("mseg_gc", sizeof(__u32),
			      sizeof(struct mseg_gc_state), NULL);
	if (m->gc < 0)
		return -1;
	m->evlimit = mseg_open_map("mseg_evlimit", sizeof(__u32),
				   sizeof(struct mseg_event_limit), NULL);
	if (m->evlimit < 0)
		return -1;
	m->hits = mseg_open_map("mseg_rule_hits", sizeof(__u32),
				sizeof(struct mseg_rule_hits), &info);
	if (m->hits < 0)
		return -1;
	m->hits_max = info.max_entries;
	return 0;
}

/*
 * mseg_rule_hits: each rule's new flows, every CPU's added up; the
 * TF_TOP_RULES largest (and non-zero) are kept in x->top, most first, ties
 * by the lower id. An array: every id is an entry, the unused ones zero.
 */
static int top_rules(void *ctx, const void *keys, const void *vals, __u32 n)
{
	const __u32 *k = keys;
	const struct mseg_rule_hits *v = vals;
	struct tf_sample *x = ctx;
	__u32 i;
	int c, j;

	for (i = 0; i < n; i++) {
		__u64 flows = 0;

		for (c = 0; c < x->ncpus; c++)
			flows += v[(size_t)i * (size_t)x->ncpus + (size_t)c].flows;
		if (!flows)
			continue;
		if (x->ntop == TF_TOP_RULES && flows <= x->top[TF_TOP_RULES - 1].flows)
			continue;
		j = x->ntop < TF_TOP_RULES ? x->ntop++ : TF_TOP_RULES - 1;
		for (; j > 0 && x->top[j - 1].flows < flows; j--)
			x->top[j] = x->top[j - 1];
		x->top[j] = (struct tf_rule_hits){ k[i], flows };
	}
	return 0;
}

static int read_one(int fd, const char *name, void *val)
{
	__u32 zero = 0;

	if (bpf_map_lookup_elem(fd, &zero, val)) {
		fprintf(stderr, "mseg: cannot read %s: %s\n", name,
			strerror(errno));
		return -1;
	}
	return 0;
}

/* mseg_stats holds one struct per CPU: the counters are their sums. */
static int read_stats(int fd, struct tf_state *t, struct mseg_stats *out)
{
	const __u64 *v = t->percpu;
	__u64 *sum = (__u64 *)out;
	size_t cpu, i;

	if (read_one(fd, "mseg_stats", t->percpu))
		return -1;
	memset(out, 0, sizeof(*out));
	for (cpu = 0; cpu < (size_t)t->ncpus; cpu++)
		for (i = 0; i < MSEG_STATS_FIELDS; i++)
			sum[i] += v[cpu * MSEG_STATS_FIELDS + i];
	return 0;
}

static int count_sessions(void *ctx, const void *keys, const void *vals,
			  __u32 n)
{
	const struct mseg_session_key *k = keys;
	const struct mseg_session *s = vals;
	struct tf_sample *x = ctx;
	__u32 i;

	x->entries[TF_MAP_SESSIONS] += n;
	for (i = 0; i < n; i++) {
		if (mseg_session_expired(&x->cfg, &k[i], &s[i], x->now_boot_ns,
					 x->shortened))
			continue;
		x->unconfirmed += mseg_session_unconfirmed(&k[i], &s[i]);
		switch (k[i].proto) {
		case IPPROTO_TCP:
			if (s[i].state < MSEG_TCP_STATE_MAX)
				x->tcp[s[i].state]++;
			else
				x->proto[TF_OTHER]++;
			break;
		case IPPROTO_UDP:
			x->proto[TF_UDP]++;
			break;
		case IPPROTO_ICMP:
			x->proto[TF_ICMP]++;
			break;
		case IPPROTO_ICMPV6:
			x->proto[TF_ICMPV6]++;
			break;
		default:
			x->proto[TF_OTHER]++;
		}
	}
	return 0;
}

static int count_rules(void *ctx, const void *keys, const void *vals,
		       __u32 n)
{
	const struct mseg_source_key *k = keys;
	const struct mseg_source_val *v = vals;
	struct tf_sample *x = ctx;
	__u32 i;

	/* the policy's statements (docs/policy.md): rules and cidr statements */
	x->entries[TF_MAP_POLICY] += n;
	for (i = 0; i < n; i++) {
		if (k[i].set != x->cfg.active_set)
			continue;
		x->rules_exact += !strncmp(v[i].line, "rule add ", 9);
		x->rules_cidr += !strncmp(v[i].line, "cidr add ", 9);
		mseg_ph_add_statement(&x->policy, v[i].line);
	}
	return 0;
}

/*
 * mseg_flows: every CPU's used slots (mseg_abi.h) are entries; their
 * connections add up by verdict, their keys are kept to count the flows.
 */
static int count_flows(void *ctx, const void *keys, const void *vals, __u32 n)
{
	const struct mseg_flow_slot *v = vals;
	struct tf_sample *x = ctx;
	__u32 i;
	int c;

	(void)keys;
	for (i = 0; i < n; i++) {
		for (c = 0; c < x->ncpus; c++) {
			const struct mseg_flow_slot *f = &v[(size_t)i * (size_t)x->ncpus + (size_t)c];

			if (!f->count.last_ns || f->flow.verdict >= MSEG_FLOW_VERDICT_MAX)
				continue;
			x->entries[TF_MAP_FLOWS]++;
			x->flow_connections[f->flow.verdict] += f->count.connections;
			x->flow_keys[x->nflow_keys++] = f->flow;
		}
	}
	return 0;
}

static int cmp_flow_key(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct mseg_flow_key));
}

/* The flows: distinct keys, by verdict. */
static void count_flow_keys(struct tf_sample *x)
{
	size_t i;

	qsort(x->flow_keys, x->nflow_keys, sizeof(*x->flow_keys), cmp_flow_key);
	for (i = 0; i < x->nflow_keys; i++)
		if (!i || cmp_flow_key(&x->flow_keys[i], &x->flow_keys[i - 1]))
			x->flows[x->flow_keys[i].verdict]++;
}

/*
 * The LPM trie has no batch lookup; its keys are walked one by one (its
 * size is bounded by max_entries, and rule sets are small).
 */
static int count_cidrs(int fd, __u32 max_entries, struct tf_sample *x)
{
	struct mseg_rule_key key, next;
	__u64 i;
	bool first = true;

	for (i = 0; i <= max_entries; i++) {
		if (bpf_map_get_next_key(fd, first ? NULL : &key, &next)) {
			if (errno == ENOENT)
				return 0;
			fprintf(stderr, "mseg: cannot walk mseg_rules: %s\n",
				strerror(errno));
			return -1;
		}
		x->entries[TF_MAP_CIDR]++;
		key = next;
		first = false;
	}
	fprintf(stderr, "mseg: mseg_rules holds more than its %u entries\n",
		max_entries);
	return -1;
}

/*
 * Each run opens the pins afresh; when they hold other maps than last time
 * (a re-attach with new pins), the log says so once.
 */
static void note_pins(struct tf_state *t, const struct tf_maps *m)
{
	struct mseg_pin_id now[TF_MAP_MAX];
	char dir[PATH_MAX];
	int i;

	for (i = 0; i < TF_MAP_MAX; i++)
		mseg_pin_remember(tf_map_names[i], m->fd[i], &now[i]);
	for (i = 0; t->have_pins && i < TF_MAP_MAX; i++) {
		if (now[i].map_id == t->pins[i].map_id &&
		    now[i].ino == t->pins[i].ino)
			continue;
		fprintf(stderr,
			"mseg: textfile: the pins under %s were replaced (%s: map id %u -> %u): reading the new maps\n",
			mseg_pin_dir(dir, sizeof(dir)), tf_map_names[i],
			t->pins[i].map_id, now[i].map_id);
		break;
	}
	memcpy(t->pins, now, sizeof(now));
	t->have_pins = true;
}

static int collect(struct tf_state *t, struct tf_sample *x)
{
	struct tf_maps m = { .fd = { -1, -1, -1, -1 }, .config = -1, .stats = -1,
			     .pressure = -1, .gc = -1, .evlimit = -1, .hits = -1 };
	double t0 = mseg_now_mono_s();
	int rc = -1;

	memset(x, 0, sizeof(*x));
	if (open_maps(&m))
		goto out;
	note_pins(t, &m);
	if (read_one(m.config, "mseg_config", &x->cfg) ||
	    read_one(m.pressure, "mseg_pressure", &x->pressure) ||
	    read_one(m.gc, "mseg_gc", &x->gc) ||
	    read_one(m.evlimit, "mseg_evlimit", &x->evlimit) ||
	    read_stats(m.stats, t, &x->stats))
		goto out;
	x->shortened = mseg_pressure_shortens(x->pressure.flags);
	x->ncpus = t->ncpus;
	x->flow_keys = t->flow_keys;
	mseg_ph_init(&x->policy, x->cfg.default_action);
	x->now_boot_ns = mseg_now_boot_ns();
	x->now_real_ns = mseg_clock_ns(CLOCK_REALTIME);
	if (mseg_batch_foreach(m.fd[TF_MAP_SESSIONS], "mseg_sessions",
			       m.max_entries[TF_MAP_SESSIONS], &t->sessions,
			       count_sessions, x) ||
	    mseg_batch_foreach(m.fd[TF_MAP_POLICY], "mseg_source",
			       m.max_entries[TF_MAP_POLICY], &t->policy,
			       count_rules, x) ||
	    count_cidrs(m.fd[TF_MAP_CIDR], m.max_entries[TF_MAP_CIDR], x) ||
	    mseg_batch_foreach(m.fd[TF_MAP_FLOWS], "mseg_flows",
			       m.max_entries[TF_MAP_FLOWS], &t->flows,
			       count_flows, x) ||
	    mseg_batch_foreach(m.hits, "mseg_rule_hits", m.hits_max, &t->hits,
			       top_rules, x))
		goto out;
	count_flow_keys(x);
	rc = 0;
out:
	for (int i = 0; i < TF_MAP_MAX; i++)
		x->max_entries[i] = m.max_entries[i];
	/* a slot per flow per CPU */
	x->max_entries[TF_MAP_FLOWS] *= (__u64)t->ncpus;
	x->flow_keys = NULL;
	close_maps(&m);
	x->seconds = mseg_now_mono_s() - t0;
	return rc;
}

/* --- rendering ------------------------------------------------------------- */

static void family(FILE *f, const char *name, const char *type,
		   const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value in the exposition format: \, " and newline escaped. */
static void label_value(FILE *f, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fprintf(f, "\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
}

/* name{label="value"} n, or name n when label is NULL. */
static void sample_u64(FILE *f, const char *name, const char *label,
		       const char *value, __u64 n)
{
	if (label) {
		fprintf(f, "%s{%s=\"", name, label);
		label_value(f, value);
		fprintf(f, "\"} %llu\n", (unsigned long long)n);
	} else {
		fprintf(f, "%s %llu\n", name, (unsigned long long)n);
	}
}

static void counter(FILE *f, const char *name, const char *help, __u64 n)
{
	family(f, name, "counter", help);
	sample_u64(f, name, NULL, NULL, n);
}

static void gauge(FILE *f, const char *name, const char *help, __u64 n)
{
	family(f, name, "gauge", help);
	sample_u64(f, name, NULL, NULL, n);
}

struct tf_labelled {
	const char *value;
	__u64 n;
};

static void labelled(FILE *f, const char *name, const char *type,
		     const char *help, const char *label,
		     const struct tf_labelled *s, size_t n)
{
	size_t i;

	family(f, name, type, help);
	for (i = 0; i < n; i++)
		sample_u64(f, name, label, s[i].value, s[i].n);
}

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static void render_counters(FILE *f, const struct mseg_stats *st)
{
	const struct tf_labelled packets[] = {
		{ "allowed", st->allowed },
		{ "denied", st->denied },
		{ "logged", st->logged },
		{ "dropped", st->dropped },
	};
	const struct tf_labelled lookups[] = {
		{ "session_hit", st->session_hit },
		{ "policy_hit", st->policy_hit },
		{ "ip_range_hit", st->ip_range_hit },
		{ "default_hit", st->default_hit },
		{ "related", st->related },
		{ "exempt", st->exempt },
	};
	const struct tf_labelled refused[] = {
		{ "strict", st->strict_drop },
		{ "vlan_limit", st->vlan_limit },
		{ "v4_mapped", st->v4_mapped },
		{ "exthdr_limit", st->exthdr_limit },
		{ "frag_tiny", st->frag_tiny },
		{ "frag_overlap", st->frag_overlap },
	};
	const struct tf_labelled transitions[] = {
		{ "established", st->tcp_established },
		{ "closed", st->tcp_closed },
	};

	counter(f, "mseg_packets_seen_total",
		"Packets the classifier saw, on every attached hook.",
		st->total);
	labelled(f, "mseg_packets_total", "counter",
		 "Packets by verdict: allowed (passed by an allow or log verdict, so logged ones too), "
		 "denied (a deny rule or default), logged (passed by a log rule), "
		 "dropped (refused before a decision, session-table pressure or a full table).",
		 "action", packets, ARRAY_LEN(packets));
	labelled(f, "mseg_lookups_total", "counter",
		 "How packets were decided: session_hit (a packet of a live session), "
		 "policy_hit, ip_range_hit, default_hit (a new flow decided by an exact rule, "
		 "a CIDR rule, the default action), related (an ICMP error about a live session), "
		 "exempt (IPv6 neighbour discovery or MLD from the link).",
		 "result", lookups, ARRAY_LEN(lookups));
	labelled(f, "mseg_refused_packets_total", "counter",
		 "Packets dropped before any decision: strict (strict mode: malformed, or fitting no "
		 "session), vlan_limit (too many VLAN tags), v4_mapped (IPv6 with an IPv4-mapped "
		 "address), exthdr_limit (too many IPv6 extension headers), frag_tiny (a first "
		 "fragment without its whole transport header), frag_overlap (a later fragment over "
		 "the TCP header).",
		 "reason", refused, ARRAY_LEN(refused));
	counter(f, "mseg_unjudged_packets_total",
		"Packets passed without a verdict: no whole IP header to judge (loose mode; the "
		"kernel discards them).",
		st->unjudged);
	counter(f, "mseg_sessions_created_total",
		"Sessions opened in the session table.", st->new_session);
	counter(f, "mseg_sessions_rejudged_total",
		"Sessions judged again because the rules changed.",
		st->rejudged);
	labelled(f, "mseg_tcp_transitions_total", "counter",
		 "TCP sessions that entered ESTABLISHED or CLOSE.", "to",
		 transitions, ARRAY_LEN(transitions));
	counter(f, "mseg_map_full_total",
		"New flows refused a session because the session table was full.",
		st->map_full);
	counter(f, "mseg_pressure_drops_total",
		"New flows dropped because the session table was degraded (above degrade_pct).",
		st->pressure_drop);
	counter(f, "mseg_malformed_packets_total",
		"Truncated or inconsistent packets (dropped in strict mode, judged by their addresses otherwise).",
		st->malformed);
	counter(f, "mseg_invalid_packets_total",
		"TCP packets or ICMP echo replies that fit no session: for TCP a flag "
		"combination no TCP sends, or one a session's state does not allow "
		"(dropped in strict mode, judged otherwise).",
		st->invalid);
	counter(f, "mseg_non_ip_packets_total",
		"Non-IP frames (ARP, LLDP, ...) passed untouched.", st->non_ip);
	counter(f, "mseg_fragments_total", "Non-first IP fragments.",
		st->fragments);
	counter(f, "mseg_fragments_unremembered_total",
		"First fragments whose ports could not be remembered: the fragment table was full.",
		st->frag_full);
	counter(f, "mseg_tcp_rst_ignored_total",
		"TCP RSTs that closed nothing: not at the exact next sequence number "
		"(RFC 5961), or outside the window.",
		st->rst_ignored);
	counter(f, "mseg_tcp_out_of_window_total",
		"TCP packets outside what the peers could have sent or acknowledged: "
		"no state or timeout changed (dropped in strict mode).",
		st->out_of_window);
	counter(f, "mseg_early_drops_total",
		"Sessions dropped early (half-open, unconfirmed, unanswered or finished) "
		"to make room for a new one the table had no room for.",
		st->early_drop);
	counter(f, "mseg_events_lost_total",
		"Events the data path could not queue.", st->events_lost);
	counter(f, "mseg_audit_denied_total",
		"New flows (and re-judged sessions) a deny would have stopped, passed as "
		"would-deny by audit mode (mode audit, or the rule's --audit).",
		st->audit_denied);
	counter(f, "mseg_staged_disagreements_total",
		"New flows the staged policy (mseg apply --staged) judged otherwise than "
		"the policy in force.",
		st->staged_disagree);
}

static void render_events(FILE *f, const struct mseg_event_limit *ev)
{
	const struct tf_labelled events[] = {
		{ "emitted", ev->emitted_total },
		{ "suppressed", ev->suppressed_total },
	};

	labelled(f, "mseg_events_total", "counter",
		 "Events for mseg log: emitted, or suppressed by the event_rate limit.",
		 "result", events, ARRAY_LEN(events));
}

static void render_sessions(FILE *f, const struct tf_sample *x)
{
	int i;

	family(f, "mseg_sessions", "gauge",
	       "Unexpired sessions by protocol and TCP state as the originator sees it "
	       "(state NONE for everything but TCP).");
	for (i = 0; i < MSEG_TCP_STATE_MAX; i++)
		fprintf(f, "mseg_sessions{proto=\"tcp\",state=\"%s\"} %llu\n",
			mseg_tcp_state_names[i], (unsigned long long)x->tcp[i]);
	for (i = TF_UDP; i < TF_PROTO_MAX; i++)
		fprintf(f, "mseg_sessions{proto=\"%s\",state=\"NONE\"} %llu\n",
			tf_proto_names[i], (unsigned long long)x->proto[i]);
	gauge(f, "mseg_sessions_unconfirmed",
	      "Unexpired TCP sessions picked up mid-stream (loose mode) that the "
	      "other side has not answered yet: short-lived, dropped early first.",
	      x->unconfirmed);
}

/* Low cardinality: totals by verdict, never a series per flow. */
static void render_flows(FILE *f, const struct tf_sample *x)
{
	int i;

	family(f, "mseg_flows", "gauge",
	       "Flows mseg_flows holds (docs/DESIGN.md, Flows: per source and destination address, "
	       "protocol, port and deciding rule), by verdict; a flow whose set is full on a CPU "
	       "takes the place of the one seen least recently there.");
	for (i = 0; i < MSEG_FLOW_VERDICT_MAX; i++)
		sample_u64(f, "mseg_flows", "verdict", tf_verdict_names[i], x->flows[i]);
	family(f, "mseg_flow_connections", "gauge",
	       "Connections (new flows decided) of the flows mseg_flows holds, by verdict; "
	       "falls when a flow's place is taken.");
	for (i = 0; i < MSEG_FLOW_VERDICT_MAX; i++)
		sample_u64(f, "mseg_flow_connections", "verdict", tf_verdict_names[i],
			   x->flow_connections[i]);
}

static void render_pressure(FILE *f, const struct tf_sample *x)
{
	const struct mseg_pressure *pr = &x->pressure;
	__s64 half_open = (__s64)(pr->half_open_opened - pr->half_open_closed -
				  x->gc.half_open_reaped);
	const struct tf_labelled levels[] = {
		{ "warning", !!(pr->flags & MSEG_PRESSURE_WARN) },
		{ "critical", !!(pr->flags & MSEG_PRESSURE_CRIT) },
		{ "degraded", !!(pr->flags & MSEG_PRESSURE_DEGRADED) },
	};
	const struct tf_labelled entered[] = {
		{ "warning", pr->warn_count },
		{ "critical", pr->crit_count },
		{ "degraded", pr->degrade_count },
	};
	int i;

	family(f, "mseg_map_entries", "gauge",
	       "Entries the map holds (for mseg_sessions: expired ones not yet reclaimed included).");
	for (i = 0; i < TF_MAP_MAX; i++)
		sample_u64(f, "mseg_map_entries", "map", tf_map_names[i],
			   x->entries[i]);
	family(f, "mseg_map_max_entries", "gauge",
	       "Capacity of the map (max_entries).");
	for (i = 0; i < TF_MAP_MAX; i++)
		sample_u64(f, "mseg_map_max_entries", "map", tf_map_names[i],
			   x->max_entries[i]);
	family(f, "mseg_map_pressure_ratio", "gauge",
	       "Fill of the map, entries over capacity, 0 to 1.");
	for (i = 0; i < TF_MAP_MAX; i++)
		fprintf(f, "mseg_map_pressure_ratio{map=\"%s\"} %.9g\n",
			tf_map_names[i],
			x->max_entries[i] ?
				(double)x->entries[i] / x->max_entries[i] : 0.0);
	labelled(f, "mseg_pressure_level", "gauge",
		 "1 while the session table is above that level (warn_pct, crit_pct, degrade_pct), else 0.",
		 "level", levels, ARRAY_LEN(levels));
	labelled(f, "mseg_pressure_level_entered_total", "counter",
		 "Times the session table entered that pressure level.",
		 "level", entered, ARRAY_LEN(entered));
	gauge(f, "mseg_syn_flood",
	      "1 while the SYN-flood flag is up (SYN rate or half-open sessions above threshold), else 0.",
	      !!(pr->flags & MSEG_PRESSURE_FLOOD));
	counter(f, "mseg_syn_floods_total", "Times the SYN-flood flag rose.",
		pr->flood_count);
	gauge(f, "mseg_half_open_sessions",
	      "Half-open TCP sessions (SYN_SENT, SYN_RECV, unconfirmed pickups) as the data path counts them for flood detection.",
	      half_open > 0 ? (__u64)half_open : 0);
	gauge(f, "mseg_syn_rate_per_second",
	      "New SYNs in the last complete one-second window.", pr->syn_rate);
}

static void render(FILE *f, const struct tf_sample *x)
{
	const struct tf_labelled rules[] = {
		{ "exact", x->rules_exact },
		{ "cidr", x->rules_cidr },
	};
	const struct mseg_gc_state *gc = &x->gc;
	double gc_ts = 0;

	family(f, "mseg_build_info", "gauge",
	       "The mseg version and map ABI of the collector that wrote this file; always 1.");
	fputs("mseg_build_info{version=\"", f);
	label_value(f, MSEG_VERSION);
	fprintf(f, "\",abi_version=\"%d\"} 1\n", MSEG_ABI_VERSION);
	render_counters(f, &x->stats);
	render_events(f, &x->evlimit);
	render_sessions(f, x);
	render_flows(f, x);
	render_pressure(f, x);
	family(f, "mseg_rule_hits_total", "counter",
	       "New flows (and re-judged sessions) decided by each of the 10 rules with the most "
	       "(rule: its id as mseg rule list shows it, or default); a rule that leaves the 10 "
	       "leaves no series.");
	/* the default's series is always there while there is room: a host
	 * whose rules never decided still has the series its panels read */
	bool dflt = false;

	for (int i = 0; i < x->ntop; i++) {
		if (x->top[i].id)
			fprintf(f, "mseg_rule_hits_total{rule=\"%u\"} %llu\n", x->top[i].id,
				(unsigned long long)x->top[i].flows);
		else
			fprintf(f, "mseg_rule_hits_total{rule=\"default\"} %llu\n",
				(unsigned long long)x->top[i].flows);
		dflt |= !x->top[i].id;
	}
	if (!dflt && x->ntop < TF_TOP_RULES)
		fputs("mseg_rule_hits_total{rule=\"default\"} 0\n", f);
	gauge(f, "mseg_audit_mode", "1 while mode audit passes every deny as a would-deny.",
	      (x->cfg.mode & MSEG_MODE_AUDIT) ? 1 : 0);
	gauge(f, "mseg_staged_loaded",
	      "1 while a staged policy is judged beside the policy in force.",
	      (x->cfg.mode & MSEG_MODE_STAGED) ? 1 : 0);
	labelled(f, "mseg_rules", "gauge",
		 "Statements in the active rule set: rules (rule add) and CIDR rules (cidr add).",
		 "kind", rules, ARRAY_LEN(rules));
	family(f, "mseg_policy_info", "gauge",
	       "Fingerprint of the applied policy (default action and the active rule set's statements, read from mseg_source); always 1.");
	fprintf(f, "mseg_policy_info{hash=\"%016llx\"} 1\n",
		(unsigned long long)mseg_ph_final(&x->policy));
	/* CLOCK_BOOTTIME stamp -> Unix time, by the clocks' offset now */
	if (gc->last_run_ns && gc->last_run_ns <= x->now_boot_ns)
		gc_ts = (x->now_real_ns - (x->now_boot_ns - gc->last_run_ns)) /
			1e9;
	family(f, "mseg_gc_last_run_timestamp_seconds", "gauge",
	       "Unix time of the last session-table sweep by mseg gc; 0 if it never ran.");
	fprintf(f, "mseg_gc_last_run_timestamp_seconds %.3f\n", gc_ts);
	counter(f, "mseg_gc_runs_total", "Sweeps mseg gc has made.", gc->runs);
	counter(f, "mseg_gc_deleted_sessions_total",
		"Expired sessions mseg gc deleted.", gc->deleted);
	family(f, "mseg_collector_duration_seconds", "gauge",
	       "Time mseg-textfile took to read the maps for this file.");
	fprintf(f, "mseg_collector_duration_seconds %.6f\n", x->seconds);
}

/* The whole file in a growing buffer; NULL after one "mseg: ..." line. */
static char *render_buffer(const struct tf_sample *x, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	int err;

	if (!f) {
		fprintf(stderr, "mseg: cannot render the metrics: %s\n",
			strerror(errno));
		return NULL;
	}
	errno = 0;
	render(f, x);
	err = ferror(f) ? (errno ? errno : ENOMEM) : 0;
	if (fclose(f) && !err)
		err = errno ? errno : ENOMEM;
	if (err) {
		fprintf(stderr, "mseg: cannot render the metrics: %s\n",
			strerror(err));
		free(buf);
		return NULL;
	}
	return buf;
}

/* --- writing it atomically ------------------------------------------------- */

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static char *path_join(const char *dir, const char *name)
{
	size_t dl = strlen(dir), nl = strlen(name);
	char *p = malloc(dl + nl + 2);

	if (!p)
		return NULL;
	memcpy(p, dir, dl);
	p[dl] = '/';
	memcpy(p + dl + 1, name, nl + 1);
	return p;
}

/*
 * DIR/mseg.prom := buf, all or nothing: temp file in DIR, every write
 * checked, fsync, rename, fsync DIR. On failure the temp file is removed.
 */
static int publish(const char *dir, const char *buf, size_t len)
{
	char *tmp = path_join(dir, TF_TEMP), *dst = path_join(dir, TF_FILE);
	const char *what = NULL;
	bool created = false;
	int fd = -1, dfd, rc = -1, err = 0;

	if (!tmp || !dst) {
		fprintf(stderr, "mseg: out of memory\n");
		goto out;
	}
	fd = mkstemp(tmp);
	if (fd < 0) {
		fprintf(stderr, "mseg: cannot create a temporary file in %s: %s\n",
			dir, strerror(errno));
		goto out;
	}
	created = true;
	/* mkstemp makes it 0600; node_exporter runs as another user */
	if (fchmod(fd, 0644))
		what = "chmod";
	else if (write_all(fd, buf, len))
		what = "write";
	else if (fsync(fd))
		what = "fsync";
	if (what)
		err = errno;
	if (close(fd) && !what) {
		what = "close";
		err = errno;
	}
	if (what) {
		fprintf(stderr, "mseg: cannot %s %s: %s\n", what, tmp,
			strerror(err));
		goto out;
	}
	if (rename(tmp, dst)) {
		fprintf(stderr, "mseg: cannot rename %s to %s: %s\n", tmp, dst,
			strerror(errno));
		goto out;
	}
	created = false; /* it is mseg.prom now */
	/* make the rename itself durable */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd)) {
		fprintf(stderr, "mseg: cannot fsync %s: %s\n", dir,
			strerror(errno));
		if (dfd >= 0)
			close(dfd);
		goto out;
	}
	close(dfd);
	rc = 0;
out:
	if (created)
		unlink(tmp);
	free(tmp);
	free(dst);
	return rc;
}

/* One collection and one file; -1 after one "mseg: ..." line. */
static int run_once(struct tf_state *t)
{
	struct tf_sample x;
	size_t len = 0;
	char *buf;
	int rc;

	if (collect(t, &x))
		return -1;
	buf = render_buffer(&x, &len);
	if (!buf)
		return -1;
	rc = publish(t->dir, buf, len);
	free(buf);
	return rc;
}

/* --- the command ----------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mseg-textfile [--dir DIR] [--interval S]\n"
		"Write mseg's counters, sessions and session-table pressure as\n"
		"Prometheus metrics to DIR/" TF_FILE " for node_exporter's textfile\n"
		"collector (node_exporter --collector.textfile.directory=DIR). The\n"
		"file is replaced atomically (temporary file in DIR, fsync, rename),\n"
		"so a scrape never sees half of it; on any error nothing is written.\n"
		"  --dir DIR     the textfile directory (default " TF_DEFAULT_DIR ")\n"
		"  --interval S  write every S seconds until SIGTERM or SIGINT\n"
		"                (default: once). The first write must succeed; a\n"
		"                later failure is reported and retried at the next tick.\n"
		"  --policy-hash print the applied policy's fingerprint (the hash\n"
		"                label of mseg_policy_info) and exit; writes nothing\n"
		"  --version     print the version\n"
		"Maps are read from $TC_BPF_MNT/tc/globals (default /sys/fs/bpf/tc/globals).\n");
}

static int parse_args(int argc, char **argv, const char **dir,
		      unsigned *interval, bool *hash_only)
{
	static const struct option opts[] = {
		{ "policy-hash", no_argument, NULL, 'p' },
		{ "dir", required_argument, NULL, 'd' },
		{ "interval", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "hd:i:", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (!*optarg) {
				fprintf(stderr, "mseg: --dir wants a directory\n");
				return 2;
			}
			*dir = optarg;
			break;
		case 'i':
			if (mseg_parse_interval(optarg, interval))
				return 2;
			break;
		case 'p':
			*hash_only = true;
			break;
		case 'h':
			usage(stdout);
			return 1;
		case 'V':
			printf("mseg-textfile %s (abi %d)\n", MSEG_VERSION,
			       MSEG_ABI_VERSION);
			return 1;
		default:
			if (optopt)
				fprintf(stderr, "mseg: textfile: option '%s' wants a value\n",
					argv[optind - 1]);
			else
				fprintf(stderr, "mseg: textfile: unknown option '%s'\n",
					argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "mseg: textfile: unexpected argument '%s'\n",
			argv[optind]);
		return 2;
	}
	return 0;
}

/*
 * Sleep until the monotonic time `until` (seconds) unless SIGTERM/SIGINT
 * comes first; they are blocked, so they wait here and never cut a write.
 * Returns true when told to stop.
 */
static bool wait_or_stop(const sigset_t *sigs, double until)
{
	for (;;) {
		double left = until - mseg_now_mono_s();
		struct timespec ts;
		int sig;

		if (left <= 0)
			return false;
		ts.tv_sec = (time_t)left;
		ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
		sig = sigtimedwait(sigs, NULL, &ts);
		if (sig == SIGTERM || sig == SIGINT)
			return true;
		if (sig < 0 && errno != EAGAIN && errno != EINTR) {
			fprintf(stderr, "mseg: sigtimedwait: %s\n",
				strerror(errno));
			return true;
		}
	}
}

static int state_init(struct tf_state *t)
{
	t->ncpus = libbpf_num_possible_cpus();
	if (t->ncpus <= 0) {
		fprintf(stderr, "mseg: cannot count the possible CPUs\n");
		return -1;
	}
	t->percpu = calloc((size_t)t->ncpus, sizeof(struct mseg_stats));
	if (!t->percpu) {
		fprintf(stderr, "mseg: out of memory\n");
		return -1;
	}
	if (mseg_batch_init(&t->sessions, sizeof(struct mseg_session_key),
			    sizeof(struct mseg_session), TF_BATCH) ||
	    mseg_batch_init(&t->policy, sizeof(struct mseg_source_key),
			    sizeof(struct mseg_source_val), TF_BATCH) ||
	    mseg_batch_init(&t->flows, sizeof(__u32),
			    (__u32)(sizeof(struct mseg_flow_slot) * (size_t)t->ncpus),
			    TF_BATCH) ||
	    mseg_batch_init(&t->hits, sizeof(__u32),
			    (__u32)(sizeof(struct mseg_rule_hits) * (size_t)t->ncpus),
			    TF_BATCH))
		return -1;
	t->flow_keys = calloc((size_t)MSEG_FLOW_SLOTS * (size_t)t->ncpus,
			      sizeof(*t->flow_keys));
	if (!t->flow_keys) {
		fprintf(stderr, "mseg: out of memory\n");
		return -1;
	}
	return 0;
}

static void state_free(struct tf_state *t)
{
	mseg_batch_free(&t->sessions);
	mseg_batch_free(&t->policy);
	mseg_batch_free(&t->flows);
	mseg_batch_free(&t->hits);
	free(t->flow_keys);
	free(t->percpu);
}

/* --policy-hash: the fingerprint alone, for deployment tools to compare. */
static int print_policy_hash(struct tf_state *t)
{
	struct tf_sample x;
	int rc = 1;

	if (!state_init(t) && !collect(t, &x)) {
		printf("%016llx\n", (unsigned long long)mseg_ph_final(&x.policy));
		rc = 0;
	}
	state_free(t);
	return rc;
}

int main(int argc, char **argv)
{
	struct tf_state t = { .dir = TF_DEFAULT_DIR };
	unsigned interval = 0;
	bool hash_only = false;
	sigset_t sigs;
	double next;
	int rc;

	rc = parse_args(argc, argv, &t.dir, &interval, &hash_only);
	if (rc)
		return rc == 1 ? 0 : rc;
	if (hash_only)
		return print_policy_hash(&t);

	/* SIGTERM/SIGINT are taken between writes only (wait_or_stop). */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigprocmask(SIG_BLOCK, &sigs, NULL);

	rc = 1;
	if (state_init(&t) || run_once(&t))
		goto out;
	rc = 0;
	/* Ticks on a fixed schedule; a tick missed by a slow run is skipped. */
	next = mseg_now_mono_s() + interval;
	while (interval && !wait_or_stop(&sigs, next)) {
		run_once(&t); /* a failure was reported; the old file stays */
		next += interval;
		if (next <= mseg_now_mono_s())
			next = mseg_now_mono_s() + interval;
	}
out:
	state_free(&t);
	return rc;
}
