/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Draining the data path's event ring (mseg_events) into the event log
 * (mseg_evlog.h). A ring buffer hands each event to one consumer only, so
 * exactly one process drains it, whoever holds the "events" lock: the
 * mseg-eventd service, or else an `mseg log` that found no drainer. Events
 * the data path could not queue (the ring was full: mseg_stats.events_lost)
 * and lines the drainer could not write are recorded in the log as "lost"
 * lines, so readers see the gap; the former is exported as
 * mseg_events_lost_total too.
 */
#ifndef MSEG_DRAIN_H
#define MSEG_DRAIN_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "mseg_abi.h"
#include "mseg_event_fmt.h"
#include "mseg_evlog.h"
#include "mseg_lock.h"
#include "mseg_pinned.h"
#include "mseg_pinwatch.h"
#include "mseg_util.h"

#define MSEG_DRAIN_STATE ".events-lost" /* "MAP_ID LOST" of mseg_stats */

struct mseg_drain {
	struct mseg_evlog log;
	const char *prog; /* for messages */
	volatile const int *stop; /* the caller's "a signal came" flag */
	int lock;
	int events, stats;
	struct ring_buffer *rb;
	struct mseg_pin_id pins[2];
	long long boot_to_real_ns;
	int ncpus;
	__u64 *percpu;
	__u64 lost_seen;     /* events_lost already recorded in the log */
	__u64 write_failed;  /* events not written since the last "lost" line */
	__u64 written;
};

static inline long long mseg_drain_realtime_ns(void)
{
	return (long long)mseg_clock_ns(CLOCK_REALTIME);
}

static inline int mseg_drain_line(struct mseg_drain *d, const char *line, int n)
{
	if (mseg_evlog_append(&d->log, line, (size_t)n))
		return -1;
	d->written++;
	return 0;
}

static inline int mseg_drain_on_event(void *ctx, void *data, size_t size)
{
	struct mseg_drain *d = ctx;
	char line[MSEG_EVENT_LINE_MAX];
	int n;

	if (size < sizeof(struct mseg_event))
		return 0;
	n = mseg_event_json(data, d->boot_to_real_ns, line, sizeof(line));
	if (mseg_drain_line(d, line, n))
		d->write_failed++;
	return 0;
}

/* Sum of mseg_stats.events_lost over CPUs; -1 if unreadable. */
static inline long long mseg_drain_events_lost(struct mseg_drain *d)
{
	size_t per = MSEG_STATS_FIELDS, at = offsetof(struct mseg_stats, events_lost) / 8;
	__u32 zero = 0;
	__u64 sum = 0;
	int cpu;

	if (bpf_map_lookup_elem(d->stats, &zero, d->percpu))
		return -1;
	for (cpu = 0; cpu < d->ncpus; cpu++)
		sum += d->percpu[(size_t)cpu * per + at];
	return (long long)sum;
}

static inline void mseg_drain_state_path(const struct mseg_drain *d,
					 char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", d->log.dir, MSEG_DRAIN_STATE);
}

/* The events_lost already recorded, if recorded for this very map. */
static inline void mseg_drain_state_load(struct mseg_drain *d)
{
	char path[PATH_MAX];
	unsigned id = 0;
	unsigned long long lost = 0;
	FILE *f;

	d->lost_seen = 0;
	mseg_drain_state_path(d, path, sizeof(path));
	f = fopen(path, "re");
	if (!f)
		return;
	if (fscanf(f, "%u %llu", &id, &lost) == 2 && id == d->pins[1].map_id)
		d->lost_seen = lost;
	fclose(f);
}

static inline void mseg_drain_state_save(const struct mseg_drain *d)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	FILE *f;

	mseg_drain_state_path(d, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (!f)
		return;
	fprintf(f, "%u %llu\n", d->pins[1].map_id,
		(unsigned long long)d->lost_seen);
	if (fclose(f) || rename(tmp, path))
		unlink(tmp);
}

/* Record losses since the last look as "lost" lines. */
static inline void mseg_drain_note_lost(struct mseg_drain *d)
{
	long long lost = mseg_drain_events_lost(d);
	char line[MSEG_EVENT_LINE_MAX];
	int n;

	if (lost > (long long)d->lost_seen) {
		n = mseg_event_lost_json(mseg_drain_realtime_ns(),
					 (__u64)lost - d->lost_seen, "ring",
					 line, sizeof(line));
		if (!mseg_drain_line(d, line, n)) {
			d->lost_seen = (__u64)lost;
			mseg_drain_state_save(d);
		}
	}
	if (d->write_failed) {
		n = mseg_event_lost_json(mseg_drain_realtime_ns(),
					 d->write_failed, "log", line,
					 sizeof(line));
		if (!mseg_drain_line(d, line, n))
			d->write_failed = 0;
	}
}

static inline void mseg_drain_close_maps(struct mseg_drain *d)
{
	ring_buffer__free(d->rb);
	d->rb = NULL;
	if (d->events >= 0)
		close(d->events);
	if (d->stats >= 0)
		close(d->stats);
	d->events = d->stats = -1;
}

static inline int mseg_drain_open_maps(struct mseg_drain *d)
{
	d->events = mseg_open_pinned("mseg_events");
	if (d->events < 0)
		return -1;
	d->stats = mseg_open_map("mseg_stats", sizeof(__u32),
				 sizeof(struct mseg_stats), NULL);
	if (d->stats < 0)
		return -1;
	d->rb = ring_buffer__new(d->events, mseg_drain_on_event, d, NULL);
	if (!d->rb) {
		fprintf(stderr, "mseg: cannot read mseg_events: %s\n",
			strerror(errno));
		return -1;
	}
	mseg_pin_remember("mseg_events", d->events, &d->pins[0]);
	mseg_pin_remember("mseg_stats", d->stats, &d->pins[1]);
	mseg_drain_state_load(d);
	return 0;
}

/*
 * Become the drainer: MSEG_LOCK_BUSY if another process is, 0 when this one
 * is (maps open, log open), -1 after "mseg: ...".
 */
static inline int mseg_drain_start(struct mseg_drain *d, const char *prog,
				   volatile const int *stop)
{
	memset(d, 0, sizeof(*d));
	d->prog = prog;
	d->stop = stop;
	d->events = d->stats = d->lock = -1;
	d->log.fd = -1;
	d->log.dir = mseg_evlog_dir();
	d->log.max_bytes = MSEG_EVLOG_MAX_BYTES;
	d->log.keep = MSEG_EVLOG_KEEP;
	d->boot_to_real_ns = (long long)mseg_clock_ns(CLOCK_REALTIME) -
			     (long long)mseg_now_boot_ns();
	d->lock = mseg_lock_take("events", 0);
	if (d->lock < 0)
		return d->lock;
	d->ncpus = libbpf_num_possible_cpus();
	d->percpu = calloc(d->ncpus > 0 ? (size_t)d->ncpus : 1,
			   sizeof(struct mseg_stats));
	if (d->ncpus <= 0 || !d->percpu) {
		fprintf(stderr, "mseg: out of memory\n");
		return -1;
	}
	if (mseg_drain_open_maps(d) || mseg_evlog_open(&d->log))
		return -1;
	return 0;
}

static inline void mseg_drain_stop(struct mseg_drain *d)
{
	mseg_drain_close_maps(d);
	mseg_evlog_close(&d->log);
	free(d->percpu);
	d->percpu = NULL;
	if (d->lock >= 0)
		close(d->lock);
	d->lock = -1;
}

/*
 * Move what the ring holds into the log, waiting up to timeout_ms for the
 * first event (0: only what is there). Then record losses, and follow the
 * pins if they were replaced. -1 (after "mseg: ...") if the maps are gone.
 */
static inline int mseg_drain_poll(struct mseg_drain *d, int timeout_ms)
{
	int n = timeout_ms ? ring_buffer__poll(d->rb, timeout_ms) :
			     ring_buffer__consume(d->rb);

	if (n < 0 && n != -EINTR) {
		fprintf(stderr, "mseg: reading mseg_events failed: %s\n",
			strerror(-n));
		return -1;
	}
	mseg_drain_note_lost(d);
	if (mseg_pins_replaced(d->prog, d->pins, 2)) {
		char dir[PATH_MAX];

		struct mseg_pin_id was[2];

		/* what the old ring still holds goes first */
		ring_buffer__consume(d->rb);
		mseg_drain_note_lost(d);
		memcpy(was, d->pins, sizeof(was));
		mseg_drain_close_maps(d);
		if (!mseg_pins_wait(was, 2, MSEG_PIN_GRACE_S, d->stop) ||
		    mseg_drain_open_maps(d)) {
			fprintf(stderr, "mseg: %s: cannot reopen the maps: exiting\n",
				d->prog);
			return -1;
		}
		fprintf(stderr, "mseg: %s: reopened the maps under %s\n",
			d->prog, mseg_pin_dir(dir, sizeof(dir)));
	}
	return 0;
}

#endif /* MSEG_DRAIN_H */
