// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * mseg-gc's sweep, in the kernel: a BPF_PROG_TYPE_SYSCALL program that
 * tools/mseg-gc.c loads against the pinned maps and runs with
 * BPF_PROG_TEST_RUN. It walks mseg_sessions with bpf_for_each_map_elem and
 * deletes what the one expiry rule (mseg_timeout.h) finds expired, each
 * after claiming it (mseg_session.h): a session a packet refreshed in the
 * meantime, or one opened again on the same 5-tuple, is never deleted.
 * The packets and bytes of each session it deletes go to the session's flow
 * in mseg_flows_gc (mseg_flows.h), so `mseg flows` keeps them once the
 * session is gone. Then it publishes the counts in mseg_gc and recomputes the
 * pressure levels and the flood flag (mseg_pressure.h), so they follow the
 * table even when no packet arrives.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "mseg_abi.h"
#include "mseg_maps.h"
#include "mseg_timeout.h"
#include "mseg_session.h"
#include "mseg_pressure.h"
#include "mseg_gc.h"
#include "mseg_flows.h"

/* What the walk carries from entry to entry (the counts of mseg_gc_run). */
struct mseg_gc_walk {
	const struct mseg_config *cfg;
	__u64 now;
	__u64 scanned;
	__u64 expired;
	__u64 deleted;
	__u64 deleted_half_open;
	__u64 live;
	__u64 half_open;
	__u64 by_state[MSEG_TCP_STATE_MAX];
	bool pressure;
};

/*
 * Add a deleted session's packets and bytes to its flow in mseg_flows_gc,
 * which only the sweep writes (one at a time: the gc lock); when the LRU
 * forgets a flow there, its ended sessions' counts go with it.
 */
static __always_inline void mseg_gc_fold(const struct mseg_flow_key *fk,
					 __u64 packets, __u64 bytes,
					 __u64 created, __u64 last)
{
	struct mseg_flow_val *f, nv = {};

	f = bpf_map_lookup_elem(&mseg_flows_gc, fk);
	if (!f) {
		nv.packets = packets;
		nv.bytes = bytes;
		nv.first_ns = created;
		nv.last_ns = last;
		bpf_map_update_elem(&mseg_flows_gc, fk, &nv, BPF_ANY);
		return;
	}
	f->packets += packets;
	f->bytes += bytes;
	if (created < f->first_ns)
		f->first_ns = created;
	if (last > f->last_ns)
		f->last_ns = last;
}

static long mseg_gc_visit(struct bpf_map *map, const struct mseg_session_key *k,
			  struct mseg_session *s, void *ctx)
{
	struct mseg_gc_walk *w = ctx;
	__u64 last = *(volatile __u64 *)&s->last_seen_ns;
	bool half_open = mseg_session_half_open(k, s);
	__u32 state = s->state;

	w->scanned++;
	if (mseg_session_expired_at(w->cfg, k, s, last, w->now, w->pressure)) {
		w->expired++;
		struct mseg_flow_key fk;
		__u64 packets, bytes, created;

		/* DYING: someone else claimed it and deletes it */
		if (!mseg_session_claim(s, last))
			return 0;
		mseg_flow_key_of_session(k, s, &fk);
		packets = s->packets[0] + s->packets[1];
		bytes = s->bytes[0] + s->bytes[1];
		created = s->created_ns;
		if (!bpf_map_delete_elem(map, k)) {
			w->deleted++;
			w->deleted_half_open += half_open;
			mseg_gc_fold(&fk, packets, bytes, created, last);
		}
		return 0;
	}
	w->live++;
	w->half_open += half_open;
	if (k->proto == IPPROTO_TCP && state < MSEG_TCP_STATE_MAX) {
		asm volatile("" : "+r"(state));
		if (state < MSEG_TCP_STATE_MAX)
			w->by_state[state]++;
	}
	return 0;
}

SEC("syscall")
int mseg_gc_sweep(struct mseg_gc_run *run)
{
	struct mseg_pressure *pr = mseg_pressure_get();
	struct mseg_gc_walk w = {};
	struct mseg_gc_state *gc;
	struct mseg_config *cfg;
	struct mseg_stats *st;
	__u32 zero = 0;
	int i;

	cfg = bpf_map_lookup_elem(&mseg_config, &zero);
	st = bpf_map_lookup_elem(&mseg_stats, &zero);
	gc = bpf_map_lookup_elem(&mseg_gc, &zero);
	if (!cfg || !st || !gc || !pr)
		return 1;
	w.cfg = cfg;
	w.now = bpf_ktime_get_boot_ns();
	w.pressure = mseg_pressured(pr);

	bpf_for_each_map_elem(&mseg_sessions, mseg_gc_visit, &w, 0);

	gc->last_run_ns = w.now;
	gc->runs++;
	gc->sessions = w.scanned - w.deleted;
	gc->live = w.live;
	gc->half_open = w.half_open;
	gc->deleted += w.deleted;
	__sync_fetch_and_add(&gc->half_open_reaped, w.deleted_half_open);

	/* what the sweep left: its own count (no kfunc, so the program loads
	 * without the kernel's BTF); the next new flow recounts exactly */
	mseg_pressure_after_sweep(pr, cfg, st, w.now, w.scanned - w.deleted);

	/* the context is the caller's buffer: fixed offsets only */
	run->now_ns = w.now;
	run->scanned = w.scanned;
	run->expired = w.expired;
	run->deleted = w.deleted;
	run->deleted_half_open = w.deleted_half_open;
	run->live = w.live;
	run->half_open = w.half_open;
#pragma unroll
	for (i = 0; i < MSEG_TCP_STATE_MAX; i++)
		run->by_state[i] = w.by_state[i];
	run->sessions = pr->sessions;
	run->level = pr->level;
	run->flags = pr->flags;
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
