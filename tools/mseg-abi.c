// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * mseg-abi: print the ABI this build was compiled with, one fact per line,
 * so the shell commands never restate a size or an offset by hand:
 * `mseg attach` compares the pinned maps against it, and a test checks
 * lib/sh/mseg-layout.sh's offsets against the compiler's.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "mseg_abi.h"
#include "mseg_util.h"

#define MAP(name, key, val, max) \
	printf("map %s %zu %zu %u\n", name, sizeof(key), sizeof(val), (unsigned)(max))
#define FIELD(type, prefix, f)                                      \
	printf("field %s.%s %zu %zu\n", prefix, #f, offsetof(type, f), \
	       sizeof(((type *)0)->f))
#define CONF(f, def)                          \
	do {                                  \
		FIELD(struct mseg_config, "config", f); \
		printf("default config.%s %u\n", #f, (unsigned)(def)); \
	} while (0)

static void print_maps(void)
{
	MAP("mseg_sessions", struct mseg_session_key, struct mseg_session,
	    MSEG_MAX_SESSIONS);
	MAP("mseg_ident", struct mseg_ident_key, struct mseg_ident_val,
	    MSEG_MAX_IDENTS);
	MAP("mseg_rules", struct mseg_rule_key, struct mseg_rule_val,
	    MSEG_MAX_RULE_ENTRIES);
	MAP("mseg_rules_hash", struct mseg_rule_key, struct mseg_rule_val,
	    MSEG_MAX_RULE_ENTRIES);
	MAP("mseg_rule_hits", __u32, struct mseg_rule_hits, MSEG_MAX_RULE_IDS);
	MAP("mseg_source", struct mseg_source_key, struct mseg_source_val,
	    MSEG_MAX_SOURCE);
	MAP("mseg_frags", struct mseg_frag_key, struct mseg_frag_val,
	    MSEG_MAX_FRAGS);
	MAP("mseg_config", __u32, struct mseg_config, 1);
	MAP("mseg_stats", __u32, struct mseg_stats, 1);
	MAP("mseg_pressure", __u32, struct mseg_pressure, 1);
	MAP("mseg_gc", __u32, struct mseg_gc_state, 1);
	MAP("mseg_evlimit", __u32, struct mseg_event_limit, 1);
	MAP("mseg_evict", __u32, struct mseg_session_key, 2 * MSEG_EVICT_SLOTS);
	MAP("mseg_flows", __u32, struct mseg_flow_slot, MSEG_FLOW_SLOTS);
	MAP("mseg_flows_gc", struct mseg_flow_key, struct mseg_flow_val,
	    MSEG_MAX_FLOWS_GC);
}

static void print_fields(void)
{
	CONF(abi_version, 0);
	CONF(policy_gen, 0);
	CONF(default_action, 0);
	CONF(strict, 0);
	CONF(active_set, 0);
	CONF(mode, 0);
	CONF(staged_gen, 0);
	CONF(to_syn_sent, MSEG_DEF_TO_SYN_SENT);
	CONF(to_syn_recv, MSEG_DEF_TO_SYN_RECV);
	CONF(to_established, MSEG_DEF_TO_ESTABLISHED);
	CONF(to_fin_wait, MSEG_DEF_TO_FIN_WAIT);
	CONF(to_close_wait, MSEG_DEF_TO_CLOSE_WAIT);
	CONF(to_last_ack, MSEG_DEF_TO_LAST_ACK);
	CONF(to_time_wait, MSEG_DEF_TO_TIME_WAIT);
	CONF(to_close, MSEG_DEF_TO_CLOSE);
	CONF(to_udp, MSEG_DEF_TO_UDP);
	CONF(to_udp_replied, MSEG_DEF_TO_UDP_REPLIED);
	CONF(to_icmp, MSEG_DEF_TO_ICMP);
	CONF(to_other, MSEG_DEF_TO_OTHER);
	CONF(warn_pct, MSEG_DEF_WARN_PCT);
	CONF(crit_pct, MSEG_DEF_CRIT_PCT);
	CONF(degrade_pct, MSEG_DEF_DEGRADE_PCT);
	CONF(flood_half_open, MSEG_DEF_FLOOD_HALF_OPEN);
	CONF(flood_syn_rate, MSEG_DEF_FLOOD_SYN_RATE);
	CONF(flood_syn_timeout, MSEG_DEF_FLOOD_SYN_TIMEOUT);
	CONF(event_rate, MSEG_DEF_EVENT_RATE);
	CONF(to_unconfirmed, MSEG_DEF_TO_UNCONFIRMED);
}

int main(int argc, char **argv)
{
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: mseg-abi\n"
		       "Print this build's ABI version, session capacity, map sizes\n"
		       "(map NAME KEY_SIZE VALUE_SIZE MAX_ENTRIES) and field offsets\n"
		       "(field STRUCT.NAME OFFSET SIZE) and layout constants\n"
		       "(const NAME VALUE), and the mseg version it belongs to\n"
		       "(version TEXT).\n");
		return 0;
	}
	if (argc > 1 && !strcmp(argv[1], "--version")) {
		printf("mseg-abi %s (abi %d)\n", MSEG_VERSION, MSEG_ABI_VERSION);
		return 0;
	}
	printf("version %s\n", MSEG_VERSION);
	printf("abi_version %d\n", MSEG_ABI_VERSION);
	printf("max_sessions %u\n", (unsigned)MSEG_MAX_SESSIONS);
	/* How mseg_ident prefix lengths are stored (bpf/mseg_abi.h). */
	printf("const ident_hdr_bits %d\n", MSEG_IDENT_HDR_BITS);
	printf("const ident_v4_base_bits %d\n", MSEG_IDENT_V4_BASE_BITS);
	/* mseg_config.mode's bits */
	printf("const mode_audit %d\n", MSEG_MODE_AUDIT);
	printf("const mode_staged %d\n", MSEG_MODE_STAGED);
	printf("const mode_staged_deny %d\n", MSEG_MODE_STAGED_DENY);
	printf("const mode_no_acct %d\n", MSEG_MODE_NO_ACCT);
	print_maps();
	print_fields();
	return 0;
}
