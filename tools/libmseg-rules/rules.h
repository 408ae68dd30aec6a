/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * libmseg-rules: the one grammar, parser, validator, compiler and encoder
 * of mseg's policy (docs/policy.md). Linked into build/mseg-ruleset (which
 * the operator commands call) and every other program that reads rules.
 */
#ifndef MSEG_RULES_H
#define MSEG_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <linux/types.h>

#include "mseg_abi.h"

#define MR_NAME_MAX 48
#define MR_COMMENT_MAX 200
#define MR_PORTS_MAX 64
#define MR_DEFAULT_PRIORITY 100
#define MR_PROTO_ANY (-1)
#define MR_PROTO_ICMP 256 /* ICMP for IPv4 flows, ICMPv6 for IPv6 flows */
/*
 * The compiler's version, named in every set's seal (maps.c): a change to
 * what a policy compiles to must bump it, so a set sealed by an older
 * compiler is rewritten whole rather than patched.
 */
#define MR_COMPILER_VERSION 3

/*
 * Failsafes (docs/policy.md, "failsafes"): flows that pass whatever the
 * rules and the default say. Each entry of the list in force compiles into
 * a rule between any and any, with an id of the top band of rule ids (the
 * entries in the list's order, from MR_FAILSAFE_ID0; the data path knows
 * the band, bpf/mseg_abi.h) and a rank below any rule's: a rule's rank is
 * at least 126 << 24 (its specificity fields are 255 minus at most 129),
 * whatever its priority.
 */
#define MR_FAILSAFE_MAX MSEG_FAILSAFE_MAX
#define MR_FAILSAFE_ID0 MSEG_FAILSAFE_ID0 /* 262112 */
#define MR_RULE_ID_MAX (MR_FAILSAFE_ID0 - 1) /* a rule's or cidr's id: 1..262111 */
#define MR_FAILSAFE_RANK 0ULL
/* The failsafe statement's mseg_source index: after the segments, before the rules. */
#define MR_SRC_FAILSAFE (MSEG_SRC_RULES - 1)

struct mr_pfx {
	__u8 addr[16]; /* as stored: IPv4 as ::ffff:a.b.c.d */
	__u8 len;      /* in the family's own bits: 0..32 or 0..128 */
	__u8 family;   /* 4 or 6 */
};

enum mr_sel_kind { MR_SEL_ANY, MR_SEL_PFX, MR_SEL_SEG };

struct mr_sel {
	int kind;
	struct mr_pfx p;
	char name[MR_NAME_MAX]; /* a segment's */
};

struct mr_range {
	__u16 lo, hi;
};

enum mr_kind { MR_RULE, MR_CIDR, MR_FAILSAFE };

struct mr_rule {
	__u32 id;      /* 1..MSEG_MAX_RULE_IDS-1; 0 while unassigned */
	int kind;      /* enum mr_kind; a CIDR has dst = its prefix */
	struct mr_sel src, dst;
	int proto;     /* MR_PROTO_ANY, 1..255, MR_PROTO_ICMP */
	int nports;    /* destination ports: sorted, disjoint ranges */
	struct mr_range ports[MR_PORTS_MAX];
	__u16 sport;   /* 0: any */
	__u8 action;   /* enum mseg_action: allow, deny or log */
	bool audit;    /* a deny passed as would-deny (--audit) */
	bool prio_given, comment_given;
	__u32 priority;
	char comment[MR_COMMENT_MAX + 1];
	long line;     /* where it was written, for messages */
};

/* What the data path does with a rule's flows: its action, or would-deny. */
static inline __u8 mr_rule_action(const struct mr_rule *r)
{
	return r->audit ? MSEG_ACT_AUDIT : r->action;
}

enum mr_fs_mode { MR_FS_DEFAULT, MR_FS_SET, MR_FS_OFF };

struct mr_failsafe {
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u16 port; /* destination port, 1..65535 */
};

struct mr_segment {
	char name[MR_NAME_MAX];
	struct mr_pfx *p;
	size_t n, cap;
	long line;
};

struct mr_policy {
	int def; /* MSEG_ACT_ALLOW or MSEG_ACT_DENY */
	struct mr_rule *r;
	size_t nr, capr;
	struct mr_segment *s;
	size_t ns, caps;
	/* indexes, rebuilt when stale: rules by selectors, by id; segments by name */
	long *kidx, *sidx;
	size_t kcap, scap;
	bool kstale, sstale;
	long *ididx; /* MSEG_MAX_RULE_IDS entries: rule index + 1, 0 none */
	long long *pxidx; /* segment prefixes: segment << 32 | prefix, -1 empty */
	size_t pxcap, pxn;
	bool pxstale;
	bool replace; /* a ruleset file: a later line replaces an earlier one whole */
	bool config_only; /* read only the config lines (apply's check before the lock) */
	bool stated_default; /* a ruleset file had a `default` line */
	/* `config KEY VALUE` lines of a ruleset file: checked and written by the
	 * caller (mseg's config command knows the keys), never stored as rules */
	struct mr_config *cfg;
	size_t ncfg, capcfg;
	/* failsafes: the mode and, for MR_FS_SET, the list (port, then protocol order) */
	int fs_mode;
	struct mr_failsafe fs[MR_FAILSAFE_MAX];
	int nfs;
	bool fs_said;       /* a ruleset file said failsafe set, off or default */
	struct mr_rule *fsr; /* the list in force as rules (mr_failsafe_rules) */
};

#define MR_CONFIG_KEY_MAX 32
#define MR_CONFIG_VALUE_MAX 24

struct mr_config {
	char key[MR_CONFIG_KEY_MAX];
	char value[MR_CONFIG_VALUE_MAX];
	long line;
};

/*
 * input.c: a ruleset input read whole. The bound is far above any policy
 * the maps hold (262,144 statements per set) and keeps endless input out.
 */
#define MR_INPUT_MAX (64u << 20)
#define MR_LINE_MAX 8191

struct mr_input {
	char *buf; /* NUL-terminated */
	size_t len, pos;
};

bool mr_input_read(const char *path, struct mr_input *in);
char *mr_input_line(struct mr_input *in, size_t *len); /* NULL at the end */
bool mr_input_write(const struct mr_input *in, const char *path);
void mr_input_free(struct mr_input *in);

/* Errors: the first one is kept; mr_failed() tells, mr_error() says. */
void mr_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
bool mr_failed(void);
const char *mr_error(void);
void mr_err_reset(void);
void *mr_grow(void *p, size_t *cap, size_t n, size_t sz);

/* text.c: addresses, prefixes, names */
bool mr_addr_parse(const char *s, __u8 out[16], int *family);
const char *mr_addr_text(const __u8 a[16], int family, char *buf);
const char *mr_pfx_text(const struct mr_pfx *p, char *buf);
bool mr_pfx_parse(const char *text, struct mr_pfx *p); /* mr_err on failure */
void mr_mask(__u8 a[16], int bits);
bool mr_pfx_contains(const struct mr_pfx *outer, const struct mr_pfx *inner);
bool mr_pfx_has_addr(const struct mr_pfx *p, const __u8 a[16], int family);
int mr_pfx_score(const struct mr_pfx *p); /* docs/policy.md specificity */
const char *mr_proto_text(int proto, char *buf);
int mr_proto_parse(const char *s); /* -2 if unknown */
const char *mr_ports_text(const struct mr_rule *r, char *buf, size_t len);
bool mr_uint(const char *s, unsigned long long max, unsigned long long *out);
extern const char *const mr_action_names[MSEG_ACT_MAX];
int mr_action_num(const char *s);

/* parse.c: statements into a policy */
int mr_split(char *line, char **argv, int max); /* words, quotes, '#' */
void mr_policy_init(struct mr_policy *p);
void mr_policy_free(struct mr_policy *p);
/* One statement (argv[0] is default|segment|rule|cidr); `line` for messages. */
void mr_statement(struct mr_policy *p, int argc, char **argv, long line,
		  char *msg, size_t msglen);
/* A file of statements; prefix ("rule add", "cidr add" or NULL) goes before every line. */
bool mr_parse_file(struct mr_policy *p, const char *path, const char *prefix);
bool mr_parse_input(struct mr_policy *p, struct mr_input *in, const char *prefix);
extern size_t mr_file_statements; /* statements mr_parse_file read */
bool mr_policy_check(struct mr_policy *p); /* whole-policy validation */
void mr_assign_ids(struct mr_policy *p, const struct mr_policy *old);
void mr_rule_match_key(const struct mr_rule *r, char *buf, size_t len);
/* Do a and b name the same match (mr_rule_match_key's text), whatever their action? */
bool mr_rule_same_match(const struct mr_rule *a, const struct mr_rule *b);
void mr_rule_text(const struct mr_rule *r, bool with_id, char *buf, size_t len);
const char *mr_sel_text(const struct mr_sel *s, char *buf);
const char *mr_rule_proto_text(const struct mr_rule *r, char *buf);
/* Canonical statements with their mseg_source index, one per call of fn; false if one is too long. */
bool mr_policy_lines(const struct mr_policy *p,
		     void (*fn)(void *ctx, __u32 index, const char *line), void *ctx);
struct mr_segment *mr_segment_find(const struct mr_policy *p, const char *name);
const struct mr_rule *mr_rule_by_id(const struct mr_policy *p, __u32 id); /* NULL: none */
/* The failsafes in force (the default list, the operator's, or none); returns the count. */
int mr_failsafe_list(const struct mr_policy *p, struct mr_failsafe out[MR_FAILSAFE_MAX]);
/* ... as rules (kind MR_FAILSAFE, ids from MR_FAILSAFE_ID0), owned by p. */
int mr_failsafe_rules(const struct mr_policy *p, const struct mr_rule **out);
const char *mr_failsafe_text(const struct mr_failsafe *f, char *buf); /* "tcp/22" */
const char *mr_failsafe_service(const struct mr_failsafe *f); /* "ssh", or NULL */
void mr_failsafe_statement(const struct mr_policy *p, char *buf, size_t len);
/* The failsafe statement (argv[0] is "failsafe"); mr_err on bad input. */
void mr_failsafe_stmt(struct mr_policy *p, int argc, char **argv, char *msg, size_t len);

/* compile.c */
struct mr_ident_ent {
	struct mseg_ident_key k;
	struct mseg_ident_val v;
};
struct mr_rule_ent {
	struct mseg_rule_key k;
	struct mseg_rule_val v;
	bool hashed; /* in mseg_rules_hash, not the trie (bpf/mseg_maps.h) */
};
struct mr_compiled {
	struct mr_ident_ent *id;
	size_t nid, capid;
	struct mr_rule_ent *re;
	size_t nre, capre;
	size_t expansion; /* (rule, src identity, dst identity) triples */
};
bool mr_compile(const struct mr_policy *p, __u8 set, struct mr_compiled *c);
void mr_compiled_free(struct mr_compiled *c);
__u64 mr_rank(const struct mr_rule *r, int dscore, int sscore);

/* explain.c */
struct mr_flow {
	__u8 src[16], dst[16];
	int family;
	int proto;
	__u16 sport, dport;
};
struct mr_decision {
	__u32 rule_id;
	__u8 action;
	__u64 rank;
};
bool mr_flow_parse(int argc, char **argv, struct mr_flow *f); /* --src --dst --proto --sport --dport */
void mr_lookup(const struct mr_compiled *c, const struct mr_flow *f, int def,
	       struct mr_decision *d);
/* Every rule that matches f, best first; returns the count (caller frees *out). */
size_t mr_matching(const struct mr_policy *p, const struct mr_flow *f,
		   struct mr_decision **out);

#endif /* MSEG_RULES_H */
