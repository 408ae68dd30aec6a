// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * mseg-gc: reclaim expired sessions, count what is left, and bring the
 * pressure levels and the flood flag down with the table.
 *
 * The data path already treats an expired entry as absent; this frees its
 * slot. The sweep itself runs in the kernel (bpf/mseg_gc.bpf.c, embedded
 * here as a libbpf skeleton and run with BPF_PROG_TEST_RUN): it judges and
 * deletes each entry in one go, claiming it first, so a session a packet
 * has just refreshed or opened again on the same 5-tuple is never deleted
 * (docs/DESIGN.md, "Garbage collection and early drop").
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
#include <bpf/libbpf.h>

#include "mseg_abi.h"
#include "mseg_gc.h"
#include "mseg_lock.h"
#include "mseg_pinned.h"
#include "mseg_pinwatch.h"
#include "mseg_util.h"
#include "mseg_gc.skel.h"

/* The pinned maps the sweep program works on, with their layouts. */
static const struct {
	const char *name;
	__u32 key_size;
	__u32 value_size;
} gc_maps[] = {
	{ "mseg_sessions", sizeof(struct mseg_session_key),
	  sizeof(struct mseg_session) },
	{ "mseg_config", sizeof(__u32), sizeof(struct mseg_config) },
	{ "mseg_pressure", sizeof(__u32), sizeof(struct mseg_pressure) },
	{ "mseg_gc", sizeof(__u32), sizeof(struct mseg_gc_state) },
	{ "mseg_stats", sizeof(__u32), sizeof(struct mseg_stats) },
	{ "mseg_evlimit", sizeof(__u32), sizeof(struct mseg_event_limit) },
	{ "mseg_flows_gc", sizeof(struct mseg_flow_key),
	  sizeof(struct mseg_flow_val) }, /* deleted sessions' packets */
	{ "mseg_events", 0, 0 }, /* a ring buffer: no key, no value */
};

#define GC_NMAPS (sizeof(gc_maps) / sizeof(gc_maps[0]))

struct gc_result {
	struct mseg_gc_run run;
	double seconds;
};

static volatile int stop; /* set by SIGINT/SIGTERM */

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int silent_libbpf(enum libbpf_print_level level, const char *fmt,
			 va_list ap)
{
	if (level != LIBBPF_WARN)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

/* Open every pinned map of gc_maps into fds[], checking layouts. */
static int open_maps(int *fds)
{
	size_t i;

	for (i = 0; i < GC_NMAPS; i++) {
		if (gc_maps[i].key_size)
			fds[i] = mseg_open_map(gc_maps[i].name, gc_maps[i].key_size,
					       gc_maps[i].value_size, NULL);
		else
			fds[i] = mseg_open_pinned(gc_maps[i].name);
		if (fds[i] < 0)
			return -1;
	}
	return 0;
}

/*
 * Load the sweep program on the pinned maps: each map the object declares
 * is either one of those (reused) or left uncreated; nothing is pinned.
 * mseg_scratch is the exception: the events the sweep sends read the jiffy
 * clock (mseg_clock.h) cached there, and a private copy of that per-CPU
 * map serves as well as the classifier's.
 */
static struct mseg_gc_bpf *load_sweep(const int *fds)
{
	struct mseg_gc_bpf *skel = mseg_gc_bpf__open();
	struct bpf_map *map;
	int err;

	if (!skel) {
		fprintf(stderr, "mseg: cannot open the gc program: %s\n",
			strerror(errno));
		return NULL;
	}
	bpf_object__for_each_map(map, skel->obj) {
		const char *name = bpf_map__name(map);
		size_t i;

		bpf_map__set_pin_path(map, NULL);
		for (i = 0; i < GC_NMAPS; i++)
			if (!strcmp(name, gc_maps[i].name))
				break;
		if (i < GC_NMAPS)
			err = bpf_map__reuse_fd(map, fds[i]);
		else if (strcmp(name, "mseg_scratch"))
			err = bpf_map__set_autocreate(map, false);
		else
			err = 0;
		if (err) {
			fprintf(stderr, "mseg: gc program: map %s: %s\n", name,
				strerror(-err));
			mseg_gc_bpf__destroy(skel);
			return NULL;
		}
	}
	err = mseg_gc_bpf__load(skel);
	if (err) {
		fprintf(stderr,
			"mseg: cannot load the gc program: %s (is the kernel 6.6 or later?)\n",
			strerror(-err));
		mseg_gc_bpf__destroy(skel);
		return NULL;
	}
	return skel;
}

static int gc_once(struct mseg_gc_bpf *skel, struct gc_result *r)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = &r->run,
		    .ctx_size_in = sizeof(r->run));
	double t0 = mseg_now_mono_s();
	int err;

	memset(r, 0, sizeof(*r));
	err = bpf_prog_test_run_opts(bpf_program__fd(skel->progs.mseg_gc_sweep),
				     &opts);
	if (err || opts.retval) {
		fprintf(stderr, "mseg: the gc sweep failed: %s\n",
			err ? strerror(errno) : "a map is missing an entry");
		return -1;
	}
	r->seconds = mseg_now_mono_s() - t0;
	return 0;
}

static const char *level_name(__u32 flags)
{
	if (flags & MSEG_PRESSURE_DEGRADED)
		return "degraded";
	if (flags & MSEG_PRESSURE_CRIT)
		return "critical";
	if (flags & MSEG_PRESSURE_WARN)
		return "warning";
	return "ok";
}

static void print_result(const struct gc_result *r, bool json)
{
	const struct mseg_gc_run *g = &r->run;
	int i;

	if (!json) {
		printf("mseg gc: scanned %llu, expired %llu, deleted %llu, "
		       "live %llu, half-open %llu, in %.3f s; level %s%s\n",
		       g->scanned, g->expired, g->deleted, g->live,
		       g->half_open, r->seconds, level_name(g->flags),
		       g->flags & MSEG_PRESSURE_FLOOD ? ", SYN flood" : "");
		fflush(stdout);
		return;
	}
	printf("{\"scanned\":%llu,\"expired\":%llu,\"deleted\":%llu,"
	       "\"deleted_half_open\":%llu,\"live\":%llu,\"half_open\":%llu,"
	       "\"sessions\":%llu,\"level\":\"%s\",\"flood\":%s,"
	       "\"seconds\":%.6f,\"tcp_states\":{",
	       g->scanned, g->expired, g->deleted, g->deleted_half_open,
	       g->live, g->half_open, g->sessions, level_name(g->flags),
	       g->flags & MSEG_PRESSURE_FLOOD ? "true" : "false", r->seconds);
	for (i = 0; i < MSEG_TCP_STATE_MAX; i++)
		printf("%s\"%s\":%llu", i ? "," : "", mseg_tcp_state_names[i],
		       g->by_state[i]);
	printf("}}\n");
	fflush(stdout);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mseg gc [--interval S] [--json]\n"
		"Delete expired sessions from the pinned session table, count the\n"
		"live and half-open ones, and recompute the pressure level and the\n"
		"SYN-flood flag (they fall with the table, packets or not).\n"
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

/* The pinned maps and the sweep program loaded on them. */
struct gc_ctx {
	int fds[GC_NMAPS];
	struct mseg_pin_id pins[GC_NMAPS]; /* what fds were opened from */
	struct mseg_gc_bpf *skel;
};

static void gc_close(struct gc_ctx *c)
{
	size_t i;

	if (c->skel)
		mseg_gc_bpf__destroy(c->skel);
	c->skel = NULL;
	for (i = 0; i < GC_NMAPS; i++) {
		if (c->fds[i] >= 0)
			close(c->fds[i]);
		c->fds[i] = -1;
	}
}

static int gc_open(struct gc_ctx *c)
{
	size_t i;

	if (open_maps(c->fds))
		return -1;
	for (i = 0; i < GC_NMAPS; i++)
		mseg_pin_remember(gc_maps[i].name, c->fds[i], &c->pins[i]);
	c->skel = load_sweep(c->fds);
	return c->skel ? 0 : -1;
}

/*
 * A re-attach with new pins leaves us holding maps nothing uses: sweep the
 * new ones. If they cannot be opened (the pins are gone, or of another
 * layout), fail, so systemd restarts us until they are back.
 */
static int follow_pins(struct gc_ctx *c)
{
	struct mseg_pin_id was[GC_NMAPS];
	char dir[PATH_MAX];

	if (!mseg_pins_replaced("gc", c->pins, GC_NMAPS))
		return 0;
	memcpy(was, c->pins, sizeof(was));
	gc_close(c);
	if (!mseg_pins_wait(was, GC_NMAPS, MSEG_PIN_GRACE_S, &stop) ||
	    gc_open(c)) {
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
static int gc_locked(struct gc_ctx *c, struct gc_result *r)
{
	int lock = mseg_lock_take("gc", -1);
	int rc;

	if (lock < 0)
		return -1;
	rc = gc_once(c->skel, r);
	close(lock);
	return rc;
}

int main(int argc, char **argv)
{
	struct gc_ctx c = { .skel = NULL };
	struct gc_result r;
	unsigned interval = 0;
	bool json = false;
	size_t i;
	int rc;

	for (i = 0; i < GC_NMAPS; i++)
		c.fds[i] = -1;
	rc = parse_args(argc, argv, &interval, &json);
	if (rc)
		return rc == 1 ? 0 : rc;
	libbpf_set_print(silent_libbpf);
	rc = 1;
	if (gc_open(&c))
		goto out;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	do {
		rc = gc_locked(&c, &r) ? 1 : 0;
		if (rc)
			break;
		print_result(&r, json);
		if (interval)
			sleep(interval); /* a signal cuts it short */
		if (interval && !stop && follow_pins(&c)) {
			rc = 1;
			break;
		}
	} while (interval && !stop);
out:
	gc_close(&c);
	return rc;
}
