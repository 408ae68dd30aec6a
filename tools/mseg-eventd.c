// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * mseg-eventd: the one drainer of the data path's event ring. It moves
 * every event into the event log (JSON lines in $MSEG_EVENTS_DIR or
 * /var/log/mseg, rotated by size), where any number of `mseg log` readers
 * find them; see mseg_drain.h. Runs until SIGTERM (mseg-eventd.service).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mseg_drain.h"

static volatile int stop; /* set by SIGINT/SIGTERM */

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mseg-eventd [--dir DIR] [--max-bytes N] [--keep N]\n"
		"Drain mseg's event ring into the event log, DIR/" MSEG_EVLOG_FILE "\n"
		"(JSON lines; rotated to " MSEG_EVLOG_FILE ".1 ... .N before it passes\n"
		"--max-bytes), until SIGTERM. 'mseg log' reads it, any number of\n"
		"readers at once. One drainer per pin set: a second one exits 1.\n"
		"When the pins are replaced (a re-attach), it says so and drains the\n"
		"new ring, or exits 1 if there is none.\n"
		"  --dir DIR      the log directory (default $MSEG_EVENTS_DIR or\n"
		"                 " MSEG_EVLOG_DIR_DEFAULT ")\n"
		"  --max-bytes N  rotate at N bytes (default 10485760)\n"
		"  --keep N       rotated files kept, 1..99 (default 5)\n"
		"  --version      print the version\n");
}

static int parse_u64(const char *s, const char *opt, unsigned long long min,
		     unsigned long long max, unsigned long long *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 10);
	if (errno || *end || end == s || *s == '-' || *out < min || *out > max) {
		fprintf(stderr, "mseg: %s wants a whole number from %llu to %llu, not '%s'\n",
			opt, min, max, s);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "max-bytes", required_argument, NULL, 'm' },
		{ "keep", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long long max_bytes = MSEG_EVLOG_MAX_BYTES, keep = MSEG_EVLOG_KEEP;
	struct mseg_drain d;
	int c, rc;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (!*optarg) {
				fprintf(stderr, "mseg: --dir wants a directory\n");
				return 2;
			}
			setenv("MSEG_EVENTS_DIR", optarg, 1);
			break;
		case 'm':
			if (parse_u64(optarg, "--max-bytes", 4096, 1ULL << 40, &max_bytes))
				return 2;
			break;
		case 'k':
			if (parse_u64(optarg, "--keep", 1, MSEG_EVLOG_KEEP_MAX, &keep))
				return 2;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("mseg-eventd %s (abi %d)\n", MSEG_VERSION,
			       MSEG_ABI_VERSION);
			return 0;
		default:
			fprintf(stderr, optopt ? "mseg: eventd: option '%s' wants a value\n" :
						 "mseg: eventd: unknown option '%s'\n",
				argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "mseg: eventd: unexpected argument '%s'\n",
			argv[optind]);
		return 2;
	}
	rc = mseg_drain_start(&d, "eventd", &stop);
	if (rc == MSEG_LOCK_BUSY)
		fprintf(stderr, "mseg: eventd: another process drains the events of %s\n",
			getenv("TC_BPF_MNT") ? getenv("TC_BPF_MNT") : "/sys/fs/bpf");
	if (rc) {
		mseg_drain_stop(&d);
		return 1;
	}
	d.log.max_bytes = max_bytes;
	d.log.keep = (int)keep;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	while (!stop) {
		if (mseg_drain_poll(&d, 200)) {
			rc = 1;
			break;
		}
	}
	if (!rc)
		mseg_drain_poll(&d, 0); /* what arrived last */
	mseg_drain_stop(&d);
	return rc;
}
