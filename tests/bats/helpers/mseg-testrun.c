// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * mseg-testrun: run many frames through a loaded program with
 * BPF_PROG_TEST_RUN, one syscall each, and print every return value.
 *
 * `bpftool prog run` costs a process start and a few milliseconds per
 * frame; a suite that compares ten thousand verdicts with a reference
 * model needs them in one process. Frames come one per line as hex
 * (spaces allowed), so a script can write them with nothing but printf.
 *
 * A line "-" empties the maps named with --reset (sessions, fragments) so
 * the frames after it start afresh: a fuzzer's groups of frames stay
 * independent of each other. A frame the kernel's test run refuses
 * (EINVAL: it wants a whole IPv4/IPv6 header behind those EtherTypes)
 * prints "refused" with --keep-going instead of stopping.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>

#define FRAME_MAX 65536
#define RESET_MAX 8
#define KEY_MAX 256

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode one line of hex into buf; returns its length, or -1. */
static long decode(const char *line, unsigned char *buf)
{
	long n = 0;
	int hi = -1;

	for (; *line && *line != '\n'; line++) {
		int v;

		if (*line == ' ' || *line == '\t' || *line == '\r')
			continue;
		v = hexval((unsigned char)*line);
		if (v < 0)
			return -1;
		if (hi < 0) {
			hi = v;
			continue;
		}
		if (n >= FRAME_MAX)
			return -1;
		buf[n++] = (unsigned char)(hi << 4 | v);
		hi = -1;
	}
	return hi < 0 ? n : -1;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: mseg-testrun --prog-id ID [--reset PINNED_MAP]... [--keep-going] [--duration] [FILE]\n"
		   "Run each frame of FILE (default stdin; one frame per line, in hex)\n"
		   "once through the program with BPF_PROG_TEST_RUN and print its\n"
		   "return value, one line per frame. A line \"-\" deletes every entry of\n"
		   "the --reset maps. --keep-going: a frame the test run refuses prints\n"
		   "\"refused\" instead of ending the run. --duration: the return value\n"
		   "and the run's duration in ns as the kernel measured it.\n");
}

/* Delete every entry of the map. */
static int reset_map(int fd)
{
	unsigned char key[KEY_MAX], next[KEY_MAX];

	/* always from the first key: the one just deleted has no successor */
	while (!bpf_map_get_next_key(fd, NULL, next)) {
		memcpy(key, next, sizeof(key));
		if (bpf_map_delete_elem(fd, key) && errno != ENOENT)
			return -1;
	}
	return errno == ENOENT ? 0 : -1;
}

int main(int argc, char **argv)
{
	static unsigned char frame[FRAME_MAX];
	const char *path = NULL;
	unsigned long id = 0;
	char *line = NULL, *end;
	size_t cap = 0;
	long lineno = 0;
	FILE *in = stdin;
	int fd, i, nreset = 0, resets[RESET_MAX];
	bool keep_going = false, duration = false;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--prog-id") && i + 1 < argc) {
			errno = 0;
			id = strtoul(argv[++i], &end, 10);
			if (errno || *end || !id) {
				fprintf(stderr, "mseg: invalid --prog-id: '%s'\n", argv[i]);
				return 2;
			}
		} else if (!strcmp(argv[i], "--duration")) {
			duration = true;
		} else if (!strcmp(argv[i], "--reset") && i + 1 < argc) {
			struct bpf_map_info info = {};
			__u32 len = sizeof(info);

			if (nreset == RESET_MAX) {
				fprintf(stderr, "mseg: at most %d --reset maps\n", RESET_MAX);
				return 2;
			}
			resets[nreset] = bpf_obj_get(argv[++i]);
			if (resets[nreset] < 0 ||
			    bpf_obj_get_info_by_fd(resets[nreset], &info, &len) ||
			    info.key_size > KEY_MAX) {
				fprintf(stderr, "mseg: cannot use map %s: %s\n", argv[i], strerror(errno));
				return 1;
			}
			nreset++;
		} else if (!strcmp(argv[i], "--keep-going")) {
			keep_going = true;
		} else if (!path && argv[i][0] != '-') {
			path = argv[i];
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (!id) {
		usage(stderr);
		return 2;
	}
	fd = bpf_prog_get_fd_by_id((__u32)id);
	if (fd < 0) {
		fprintf(stderr, "mseg: no program with id %lu: %s\n", id, strerror(errno));
		return 1;
	}
	if (path && !(in = fopen(path, "r"))) {
		fprintf(stderr, "mseg: cannot open %s: %s\n", path, strerror(errno));
		return 1;
	}
	while (getline(&line, &cap, in) > 0) {
		LIBBPF_OPTS(bpf_test_run_opts, opts);
		long n;

		lineno++;
		if (line[0] == '-' && (line[1] == '\n' || !line[1])) {
			for (i = 0; i < nreset; i++) {
				if (reset_map(resets[i])) {
					fprintf(stderr, "mseg: line %ld: reset failed: %s\n", lineno,
						strerror(errno));
					return 1;
				}
			}
			continue;
		}
		n = decode(line, frame);
		if (n < 0) {
			fprintf(stderr, "mseg: line %ld: not a frame in hex\n", lineno);
			return 1;
		}
		opts.data_in = frame;
		opts.data_size_in = (__u32)n;
		opts.repeat = 1;
		if (bpf_prog_test_run_opts(fd, &opts)) {
			if (keep_going && errno == EINVAL) {
				printf("refused\n");
				continue;
			}
			fprintf(stderr, "mseg: line %ld: test run failed: %s\n", lineno,
				strerror(errno));
			return 1;
		}
		if (duration)
			printf("%u %u\n", opts.retval, opts.duration);
		else
			if (duration)
			printf("%u %u\n", opts.retval, opts.duration);
		else
			printf("%u\n", opts.retval);
	}
	free(line);
	if (in != stdin)
		fclose(in);
	close(fd);
	return 0;
}
