// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * mseg-ruleset: whole rule sets in one process, for `mseg save`,
 * `mseg apply` and `mseg-rule|mseg-cidr --batch`.
 *
 *   mseg-ruleset check FILE       validate a ruleset file, write nothing
 *   mseg-ruleset load SET FILE    validate all of FILE, then empty rule set
 *                                 SET of mseg_policy and mseg_cidr and write
 *                                 FILE's rules into it
 *   mseg-ruleset clear SET        delete every entry of rule set SET
 *   mseg-ruleset save SET         print rule set SET in the ruleset format
 *   mseg-ruleset add-rules SET FILE   lines of `mseg-rule add` arguments,
 *   mseg-ruleset add-cidrs SET FILE   ... of `mseg-cidr add` arguments:
 *                                 validate all, then add them to SET
 *
 * The ruleset format, one statement a line ('#' starts a comment):
 *   default allow|deny
 *   rule --src A --dst B [--proto P] [--sport N] [--dport N] --action X
 *   cidr PREFIX --action X [--priority N]
 *
 * Validation repeats scripts/mseg-rule's and lib/sh/mseg-layout.sh's checks
 * with the same messages (tests/bats/apply.bats feeds both the same bad
 * input), prefixed with the line number. Any bad line: exit 2 and nothing
 * written. The callers hold the edit lock and switch mseg_config.
 *
 * Writes: one bpf_map_update_batch for the hash, element updates for the
 * LPM trie (it has no batch update). If a write fails half way (a full
 * map), the partly written set is emptied again before exiting 1.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mseg_abi.h"
#include "mseg_pinned.h"

#define CIDR_DEFAULT_PRIORITY 100

static const char *const action_names[] = { "allow", "deny", "log" };

static const char *rule_shapes =
	"a rule is a full 5-tuple (--proto tcp|udp --sport --dport), "
	"proto+dport (--proto tcp|udp --dport), proto only (--proto), or addresses only";

struct rule {
	struct mseg_rule_key k;
	struct mseg_rule_val v;
	size_t line; /* for "a later line replaces an earlier one" */
};

struct cidr {
	struct mseg_cidr_key k;
	struct mseg_cidr_val v;
	bool prio_given;
	size_t line;
};

static struct rule *rules;
static size_t nrules, caprules;
static struct cidr *cidrs;
static size_t ncidrs, capcidrs;
static int default_action; /* 0 allow, 1 deny */

static long lineno;
static char errbuf[512];
static bool failed;

/* Record the first error of the current line (later ones are consequences). */
static void bad(const char *fmt, ...)
{
	va_list ap;

	if (failed)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
	va_end(ap);
	failed = true;
}

static void *grow(void *p, size_t *cap, size_t n, size_t sz)
{
	if (n < *cap)
		return p;
	*cap = *cap ? *cap * 2 : 1024;
	p = realloc(p, *cap * sz);
	if (!p) {
		fprintf(stderr, "mseg: out of memory\n");
		exit(1);
	}
	return p;
}

/* mseg_is_uint: decimal 0..max, no sign, no leading zeros. */
static bool is_uint(const char *s, unsigned long long max, unsigned long long *out)
{
	unsigned long long v = 0;
	const char *p;

	if (!*s || (s[0] == '0' && s[1]))
		return false;
	for (p = s; *p; p++) {
		if (!isdigit((unsigned char)*p) || p - s >= 20)
			return false;
		v = v * 10 + (unsigned)(*p - '0');
		if (v > max)
			return false;
	}
	*out = v;
	return true;
}

/* mseg_addr_parse: 16 bytes, family 4 for IPv4 and IPv4-mapped IPv6. */
static bool addr_parse(const char *s, __u8 out[16], int *family)
{
	static const __u8 mapped[12] = { [10] = 0xff, [11] = 0xff };

	memset(out, 0, 16);
	if (!strchr(s, ':')) {
		if (inet_pton(AF_INET, s, out + 12) != 1)
			return false;
		out[10] = out[11] = 0xff;
		*family = 4;
		return true;
	}
	if (inet_pton(AF_INET6, s, out) != 1)
		return false;
	*family = memcmp(out, mapped, 12) ? 6 : 4;
	return true;
}

/* Text of 16 stored bytes: a dotted quad for family 4, else RFC 5952. */
static const char *addr_text(const __u8 a[16], int family, char *buf)
{
	inet_ntop(family == 4 ? AF_INET : AF_INET6, family == 4 ? a + 12 : a,
		  buf, INET6_ADDRSTRLEN);
	return buf;
}

static void mask_bits(__u8 a[16], int bits)
{
	for (int i = 0; i < 16; i++) {
		int keep = bits - 8 * i;

		if (keep <= 0)
			a[i] = 0;
		else if (keep < 8)
			a[i] &= (__u8)(0xff << (8 - keep));
	}
}

static int action_num(const char *s)
{
	for (int i = 0; i < MSEG_ACT_MAX; i++)
		if (!strcmp(s, action_names[i]))
			return i;
	return -1;
}

/* Split an option word: "--x=v" gives opt "--x" and val "v". */
struct opts {
	int argc;
	char **argv;
	int i;
};

/* Next option and its value; false at the end or after an error. */
static bool next_opt(struct opts *o, const char *cmd, const char *tool,
		     const char *const *known, bool positional, const char **opt, const char **val,
		     char *optbuf, size_t optlen)
{
	const char *a;

	if (failed || o->i >= o->argc)
		return false;
	a = o->argv[o->i++];
	for (const char *const *k = known; *k; k++) {
		if (!strcmp(a, *k)) {
			if (o->i >= o->argc) {
				bad("%s needs a value", a);
				return false;
			}
			*opt = a;
			*val = o->argv[o->i++];
			return true;
		}
	}
	if (!strncmp(a, "--", 2) && strchr(a, '=')) {
		size_t n = (size_t)(strchr(a, '=') - a);

		if (n >= optlen)
			n = optlen - 1;
		memcpy(optbuf, a, n);
		optbuf[n] = 0;
		*opt = optbuf;
		*val = strchr(a, '=') + 1;
		for (const char *const *k = known; *k; k++)
			if (!strcmp(optbuf, *k))
				return true;
		bad("%s: unknown option: %s (see '%s --help')", cmd, optbuf, tool);
		return false;
	}
	if (positional && a[0] != '-') {
		*opt = "";
		*val = a;
		return true;
	}
	bad("%s: unknown %s: %s (see '%s --help')", cmd,
	    positional ? "option" : "argument", a, tool);
	return false;
}

/* mseg-rule add's checks; appends the rule. */
static void parse_rule(int argc, char **argv, __u8 set)
{
	static const char *const known[] = { "--src",   "--dst",   "--sport",
					      "--dport", "--proto", "--action",
					      NULL };
	struct opts o = { argc, argv, 0 };
	const char *src = "", *dst = "", *sport = "0", *dport = "0",
		   *proto = "any", *action = "", *opt, *val;
	char optbuf[64];
	unsigned long long sp, dp;
	int fs, fd, act;
	struct rule r = {};

	while (next_opt(&o, "add", "mseg-rule", known, false, &opt, &val, optbuf,
			sizeof(optbuf))) {
		if (!strcmp(opt, "--src"))
			src = val;
		else if (!strcmp(opt, "--dst"))
			dst = val;
		else if (!strcmp(opt, "--sport"))
			sport = val;
		else if (!strcmp(opt, "--dport"))
			dport = val;
		else if (!strcmp(opt, "--proto"))
			proto = val;
		else
			action = val;
	}
	if (failed)
		return;
	if (!*src)
		return bad("add: missing --src");
	if (!*dst)
		return bad("add: missing --dst");
	if (!*action)
		return bad("add: missing --action (allow, deny or log)");
	if (!addr_parse(src, r.k.src, &fs))
		return bad("invalid address for --src: '%s'", src);
	if (!addr_parse(dst, r.k.dst, &fd))
		return bad("invalid address for --dst: '%s'", dst);
	if (fs != fd)
		return bad("--src and --dst must be the same address family");
	if (!is_uint(sport, 65535, &sp))
		return bad("invalid --sport: '%s' (expected an integer 0..65535)", sport);
	if (!is_uint(dport, 65535, &dp))
		return bad("invalid --dport: '%s' (expected an integer 0..65535)", dport);
	if (!strcmp(proto, "any"))
		r.k.proto = 0;
	else if (!strcmp(proto, "tcp"))
		r.k.proto = 6;
	else if (!strcmp(proto, "udp"))
		r.k.proto = 17;
	else if (!strcmp(proto, "icmp"))
		r.k.proto = fs == 4 ? 1 : 58;
	else if (!strcmp(proto, "icmpv6")) {
		if (fs != 6)
			return bad("--proto icmpv6 needs IPv6 addresses (use icmp)");
		r.k.proto = 58;
	} else
		return bad("unknown --proto: '%s' (expected tcp, udp, icmp or any)", proto);
	if (sp && !dp)
		return bad("--sport needs --dport as well: %s", rule_shapes);
	if ((sp || dp) && strcmp(proto, "tcp") && strcmp(proto, "udp"))
		return bad("ports need --proto tcp or udp (not %s): %s", proto,
			   rule_shapes);
	act = action_num(action);
	if (act < 0)
		return bad("invalid --action: '%s' (expected allow, deny or log)", action);
	r.k.sport = (__u16)sp;
	r.k.dport = (__u16)dp;
	r.k.set = set;
	r.v.action = (__u8)act;
	r.line = (size_t)lineno;
	rules = grow(rules, &caprules, nrules, sizeof(*rules));
	rules[nrules++] = r;
}

/* lib/sh/mseg-layout.sh mseg_cidr_parse's checks, same messages. */
static void parse_prefix(const char *text, struct cidr *c)
{
	char addr[256], buf[INET6_ADDRSTRLEN];
	const char *slash = strchr(text, '/'), *len;
	__u8 a[16], m[16];
	int fam, max;
	unsigned long long n;

	if (!*text)
		return bad("invalid CIDR: empty (expected ADDRESS/LENGTH, e.g. 10.0.0.0/8)");
	if (!slash)
		return bad("invalid CIDR '%s': missing /LENGTH (e.g. 10.0.0.0/8 or 2001:db8::/32)",
			   text);
	snprintf(addr, sizeof(addr), "%.*s", (int)(slash - text), text);
	len = slash + 1;
	if (!addr_parse(addr, a, &fam))
		return bad("invalid CIDR '%s': '%s' is not an IPv4 or IPv6 address",
			   text, addr);
	fam = strchr(addr, ':') ? 6 : 4;
	max = fam == 6 ? 128 : 32;
	{
		const char *p = len + (*len == '+' || *len == '-');
		bool digits = *p;

		for (; *p; p++)
			if (!isdigit((unsigned char)*p))
				digits = false;
		if (!digits)
			return bad("invalid CIDR '%s': prefix length '%s' is not a number",
				   text, len);
	}
	if (*len == '+' || *len == '-' || (len[0] == '0' && len[1]))
		return bad("invalid CIDR '%s': write the prefix length '%s' without sign or leading zeros",
			   text, len);
	if (!is_uint(len, (unsigned)max, &n))
		return bad("invalid CIDR '%s': an IPv%d prefix length is 0..%d",
			   text, fam, max);
	memcpy(m, a, 16);
	if (fam == 6 && a[10] == 0xff && a[11] == 0xff &&
	    !memcmp(a, (__u8[10]){ 0 }, 10) && n >= 96) {
		mask_bits(m, (int)n);
		return bad("%s is an IPv4-mapped prefix, which only IPv6 packets could match: write it as %s/%llu",
			   text, addr_text(m, 4, buf), n - 96);
	}
	mask_bits(m, fam == 4 ? 96 + (int)n : (int)n);
	if (memcmp(m, a, 16))
		return bad("%s has host bits set: did you mean %s/%llu?", text,
			   addr_text(m, fam, buf), n);
	memset(&c->k, 0, sizeof(c->k));
	c->k.prefixlen = (__u32)n + (fam == 4 ? MSEG_CIDR_V4_BASE_BITS :
						MSEG_CIDR_HDR_BITS);
	c->k.family = (__u8)fam;
	memcpy(c->k.addr, m, 16);
}

/* mseg-cidr add's checks; appends the prefix. */
static void parse_cidr(int argc, char **argv, __u8 set)
{
	static const char *const known[] = { "--action", "--priority", "--cidr",
					      NULL };
	struct opts o = { argc, argv, 0 };
	const char *cidr = NULL, *action = "", *priority = "", *opt, *val;
	char optbuf[64];
	unsigned long long prio = CIDR_DEFAULT_PRIORITY;
	struct cidr c = {};
	int act;

	while (next_opt(&o, "add", "mseg-cidr", known, true, &opt, &val, optbuf,
			sizeof(optbuf))) {
		if (!*opt || !strcmp(opt, "--cidr")) {
			if (cidr)
				return bad("add: one CIDR at a time (got '%s' and '%s')",
					   cidr, val);
			cidr = val;
		} else if (!strcmp(opt, "--action"))
			action = val;
		else
			priority = val;
	}
	if (failed)
		return;
	if (!cidr)
		return bad("add: missing CIDR (e.g. 10.0.0.0/8 or 2001:db8::/32)");
	if (!*action)
		return bad("add: missing --action (allow, deny or log)");
	parse_prefix(cidr, &c);
	if (failed)
		return;
	act = action_num(action);
	if (act < 0)
		return bad("invalid --action: '%s' (expected allow, deny or log)", action);
	if (*priority && !is_uint(priority, 4294967295ULL, &prio))
		return bad("invalid --priority: '%s' (expected an integer 0..4294967295)",
			   priority);
	c.k.set = set;
	c.v.action = (__u8)act;
	c.v.priority = (__u32)prio;
	c.prio_given = *priority;
	c.line = (size_t)lineno;
	cidrs = grow(cidrs, &capcidrs, ncidrs, sizeof(*cidrs));
	cidrs[ncidrs++] = c;
}

static int cmp_rule_line(const void *a, const void *b)
{
	const struct rule *x = a, *y = b;
	int c = memcmp(&x->k, &y->k, sizeof(x->k));

	return c ? c : (x->line > y->line) - (x->line < y->line);
}

static int cmp_cidr_line(const void *a, const void *b)
{
	const struct cidr *x = a, *y = b;
	int c = memcmp(&x->k, &y->k, sizeof(x->k));

	return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* A later line for the same rule or prefix replaces an earlier one. */
static void dedupe(void)
{
	size_t i, n;

	qsort(rules, nrules, sizeof(*rules), cmp_rule_line);
	for (i = n = 0; i < nrules; i++) {
		if (i + 1 < nrules && !memcmp(&rules[i].k, &rules[i + 1].k, sizeof(rules[i].k)))
			continue;
		rules[n++] = rules[i];
	}
	nrules = n;
	qsort(cidrs, ncidrs, sizeof(*cidrs), cmp_cidr_line);
	for (i = n = 0; i < ncidrs; i++) {
		if (i + 1 < ncidrs && !memcmp(&cidrs[i].k, &cidrs[i + 1].k, sizeof(cidrs[i].k)))
			continue;
		cidrs[n++] = cidrs[i];
	}
	ncidrs = n;
}

enum mode { M_RULESET, M_RULES, M_CIDRS };

/* Parse FILE ("-" = stdin); false after printing the first bad line. */
static bool parse_file(const char *path, enum mode mode, __u8 set)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
	char *line = NULL, *argv[64];
	size_t cap = 0;
	ssize_t len;
	bool have_default = false;

	if (!f) {
		fprintf(stderr, "mseg: cannot read %s: %s\n", path, strerror(errno));
		exit(1);
	}
	while ((len = getline(&line, &cap, f)) >= 0) {
		char *p, *hash, *tok, *save = NULL;
		int argc = 0;

		lineno++;
		if (memchr(line, 0, (size_t)len)) {
			bad("a NUL byte");
			goto out;
		}
		hash = strchr(line, '#');
		if (hash)
			*hash = 0;
		for (p = line; (tok = strtok_r(p, " \t\r\n\v\f", &save)); p = NULL) {
			if (argc == 64) {
				bad("too many words");
				goto out;
			}
			argv[argc++] = tok;
		}
		if (!argc)
			continue;
		if (mode == M_RULES) {
			parse_rule(argc, argv, set);
		} else if (mode == M_CIDRS) {
			parse_cidr(argc, argv, set);
		} else if (!strcmp(argv[0], "rule")) {
			parse_rule(argc - 1, argv + 1, set);
		} else if (!strcmp(argv[0], "cidr")) {
			parse_cidr(argc - 1, argv + 1, set);
		} else if (!strcmp(argv[0], "default")) {
			if (argc != 2 || (strcmp(argv[1], "allow") && strcmp(argv[1], "deny")))
				bad("expected 'default allow' or 'default deny'");
			else if (have_default)
				bad("a second 'default' line");
			else
				default_action = !strcmp(argv[1], "deny");
			have_default = true;
		} else {
			bad("unknown statement '%s' (expected default, rule or cidr)",
			    argv[0]);
		}
		if (failed)
			goto out;
	}
out:
	free(line);
	if (f != stdin)
		fclose(f);
	if (failed) {
		fprintf(stderr, "mseg: line %ld: %s\n", lineno, errbuf);
		return false;
	}
	dedupe();
	return true;
}

static int policy_fd, cidr_fd;

static void open_maps(void)
{
	policy_fd = mseg_open_map("mseg_policy", sizeof(struct mseg_rule_key),
				  sizeof(struct mseg_rule_val), NULL);
	cidr_fd = mseg_open_map("mseg_cidr", sizeof(struct mseg_cidr_key),
				sizeof(struct mseg_cidr_val), NULL);
	if (policy_fd < 0 || cidr_fd < 0)
		exit(1);
}

/* Collect every key of FD (key size KSZ) whose set byte (at SET_OFF) is SET. */
static void *keys_of_set(int fd, size_t ksz, size_t set_off, __u8 set, size_t *n)
{
	size_t cap = 0, cnt = 0;
	char *keys = NULL, cur[64], next[64];
	void *prev = NULL;

	while (!bpf_map_get_next_key(fd, prev, next)) {
		if ((__u8)next[set_off] == set) {
			keys = grow(keys, &cap, cnt, ksz);
			memcpy(keys + cnt * ksz, next, ksz);
			cnt++;
		}
		memcpy(cur, next, ksz);
		prev = cur;
	}
	*n = cnt;
	return keys;
}

/* Delete every entry of rule set SET from both maps. */
static int clear_set(__u8 set)
{
	size_t n, i;
	struct mseg_rule_key *rk;
	struct mseg_cidr_key *ck;
	int err = 0;

	rk = keys_of_set(policy_fd, sizeof(*rk), offsetof(struct mseg_rule_key, set),
			 set, &n);
	for (i = 0; i < n; i++)
		if (bpf_map_delete_elem(policy_fd, &rk[i]) && errno != ENOENT)
			err = -errno;
	free(rk);
	ck = keys_of_set(cidr_fd, sizeof(*ck), offsetof(struct mseg_cidr_key, set),
			 set, &n);
	for (i = 0; i < n; i++)
		if (bpf_map_delete_elem(cidr_fd, &ck[i]) && errno != ENOENT)
			err = -errno;
	free(ck);
	if (err)
		fprintf(stderr, "mseg: emptying rule set %u: %s\n", set, strerror(-err));
	return err;
}

/*
 * Write the parsed rules and prefixes. load (KEEP false) writes into an
 * emptied set and undoes a partial write; add-rules/add-cidrs (KEEP true)
 * add to the live set as `mseg-rule add` and `mseg-cidr add` do: an
 * existing entry keeps its hit count (and a prefix its priority unless
 * the line gives one).
 */
static int write_all(__u8 set, bool keep)
{
	const char *what = "mseg_policy";
	size_t i, done = 0;
	int err = 0;

	if (nrules) {
		struct mseg_rule_key *k = calloc(nrules, sizeof(*k));
		struct mseg_rule_val *v = calloc(nrules, sizeof(*v));
		struct mseg_rule_val cur;
		__u32 count;

		if (!k || !v) {
			fprintf(stderr, "mseg: out of memory\n");
			exit(1);
		}
		for (i = 0; i < nrules; i++) {
			k[i] = rules[i].k;
			v[i] = rules[i].v;
			if (keep && !bpf_map_lookup_elem(policy_fd, &k[i], &cur))
				v[i].hits = cur.hits;
		}
		/* The kernel may take fewer than asked for: go on from there. */
		while (done < nrules && !err) {
			count = (__u32)(nrules - done);
			if (bpf_map_update_batch(policy_fd, k + done, v + done,
						 &count, NULL))
				err = -errno;
			done += count;
		}
		free(k);
		free(v);
	}
	if (!err) {
		what = "mseg_cidr";
		for (i = 0; i < ncidrs && !err; i++) {
			struct cidr *c = &cidrs[i];
			struct mseg_cidr_val cur;

			if (!bpf_map_update_elem(cidr_fd, &c->k, &c->v, BPF_NOEXIST))
				continue;
			if (errno != EEXIST) {
				err = -errno;
				break;
			}
			/* This very prefix exists: the longest match is itself. */
			if (keep && !bpf_map_lookup_elem(cidr_fd, &c->k, &cur)) {
				c->v.hits = cur.hits;
				if (!c->prio_given)
					c->v.priority = cur.priority;
			}
			if (bpf_map_update_elem(cidr_fd, &c->k, &c->v, BPF_EXIST))
				err = -errno;
		}
	}
	if (err) {
		fprintf(stderr, "mseg: writing %s failed: %s%s\n", what,
			strerror(-err),
			err == -E2BIG || err == -ENOSPC || err == -ENOMEM ?
				" (the map is full: the old and the new rule set must fit together)" :
				"");
		if (!keep)
			clear_set(set);
		return 1;
	}
	return 0;
}

static int cmp_rule(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct mseg_rule_key));
}

/* Family, then address, then length: mseg-cidr list's order. */
static int cmp_cidr(const void *a, const void *b)
{
	const struct mseg_cidr_key *x = a, *y = b;
	int c = x->family - y->family;

	if (!c)
		c = memcmp(x->addr, y->addr, 16);
	if (!c)
		c = (x->prefixlen > y->prefixlen) - (x->prefixlen < y->prefixlen);
	return c;
}

static const char *proto_name(__u8 proto, char *buf)
{
	switch (proto) {
	case 6:
		return "tcp";
	case 17:
		return "udp";
	case 1:
	case 58:
		return "icmp";
	}
	snprintf(buf, 8, "%u", proto);
	return buf;
}

static int save(__u8 set)
{
	int cfg_fd = mseg_open_map("mseg_config", sizeof(__u32),
				   sizeof(struct mseg_config), NULL);
	struct mseg_config cfg;
	struct mseg_rule_key *rk;
	struct mseg_cidr_key *ck;
	size_t n, i;
	char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN], pb[8];

	if (cfg_fd < 0 || mseg_read_config(cfg_fd, &cfg))
		return 1;
	printf("default %s\n", cfg.default_action == MSEG_ACT_DENY ? "deny" : "allow");
	rk = keys_of_set(policy_fd, sizeof(*rk), offsetof(struct mseg_rule_key, set),
			 set, &n);
	qsort(rk, n, sizeof(*rk), cmp_rule);
	for (i = 0; i < n; i++) {
		struct mseg_rule_val v;
		int f;

		if (bpf_map_lookup_elem(policy_fd, &rk[i], &v))
			continue; /* deleted meanwhile */
		f = rk[i].src[10] == 0xff && rk[i].src[11] == 0xff &&
				    !memcmp(rk[i].src, (__u8[10]){ 0 }, 10) ?
			    4 :
			    6;
		printf("rule --src %s --dst %s", addr_text(rk[i].src, f, a),
		       addr_text(rk[i].dst, f, b));
		if (rk[i].proto)
			printf(" --proto %s", proto_name(rk[i].proto, pb));
		if (rk[i].sport)
			printf(" --sport %u", rk[i].sport);
		if (rk[i].dport)
			printf(" --dport %u", rk[i].dport);
		printf(" --action %s\n",
		       v.action < MSEG_ACT_MAX ? action_names[v.action] : "?");
	}
	free(rk);
	ck = keys_of_set(cidr_fd, sizeof(*ck), offsetof(struct mseg_cidr_key, set),
			 set, &n);
	qsort(ck, n, sizeof(*ck), cmp_cidr);
	for (i = 0; i < n; i++) {
		struct mseg_cidr_val v;
		__u32 base = ck[i].family == 4 ? MSEG_CIDR_V4_BASE_BITS :
						 MSEG_CIDR_HDR_BITS;

		if (bpf_map_lookup_elem(cidr_fd, &ck[i], &v))
			continue;
		printf("cidr %s/%u --action %s", addr_text(ck[i].addr, ck[i].family, a),
		       ck[i].prefixlen - base,
		       v.action < MSEG_ACT_MAX ? action_names[v.action] : "?");
		if (v.priority != CIDR_DEFAULT_PRIORITY)
			printf(" --priority %u", v.priority);
		printf("\n");
	}
	free(ck);
	return fflush(stdout) ? 1 : 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mseg-ruleset check FILE\n"
		"       mseg-ruleset load SET FILE\n"
		"       mseg-ruleset clear SET\n"
		"       mseg-ruleset save SET\n"
		"       mseg-ruleset add-rules SET FILE | add-cidrs SET FILE\n"
		"FILE '-' is stdin. The callers (mseg apply, mseg save, mseg-rule and\n"
		"mseg-cidr --batch) hold the edit lock and switch mseg_config.\n");
}

static __u8 set_arg(const char *s)
{
	if (strcmp(s, "0") && strcmp(s, "1")) {
		fprintf(stderr, "mseg: rule set must be 0 or 1, not '%s'\n", s);
		exit(2);
	}
	return (__u8)(*s - '0');
}

static void summary(void)
{
	printf("default %s rules %zu cidrs %zu\n", action_names[default_action],
	       nrules, ncidrs);
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";
	__u8 set;

	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "check") && argc == 3) {
		if (!parse_file(argv[2], M_RULESET, 0))
			return 2;
		summary();
		return 0;
	}
	if (!strcmp(cmd, "clear") && argc == 3) {
		set = set_arg(argv[2]);
		open_maps();
		return clear_set(set) ? 1 : 0;
	}
	if (!strcmp(cmd, "save") && argc == 3) {
		set = set_arg(argv[2]);
		open_maps();
		return save(set);
	}
	if (!strcmp(cmd, "load") && argc == 4) {
		set = set_arg(argv[2]);
		if (!parse_file(argv[3], M_RULESET, set))
			return 2;
		open_maps();
		if (clear_set(set) || write_all(set, false))
			return 1;
		summary();
		return 0;
	}
	if ((!strcmp(cmd, "add-rules") || !strcmp(cmd, "add-cidrs")) && argc == 4) {
		set = set_arg(argv[2]);
		if (!parse_file(argv[3], cmd[4] == 'r' ? M_RULES : M_CIDRS, set))
			return 2;
		open_maps();
		/* Adding to the live set: what was written stays, like one
		 * `mseg-rule add` after another. */
		if (write_all(set, true))
			return 1;
		summary();
		return 0;
	}
	usage(stderr);
	return 2;
}
