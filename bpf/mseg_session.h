/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Who may delete a session, and when (docs/DESIGN.md, "Garbage collection
 * and early drop"). A plain hash deletes by key, so a delete decided on one
 * entry would remove whatever entry holds that key by then: a session
 * opened again on a reused 5-tuple in between. Everyone who deletes or
 * replaces an entry therefore first claims it, with one compare-and-swap of
 * its last_seen_ns from the value it judged to MSEG_SESSION_DYING; the data
 * path refreshes last_seen_ns with a compare-and-swap too. So:
 *
 *  - a packet that refreshed the session after the collector read it makes
 *    the collector's claim fail: a session in use is never deleted;
 *  - once claimed, only the claimer deletes or replaces the entry; the
 *    data path treats a dying entry as absent and creates a new one only
 *    with BPF_NOEXIST, after the claimer's delete (it waits a bounded few
 *    lookups for it), so nobody deletes the new one by mistake.
 */
#ifndef MSEG_SESSION_H
#define MSEG_SESSION_H

#include "mseg_abi.h"
#include "mseg_maps.h"

#ifndef EEXIST
#define EEXIST 17
#endif

/* Lookups a packet spends waiting for a claimed entry to be deleted. */
#define MSEG_DYING_WAIT 8

/*
 * Take `s` from `last` (the last_seen_ns the caller judged) to `to`. Fails
 * when someone else moved it meanwhile.
 */
static __always_inline bool mseg_session_cas(struct mseg_session *s, __u64 last,
					     __u64 to)
{
	return __sync_val_compare_and_swap(&s->last_seen_ns, last, to) == last;
}

/* Claim `s`, judged on `last`, for deletion or replacement. */
static __always_inline bool mseg_session_claim(struct mseg_session *s,
					       __u64 last)
{
	return last != MSEG_SESSION_DYING &&
	       mseg_session_cas(s, last, MSEG_SESSION_DYING);
}

/*
 * A packet of the live session `s` (read as `last`) was accepted at `now`:
 * refresh its timeout. False if the entry has been claimed meanwhile: the
 * packet must then be handled as one of a new flow. Another CPU refreshing
 * it at the same time is no failure. Same-jiffy packets write nothing.
 */
static __always_inline bool mseg_session_touch(struct mseg_session *s,
					       __u64 last, __u64 now)
{
	int i;

#pragma unroll
	for (i = 0; i < 2; i++) {
		__u64 seen;

		if (last == MSEG_SESSION_DYING)
			return false;
		if (last >= now)
			return true;
		seen = __sync_val_compare_and_swap(&s->last_seen_ns, last, now);
		if (seen == last)
			return true;
		last = seen;
	}
	return last != MSEG_SESSION_DYING;
}

struct mseg_wait_gone {
	const struct mseg_session_key *key;
	bool gone;
};

static long mseg_wait_gone_one(__u32 i, void *ctx)
{
	struct mseg_wait_gone *w = ctx;
	struct mseg_session *s = bpf_map_lookup_elem(&mseg_sessions, w->key);

	w->gone = !s || s->last_seen_ns != MSEG_SESSION_DYING;
	return w->gone;
}

/*
 * Wait (a bounded few lookups) for a claimed entry of `key` to go. True
 * when there is no entry, or a live one again (another CPU's new session).
 */
static __always_inline bool mseg_session_wait_gone(const struct mseg_session_key *key)
{
	struct mseg_wait_gone w = { .key = key };

	bpf_loop(MSEG_DYING_WAIT, mseg_wait_gone_one, &w, 0);
	return w.gone;
}

/*
 * Store the new session `ns` under `key` where no live session is: -EEXIST
 * when another CPU's live session holds the key (it serves this flow), or
 * the update's error (-E2BIG: the table is full).
 */
static __always_inline int mseg_session_insert(const struct mseg_session_key *key,
					       const struct mseg_session *ns)
{
	int err = bpf_map_update_elem(&mseg_sessions, key, ns, BPF_NOEXIST);

	/* a claimed entry on its way out, or another CPU's new session */
	if (err == -EEXIST && mseg_session_wait_gone(key))
		err = bpf_map_update_elem(&mseg_sessions, key, ns, BPF_NOEXIST);
	return err;
}

#endif /* MSEG_SESSION_H */
