/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The number of entries in a pinned hash map, read from the kernel's own
 * per-CPU element counters (the bpf_map_sum_elem_count kfunc the data path
 * reads pressure with), without walking the map: a four-instruction socket
 * filter is loaded with the map and run once through BPF_PROG_TEST_RUN.
 * So `mseg status` counts a million sessions as fast as ten.
 */
#ifndef MSEG_COUNT_H
#define MSEG_COUNT_H

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>

/* Count of entries, or -1 after printing one "mseg: ..." line. */
static inline long long mseg_map_elem_count(int map_fd, const char *name)
{
	/* A frame for the test run: the socket filter never reads it. */
	unsigned char frame[64] = { 0 };
	struct bpf_insn prog[4];
	struct btf *vmlinux;
	char log[512] = "";
	int id, prog_fd;
	LIBBPF_OPTS(bpf_prog_load_opts, lopts, .log_buf = log,
		    .log_size = sizeof(log), .log_level = 1);
	LIBBPF_OPTS(bpf_test_run_opts, topts, .data_in = frame,
		    .data_size_in = sizeof(frame), .repeat = 1);

	vmlinux = btf__load_vmlinux_btf();
	if (!vmlinux) {
		fprintf(stderr, "mseg: cannot read the kernel's BTF: %s\n",
			strerror(errno));
		return -1;
	}
	id = btf__find_by_name_kind(vmlinux, "bpf_map_sum_elem_count",
				    BTF_KIND_FUNC);
	btf__free(vmlinux);
	if (id < 0) {
		fprintf(stderr,
			"mseg: this kernel has no bpf_map_sum_elem_count (Linux 6.6 or later)\n");
		return -1;
	}
	/* r1 = map; r0 = bpf_map_sum_elem_count(r1); return r0 */
	prog[0] = (struct bpf_insn){ .code = BPF_LD | BPF_DW | BPF_IMM,
				     .dst_reg = BPF_REG_1,
				     .src_reg = BPF_PSEUDO_MAP_FD,
				     .imm = map_fd };
	prog[1] = (struct bpf_insn){ 0 };
	prog[2] = (struct bpf_insn){ .code = BPF_JMP | BPF_CALL,
				     .src_reg = BPF_PSEUDO_KFUNC_CALL,
				     .imm = id };
	prog[3] = (struct bpf_insn){ .code = BPF_JMP | BPF_EXIT };
	prog_fd = bpf_prog_load(BPF_PROG_TYPE_SOCKET_FILTER, "mseg_count",
				"GPL", prog, 4, &lopts);
	if (prog_fd < 0) {
		fprintf(stderr, "mseg: cannot load the counter of %s: %s%s%s\n",
			name, strerror(errno), *log ? ": " : "", log);
		return -1;
	}
	if (bpf_prog_test_run_opts(prog_fd, &topts)) {
		fprintf(stderr, "mseg: cannot count %s: %s\n", name,
			strerror(errno));
		close(prog_fd);
		return -1;
	}
	close(prog_fd);
	/* The kfunc returns an s64; a socket filter's return is its low 32
	 * bits, plenty for any map's max_entries. */
	return (long long)(__s32)topts.retval;
}

#endif /* MSEG_COUNT_H */
