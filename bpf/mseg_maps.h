/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every map of the classifier, defined once. All but the clock cache are
 * pinned by name, so iproute2 pins them under $TC_BPF_MNT/tc/globals/ and
 * every attachment (devices, ingress and egress, later replacements)
 * shares them.
 */
#ifndef MSEG_MAPS_H
#define MSEG_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "mseg_abi.h"
#include "mseg_parse.h"
#include "mseg_icmp.h"
#include "mseg_verdict.h"

/*
 * A plain hash, not an LRU: an LRU would silently evict established
 * connections to make room for a SYN flood. Here a full table refuses the
 * new entry and the data path decides what the refused flow may do, and
 * which half-open or unanswered entry it may drop early (mseg_evict.h).
 * Not preallocated: the table takes memory as sessions come, not its whole
 * capacity on every host from the start. Either way the kernel may hand a
 * deleted element to the next insert at once (its allocator is type-stable,
 * not RCU-deferred), so a program may hold a value pointer into what has
 * become another session: the slow path looks an entry up again rather than
 * keep one across its checks, and what the fast path's window can reach is
 * said in docs/DESIGN.md (garbage collection).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MSEG_MAX_SESSIONS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct mseg_session_key);
	__type(value, struct mseg_session);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mseg_sessions SEC(".maps");

/* The policy (docs/policy.md): identities, compiled rules, hits, source. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MSEG_MAX_IDENTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct mseg_ident_key);
	__type(value, struct mseg_ident_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mseg_ident SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MSEG_MAX_RULE_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct mseg_rule_key);
	__type(value, struct mseg_rule_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mseg_rules SEC(".maps");

/*
 * The compiled rule entries whose prefix is the whole key (one protocol,
 * one destination port), in a hash instead of the trie: the data path asks
 * it first, and a hit is what the trie's longest match would be, without
 * the walk (the trie of a 100,000-rule policy was two fifths of a new
 * flow's time); a miss cannot end on a whole-key entry, so the trie holds
 * only the shorter ones. A key with one side any whose only entry is for
 * any protocol (a CIDR rule's arm) has that entry here too, under its own
 * key (MSEG_IDF_*_IDS).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MSEG_MAX_RULE_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct mseg_rule_key);
	__type(value, struct mseg_rule_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mseg_rules_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MSEG_MAX_RULE_IDS);
	__type(key, __u32);
	__type(value, struct mseg_rule_hits);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mseg_rule_hits SEC(".maps");

/* Read by user space only; the data path never touches it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MSEG_MAX_SOURCE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct mseg_source_key);
	__type(value, struct mseg_source_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mseg_source SEC(".maps");

/*
 * Flows aggregated (mseg_abi.h, mseg_flows.h). A per-CPU array, not a hash:
 * the new-flow path finds a flow's slot with its own hash and one array
 * lookup per way (inlined by the verifier), with no lock, no allocation
 * and no shared cache line, where an LRU hash lookup cost a fifth of a new
 * flow (bench/ab-session.sh --new-flow) and its insertions take the LRU's
 * locks under a flood. It only observes: a full set forgets a flow, never
 * refuses one. MSEG_FLOW_SLOTS * 88 bytes per possible CPU.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MSEG_FLOW_SLOTS);
	__type(key, __u32);
	__type(value, struct mseg_flow_slot);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mseg_flows SEC(".maps");

/* The deleted sessions' counts, written by mseg gc's sweep only. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MSEG_MAX_FLOWS_GC);
	__type(key, struct mseg_flow_key);
	__type(value, struct mseg_flow_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mseg_flows_gc SEC(".maps");

/*
 * Not an LRU either: a flood of first fragments must not push out the ports
 * of a datagram already remembered; a full table reclaims its expired
 * entries itself (mseg_frag.h).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MSEG_MAX_FRAGS);
	__type(key, struct mseg_frag_key);
	__type(value, struct mseg_frag_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mseg_frags SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mseg_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mseg_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mseg_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mseg_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mseg_pressure);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mseg_pressure SEC(".maps");

/* The early-drop rings (mseg_abi.h, mseg_evict.h). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * MSEG_EVICT_SLOTS);
	__type(key, __u32);
	__type(value, struct mseg_session_key);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mseg_evict SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mseg_gc_state);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mseg_gc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, MSEG_EVENTS_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mseg_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mseg_event_limit);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mseg_evlimit SEC(".maps");

/*
 * mseg_clock.h's per-CPU cache of the clock, in the scratch map (one lookup
 * fewer per packet). Not part of the ABI: each loaded program has its own
 * scratch map, and losing it costs one read of the clocksource.
 */
struct mseg_clock {
	__u64 jiffies;
	__u64 ns;
};

/* An early-drop candidate found in a ring, not yet claimed (mseg_evict.h). */
struct mseg_victim {
	struct mseg_session_key key;
	__u64 last; /* its last_seen_ns when judged */
	__u64 pos;  /* its place in the ring */
	__u8 why;   /* MSEG_RSN_*; 0: none found */
	__u8 action; /* its verdict, for the event once it is gone */
	__u8 pad[6];
};

/*
 * The classifier's per-CPU scratch, off the 512-byte stack, which the
 * classifier and the global functions it calls share; and the verifier
 * does not track map memory, so what the parser found does not split the
 * classifier's paths. It holds the parsed packet, its session key, the
 * buffers the parser and the ICMP error reader fill, the copies of the peer
 * records the TCP tracker judges a segment on, the session mseg_new_flow()
 * builds before storing it, the early-drop candidates of both rings, the
 * flow of a session judged again or dropped early, and the key of the flow
 * a new-flow decision counts in (mseg_flow_count()), and the clock's cache
 * (mseg_clock.h). A tc program runs to its end on one CPU (softirq, or with
 * BHs off on egress), so one entry per CPU is never shared. Not pinned, not
 * part of the ABI.
 */
struct mseg_scratch {
	struct mseg_pkt pkt;
	struct mseg_session_key key;
	union mseg_hdr_buf buf;
	struct mseg_quoted quoted;
	struct mseg_tcp_peer snd;
	struct mseg_tcp_peer rcv;
	struct mseg_session ns;
	struct mseg_victim victim[2]; /* by MSEG_EVICT_RING_* */
	struct mseg_tuple t;          /* a session's flow, for a rule or an event */
	__u64 frag_reclaim_ns; /* this CPU's last walk over a full mseg_frags */
	struct mseg_verdict rv;       /* a new flow's verdict; a pickup's reverse flow's */
	struct mseg_verdict sv;       /* the staged policy's verdict of the flow counted */
	__u8 sender_hi;               /* the packet's sender is key's "hi" end */
	__u8 evicted;                 /* 1 + the ring early drop took a victim of; 0: none */
	__u8 flow_note;               /* MSEG_FLOWN_*: what mseg_new_flow() decided */
	__u64 flow_now;               /* ... and when */
	struct mseg_flow_key fkey;    /* the flow mseg_flow_count() counts */
	struct mseg_clock clock;      /* mseg_clock.h */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mseg_scratch);
} mseg_scratch SEC(".maps");

#endif /* MSEG_MAPS_H */
