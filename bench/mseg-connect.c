// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * mseg-connect: open TCP connections to ADDR:PORT for SECONDS, CONNS of
 * them in flight at once (non-blocking connects on one epoll), close each
 * as soon as its handshake is done, and print the connections per second
 * and the median and 99th percentile of the connect latency: from
 * connect() to the socket being writable, i.e. the SYN, the SYN-ACK and
 * the kernel's ACK, the part of a connection that pays for a filter's new
 * flow. For bench/connrate.sh, beside wrk, whose latency starts after the
 * handshake.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mseg_util.h"

#define CONNECT_MAX_INFLIGHT 1024
#define CONNECT_TIMEOUT_NS 1000000000LL /* a connect not done in 1 s failed */

struct slot {
	int fd;
	long long start_ns;
};

struct run {
	struct sockaddr_storage to;
	socklen_t to_len;
	int ep;
	long long *lat_ns; /* completed connects' latencies */
	size_t n, cap;
	long errors;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mseg-connect --addr ADDR --port PORT [--conns N] [--seconds S]\n"
		"Open TCP connections to ADDR:PORT (IPv4 or IPv6) for S seconds\n"
		"(default 1), N (default 32) in flight at once, each closed once its\n"
		"handshake is done; print \"CONN_PER_S P50_US P99_US ERRORS\".\n");
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void parse_addr(struct run *r, const char *addr, int port)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)&r->to;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&r->to;

	memset(&r->to, 0, sizeof(r->to));
	if (inet_pton(AF_INET, addr, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port);
		r->to_len = sizeof(*in4);
	} else if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		r->to_len = sizeof(*in6);
	} else {
		fprintf(stderr, "mseg-connect: %s: not an IPv4 or IPv6 address\n", addr);
		exit(2);
	}
}

/* Start a connect in slot s; a socket that cannot even start is an error. */
static void start(struct run *r, struct slot *s)
{
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = s };

	s->fd = socket(r->to.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		die("socket");
	s->start_ns = (long long)mseg_clock_ns(CLOCK_MONOTONIC);
	if (connect(s->fd, (struct sockaddr *)&r->to, r->to_len) && errno != EINPROGRESS) {
		r->errors++;
		close(s->fd);
		s->fd = -1;
		return;
	}
	if (epoll_ctl(r->ep, EPOLL_CTL_ADD, s->fd, &ev))
		die("epoll_ctl");
}

static void record(struct run *r, long long ns)
{
	if (r->n == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 65536;
		r->lat_ns = realloc(r->lat_ns, r->cap * sizeof(*r->lat_ns));
		if (!r->lat_ns)
			die("realloc");
	}
	r->lat_ns[r->n++] = ns;
}

/* Slot s's connect is done, failed or timed out: count it, close it. */
static void finish(struct run *r, struct slot *s, long long t)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (t - s->start_ns > CONNECT_TIMEOUT_NS ||
	    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) || err)
		r->errors++;
	else
		record(r, t - s->start_ns);
	close(s->fd);
	s->fd = -1;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return (x > y) - (x < y);
}

static double pct_us(const struct run *r, double p)
{
	size_t i;

	if (!r->n)
		return 0;
	i = (size_t)(p * (double)(r->n - 1));
	return r->lat_ns[i] / 1000.0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "addr", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ "conns", required_argument, NULL, 'c' },
		{ "seconds", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct epoll_event evs[64];
	const char *addr = NULL;
	static struct slot slots[CONNECT_MAX_INFLIGHT];
	struct run r = { 0 };
	int port = 0, conns = 32, opt, i;
	double seconds = 1;
	long long t0, end, t;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'a':
			addr = optarg;
			break;
		case 'p':
			port = atoi(optarg);
			break;
		case 'c':
			conns = atoi(optarg);
			break;
		case 's':
			seconds = atof(optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!addr || port <= 0 || port > 65535 || conns < 1 ||
	    conns > CONNECT_MAX_INFLIGHT || seconds <= 0) {
		usage(stderr);
		return 2;
	}
	parse_addr(&r, addr, port);
	r.ep = epoll_create1(EPOLL_CLOEXEC);
	if (r.ep < 0)
		die("epoll_create1");

	t0 = (long long)mseg_clock_ns(CLOCK_MONOTONIC);
	end = t0 + (long long)(seconds * 1e9);
	for (i = 0; i < conns; i++)
		start(&r, &slots[i]);
	for (;;) {
		int n = epoll_wait(r.ep, evs, 64, 100);

		if (n < 0 && errno != EINTR)
			die("epoll_wait");
		t = (long long)mseg_clock_ns(CLOCK_MONOTONIC);
		for (i = 0; i < n; i++) {
			struct slot *s = evs[i].data.ptr;

			finish(&r, s, t);
			if (t < end)
				start(&r, s);
		}
		/* a connect whose SYN was dropped would never wake us; a slot
		 * whose connect could not start is started again */
		for (i = 0; i < conns; i++) {
			if (slots[i].fd >= 0 && t - slots[i].start_ns > CONNECT_TIMEOUT_NS)
				finish(&r, &slots[i], t);
			if (slots[i].fd < 0 && t < end)
				start(&r, &slots[i]);
		}
		if (t >= end) {
			int open = 0;

			for (i = 0; i < conns; i++)
				open += slots[i].fd >= 0;
			if (!open)
				break;
		}
	}
	qsort(r.lat_ns, r.n, sizeof(*r.lat_ns), cmp_ll);
	printf("%.0f %.0f %.0f %ld\n", r.n / ((t - t0) / 1e9), pct_us(&r, 0.5),
	       pct_us(&r, 0.99), r.errors);
	free(r.lat_ns);
	return 0;
}
