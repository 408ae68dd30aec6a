// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * mseg-fill: put N synthetic sessions into the pinned session table with
 * batch updates, some of them already expired, so the collector and the
 * pressure logic can be measured and tested at full scale without sending
 * a million real handshakes. With --spec, the sessions a file describes
 * instead, one a line, so a test can lay out any table it likes.
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

/*
 * Store a session as the data path keys it: direction-normalised, the
 * smaller endpoint (address as a big-endian number, then port) first, and
 * orig_is_hi telling which end opened it (bpf/mseg_conntrack.h).
 */
static void put_endpoints(struct mseg_session_key *k, struct mseg_session *v,
			  const __u8 src[16], __u16 sport, const __u8 dst[16],
			  __u16 dport)
{
	int c = memcmp(src, dst, 16);
	bool src_hi = c > 0 || (c == 0 && sport >= dport);

	memcpy(src_hi ? k->addr_hi : k->addr_lo, src, 16);
	memcpy(src_hi ? k->addr_lo : k->addr_hi, dst, 16);
	k->port_lo = src_hi ? dport : sport;
	k->port_hi = src_hi ? sport : dport;
	v->orig_is_hi = src_hi;
}

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

	__u8 src[16] = { [10] = 0xff, [11] = 0xff };
	__u8 dst[16] = { [10] = 0xff, [11] = 0xff };

	memset(k, 0, sizeof(*k));
	memset(v, 0, sizeof(*v));
	memcpy(&src[12], &client, 4);
	memcpy(&dst[12], &server, 4);
	put_endpoints(k, v, src, (__u16)(i % 50000 + 10000), dst, 80);
	k->proto = IPPROTO_TCP;

	v->created_ns = now;
	v->last_seen_ns = expired ? now - o->idle_s * MSEG_NSEC_PER_SEC : now;
	v->state = expired ? MSEG_TCP_TIME_WAIT : o->state;
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

static int parse_addr(const char *s, __u8 out[16])
{
	memset(out, 0, 16);
	if (inet_pton(AF_INET, s, out + 12) == 1) {
		out[10] = out[11] = 0xff;
		return 0;
	}
	return inet_pton(AF_INET6, s, out) == 1 ? 0 : -1;
}

/*
 * --spec: "PROTO SRC SPORT DST DPORT STATE ACTION IDLE_S FLAGS" a line, all
 * numbers but the addresses; the originator is SRC. Written one by one.
 */
static int fill_spec(int fd, FILE *in)
{
	char line[512], src_s[64], dst_s[64];
	__u64 now = mseg_now_boot_ns(), n = 0;
	unsigned proto, sport, dport, state, action, flags;
	double idle;

	while (fgets(line, sizeof(line), in)) {
		struct mseg_session_key k;
		struct mseg_session v;
		__u8 src[16], dst[16];

		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (sscanf(line, "%u %63s %u %63s %u %u %u %lf %u", &proto, src_s,
			   &sport, dst_s, &dport, &state, &action, &idle,
			   &flags) != 9 || parse_addr(src_s, src) ||
		    parse_addr(dst_s, dst) || proto > 255 || sport > 65535 ||
		    dport > 65535 || idle < 0 || idle * 1e9 >= (double)now) {
			fprintf(stderr, "mseg: --spec: bad line: %s", line);
			return -1;
		}
		memset(&k, 0, sizeof(k));
		memset(&v, 0, sizeof(v));
		put_endpoints(&k, &v, src, (__u16)sport, dst, (__u16)dport);
		k.proto = (__u8)proto;
		v.state = (__u8)state;
		v.action = (__u8)action;
		v.flags = (__u8)flags;
		v.last_seen_ns = now - (__u64)(idle * 1e9);
		v.created_ns = v.last_seen_ns;
		v.packets[MSEG_DIR_ORIG] = 1 + n % 7;
		v.bytes[MSEG_DIR_ORIG] = 60 * (1 + n % 7);
		if (bpf_map_update_elem(fd, &k, &v, BPF_ANY)) {
			fprintf(stderr, "mseg: --spec: cannot add %s", line);
			return -1;
		}
		n++;
	}
	printf("mseg-fill: %llu sessions from the spec\n", (unsigned long long)n);
	return 0;
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
		{ "spec", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct fill_opts o = { .state = MSEG_TCP_ESTABLISHED, .idle_s = 300 };
	const char *spec = NULL;
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
		case 's':
			spec = optarg;
			break;
		case 'h':
			printf("usage: mseg-fill --count N [--expired N] [--first I] [--idle S]\n"
			       "       mseg-fill --spec FILE|-\n"
			       "Insert N synthetic ESTABLISHED TCP sessions into the pinned\n"
			       "mseg_sessions; the first --expired of them are TIME_WAIT and\n"
			       "were last seen --idle seconds ago (default 300: expired\n"
			       "under the default 120 s TIME_WAIT timeout).\n"
			       "--spec: the sessions FILE lists, one a line:\n"
			       "PROTO SRC SPORT DST DPORT STATE ACTION IDLE_S FLAGS\n");
			return 0;
		default:
			return 2;
		}
	}
	if (spec) {
		FILE *in = strcmp(spec, "-") ? fopen(spec, "r") : stdin;
		int rc;

		if (!in) {
			fprintf(stderr, "mseg: cannot open %s\n", spec);
			return 1;
		}
		fd = mseg_open_map("mseg_sessions",
				   sizeof(struct mseg_session_key),
				   sizeof(struct mseg_session), NULL);
		rc = fd < 0 || fill_spec(fd, in) ? 1 : 0;
		if (in != stdin)
			fclose(in);
		return rc;
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
