// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * mseg-gc: reclaim expired sessions and count what is left.
 *
 * The data path already treats an expired entry as absent; this frees its
 * slot. It reads the table with batch lookups and deletes with batch
 * deletes, a few syscalls per thousands of sessions, so a million-entry
 * table is swept in well under a second.
 */
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
#include <sys/file.h>
#include <bpf/bpf.h>

#include "mseg_abi.h"
#include "mseg_timeout.h"
#include "mseg_batch.h"
#include "mseg_lock.h"
#include "mseg_pinned.h"
#include "mseg_pinwatch.h"
#include "mseg_util.h"

#define GC_BATCH 8192

struct gc_result {
	__u64 scanned;
	__u64 expired;
	__u64 deleted;
	__u64 reaped_half_open; /* deleted sessions that were half-open */
	__u64 live;
	__u64 half_open;
	__u64 by_state[MSEG_TCP_STATE_MAX];
	double seconds;
};

struct gc_buffers {
	struct mseg_batch batch;
	struct mseg_session_key *dead; /* expired keys waiting for deletion */
	bool *dead_half_open;          /* was dead[i] a half-open session */
	__u32 dead_cap;
	__u32 ndead;
};

struct gc_maps {
	int sessions;
	__u32 sessions_max; /* the pinned table's capacity */
	int config;
	int pressure;
	int gc;
	struct mseg_pin_id pins[4]; /* what they were opened from */
};

static volatile int stop; /* set by SIGINT/SIGTERM */

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void count_deleted(const struct gc_buffers *b, __u32 from, __u32 n,
			  struct gc_result *r)
{
	__u32 i;

	r->deleted += n;
	for (i = from; i < from + n; i++)
		r->reaped_half_open += b->dead_half_open[i];
}

static int flush_dead(int fd, struct gc_buffers *b, struct gc_result *r)
{
	__u32 done = 0;

	while (done < b->ndead) {
		__u32 count = b->ndead - done;
		int err = bpf_map_delete_batch(fd, b->dead + done, &count, NULL);

		/* ENOENT: the key vanished meanwhile; skip it and go on.
		 * Only what this call really deleted is counted, so the
		 * half-open count the data path derives stays exact. */
		count_deleted(b, done, count, r);
		done += count;
		if (err && errno == ENOENT) {
			done++;
			continue;
		}
		if (err) {
			fprintf(stderr, "mseg: batch delete failed: %s\n",
				strerror(errno));
			return -1;
		}
	}
	b->ndead = 0;
	return 0;
}

static void account(const struct mseg_config *cfg, __u64 now, bool flood,
		    const struct mseg_session_key *k,
		    const struct mseg_session *s, struct gc_buffers *b,
		    struct gc_result *r)
{
	r->scanned++;
	if (mseg_session_expired(cfg, k, s, now, flood)) {
		r->expired++;
		b->dead_half_open[b->ndead] = mseg_session_half_open(k, s);
		b->dead[b->ndead++] = *k;
		return;
	}
	r->live++;
	if (mseg_session_half_open(k, s))
		r->half_open++;
	if (k->proto == IPPROTO_TCP && s->state < MSEG_TCP_STATE_MAX)
		r->by_state[s->state]++;
}

static bool flood_now(int pressure_fd)
{
	struct mseg_pressure pr;
	__u32 zero = 0;

	if (pressure_fd < 0 || bpf_map_lookup_elem(pressure_fd, &zero, &pr))
		return false;
	return pr.flags & MSEG_PRESSURE_FLOOD;
}

/* The data path subtracts half_open_reaped from its own half-open count. */
static int publish(int gc_fd, const struct gc_result *r, __u64 now)
{
	struct mseg_gc_state st;
	__u32 zero = 0;

	if (bpf_map_lookup_elem(gc_fd, &zero, &st)) {
		fprintf(stderr, "mseg: cannot read mseg_gc: %s\n",
			strerror(errno));
		return -1;
	}
	st.last_run_ns = now;
	st.runs++;
	st.sessions = r->scanned - r->deleted;
	st.live = r->live;
	st.half_open = r->half_open;
	st.deleted += r->deleted;
	st.half_open_reaped += r->reaped_half_open;
	if (bpf_map_update_elem(gc_fd, &zero, &st, BPF_ANY)) {
		fprintf(stderr, "mseg: cannot write mseg_gc: %s\n",
			strerror(errno));
		return -1;
	}
	return 0;
}

/* What one sweep needs while it walks the table batch by batch. */
struct gc_walk {
	const struct mseg_config *cfg;
	__u64 now;
	bool flood;
	int fd;
	struct gc_buffers *b;
	struct gc_result *r;
};

static int gc_batch(void *ctx, const void *keys, const void *vals, __u32 n)
{
	const struct mseg_session_key *k = keys;
	const struct mseg_session *v = vals;
	struct gc_walk *w = ctx;
	__u32 i;

	for (i = 0; i < n; i++)
		account(w->cfg, w->now, w->flood, &k[i], &v[i], w->b, w->r);
	/* Room for the next batch's expired keys, or delete these now. */
	if (w->b->ndead + w->b->batch.cap > w->b->dead_cap)
		return flush_dead(w->fd, w->b, w->r);
	return 0;
}

static int gc_once(const struct gc_maps *m, struct gc_buffers *b,
		   struct gc_result *r)
{
	struct mseg_config cfg;
	struct gc_walk w = { .cfg = &cfg, .fd = m->sessions, .b = b, .r = r };
	double t0 = mseg_now_mono_s();

	memset(r, 0, sizeof(*r));
	if (mseg_read_config(m->config, &cfg))
		return -1;
	w.flood = flood_now(m->pressure);
	w.now = mseg_now_boot_ns();
	if (mseg_batch_foreach(m->sessions, "mseg_sessions", m->sessions_max,
			       &b->batch, gc_batch, &w))
		return -1;
	if (flush_dead(m->sessions, b, r))
		return -1;
	r->seconds = mseg_now_mono_s() - t0;
	return publish(m->gc, r, w.now);
}

static void print_result(const struct gc_result *r, bool json)
{
	int i;

	if (!json) {
		printf("mseg gc: scanned %llu, expired %llu, deleted %llu, "
		       "live %llu, half-open %llu, in %.3f s\n",
		       r->scanned, r->expired, r->deleted, r->live,
		       r->half_open, r->seconds);
		fflush(stdout);
		return;
	}
	printf("{\"scanned\":%llu,\"expired\":%llu,\"deleted\":%llu,"
	       "\"deleted_half_open\":%llu,\"live\":%llu,\"half_open\":%llu,"
	       "\"seconds\":%.6f,\"tcp_states\":{",
	       r->scanned, r->expired, r->deleted, r->reaped_half_open,
	       r->live, r->half_open, r->seconds);
	for (i = 0; i < MSEG_TCP_STATE_MAX; i++)
		printf("%s\"%s\":%llu", i ? "," : "", mseg_tcp_state_names[i],
		       r->by_state[i]);
	printf("}}\n");
	fflush(stdout);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mseg gc [--interval S] [--json]\n"
		"Delete expired sessions from the pinned session table and count\n"
		"the live and half-open ones.\n"
		"  --interval S  run every S seconds until interrupted; when the pins\n"
		"                are replaced (a re-attach), say so and sweep the new\n"
		"                maps, or exit 1 if they cannot be opened\n"
		"  --json        one JSON object per run (a line each)\n"
		"  --version     print the version\n");
}

static int parse_args(int argc, char **argv, unsigned *interval, bool *json)
{
	static const struct option opts[] = {
		{ "interval", required_argument, NULL, 'i' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "hi:j", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			if (mseg_parse_interval(optarg, interval))
				return 2;
			break;
		case 'j':
			*json = true;
			break;
		case 'h':
			usage(stdout);
			return 1;
		case 'V':
			printf("mseg-gc %s (abi %d)\n", MSEG_VERSION,
			       MSEG_ABI_VERSION);
			return 1;
		default:
			fprintf(stderr, "mseg: gc: unknown option '%s'\n",
				argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "mseg: gc: unexpected argument '%s'\n",
			argv[optind]);
		return 2;
	}
	return 0;
}

static int open_maps(struct gc_maps *m)
{
	struct bpf_map_info info;

	m->sessions = mseg_open_map("mseg_sessions",
				    sizeof(struct mseg_session_key),
				    sizeof(struct mseg_session), &info);
	if (m->sessions < 0)
		return -1;
	m->sessions_max = info.max_entries;
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
	if (m->gc < 0)
		return -1;
	mseg_pin_remember("mseg_sessions", m->sessions, &m->pins[0]);
	mseg_pin_remember("mseg_config", m->config, &m->pins[1]);
	mseg_pin_remember("mseg_pressure", m->pressure, &m->pins[2]);
	mseg_pin_remember("mseg_gc", m->gc, &m->pins[3]);
	return 0;
}

static void close_maps(struct gc_maps *m)
{
	if (m->sessions >= 0)
		close(m->sessions);
	if (m->config >= 0)
		close(m->config);
	if (m->pressure >= 0)
		close(m->pressure);
	if (m->gc >= 0)
		close(m->gc);
	m->sessions = m->config = m->pressure = m->gc = -1;
}

/*
 * A re-attach with new pins leaves us holding maps nothing uses: sweep the
 * new ones. If they cannot be opened (the pins are gone, or of another
 * layout), fail, so systemd restarts us until they are back.
 */
static int follow_pins(struct gc_maps *m)
{
	char dir[PATH_MAX];

	struct mseg_pin_id was[4];

	if (!mseg_pins_replaced("gc", m->pins, 4))
		return 0;
	memcpy(was, m->pins, sizeof(was));
	close_maps(m);
	if (!mseg_pins_wait(was, 4, MSEG_PIN_GRACE_S, &stop) || open_maps(m)) {
		fprintf(stderr, "mseg: gc: cannot reopen the maps: exiting\n");
		return -1;
	}
	fprintf(stderr, "mseg: gc: reopened the maps under %s\n",
		mseg_pin_dir(dir, sizeof(dir)));
	return 0;
}

/*
 * One sweep under the gc lock: mseg_gc has one writer at a time (mseg gc,
 * mseg sessions del|flush), so its counts add up. The lock is held for a
 * sweep only, so a `gc --interval` service never starves the others.
 */
static int gc_locked(const struct gc_maps *m, struct gc_buffers *b,
		     struct gc_result *r)
{
	int lock = mseg_lock_take("gc", -1);
	int rc;

	if (lock < 0)
		return -1;
	rc = gc_once(m, b, r);
	close(lock);
	return rc;
}

int main(int argc, char **argv)
{
	struct gc_maps m = {
		.sessions = -1, .config = -1, .pressure = -1, .gc = -1
	};
	struct gc_buffers b = { 0 };
	struct gc_result r;
	unsigned interval = 0;
	bool json = false;
	int rc;

	rc = parse_args(argc, argv, &interval, &json);
	if (rc)
		return rc == 1 ? 0 : rc;
	if (open_maps(&m)) {
		close_maps(&m);
		return 1;
	}

	if (mseg_batch_init(&b.batch, sizeof(struct mseg_session_key),
			    sizeof(struct mseg_session), GC_BATCH)) {
		rc = 1;
		goto out;
	}
	b.dead_cap = 4 * GC_BATCH;
	b.dead = calloc(b.dead_cap, sizeof(*b.dead));
	b.dead_half_open = calloc(b.dead_cap, sizeof(*b.dead_half_open));
	if (!b.dead || !b.dead_half_open) {
		fprintf(stderr, "mseg: out of memory\n");
		rc = 1;
		goto out;
	}

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	do {
		rc = gc_locked(&m, &b, &r) ? 1 : 0;
		if (rc)
			break;
		print_result(&r, json);
		if (interval)
			sleep(interval); /* a signal cuts it short */
		if (interval && !stop && follow_pins(&m)) {
			rc = 1;
			break;
		}
	} while (interval && !stop);
out:
	mseg_batch_free(&b.batch);
	free(b.dead);
	free(b.dead_half_open);
	close_maps(&m);
	return rc;
}
