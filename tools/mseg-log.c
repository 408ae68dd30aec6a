// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * mseg-log: print mseg's events (denies, log verdicts, protective drops,
 * early drops, pressure levels, SYN floods, and "lost" records) from the
 * event log that the drainer writes (mseg_evlog.h), as text or as the
 * stored JSON lines.
 *
 * Reading the log takes nothing away: any number of readers, at once, see
 * every event. When no drainer runs (no mseg-eventd), the reader drains the
 * ring into the log itself first, and a --follow reader keeps draining
 * while it follows, until a drainer appears.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "mseg_drain.h"

#define LOG_TICK_MS 200

struct log_opts {
	bool json;
	bool follow;
	unsigned long long count;   /* last N (or, following, stop after N) */
	unsigned long long timeout; /* with --follow: stop after S seconds */
};

static volatile int stop; /* set by SIGINT/SIGTERM */

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* --- the stored line as text ------------------------------------------------ */

/* The value of "key" in one of our own JSON lines (no escapes): a copy. */
static bool field(const char *line, const char *key, char *buf, size_t len)
{
	char pat[32];
	const char *p, *end;
	size_t n;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(line, pat);
	if (!p)
		return false;
	p += strlen(pat);
	if (*p == '"') {
		p++;
		end = strchr(p, '"');
	} else {
		end = p + strcspn(p, ",}");
	}
	if (!end)
		return false;
	n = (size_t)(end - p);
	if (n >= len)
		n = len - 1;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return true;
}

static void endpoint(FILE *f, const char *addr, const char *port)
{
	bool v6 = strchr(addr, ':');

	fprintf(f, "%s%s%s:%s", v6 ? "[" : "", addr, v6 ? "]" : "", port);
}

static void print_text(const char *line)
{
	char when[64], ev[16], v[64], src[64], dst[64], sp[8], dp[8], proto[8];
	char reason[32], rej[8], sup[16];

	if (!field(line, "time", when, sizeof(when)) ||
	    !field(line, "event", ev, sizeof(ev)))
		return; /* not one of ours: a torn or foreign line */
	printf("%s %-8s", when, ev);
	if (!strcmp(ev, "lost")) {
		field(line, "lost", v, sizeof(v));
		field(line, "where", src, sizeof(src));
		printf(" %s events lost (%s)\n", v,
		       !strcmp(src, "ring") ? "the ring was full" :
					      "the log could not be written");
		return;
	}
	if (field(line, "src", src, sizeof(src)) &&
	    field(line, "dst", dst, sizeof(dst)) &&
	    field(line, "sport", sp, sizeof(sp)) &&
	    field(line, "dport", dp, sizeof(dp)) &&
	    field(line, "proto", proto, sizeof(proto))) {
		printf(" %s ", proto);
		endpoint(stdout, src, sp);
		printf(" -> ");
		endpoint(stdout, dst, dp);
		if (field(line, "idle_s", v, sizeof(v)))
			printf(" idle=%ss", v);
	} else if (field(line, "value", v, sizeof(v))) {
		printf(" value=%s", v);
	}
	/* the deciding rule of a deny or log event (mseg_event_fmt.h) */
	if (field(line, "rule", v, sizeof(v)) && strcmp(v, "null"))
		printf(" rule=%s", v);
	if (!field(line, "reason", reason, sizeof(reason)))
		strcpy(reason, "unknown");
	printf(" reason=%s", reason);
	if (field(line, "rejudged", rej, sizeof(rej)) && !strcmp(rej, "true"))
		printf(" (open session judged again)");
	if (field(line, "suppressed", sup, sizeof(sup)) && strcmp(sup, "0"))
		printf(" (%s earlier events suppressed)", sup);
	printf("\n");
}

static void print_line(const struct log_opts *o, const char *line)
{
	if (o->json)
		fputs(line, stdout);
	else
		print_text(line);
}

/* --- reading the files -------------------------------------------------------- */

/* The last `keep` lines seen (all of them when keep is 0). */
struct tail {
	char **lines;
	size_t n, cap, keep, next;
};

static int tail_add(struct tail *t, const char *line)
{
	char *copy = strdup(line);

	if (!copy)
		return -1;
	if (t->keep && t->n == t->keep) {
		free(t->lines[t->next]);
		t->lines[t->next] = copy;
		t->next = (t->next + 1) % t->keep;
		return 0;
	}
	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 256;
		char **l = realloc(t->lines, cap * sizeof(*l));

		if (!l) {
			free(copy);
			return -1;
		}
		t->lines = l;
		t->cap = cap;
	}
	t->lines[t->n++] = copy;
	return 0;
}

static int read_file(const char *path, struct tail *t)
{
	char *line = NULL;
	size_t cap = 0;
	FILE *f = fopen(path, "re");
	int rc = 0;

	if (!f)
		return errno == ENOENT ? 0 : -1;
	while (getline(&line, &cap, f) > 0) {
		/* a line without its newline is still being written */
		if (line[strlen(line) - 1] != '\n')
			break;
		if (tail_add(t, line)) {
			rc = -1;
			break;
		}
	}
	if (ferror(f))
		rc = -1;
	free(line);
	fclose(f);
	return rc;
}

/* Every stored event, oldest first (rotated files, then the current one). */
static int print_history(const struct log_opts *o, const char *dir)
{
	struct tail t = { .keep = o->count };
	char path[PATH_MAX];
	size_t i;
	int n, rc = 0;

	for (n = MSEG_EVLOG_KEEP_MAX; n >= 0 && !rc; n--) {
		mseg_evlog_path(dir, n, path, sizeof(path));
		if (read_file(path, &t)) {
			fprintf(stderr, "mseg: cannot read %s: %s\n", path,
				strerror(errno ? errno : ENOMEM));
			rc = -1;
		}
	}
	for (i = 0; i < t.n; i++) {
		const char *l = t.lines[t.keep && t.n == t.keep ?
						(t.next + i) % t.keep : i];

		if (!rc)
			print_line(o, l);
	}
	for (i = 0; i < t.n; i++)
		free(t.lines[i]);
	free(t.lines);
	return rc;
}

/* --- following ----------------------------------------------------------------- */

struct follower {
	const char *dir;
	FILE *f;     /* the current log, read from where we are */
	ino_t ino;
	char *part;  /* an incomplete last line, kept until its newline */
	size_t plen;
};

static void follower_open(struct follower *fw, bool at_end)
{
	char path[PATH_MAX];
	struct stat st;

	mseg_evlog_path(fw->dir, 0, path, sizeof(path));
	fw->f = fopen(path, "re");
	if (!fw->f)
		return;
	if (fstat(fileno(fw->f), &st)) {
		fclose(fw->f);
		fw->f = NULL;
		return;
	}
	fw->ino = st.st_ino;
	if (at_end)
		fseek(fw->f, 0, SEEK_END);
}

/* Print the complete new lines; returns how many. */
static unsigned long long follower_read(struct follower *fw,
					const struct log_opts *o,
					unsigned long long room)
{
	unsigned long long printed = 0;
	char buf[MSEG_EVENT_LINE_MAX];

	while (printed < room && fgets(buf, sizeof(buf), fw->f)) {
		size_t len = strlen(buf);
		char *p = realloc(fw->part, fw->plen + len + 1);

		if (!p)
			break;
		fw->part = p;
		memcpy(fw->part + fw->plen, buf, len + 1);
		fw->plen += len;
		if (fw->part[fw->plen - 1] != '\n')
			continue;
		print_line(o, fw->part);
		fw->plen = 0;
		printed++;
	}
	clearerr(fw->f); /* at EOF now; the drainer may append more */
	return printed;
}

/* After a rotation, finish the old file, then read the new one from its start. */
static bool follower_rotated(struct follower *fw)
{
	char path[PATH_MAX];
	struct stat st;

	mseg_evlog_path(fw->dir, 0, path, sizeof(path));
	return !stat(path, &st) && st.st_ino != fw->ino;
}

static int follow(const struct log_opts *o, struct mseg_drain *d, bool draining)
{
	struct follower fw = { .dir = mseg_evlog_dir() };
	unsigned long long printed = 0;
	double deadline = o->timeout ? mseg_now_mono_s() + (double)o->timeout : 0;
	struct timespec tick = { 0, LOG_TICK_MS * 1000000L };
	int rc = 0;

	follower_open(&fw, true);
	while (!stop && (!o->count || printed < o->count)) {
		if (!draining) {
			int r = mseg_drain_start(d, "log", &stop);

			if (r == 0) {
				draining = true; /* no drainer left: this reader is it */
			} else {
				mseg_drain_stop(d);
				if (r != MSEG_LOCK_BUSY) {
					rc = -1;
					break;
				}
			}
		}
		if (draining && mseg_drain_poll(d, LOG_TICK_MS)) {
			rc = -1;
			break;
		}
		if (!draining)
			nanosleep(&tick, NULL);
		if (!fw.f)
			follower_open(&fw, false);
		if (fw.f) {
			printed += follower_read(&fw, o, o->count ? o->count - printed : ~0ULL);
			if (follower_rotated(&fw) && (!o->count || printed < o->count)) {
				printed += follower_read(&fw, o, o->count ? o->count - printed : ~0ULL);
				fclose(fw.f);
				fw.plen = 0;
				follower_open(&fw, false);
			}
		}
		fflush(stdout);
		if (deadline && mseg_now_mono_s() >= deadline)
			break;
	}
	if (fw.f)
		fclose(fw.f);
	free(fw.part);
	return rc;
}

/* --- the command ---------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mseg log [--json] [--follow] [--count N] [--timeout S]\n"
		"Print mseg's events: denies, log verdicts, drops made to protect\n"
		"the session table, sessions dropped early to make room (evict:\n"
		"the evicted flow), pressure levels, SYN floods, and records of\n"
		"events lost. They are read from the event log (" MSEG_EVLOG_FILE " and\n"
		"its rotated files in $MSEG_EVENTS_DIR, default " MSEG_EVLOG_DIR_DEFAULT "),\n"
		"which mseg-eventd fills; reading takes nothing away, so any number\n"
		"of readers see every event. Without mseg-eventd, mseg log moves the\n"
		"waiting events into the log itself.\n"
		"  --json       the stored JSON lines, one object per event\n"
		"  --follow     print new events as they come, until interrupted\n"
		"  --count N    the last N events (with --follow: stop after N)\n"
		"  --timeout S  with --follow, stop after S seconds\n"
		"  --version    print the version\n");
}

static int parse_num(const char *s, const char *what, unsigned long long *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 10);
	if (errno || *end || end == s || *s == '-' || *out == 0) {
		fprintf(stderr, "mseg: %s wants a whole number > 0, not '%s'\n",
			what, s);
		return -1;
	}
	return 0;
}

/* 0: go on, 1: --help or --version printed, 2: bad command line. */
static int parse_args(int argc, char **argv, struct log_opts *o)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "follow", no_argument, NULL, 'f' },
		{ "count", required_argument, NULL, 'c' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "hfj", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			o->json = true;
			break;
		case 'f':
			o->follow = true;
			break;
		case 'c':
			if (parse_num(optarg, "--count", &o->count))
				return 2;
			break;
		case 't':
			if (parse_num(optarg, "--timeout", &o->timeout))
				return 2;
			break;
		case 'h':
			usage(stdout);
			return 1;
		case 'V':
			printf("mseg-log %s (abi %d)\n", MSEG_VERSION,
			       MSEG_ABI_VERSION);
			return 1;
		default:
			fprintf(stderr, optopt ? "mseg: log: option '%s' wants a value\n" :
						 "mseg: log: unknown option '%s'\n",
				argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "mseg: log: unexpected argument '%s'\n",
			argv[optind]);
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct log_opts o = { 0 };
	struct mseg_drain d;
	bool draining;
	int rc;

	rc = parse_args(argc, argv, &o);
	if (rc)
		return rc == 1 ? 0 : rc;
	/* Without a drainer, the waiting events go into the log first. */
	rc = mseg_drain_start(&d, "log", &stop);
	if (rc && rc != MSEG_LOCK_BUSY) {
		mseg_drain_stop(&d);
		return 1;
	}
	draining = rc == 0;
	if (draining && mseg_drain_poll(&d, 0)) {
		mseg_drain_stop(&d);
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	if (o.follow) {
		rc = follow(&o, &d, draining);
	} else {
		mseg_drain_stop(&d);
		rc = print_history(&o, mseg_evlog_dir());
	}
	mseg_drain_stop(&d);
	if (fflush(stdout) && !rc) {
		fprintf(stderr, "mseg: cannot write the output: %s\n",
			strerror(errno));
		rc = -1;
	}
	return rc ? 1 : 0;
}
