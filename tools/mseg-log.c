// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * mseg-log: print the data path's events (denies, log verdicts, protective
 * drops, pressure levels, SYN floods) from the pinned mseg_events ring
 * buffer, one line or one JSON object each.
 *
 * Events wait in the ring until read, so by default this prints what is
 * there and exits; --follow keeps reading.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "mseg_abi.h"
#include "mseg_pinned.h"

struct log_opts {
	bool json;
	bool follow;
	unsigned long long count;   /* stop after this many events (0: no limit) */
	unsigned long long timeout; /* with --follow: stop after S seconds */
};

struct log_state {
	const struct log_opts *o;
	unsigned long long printed;
	long long boot_to_real_ns; /* add to CLOCK_BOOTTIME to get wall time */
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static long long clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static const char *kind_name(__u8 kind)
{
	switch (kind) {
	case MSEG_EV_DENY:
		return "deny";
	case MSEG_EV_LOG:
		return "log";
	case MSEG_EV_DROP:
		return "drop";
	case MSEG_EV_PRESSURE:
		return "pressure";
	case MSEG_EV_FLOOD:
		return "flood";
	}
	return "unknown";
}

static const char *reason_name(__u8 reason)
{
	static const char *const names[] = {
		[MSEG_RSN_EXACT] = "exact-rule",
		[MSEG_RSN_CIDR] = "cidr-rule",
		[MSEG_RSN_DEFAULT] = "default-action",
		[MSEG_RSN_DEGRADED] = "table-degraded",
		[MSEG_RSN_FULL] = "table-full",
		[MSEG_RSN_WARN] = "pressure-warning",
		[MSEG_RSN_CRIT] = "pressure-critical",
		[MSEG_RSN_DEGRADE] = "pressure-degraded",
		[MSEG_RSN_SYN_RATE] = "syn-rate",
		[MSEG_RSN_HALF_OPEN] = "half-open",
	};

	if (reason < sizeof(names) / sizeof(names[0]) && names[reason])
		return names[reason];
	return "unknown";
}

static const char *action_name(__u8 action)
{
	switch (action) {
	case MSEG_ACT_ALLOW:
		return "allow";
	case MSEG_ACT_DENY:
		return "deny";
	case MSEG_ACT_LOG:
		return "log";
	}
	return "unknown";
}

static const char *proto_name(__u8 proto, char *buf, size_t len)
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
	snprintf(buf, len, "%u", proto);
	return buf;
}

/* IPv4-mapped addresses print as IPv4, as everywhere in mseg. */
static void addr_str(const __u8 a[16], char *buf, size_t len)
{
	static const __u8 v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (!memcmp(a, v4mapped, sizeof(v4mapped)))
		inet_ntop(AF_INET, a + 12, buf, len);
	else
		inet_ntop(AF_INET6, a, buf, len);
}

static void time_str(long long real_ns, char *buf, size_t len)
{
	time_t sec = real_ns / 1000000000LL;
	struct tm tm;
	char day[32];

	gmtime_r(&sec, &tm);
	strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%06lldZ", day, (real_ns % 1000000000LL) / 1000);
}

static bool has_flow(const struct mseg_event *e)
{
	return e->kind == MSEG_EV_DENY || e->kind == MSEG_EV_LOG ||
	       e->kind == MSEG_EV_DROP;
}

static void print_event(const struct log_state *ls, const struct mseg_event *e)
{
	char when[64], src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN], pbuf[8];
	const char *proto = proto_name(e->proto, pbuf, sizeof(pbuf));
	bool rejudged = e->flags & MSEG_EVF_REJUDGED;

	time_str((long long)e->ts_ns + ls->boot_to_real_ns, when, sizeof(when));
	addr_str(e->src, src, sizeof(src));
	addr_str(e->dst, dst, sizeof(dst));

	if (ls->o->json) {
		printf("{\"time\":\"%s\",\"ts_ns\":%llu,\"event\":\"%s\","
		       "\"action\":\"%s\",\"reason\":\"%s\"",
		       when, (unsigned long long)e->ts_ns, kind_name(e->kind),
		       action_name(e->action), reason_name(e->reason));
		if (has_flow(e))
			printf(",\"proto\":\"%s\",\"src\":\"%s\",\"sport\":%u,"
			       "\"dst\":\"%s\",\"dport\":%u,\"rejudged\":%s",
			       proto, src, e->sport, dst, e->dport,
			       rejudged ? "true" : "false");
		if (e->kind == MSEG_EV_DENY || e->kind == MSEG_EV_LOG)
			/* the deciding rule's id travels in value (0: default) */
			printf(",\"rule\":%u", e->value);
		else if (!has_flow(e))
			printf(",\"value\":%u", e->value);
		printf(",\"suppressed\":%u}\n", e->suppressed);
		return;
	}
	printf("%s %-8s", when, kind_name(e->kind));
	if (has_flow(e))
		printf(" %s %s%s%s:%u -> %s%s%s:%u", proto,
		       strchr(src, ':') ? "[" : "", src,
		       strchr(src, ':') ? "]" : "", e->sport,
		       strchr(dst, ':') ? "[" : "", dst,
		       strchr(dst, ':') ? "]" : "", e->dport);
	else
		printf(" value=%u", e->value);
	if (e->kind == MSEG_EV_DENY || e->kind == MSEG_EV_LOG) {
		if (e->value)
			printf(" rule=%u", e->value);
		else
			printf(" rule=default");
	}
	printf(" reason=%s%s", reason_name(e->reason),
	       rejudged ? " (open session judged again)" : "");
	if (e->suppressed)
		printf(" (%u earlier events suppressed)", e->suppressed);
	printf("\n");
}

static int on_event(void *ctx, void *data, size_t size)
{
	struct log_state *ls = ctx;

	if (size < sizeof(struct mseg_event))
		return 0;
	print_event(ls, data);
	ls->printed++;
	/* a negative return stops ring_buffer__consume/poll early */
	if (ls->o->count && ls->printed >= ls->o->count)
		return -EINTR;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mseg log [--json] [--follow] [--count N] [--timeout S]\n"
		"Print mseg's events: denies, log verdicts, drops made to protect\n"
		"the session table, pressure levels and SYN floods. Events wait in\n"
		"a ring buffer until read: without --follow, print those and exit.\n"
		"  --json       one JSON object per line\n"
		"  --follow     keep printing new events until interrupted\n"
		"  --count N    stop after N events\n"
		"  --timeout S  with --follow, stop after S seconds\n");
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

/* 0: go on, 1: --help printed, 2: bad command line. */
static int parse_args(int argc, char **argv, struct log_opts *o)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "follow", no_argument, NULL, 'f' },
		{ "count", required_argument, NULL, 'c' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
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
		default:
			fprintf(stderr, "mseg: log: unknown option '%s'\n",
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

static int read_events(struct ring_buffer *rb, const struct log_state *ls)
{
	long long deadline = 0;
	int n;

	if (!ls->o->follow) {
		n = ring_buffer__consume(rb);
		return n < 0 && n != -EINTR ? n : 0;
	}
	if (ls->o->timeout)
		deadline = clock_ns(CLOCK_MONOTONIC) +
			   (long long)ls->o->timeout * 1000000000LL;
	while (!stop) {
		n = ring_buffer__poll(rb, 200);
		if (n == -EINTR)
			return 0; /* --count reached, or a signal */
		if (n < 0)
			return n;
		fflush(stdout);
		if (deadline && clock_ns(CLOCK_MONOTONIC) >= deadline)
			break;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct log_opts o = { 0 };
	struct log_state ls = { .o = &o };
	struct ring_buffer *rb;
	int fd, rc;

	rc = parse_args(argc, argv, &o);
	if (rc)
		return rc == 1 ? 0 : rc;
	fd = mseg_open_pinned("mseg_events");
	if (fd < 0)
		return 1;
	ls.boot_to_real_ns = clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_BOOTTIME);
	rb = ring_buffer__new(fd, on_event, &ls, NULL);
	if (!rb) {
		fprintf(stderr, "mseg: cannot read mseg_events: %s\n",
			strerror(errno));
		close(fd);
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	rc = read_events(rb, &ls);
	fflush(stdout);
	if (rc)
		fprintf(stderr, "mseg: reading mseg_events failed: %s\n",
			strerror(-rc));
	ring_buffer__free(rb);
	close(fd);
	return rc ? 1 : 0;
}
