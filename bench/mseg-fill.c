// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * mseg-fill: put N synthetic sessions into the pinned session table with
 * batch updates, some of them already expired, so the collector and the
 * pressure logic can be measured and tested at full scale without sending
 * a million real handshakes.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>

#include "mseg_abi.h"
#include "mseg_timeout.h"
#include "mseg_pinned.h"
#include "mseg_util.h"

#define FILL_BATCH 65536

struct fill_opts {
	__u64 count;
	__u64 expired;
	__u32 first;   /* index of the first synthetic session */
	__u8 state;    /* TCP state of the live sessions */
	__u64 idle_s;  /* how long ago the expired ones were last seen */
};

/* Session i: 10.a.b.c:(i % 50000 + 10000) -> 10.255.255.254:80 over TCP. */
static void make_session(__u64 i, const struct fill_opts *o, __u64 now,
			 struct mseg_session_key *k, struct mseg_session *v)
{
	__u32 client = htonl(0x0a000000u | (__u32)((i / 50000) & 0xffffff));
	__u32 server = htonl(0x0afffffeu);
	bool expired = i - o->first < o->expired;

	memset(k, 0, sizeof(*k));
	memset(v, 0, sizeof(*v));
	k->addr_lo[10] = k->addr_lo[11] = 0xff;
	k->addr_hi[10] = k->addr_hi[11] = 0xff;
	memcpy(&k->addr_lo[12], &client, 4);
	memcpy(&k->addr_hi[12], &server, 4);
	k->port_lo = (__u16)(i % 50000 + 10000);
	k->port_hi = 80;
	k->proto = IPPROTO_TCP;

	v->created_ns = now;
	v->last_seen_ns = expired ? now - o->idle_s * MSEG_NSEC_PER_SEC : now;
	v->state = expired ? MSEG_TCP_TIME_WAIT : o->state;
	v->flags = MSEG_SESS_REPLIED; /* answered: confirmed, never dropped early */
	v->packets[MSEG_DIR_ORIG] = 1;
	v->bytes[MSEG_DIR_ORIG] = 60;
}

static int fill(int fd, const struct fill_opts *o)
{
	struct mseg_session_key *keys = calloc(FILL_BATCH, sizeof(*keys));
	struct mseg_session *vals = calloc(FILL_BATCH, sizeof(*vals));
	__u64 now = mseg_now_boot_ns(), i = 0;
	int rc = 0;

	if (!keys || !vals) {
		fprintf(stderr, "mseg: out of memory\n");
		rc = -1;
		goto out;
	}
	while (i < o->count) {
		__u32 n = 0, count;

		while (n < FILL_BATCH && i < o->count) {
			make_session(o->first + i, o, now, &keys[n], &vals[n]);
			n++;
			i++;
		}
		count = n;
		if (bpf_map_update_batch(fd, keys, vals, &count, NULL)) {
			fprintf(stderr,
				"mseg: batch update stopped after %llu sessions: %s\n",
				(unsigned long long)(i - n + count), strerror(errno));
			rc = -1;
			goto out;
		}
	}
out:
	free(keys);
	free(vals);
	return rc;
}

static int parse_u64(const char *s, const char *what, __u64 *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 10);
	if (errno || *end || end == s || *s == '-') {
		fprintf(stderr, "mseg: %s wants a whole number, not '%s'\n",
			what, s);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "count", required_argument, NULL, 'c' },
		{ "expired", required_argument, NULL, 'e' },
		{ "first", required_argument, NULL, 'f' },
		{ "idle", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct fill_opts o = { .state = MSEG_TCP_ESTABLISHED, .idle_s = 300 };
	__u64 v;
	int c, fd;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (parse_u64(optarg, "--count", &o.count))
				return 2;
			break;
		case 'e':
			if (parse_u64(optarg, "--expired", &o.expired))
				return 2;
			break;
		case 'f':
			if (parse_u64(optarg, "--first", &v) || v > 0xffffffffu)
				return 2;
			o.first = (__u32)v;
			break;
		case 'i':
			if (parse_u64(optarg, "--idle", &o.idle_s))
				return 2;
			break;
		case 'h':
			printf("usage: mseg-fill --count N [--expired N] [--first I] [--idle S]\n"
			       "Insert N synthetic ESTABLISHED TCP sessions into the pinned\n"
			       "mseg_sessions; the first --expired of them are TIME_WAIT and\n"
			       "were last seen --idle seconds ago (default 300: expired\n"
			       "under the default 120 s TIME_WAIT timeout).\n");
			return 0;
		default:
			return 2;
		}
	}
	if (!o.count || o.expired > o.count) {
		fprintf(stderr, "mseg: need --count N > 0 and --expired <= --count\n");
		return 2;
	}
	/* Only expired entries are back-dated; a fresh machine may be up for
	 * less than the default --idle and still fill live sessions. */
	if (o.expired && o.idle_s * MSEG_NSEC_PER_SEC >= mseg_now_boot_ns()) {
		fprintf(stderr, "mseg: --idle %llu is longer than this machine's uptime\n",
			(unsigned long long)o.idle_s);
		return 2;
	}
	fd = mseg_open_map("mseg_sessions", sizeof(struct mseg_session_key),
			   sizeof(struct mseg_session), NULL);
	if (fd < 0)
		return 1;
	if (fill(fd, &o))
		return 1;
	printf("mseg-fill: %llu sessions (%llu expired)\n",
	       (unsigned long long)o.count, (unsigned long long)o.expired);
	return 0;
}
