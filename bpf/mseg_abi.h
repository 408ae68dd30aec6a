/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The mseg ABI: the key and value layout of every pinned map.
 *
 * The BPF object and the C programs include this header; lib/sh/mseg-layout.sh
 * encodes the same layouts as hex for bpftool. Any change to a layout below
 * must bump MSEG_ABI_VERSION: `mseg attach` compares it (and every map's
 * sizes) with what is pinned and refuses to mix versions.
 *
 * Conventions:
 *  - addresses are 16 bytes in network order; IPv4 is stored IPv4-mapped
 *    (::ffff:a.b.c.d) so one code path serves both families;
 *  - ports are in host byte order (so `bpftool map dump` shows 443, not
 *    47873); for an ICMP echo the requester's port holds the echo
 *    identifier and the replier's is 0 (so a request from the replier's
 *    side is another flow, as in nf_conntrack);
 *  - a zero field means "the built-in default", so the maps work as created
 *    by a plain `tc filter add ... bpf obj` with no user space at all;
 *  - times are CLOCK_BOOTTIME nanoseconds (bpf_ktime_get_boot_ns()), which
 *    user space reads as clock_gettime(CLOCK_BOOTTIME) or /proc/uptime.
 */
#ifndef MSEG_ABI_H
#define MSEG_ABI_H

#include <linux/types.h>

#define MSEG_ABI_VERSION 5

/* Session table capacity: one build setting (make MSEG_MAX_SESSIONS=N). */
#ifndef MSEG_MAX_SESSIONS
#define MSEG_MAX_SESSIONS 262144
#endif
/*
 * Policy capacities cover two rule sets: `mseg apply` (and every edit)
 * writes the new set beside the old one before it switches.
 */
#define MSEG_MAX_IDENTS 524288   /* mseg_ident: prefixes, both sets */
#define MSEG_MAX_RULE_ENTRIES 1048576 /* mseg_rules: compiled entries */
#define MSEG_MAX_RULE_IDS 262144 /* rule ids 1..262143; 0 is the default */
/*
 * The top rule ids are the failsafes' (docs/policy.md): rules user space
 * compiles like any other. The data path knows the band for one thing: a
 * DNS flow a failsafe allows keeps DNS's own admission under pressure
 * (recycling only), so a spoofed DNS flood cannot take the slots kept for
 * the flows a rule allows.
 */
#define MSEG_FAILSAFE_MAX 32
#define MSEG_FAILSAFE_ID0 (MSEG_MAX_RULE_IDS - MSEG_FAILSAFE_MAX)
#define MSEG_MAX_SOURCE 524288   /* mseg_source: statements, both sets */
/*
 * mseg_flows: per CPU, MSEG_FLOW_SETS sets of MSEG_FLOW_WAYS flows; and
 * mseg_flows_gc, the flows of the sessions mseg gc deleted.
 */
#define MSEG_FLOW_SET_BITS 11
#define MSEG_FLOW_SETS (1 << MSEG_FLOW_SET_BITS)
#define MSEG_FLOW_WAYS 4
#define MSEG_FLOW_SLOTS (MSEG_FLOW_SETS * MSEG_FLOW_WAYS)
#define MSEG_MAX_FLOWS_GC 8192

enum mseg_action {
	MSEG_ACT_ALLOW = 0,
	MSEG_ACT_DENY = 1,
	MSEG_ACT_LOG = 2, /* allow and emit an event */
	/*
	 * Not a rule's action in the grammar: a deny that audit mode (the
	 * global mode, or the rule's --audit) passes, counts and tells as a
	 * would-deny. The compiler writes it for a deny rule with --audit;
	 * mseg_policy_decide() turns any deny into it in audit mode.
	 */
	MSEG_ACT_AUDIT = 3,
	MSEG_ACT_MAX,
};

/* The originator's RFC 793 state; numbers are the seed's and docs/DESIGN.md's. */
enum mseg_tcp_state {
	MSEG_TCP_NONE = 0,
	MSEG_TCP_SYN_SENT = 1,
	MSEG_TCP_SYN_RECV = 2,
	MSEG_TCP_ESTABLISHED = 3,
	MSEG_TCP_FIN_WAIT1 = 4,
	MSEG_TCP_FIN_WAIT2 = 5,
	MSEG_TCP_TIME_WAIT = 6,
	MSEG_TCP_CLOSE = 7,
	MSEG_TCP_CLOSE_WAIT = 8,
	MSEG_TCP_LAST_ACK = 9,
	MSEG_TCP_CLOSING = 10,
	MSEG_TCP_STATE_MAX,
};

/* Index of the per-direction arrays in struct mseg_session. */
enum mseg_dir {
	MSEG_DIR_ORIG = 0,  /* sent by the originator */
	MSEG_DIR_REPLY = 1, /* sent by the responder */
};

/*
 * mseg_sessions key: direction-normalised, so both directions of a
 * connection find one entry. Endpoint "lo" is the smaller of the two
 * (address compared as a big-endian 128-bit number, then port). The family
 * keeps an IPv6 flow apart from the IPv4 one its addresses could spell.
 */
struct mseg_session_key {
	__u8 addr_lo[16];
	__u8 addr_hi[16];
	__u16 port_lo;
	__u16 port_hi;
	__u8 proto;
	__u8 family; /* 4 or 6 */
	__u8 pad[2];
} __attribute__((aligned(8)));

/*
 * What one side of a TCP connection has shown us: the window tracking of
 * nf_conntrack's tcp_in_window (td_end, td_maxend, td_maxwin, td_maxack),
 * docs/DESIGN.md "TCP state machine".
 */
struct mseg_tcp_peer {
	__u32 seq_end; /* highest seq + length (+1 per SYN/FIN) sent */
	__u32 max_end; /* highest seq the other side's ack + window allows us */
	__u32 max_win; /* largest window advertised, scaled (>= 1 once seen) */
	__u32 ack;     /* highest acknowledgement sent */
	__u32 fin_seq; /* sequence number of this side's FIN */
	__u8 flags;    /* MSEG_PEER_* */
	__u8 wscale;   /* window scale announced in this side's SYN */
	__u16 pad;
};

#define MSEG_PEER_SEEN 0x01      /* a packet from this side was accepted */
#define MSEG_PEER_SYN 0x02       /* this side sent a SYN */
#define MSEG_PEER_FIN 0x04       /* this side sent a FIN: fin_seq is valid */
#define MSEG_PEER_FIN_ACKED 0x08 /* the other side acknowledged that FIN */
#define MSEG_PEER_WSCALE 0x10    /* window scaling: from this side's SYN, or
				  * assumed at its largest for a pickup */
#define MSEG_PEER_ACK 0x20       /* this side sent an ACK: ack is valid */

#define MSEG_TCP_MAX_WSCALE 14   /* RFC 7323 */

struct mseg_session {
	__u64 created_ns;
	/* the last accepted packet; MSEG_SESSION_DYING while a collector or an
	 * early drop that claimed it deletes it (mseg_timeout.h) */
	__u64 last_seen_ns;
	__u64 packets[2]; /* by enum mseg_dir */
	__u64 bytes[2];
	struct mseg_tcp_peer tcp[2]; /* by enum mseg_dir */
	__u32 policy_gen; /* mseg_config.policy_gen the verdict was taken under */
	__u8 state;       /* enum mseg_tcp_state; NONE for everything but TCP */
	__u8 action;      /* cached verdict, enum mseg_action */
	__u8 orig_is_hi;  /* 1: the originator is the key's "hi" endpoint */
	__u8 flags;       /* MSEG_SESS_* */
	__u32 rule_id;    /* the rule that decided it; 0 = the default action */
	__u32 pad;
};

#define MSEG_SESS_REPLIED 0x01 /* the responder has answered: confirmed */
#define MSEG_SESS_PICKUP 0x02  /* picked up mid-stream (loose mode) */
/* a pickup first seen from its responder: the originator's answer confirms it */
#define MSEG_SESS_FIRST_REPLY 0x04

/* last_seen_ns of an entry someone has claimed for deletion. */
#define MSEG_SESSION_DYING 0ULL

/*
 * mseg_ident: LPM trie from an address to the identity of its longest
 * matching prefix (docs/policy.md, "identities"). Every prefix the policy
 * names (segment prefixes, prefixes and hosts in rules) is one identity.
 * The data starts with the rule set and the family, which every prefix
 * covers in full (16 bits), so a prefix of one family never covers an
 * address of the other: an IPv6 ::/0 has prefixlen 16, an IPv4 10.0.0.0/8
 * has prefixlen 16 + 96 + 8 over the mapped address.
 */
struct mseg_ident_key {
	__u32 prefixlen;
	__u8 set;
	__u8 family; /* 4 or 6 */
	__u8 addr[16];
	__u8 pad[2]; /* never inside a prefix: prefixlen <= MSEG_IDENT_FULL_BITS */
};

#define MSEG_IDENT_HDR_BITS 16
#define MSEG_IDENT_V4_BASE_BITS (MSEG_IDENT_HDR_BITS + 96)
#define MSEG_IDENT_FULL_BITS (MSEG_IDENT_HDR_BITS + 128)

/* Which rule-table lookups can hit for an identity (skip the others). */
#define MSEG_IDF_SRC_PAIR 0x1 /* keys (this, D) exist */
#define MSEG_IDF_DST_PAIR 0x2 /* keys (S, this) exist */
#define MSEG_IDF_SRC_ANY 0x4  /* key (this, any) exists */
#define MSEG_IDF_DST_ANY 0x8  /* key (any, this) exists */
#define MSEG_IDF_NO_ANY_ANY 0x10 /* key (any, any) does not exist (on every identity) */
/*
 * ... and every entry of key (this, any), (any, this) or (any, any) (on
 * every identity) covers the whole key (one protocol, one port): all of
 * them are in mseg_rules_hash, so the trie need not be walked after a miss.
 */
#define MSEG_IDF_SRC_ANY_WHOLE 0x20
#define MSEG_IDF_DST_ANY_WHOLE 0x40
#define MSEG_IDF_ANY_ANY_WHOLE 0x80
/*
 * ... or the key has one entry, for any protocol (prefixlen
 * MSEG_RULE_IDS_BITS, proto and port 0: a CIDR rule's arm), and it is in
 * mseg_rules_hash under that key: one lookup, no trie. The _WHOLE and _IDS
 * bits are those of mseg_policy_decide's keys (2, 4, 8) shifted by 4 and
 * by 8, so the flags are its bits as they are (mseg_policy.h).
 */
#define MSEG_IDF_SRC_ANY_IDS 0x200
#define MSEG_IDF_DST_ANY_IDS 0x400
#define MSEG_IDF_ANY_ANY_IDS 0x800

struct mseg_ident_val {
	__u32 id; /* 1.., unique within a set; 0 = no prefix (only `any` matches) */
	__u32 flags; /* MSEG_IDF_* */
};

/*
 * mseg_rules: LPM trie of the compiled rules. The data path looks up
 * (set, src id or 0, dst id or 0, proto, dport); every key covers set and
 * both ids in full. A rule for any protocol covers no more (prefixlen
 * MSEG_RULE_IDS_BITS), one for a protocol covers proto too, and a port
 * range is stored as the port prefixes that make it up. User space splits
 * overlapping ranges, so the entry found is the winner of its key. The
 * entries that cover the whole key (one port) are in mseg_rules_hash, not
 * in the trie (bpf/mseg_maps.h).
 */
struct mseg_rule_key {
	__u32 prefixlen;
	__u8 set;
	__u8 pad0[3];
	__u32 src_id;
	__u32 dst_id;
	__u8 proto;
	__u8 dport[2]; /* big endian: a port prefix is a bit prefix */
	__u8 pad1;
};

#define MSEG_RULE_IDS_BITS 96 /* set, pad0, src_id, dst_id */
#define MSEG_RULE_PROTO_BITS (MSEG_RULE_IDS_BITS + 8)
#define MSEG_RULE_FULL_BITS (MSEG_RULE_PROTO_BITS + 16)
#define MSEG_RULE_CANDS 4

/* What decided a flow: a rule, a CIDR statement, or the default action. */
enum mseg_decided_by {
	MSEG_BY_EXACT = 0, /* a rule (`rule add`, `mseg-rule add`) */
	MSEG_BY_CIDR = 1,  /* a `cidr` statement (`mseg-cidr add`) */
	MSEG_BY_DEFAULT = 2,
};

/*
 * One candidate: the best rule of its region, unless it names a source
 * port the packet does not have; then the next one. Candidates are in
 * precedence order and the last one names no source port.
 */
struct mseg_rule_cand {
	__u64 rank;    /* docs/policy.md "precedence": lower wins */
	__u32 rule_id; /* 0: no candidate */
	__u16 sport;   /* 0: any */
	__u8 action;   /* enum mseg_action */
	__u8 by;       /* enum mseg_decided_by */
};

struct mseg_rule_val {
	struct mseg_rule_cand c[MSEG_RULE_CANDS];
};

/* mseg_rule_hits: per-CPU, indexed by rule id (0 = the default action). */
struct mseg_rule_hits {
	__u64 packets; /* packets of the sessions (and untracked packets) it decided */
	__u64 flows;   /* new flows and re-judged sessions it decided */
	__u64 audited; /* of those, the ones its deny passed as would-deny */
};

/*
 * mseg_source: the policy as statements (docs/policy.md grammar), one per
 * entry, in index order: the segment lines, then each rule at
 * MSEG_SRC_RULES + its id (so an edit of one rule rewrites one entry); the
 * default action is mseg_config's, switched with the set. The
 * compiled maps are derived from it; user space reads it to edit, list,
 * save and explain. The entry at MSEG_SRC_SEAL, a '#' comment naming a
 * digest of the set's other entries, is written last by every writer and
 * deleted first: while it matches, the set's mseg_ident and mseg_rules
 * hold exactly what its statements compile to, so the next edit writes
 * only the difference (docs/policy.md, "where the policy lives").
 */
#define MSEG_SOURCE_LINE 512
#define MSEG_SRC_DEFAULT 0 /* not stored: mseg_config.default_action */
#define MSEG_SRC_SEGMENTS 1
#define MSEG_SRC_RULES 0x80000000u
#define MSEG_SRC_SEAL 0xffffffffu

struct mseg_source_key {
	__u8 set;
	__u8 pad[3];
	__u32 index;
};

struct mseg_source_val {
	char line[MSEG_SOURCE_LINE]; /* NUL-terminated */
};

/*
 * mseg_flows: traffic aggregated by flow (docs/DESIGN.md, "Flows"), one
 * flow per originator and responder address, protocol, responder port,
 * verdict and deciding rule, counted on the new-flow path only (every
 * decision on a packet without a live session, denied ones included).
 * Addresses, not identities: an identity's number says nothing once its
 * prefix has left the policy, an address is read against the policy in
 * force (`mseg flows` names a side by its segment).
 *
 * A per-CPU array used as a set-associative cache: the flow's set is
 * mseg_flow_set() of its key (bpf/mseg_flows.h), its slot one of the set's
 * MSEG_FLOW_WAYS entries (index set * MSEG_FLOW_WAYS + way): the one that
 * holds it, else the first unused one (last_ns 0; a set fills in order,
 * nothing empties it), else the one seen least recently on this CPU, whose
 * counts there are lost. Each CPU keeps the flows it decided; readers add
 * up the slots of all CPUs by key.
 */
enum mseg_flow_verdict {
	MSEG_FLOW_ALLOWED = 0,    /* passed by the policy (allow, log) */
	MSEG_FLOW_DENIED = 1,     /* dropped by the policy */
	MSEG_FLOW_WOULD_DENY = 2, /* passed, but a deny would apply (audit mode) */
	MSEG_FLOW_VERDICT_MAX,
};

struct mseg_flow_key {
	__u8 src[16];   /* the originator's address */
	__u8 dst[16];   /* the responder's */
	__u32 rule_id;  /* the rule that decided; 0 = the default action */
	__u16 dport;    /* the responder's port; 0 for a protocol without one */
	__u8 proto;
	__u8 family;    /* 4 or 6 */
	__u8 verdict;   /* enum mseg_flow_verdict */
	__u8 pad[7];
} __attribute__((aligned(8)));

struct mseg_flow_val {
	__u64 connections; /* new-flow decisions: a session opened, or an
			    * attempt judged without one (each denied packet) */
	__u64 packets;     /* packets judged without a session (the sessions
			    * count theirs) */
	__u64 bytes;
	__u64 first_ns;    /* first decision (CLOCK_BOOTTIME) */
	__u64 last_ns;     /* last decision; 0: the slot is unused */
};

/*
 * What the staged policy (docs/policy.md, staged) said of a flow's new
 * flows, while one is loaded: its verdict and rule for the last one, and
 * how many it judged otherwise than the policy in force. Valid while gen
 * is mseg_config.staged_gen: a new staged policy starts every flow anew.
 */
struct mseg_flow_staged {
	__u64 disagreements;
	__u32 rule_id;
	__u32 gen;
	__u8 verdict; /* enum mseg_flow_verdict */
	__u8 pad[7];
};

struct mseg_flow_slot {
	struct mseg_flow_key flow;
	struct mseg_flow_val count;
	struct mseg_flow_staged staged;
};

/*
 * mseg_flows_gc: the packets and bytes of the sessions mseg gc deleted, by
 * flow (an LRU hash, mseg_flow_val with no connections; first_ns the
 * earliest session's creation, last_ns the latest one's last packet).
 * Written by the sweep alone, under the gc lock: the data path never
 * touches it.
 */

/*
 * mseg_frags: the ports of a fragmented datagram, remembered from its first
 * fragment so the later ones (which carry no L4 header) get the same verdict.
 * Keyed as the kernel reassembles: IPv4 by (src, dst, id, protocol), IPv6
 * by (src, dst, id) with proto 0, the upper-layer protocol in the value.
 * A plain hash: a full table refuses new datagrams and never evicts a
 * remembered one; entries older than MSEG_FRAG_TIMEOUT_NS count as absent
 * and are reclaimed by the data path when the table is full (mseg_frag.h).
 */
struct mseg_frag_key {
	__u8 src[16];
	__u8 dst[16];
	__u32 id; /* IPv4 identification or IPv6 fragment identification */
	__u8 proto; /* IPv4: the IP protocol; IPv6: 0 */
	__u8 family; /* 4 or 6 */
	__u8 pad[2];
} __attribute__((aligned(8)));

struct mseg_frag_val {
	__u64 seen_ns;
	__u16 sport;
	__u16 dport;
	__u8 proto; /* the upper-layer protocol of the first fragment */
	__u8 pad[3];
};

#define MSEG_MAX_FRAGS 8192
#define MSEG_FRAG_TIMEOUT_NS (30ULL * 1000000000ULL)

/* Built-in defaults for zero config fields: nf_conntrack's timeouts (s). */
#define MSEG_DEF_TO_SYN_SENT 120
#define MSEG_DEF_TO_SYN_RECV 60
#define MSEG_DEF_TO_ESTABLISHED 432000
#define MSEG_DEF_TO_FIN_WAIT 120
#define MSEG_DEF_TO_CLOSE_WAIT 60
#define MSEG_DEF_TO_LAST_ACK 30
#define MSEG_DEF_TO_TIME_WAIT 120
#define MSEG_DEF_TO_CLOSE 10
#define MSEG_DEF_TO_UDP 30
#define MSEG_DEF_TO_UDP_REPLIED 120
#define MSEG_DEF_TO_ICMP 30
#define MSEG_DEF_TO_OTHER 600
#define MSEG_DEF_TO_UNCONFIRMED 30
#define MSEG_DEF_WARN_PCT 80
#define MSEG_DEF_CRIT_PCT 90
#define MSEG_DEF_DEGRADE_PCT 95
/* a count threshold: a sixteenth of the table, so a flood can reach it */
#define MSEG_DEF_FLOOD_HALF_OPEN \
	(MSEG_MAX_SESSIONS >= 16 ? MSEG_MAX_SESSIONS / 16 : 1)
#define MSEG_DEF_FLOOD_SYN_RATE 10000
#define MSEG_DEF_FLOOD_SYN_TIMEOUT 5
#define MSEG_DEF_EVENT_RATE 1000

/* mseg_config: one entry, written by user space only. Zero = default. */
struct mseg_config {
	__u32 abi_version; /* stamped by `mseg attach`; 0 = never attached by mseg */
	__u32 policy_gen;  /* bumped on every rule change: sessions are re-judged */
	__u8 default_action;
	__u8 strict; /* drop malformed frames and TCP without a session */
	__u8 active_set;
	__u8 mode; /* MSEG_MODE_*: in the same word as the set it qualifies */
	/* timeouts in seconds (0 = nf_conntrack's default) */
	__u32 to_syn_sent;
	__u32 to_syn_recv;
	__u32 to_established;
	__u32 to_fin_wait;
	__u32 to_close_wait;
	__u32 to_last_ack;
	__u32 to_time_wait;
	__u32 to_close;
	__u32 to_udp;
	__u32 to_udp_replied;
	__u32 to_icmp;
	__u32 to_other;
	/* pressure (percent of capacity) and SYN flood thresholds */
	__u32 warn_pct;
	__u32 crit_pct;
	__u32 degrade_pct;
	__u32 flood_half_open;
	__u32 flood_syn_rate;
	__u32 flood_syn_timeout;
	__u32 event_rate; /* events per second the data path may emit */
	__u32 to_unconfirmed; /* s; a session picked up mid-stream, unanswered */
	__u32 staged_gen; /* bumped by every `mseg apply --staged`: never 0 then */
};

/* mseg_config.mode */
#define MSEG_MODE_AUDIT 0x1	  /* pass denies as would-deny (docs/policy.md, audit) */
#define MSEG_MODE_STAGED 0x2	  /* the other set holds a staged policy */
#define MSEG_MODE_STAGED_DENY 0x4 /* ... whose default is deny */
#define MSEG_MODE_STAGED_SPORT 0x8 /* ... and a rule of it names a source port */
/*
 * Accounting off (`mseg config set accounting off`): no per-packet counts,
 * neither a session's packets and bytes nor a rule's packets, as
 * nf_conntrack without nf_conntrack_acct (its default). They cost an
 * established packet ~8 % here (bench/RESULTS.md); verdicts never read them.
 */
#define MSEG_MODE_NO_ACCT 0x10
#define MSEG_MODE_STAGED_BITS \
	(MSEG_MODE_STAGED | MSEG_MODE_STAGED_DENY | MSEG_MODE_STAGED_SPORT)

/*
 * mseg_pressure: the session table's load, written by the data path only
 * (atomically; several CPUs share it). User space reads it.
 * half-open sessions = half_open_opened - half_open_closed
 *                      - mseg_gc.half_open_reaped
 */
struct mseg_pressure {
	__u64 sessions;         /* entries in mseg_sessions at the last update */
	__u64 updated_ns;       /* when `sessions` and `level` were computed */
	__u64 half_open_opened; /* sessions that became half-open: SYN_SENT,
				 * SYN_RECV, or picked up and unconfirmed */
	__u64 half_open_closed; /* ... that stopped being so, or were replaced
				 * or dropped early */
	__u64 refused;          /* new sessions refused: the table was full,
				 * and nothing could be dropped early */
	__u64 window_start_ns;  /* start of the current one-second SYN window */
	__u64 syn_count;        /* new SYNs in the current window */
	__u64 syn_rate;         /* new SYNs in the last complete window */
	__u64 warn_count;       /* times the warning level was entered */
	__u64 crit_count;       /* ... the critical level */
	__u64 degrade_count;    /* ... degradation */
	__u64 flood_count;      /* ... SYN-flood state */
	__u32 level;            /* sessions * 100 / capacity, rounded down */
	__u32 flags;            /* MSEG_PRESSURE_* */
	/* the early-drop rings (mseg_evict, bpf/mseg_evict.h), by
	 * MSEG_EVICT_RING_*: keys pushed so far, and where the next search
	 * for a victim starts */
	__u64 evict_head[2];
	__u64 evict_tail[2];
};

#define MSEG_PRESSURE_WARN 0x1
#define MSEG_PRESSURE_CRIT 0x2
#define MSEG_PRESSURE_DEGRADED 0x4
#define MSEG_PRESSURE_FLOOD 0x8

/*
 * mseg_evict: two rings of session keys the data path may drop early when
 * the table is full (bpf/mseg_evict.h). Ring MSEG_EVICT_RING_TCP holds TCP
 * sessions when they are opened (half-open or picked up) and when they
 * finish (TIME_WAIT, CLOSE); MSEG_EVICT_RING_OTHER every other new session
 * (UDP, ICMP, ...: unanswered when opened). Entry ring * MSEG_EVICT_SLOTS +
 * (n % MSEG_EVICT_SLOTS) holds the n-th key pushed to that ring.
 */
#define MSEG_EVICT_SLOTS 4096
#define MSEG_EVICT_RING_TCP 0
#define MSEG_EVICT_RING_OTHER 1

/* mseg_gc: written by mseg-gc only (one writer, under the edit lock). */
struct mseg_gc_state {
	__u64 last_run_ns;      /* CLOCK_BOOTTIME of the last sweep */
	__u64 runs;
	__u64 sessions;         /* entries left after the last sweep */
	__u64 live;             /* unexpired sessions at the last sweep */
	__u64 half_open;        /* unexpired half-open sessions at the last sweep */
	__u64 deleted;          /* expired sessions deleted, all runs */
	__u64 half_open_reaped; /* expired half-open sessions deleted, all runs */
};

/* mseg_events: a ring buffer of these, read by `mseg log`. */
enum mseg_event_kind {
	MSEG_EV_DENY = 1,     /* a flow denied by policy */
	MSEG_EV_LOG = 2,      /* a flow allowed by a log rule */
	MSEG_EV_DROP = 3,     /* a new flow dropped to protect the table */
	MSEG_EV_PRESSURE = 4, /* the table entered a pressure level */
	MSEG_EV_FLOOD = 5,    /* the SYN-flood flag rose */
	MSEG_EV_EVICT = 6,    /* a session dropped early for a new one: its flow */
	MSEG_EV_AUDIT = 7,    /* a flow a deny would stop, passed by audit mode */
};

enum mseg_event_reason {
	MSEG_RSN_EXACT = 0,    /* decided by an exact rule */
	MSEG_RSN_CIDR = 1,     /* by a CIDR rule */
	MSEG_RSN_DEFAULT = 2,  /* by the default action */
	MSEG_RSN_DEGRADED = 3, /* dropped: the table is degraded */
	MSEG_RSN_FULL = 4,     /* dropped: the table is full */
	MSEG_RSN_WARN = 5,     /* pressure above the warning level */
	MSEG_RSN_CRIT = 6,     /* ... the critical level */
	MSEG_RSN_DEGRADE = 7,  /* ... the degradation level */
	MSEG_RSN_SYN_RATE = 8, /* SYN flood: new SYNs per second */
	MSEG_RSN_HALF_OPEN = 9, /* SYN flood: half-open sessions; evicted:
				 * it was half-open or unconfirmed */
	MSEG_RSN_UNREPLIED = 10, /* evicted: never answered (UDP, ICMP, ...) */
	MSEG_RSN_CLOSED = 11,   /* evicted: TIME_WAIT or CLOSE */
	MSEG_RSN_EXPIRED = 12,  /* evicted: past its timeout already */
};

#define MSEG_EVF_REJUDGED 0x1 /* an open session judged again */

struct mseg_event {
	__u64 ts_ns; /* CLOCK_BOOTTIME */
	__u8 src[16];
	__u8 dst[16];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 kind;   /* enum mseg_event_kind */
	__u8 action; /* enum mseg_action */
	__u8 reason; /* enum mseg_event_reason */
	__u32 suppressed; /* events the rate limit dropped since the last one */
	__u32 value;      /* pressure: percent of capacity; flood: the count;
			   * deny, log, audit: the deciding rule's id (0: default) */
	__u8 flags;       /* MSEG_EVF_* */
	__u8 pad[7];
};

#define MSEG_EVENTS_BYTES (256 * 1024)

/* mseg_evlimit: the data path's event rate limit (mseg_config.event_rate). */
struct mseg_event_limit {
	__u64 window_start_ns;
	__u64 count;            /* events in the current one-second window */
	__u64 pending;          /* suppressed since the last event emitted */
	__u64 emitted_total;
	__u64 suppressed_total;
};

/* mseg_stats: one per-CPU entry; readers sum over CPUs. */
struct mseg_stats {
	/* the seed's thirteen */
	__u64 total;
	__u64 policy_hit; /* new flow decided by an exact rule */
	__u64 session_hit;
	__u64 new_session;
	__u64 allowed; /* passed by a verdict (log included) */
	__u64 denied;  /* dropped by a deny verdict */
	__u64 logged;
	__u64 dropped; /* dropped for any other reason (strict, pressure, full) */
	__u64 ip_range_hit;
	__u64 map_full;
	__u64 pressure_drop;
	__u64 tcp_established;
	__u64 tcp_closed;
	/* mseg's own */
	__u64 default_hit; /* new flow decided by the default action */
	__u64 rejudged;    /* sessions judged again after a rule change */
	__u64 non_ip;      /* passed untouched: ARP, LLDP, ... */
	__u64 malformed;   /* truncated or unparseable */
	__u64 fragments;   /* non-first IP fragments */
	__u64 invalid;     /* TCP that fits no session (strict drops it) */
	__u64 rst_ignored; /* RST that closed nothing: inexact or out of window */
	__u64 events_lost;
	/*
	 * Fail closed (docs/DESIGN.md, "Counters"): every packet ends in exactly
	 * one of allowed, denied, dropped, non_ip, unjudged; every packet not
	 * dropped before its decision counts exactly one decision.
	 */
	__u64 unjudged;     /* passed without a verdict: no whole IP header (loose) */
	__u64 strict_drop;  /* dropped by strict mode before a decision */
	__u64 exempt;       /* decision: ND or MLD, passed without policy */
	__u64 related;      /* decision: an ICMP error about a live session */
	__u64 vlan_limit;   /* dropped: more VLAN tags than mseg reads */
	__u64 v4_mapped;    /* dropped: IPv6 with an IPv4-mapped address */
	__u64 exthdr_limit; /* dropped: IPv6 extension chain beyond the bound */
	__u64 frag_tiny;    /* dropped: first fragment without its L4 header */
	__u64 frag_overlap; /* dropped: later fragment over the TCP header */
	__u64 frag_full;    /* first fragments not remembered: table full */
	__u64 out_of_window; /* TCP outside what the peers could send or ack */
	__u64 early_drop;    /* sessions dropped to make room for a new one */
	__u64 audit_denied;  /* new flows a deny would stop, passed by audit */
	__u64 staged_disagree; /* new flows the staged policy judged otherwise */
};

#define MSEG_STATS_FIELDS (sizeof(struct mseg_stats) / sizeof(__u64))

_Static_assert(sizeof(struct mseg_session_key) == 40, "session key layout");
_Static_assert(sizeof(struct mseg_tcp_peer) == 24, "tcp peer layout");
_Static_assert(sizeof(struct mseg_session) == 112, "session layout");
_Static_assert(sizeof(struct mseg_ident_key) == 24, "ident key layout");
_Static_assert(sizeof(struct mseg_ident_val) == 8, "ident value layout");
_Static_assert(sizeof(struct mseg_rule_key) == 20, "rule key layout");
_Static_assert((__builtin_offsetof(struct mseg_rule_key, proto) - 4) * 8 ==
		       MSEG_RULE_IDS_BITS, "rule key: set and ids, then proto");
_Static_assert(sizeof(struct mseg_rule_cand) == 16, "rule candidate layout");
_Static_assert(sizeof(struct mseg_rule_val) == 64, "rule value layout");
_Static_assert(sizeof(struct mseg_rule_hits) == 24, "rule hits layout");
_Static_assert(sizeof(struct mseg_source_key) == 8, "source key layout");
_Static_assert(sizeof(struct mseg_source_val) == MSEG_SOURCE_LINE, "source layout");
_Static_assert(sizeof(struct mseg_flow_key) == 48, "flow key layout");
_Static_assert(__builtin_offsetof(struct mseg_flow_key, rule_id) == 32 &&
		       __builtin_offsetof(struct mseg_flow_key, verdict) == 40,
	       "flow key: addresses, rule, port, protocol, family, verdict");
_Static_assert(sizeof(struct mseg_flow_val) == 5 * 8, "flow value layout");
_Static_assert(sizeof(struct mseg_flow_staged) == 24, "flow staged layout");
_Static_assert(sizeof(struct mseg_flow_slot) == 112, "flow slot layout");
_Static_assert(sizeof(struct mseg_frag_key) == 40, "frag key layout");
_Static_assert(sizeof(struct mseg_frag_val) == 16, "frag value layout");
_Static_assert(sizeof(struct mseg_config) == 96, "config layout");
_Static_assert(sizeof(struct mseg_stats) == 35 * 8, "stats layout");
_Static_assert(sizeof(struct mseg_pressure) == 12 * 8 + 8 + 4 * 8,
	       "pressure layout");
_Static_assert(sizeof(struct mseg_gc_state) == 7 * 8, "gc state layout");
_Static_assert(sizeof(struct mseg_event) == 64, "event layout");
_Static_assert(sizeof(struct mseg_event_limit) == 5 * 8, "event limit layout");

#endif /* MSEG_ABI_H */
