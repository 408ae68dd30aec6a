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

/*
 * A plain hash, not an LRU: an LRU would silently evict established
 * connections to make room for a SYN flood. Here a full table refuses the
 * new entry and the data path decides what the refused flow may do.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MSEG_MAX_SESSIONS);
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

/* Losing an old fragment entry only costs that datagram its later parts. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
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
 * mseg_clock.h's per-CPU cache of the clock. Not pinned and not part of
 * the ABI: each loaded program has its own, and losing it costs one read.
 */
struct mseg_clock {
	__u64 jiffies;
	__u64 ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mseg_clock);
} mseg_clock SEC(".maps");

#endif /* MSEG_MAPS_H */
