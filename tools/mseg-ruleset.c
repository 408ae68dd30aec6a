// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * mseg-ruleset: the policy's one parser, compiler and encoder, for every
 * operator command (docs/policy.md). The callers hold the edit lock.
 *
 *   check [--stats] [--allow-empty] [--lines] [--copy OUT] FILE
 *                               validate a ruleset file, write nothing but
 *                               its copy (the whole input, once valid)
 *   apply [--allow-empty] SET ACTIVE FILE
 *                               validate FILE, write it compiled into SET
 *                               (ids kept from the policy of set ACTIVE),
 *                               switch mseg_config to SET, then make
 *                               ACTIVE hold the same
 *   copy FILE OUT               FILE read whole (bounded, as check does) into OUT
 *   clear SET                   empty rule set SET
 *   save SET                    print set SET's statements
 *   edit SET NEW WRITE SYNC [--file FILE --prefix WORDS | STATEMENT...]
 *                               apply statements to set SET's policy and
 *                               write `bpftool batch` scripts: WRITE puts
 *                               the result into NEW, SYNC (run after the
 *                               caller's switch) into SET. Each holds only
 *                               what differs from what its set holds.
 *                               Exit 3: nothing changed (no scripts).
 *   list SET rules|cidrs|segments|failsafes [--json] [--all]
 *                               (rules --all: the failsafes too, after
 *                               the rules, each object with "failsafe")
 *   status SET                  one JSON object: rule and cidr counts,
 *                               the failsafe mode and list
 *   show SET SEGMENT
 *   explain SET [--json] --src A --dst B [--proto P] [--sport N] [--dport N]
 *   explain SET --batch FILE    one flow a line: "verdict rule_id" each
 *   diff SET FILE               what applying FILE would change
 *
 * Bad input: "mseg: ..." (with the line for files), exit 2, nothing written.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>

#include <bpf/bpf.h>

#include "libmseg-rules/maps.h"
#include "libmseg-rules/rules.h"
#include "mseg_pinned.h"

static struct mr_maps maps;

static void open_maps(void)
{
	if (mr_open_maps(&maps))
		exit(1);
}

static __u8 set_arg(const char *s)
{
	if (strcmp(s, "0") && strcmp(s, "1")) {
		fprintf(stderr, "mseg: rule set must be 0 or 1, not '%s'\n", s);
		exit(2);
	}
	return (__u8)(*s - '0');
}

static void fail(void)
{
	fprintf(stderr, "mseg: %s\n", mr_error());
	/* a well-formed request for something absent is not a usage error */
	exit(strncmp(mr_error(), "no such", 7) ? 2 : 1);
}

static size_t count(const struct mr_policy *p, int kind)
{
	size_t n = 0;

	for (size_t i = 0; i < p->nr; i++)
		n += p->r[i].kind == kind;
	return n;
}

/* check's line, as the first ruleset tool printed it; --stats adds the compiled sizes */
static void check_summary(const struct mr_policy *p, const struct mr_compiled *c, bool stats)
{
	printf("default %s rules %zu cidrs %zu\n", mr_action_names[p->def], count(p, MR_RULE),
	       count(p, MR_CIDR));
	if (stats)
		printf("segments %zu identities %zu entries %zu expansion %zu\n", p->ns, c->nid,
		       c->nre, c->expansion);
}

static void summary(const struct mr_policy *p, const struct mr_compiled *c)
{
	printf("default %s rules %zu cidrs %zu segments %zu identities %zu entries %zu expansion %zu\n",
	       mr_action_names[p->def], count(p, MR_RULE), count(p, MR_CIDR), p->ns,
	       c->nid, c->nre, c->expansion);
}

/* Parse, check, number and compile (for set 0: the writer sets the set); exits 2 on bad input. */
static void build(struct mr_policy *p, const struct mr_policy *old, struct mr_compiled *c,
		  struct mr_target *t)
{
	mr_assign_ids(p, old);
	if (mr_failed() || !mr_policy_check(p) || !mr_compile(p, 0, c) || !mr_target_lines(p, t))
		fail();
	t->c = c;
	/* every map holds both sets: each fits in half, checked before any write */
	if (t->n + 1 > MSEG_MAX_SOURCE / 2)
		mr_err("the policy has %zu statements; at most %d fit beside the ruleset in force",
		       t->n, MSEG_MAX_SOURCE / 2 - 1);
	else if (c->nid > MSEG_MAX_IDENTS / 2)
		mr_err("the policy has %zu identities; at most %d fit beside the ruleset in force",
		       c->nid, MSEG_MAX_IDENTS / 2);
	else if (c->nre > MSEG_MAX_RULE_ENTRIES / 2)
		mr_err("the policy compiles to %zu rule entries; at most %d fit beside the ruleset in force",
		       c->nre, MSEG_MAX_RULE_ENTRIES / 2);
	if (mr_failed())
		fail();
}

/*
 * An input with no `default` line and no rule is most likely a failed
 * read or an empty pipe (`mseg save | mseg apply -` once wiped a policy
 * so): applying it would put default allow in force.
 */
static void refuse_empty(const struct mr_policy *p, bool allow_empty)
{
	if (allow_empty || p->stated_default || count(p, MR_RULE) || count(p, MR_CIDR))
		return;
	mr_err("the input has no 'default' line and no rule: refusing to apply an empty policy "
	       "(--allow-empty applies it)");
	fail();
}

/* The default lives in mseg_config: `mseg default` writes it there. */
static void config_default(struct mr_policy *p)
{
	struct mseg_config cfg;
	__u32 zero = 0;

	if (!bpf_map_lookup_elem(maps.config, &zero, &cfg))
		p->def = cfg.default_action == MSEG_ACT_DENY ? MSEG_ACT_DENY : MSEG_ACT_ALLOW;
}

/* mseg_config.mode (MSEG_MODE_*); 0 when it cannot be read. */
static __u8 config_mode(void)
{
	struct mseg_config cfg;
	__u32 zero = 0;

	return bpf_map_lookup_elem(maps.config, &zero, &cfg) ? 0 : cfg.mode;
}

/* mseg_policy_decide()'s last step: in audit mode a deny is a would-deny. */
static void audit_mode(struct mr_decision *d, __u8 mode)
{
	if (d->action == MSEG_ACT_DENY && (mode & MSEG_MODE_AUDIT))
		d->action = MSEG_ACT_AUDIT;
}

/*
 * What the compiled maps of each set hold, where its seal says so: the
 * compiled form of its statements (old's, when it holds the policy in
 * force). NULL where unknown: that set is written whole.
 */
struct bases {
	struct mr_compiled own[2];
	const struct mr_compiled *of[2];
};

static void find_bases(const struct mr_set s[2], __u8 active, const struct mr_policy *old,
		       struct bases *b)
{
	memset(b, 0, sizeof(*b));
	for (int i = 0; i < 2; i++) {
		struct mr_policy q;
		bool ok;

		if (!s[i].sealed)
			continue;
		if (i != active && s[active].sealed &&
		    mr_same_lines(s[i].l, s[i].n, s[active].l, s[active].n)) {
			b->of[i] = &b->own[active];
			continue;
		}
		if (i == active) {
			ok = mr_compile(old, 0, &b->own[i]);
		} else {
			ok = mr_set_policy(&s[i], &q) && mr_compile(&q, 0, &b->own[i]);
			mr_policy_free(&q);
		}
		/* a set whose statements no longer compile is rewritten whole */
		if (!ok)
			mr_err_reset();
		else
			b->of[i] = &b->own[i];
	}
	/* an inactive set that copies the active one: the active one's, if known */
	for (int i = 0; i < 2; i++)
		if (b->of[i] == &b->own[active] && !b->of[active])
			b->of[i] = NULL;
}

static int write_error(const struct mr_writer *w, const char *what)
{
	fprintf(stderr, "mseg: %s: writing %s failed: %s%s\n", what, w->what, strerror(-w->err),
		w->err == -E2BIG || w->err == -ENOSPC || w->err == -ENOMEM ?
			" (the map is full: the old and the new rule set must fit together)" :
			"");
	return 1;
}

/*
 * The spare set holds a staged policy (docs/policy.md, staged): a change
 * of the policy in force would write over it.
 */
static void refuse_staged(void)
{
	if (!(config_mode() & MSEG_MODE_STAGED))
		return;
	fprintf(stderr, "mseg: a staged policy is loaded in the spare rule set: 'mseg apply "
			"--promote' puts it in force, 'mseg staged drop' discards it; then change "
			"the policy\n");
	exit(1);
}

/*
 * apply NEW ACTIVE FILE: FILE's policy (apply_policy: a parsed one; promote:
 * the staged one) into set NEW (only what differs
 * from what NEW holds), then one mseg_config write switches to it with
 * its default and a policy_gen bump, then set ACTIVE is brought up to date
 * the same way and policy_gen is bumped again: a packet that raced the
 * switch and cached a verdict of the old set is judged again. A staged
 * policy's mode bits go with the switch.
 */
static int apply_policy(__u8 set, __u8 active, struct mr_policy *given)
{
	struct mr_policy old, p = *given;
	struct mr_compiled c;
	struct mr_target t;
	struct mr_set s[2];
	struct bases b;
	struct mr_writer w = { .m = &maps }, w2 = { .m = &maps };
	struct mseg_config cfg;
	__u32 zero = 0;

	if (set == active || !mr_read_sets(&maps, s) || !mr_set_policy(&s[active], &old))
		return 1;
	build(&p, &old, &c, &t);
	find_bases(s, active, &old, &b);
	if (mr_sync_set(&w, set, &s[set], b.of[set], &t)) {
		write_error(&w, "the new rule set");
		mr_clear_set(&maps, set);
		return 1;
	}
	mr_zero_new_ids(&w, &p, &old);
	if (mseg_read_config(maps.config, &cfg))
		return 1;
	cfg.active_set = set;
	cfg.default_action = (__u8)p.def;
	cfg.mode &= (__u8)~MSEG_MODE_STAGED_BITS;
	cfg.policy_gen++;
	if (bpf_map_update_elem(maps.config, &zero, &cfg, BPF_ANY)) {
		fprintf(stderr, "mseg: switching to the new rule set failed: %s\n", strerror(errno));
		return 1;
	}
	mr_sync_set(&w2, active, &s[active], b.of[active], &t);
	if (!mseg_read_config(maps.config, &cfg)) {
		cfg.policy_gen++;
		bpf_map_update_elem(maps.config, &zero, &cfg, BPF_ANY);
	}
	if (w2.err) {
		write_error(&w2, "switched to the new rule set, but bringing the old one up to date");
		fprintf(stderr, "mseg: the next change rewrites it\n");
		return 1;
	}
	summary(&p, &c);
	return 0;
}

static int cmd_apply(__u8 set, __u8 active, const char *file, bool allow_empty)
{
	struct mr_policy p;

	mr_policy_init(&p);
	if (!mr_parse_file(&p, file, NULL))
		return 2;
	refuse_empty(&p, allow_empty);
	open_maps();
	refuse_staged();
	return apply_policy(set, active, &p);
}

/* Does a rule of p name a source port? (the data path then judges every new flow again) */
static bool names_sport(const struct mr_policy *p)
{
	for (size_t i = 0; i < p->nr; i++)
		if (p->r[i].sport)
			return true;
	return false;
}

/* The staged policy's statements (set NEW) and default (mseg_config.mode). */
static bool staged_policy(const struct mr_set s[2], __u8 new, __u8 mode, struct mr_policy *p)
{
	if (!mr_set_policy(&s[new], p))
		return false;
	p->def = (mode & MSEG_MODE_STAGED_DENY) ? MSEG_ACT_DENY : MSEG_ACT_ALLOW;
	return true;
}

/* Write mode bits (set, then cleared) and, with bump, a new staged_gen. */
static int write_mode(__u8 set_bits, __u8 clear_bits, bool bump)
{
	struct mseg_config cfg;
	__u32 zero = 0;

	if (mseg_read_config(maps.config, &cfg))
		return 1;
	cfg.mode = (__u8)((cfg.mode | set_bits) & ~clear_bits);
	if (bump && !++cfg.staged_gen)
		cfg.staged_gen = 1; /* 0 is "never staged" */
	if (bpf_map_update_elem(maps.config, &zero, &cfg, BPF_ANY)) {
		fprintf(stderr, "mseg: writing mseg_config failed: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}

/*
 * stage NEW ACTIVE FILE: FILE's policy into the spare set NEW beside the
 * policy in force, judged beside it for every new flow (docs/policy.md,
 * staged) and never enforced. The data path stops reading NEW (the mode
 * bit goes) before it is rewritten, and starts again with a new
 * staged_gen once it holds the whole policy. Rule ids follow the policy in
 * force, as an apply would number them.
 */
static int cmd_stage(__u8 new, __u8 active, const char *file)
{
	struct mr_policy p, old;
	struct mr_compiled c;
	struct mr_target t;
	struct mr_set s[2];
	struct bases b;
	struct mr_writer w = { .m = &maps };

	mr_policy_init(&p);
	if (!mr_parse_file(&p, file, NULL))
		return 2;
	refuse_empty(&p, false);
	open_maps();
	if (new == active || !mr_read_sets(&maps, s) || !mr_set_policy(&s[active], &old))
		return 1;
	build(&p, &old, &c, &t);
	if (p.ncfg)
		fprintf(stderr, "mseg: note: %zu config line%s not staged: settings are not part of "
				"a staged policy ('mseg config set' changes them)\n",
			p.ncfg, p.ncfg == 1 ? " is" : "s are");
	if (write_mode(0, MSEG_MODE_STAGED_BITS, false))
		return 1;
	find_bases(s, active, &old, &b);
	if (mr_sync_set(&w, new, &s[new], b.of[new], &t)) {
		write_error(&w, "the staged rule set");
		mr_clear_set(&maps, new);
		return 1;
	}
	mr_zero_new_ids(&w, &p, &old);
	if (write_mode(MSEG_MODE_STAGED |
			       (p.def == MSEG_ACT_DENY ? MSEG_MODE_STAGED_DENY : 0) |
			       (names_sport(&p) ? MSEG_MODE_STAGED_SPORT : 0),
		       0, true))
		return 1;
	summary(&p, &c);
	return 0;
}

/* promote NEW ACTIVE: the staged policy in set NEW goes in force, as by apply. */
static int cmd_promote(__u8 new, __u8 active)
{
	__u8 mode;
	struct mr_set s[2];
	struct mr_policy p;

	open_maps();
	mode = config_mode();
	if (!(mode & MSEG_MODE_STAGED)) {
		fprintf(stderr, "mseg: no staged policy to promote ('mseg apply --staged FILE' loads one)\n");
		return 1;
	}
	if (!mr_read_sets(&maps, s) || !s[new].sealed || !staged_policy(s, new, mode, &p)) {
		fprintf(stderr, "mseg: the staged rule set is not whole: stage it again\n");
		return 1;
	}
	return apply_policy(new, active, &p);
}

/*
 * unstage NEW ACTIVE: the data path stops judging by set NEW, which is
 * then brought back to the policy in force (its copy between commands).
 */
static int cmd_unstage(__u8 new, __u8 active)
{
	struct mr_policy old, cur;
	struct mr_compiled c;
	struct mr_target t;
	struct mr_set s[2];
	struct bases b;
	struct mr_writer w = { .m = &maps };

	open_maps();
	if (!(config_mode() & MSEG_MODE_STAGED)) {
		printf("no staged policy\n");
		return 3;
	}
	if (new == active || !mr_read_sets(&maps, s) || !mr_set_policy(&s[active], &old) ||
	    !mr_set_policy(&s[active], &cur))
		return 1;
	config_default(&cur);
	build(&cur, &old, &c, &t);
	if (write_mode(0, MSEG_MODE_STAGED_BITS, false))
		return 1;
	find_bases(s, active, &old, &b);
	if (mr_sync_set(&w, new, &s[new], b.of[new], &t)) {
		write_error(&w, "the spare rule set");
		fprintf(stderr, "mseg: the staged policy is dropped; the next change rewrites the spare set\n");
		return 1;
	}
	printf("staged policy dropped\n");
	return 0;
}

/*
 * edit SET NEW WRITE SYNC STATEMENT...: the scripts the bash commands run
 * with `bpftool batch`: WRITE makes set NEW hold the edited policy, SYNC
 * (run after the switch) does the same to set SET. Each writes only what
 * differs from what its set holds.
 */
static int cmd_edit(int argc, char **argv)
{
	__u8 set = set_arg(argv[0]), new = set_arg(argv[1]);
	struct mr_policy p, old;
	struct mr_compiled c;
	struct mr_target t, to;
	struct mr_set s[2];
	struct bases b;
	char msg[2048] = "";
	FILE *wf, *sf;
	struct mr_writer w = { .m = &maps }, w2 = { .m = &maps };

	open_maps();
	refuse_staged();
	if (set == new || !mr_read_sets(&maps, s) || !mr_set_policy(&s[set], &old) ||
	    !mr_set_policy(&s[set], &p))
		return 1;
	config_default(&old);
	config_default(&p);
	argc -= 4;
	argv += 4;
	if (argc >= 4 && !strcmp(argv[0], "--file") && !strcmp(argv[2], "--prefix")) {
		if (!mr_parse_file(&p, argv[1], argv[3]))
			return 2;
		snprintf(msg, sizeof(msg), "%s added or updated: %zu",
			 !strncmp(argv[3], "cidr", 4) ? "cidr rules" : "rules", mr_file_statements);
	} else {
		mr_statement(&p, argc, argv, 0, msg, sizeof(msg));
		if (mr_failed())
			fail();
	}
	build(&p, &old, &c, &t);
	/* unchanged: the statements say the same */
	if (p.def == old.def && mr_target_lines(&old, &to) && mr_same_lines(t.l, t.n, to.l, to.n)) {
		printf("%s\n", msg[0] ? msg : "unchanged");
		return 3;
	}
	find_bases(s, set, &old, &b);
	wf = fopen(argv[-2], "w");
	sf = fopen(argv[-1], "w");
	if (!wf || !sf) {
		fprintf(stderr, "mseg: cannot write the batch scripts: %s\n", strerror(errno));
		return 1;
	}
	w.f = wf;
	w2.f = sf;
	mr_sync_set(&w, new, &s[new], b.of[new], &t);
	mr_zero_new_ids(&w, &p, &old);
	mr_sync_set(&w2, set, &s[set], b.of[set], &t);
	if (fclose(wf) || fclose(sf) || w.err || w2.err) {
		fprintf(stderr, "mseg: cannot write the batch scripts: %s\n", strerror(errno));
		return 1;
	}
	printf("%s\n", msg[0] ? msg : "changed");
	printf("default %s\n", mr_action_names[p.def]);
	return 0;
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

static int cmp_cidr(const void *a, const void *b)
{
	const struct mr_rule *x = a, *y = b;
	int c = x->dst.p.family - y->dst.p.family;

	if (!c)
		c = memcmp(x->dst.p.addr, y->dst.p.addr, 16);
	if (!c)
		c = x->dst.p.len - y->dst.p.len;
	return c;
}

static int cmp_id(const void *a, const void *b)
{
	const struct mr_rule *x = a, *y = b;

	return (x->id > y->id) - (x->id < y->id);
}

static void table(char **cells, int cols, size_t rows)
{
	size_t w[16] = { 0 };

	for (size_t r = 0; r < rows; r++)
		for (int c = 0; c < cols; c++)
			if (strlen(cells[r * cols + c]) > w[c])
				w[c] = strlen(cells[r * cols + c]);
	for (size_t r = 0; r < rows; r++) {
		char line[4096];
		size_t o = 0;

		for (int c = 0; c < cols; c++)
			o += (size_t)snprintf(line + o, sizeof(line) - o, "%-*s%s", (int)w[c],
					      cells[r * cols + c], c + 1 < cols ? "  " : "");
		while (o && line[o - 1] == ' ')
			line[--o] = 0;
		puts(line);
	}
}

static int cmd_list(__u8 set, const char *what, bool json, bool all)
{
	struct mr_policy p;
	char **cells = NULL;
	size_t rows = 0, cap = 0;
	int cols;

	open_maps();
	if (!mr_read_policy(&maps, set, &p))
		return 1;
	if (!strcmp(what, "segments")) {
		cols = 3;
		if (json)
			putchar('[');
		for (size_t i = 0; i < p.ns; i++) {
			char buf[64], pf[8192] = "", used[1024] = "";
			size_t o = 0, u = 0;

			for (size_t k = 0; k < p.s[i].n; k++)
				o += (size_t)snprintf(pf + o, sizeof(pf) - o, json ? "%s\"%s\"" : "%s%s",
						      k ? (json ? "," : " ") : "",
						      mr_pfx_text(&p.s[i].p[k], buf));
			for (size_t r = 0; r < p.nr; r++)
				if ((p.r[r].src.kind == MR_SEL_SEG && !strcmp(p.r[r].src.name, p.s[i].name)) ||
				    (p.r[r].dst.kind == MR_SEL_SEG && !strcmp(p.r[r].dst.name, p.s[i].name)))
					u += (size_t)snprintf(used + u, sizeof(used) - u, "%s%u",
							      u ? "," : "", p.r[r].id);
			if (json) {
				printf("%s{\"name\":\"%s\",\"prefixes\":[%s],\"rules\":[%s]}",
				       i ? "," : "", p.s[i].name, pf, used);
				continue;
			}
			cells = mr_grow(cells, &cap, (rows + 2) * 3, sizeof(*cells));
			if (!rows) {
				cells[0] = strdup("SEGMENT");
				cells[1] = strdup("PREFIXES");
				cells[2] = strdup("RULES");
				rows = 1;
			}
			cells[rows * 3] = strdup(p.s[i].name);
			cells[rows * 3 + 1] = strdup(pf);
			cells[rows * 3 + 2] = strdup(used[0] ? used : "-");
			rows++;
		}
		if (json)
			puts("]");
		else
			table(cells, cols, rows);
		return 0;
	}
	{
		int kind = !strcmp(what, "cidrs") ? MR_CIDR : MR_RULE;
		const struct mr_rule *fs;
		int nfs = kind == MR_RULE && all ? mr_failsafe_rules(&p, &fs) : 0;
		struct mr_rule *r = calloc(p.nr + (size_t)nfs + 1, sizeof(*r));
		size_t n = 0;
		bool first = true;

		for (size_t i = 0; i < p.nr; i++)
			if (p.r[i].kind == kind)
				r[n++] = p.r[i];
		/* the failsafes' ids are above every rule's: they come last */
		for (int i = 0; i < nfs; i++)
			r[n++] = fs[i];
		/* rules by id; prefixes IPv4 first, by address, then length (the seed's order) */
		qsort(r, n, sizeof(*r), kind == MR_CIDR ? cmp_cidr : cmp_id);
		cols = kind == MR_CIDR ? 8 : 12;
		if (json)
			putchar('[');
		else {
			/* HITS last, as the seed's lists had it (`awk '{print $NF}'`) */
			static const char *hr[] = { "ID",	"SRC",	    "DST",     "PROTO",
						    "SPORT",	"DPORT",    "ACTION",  "PRIORITY",
						    "COMMENT",	"WOULD-DENY", "PACKETS", "HITS" };
			static const char *hc[] = { "CIDR",	 "ID",		"ACTION",  "PRIORITY",
						    "COMMENT", "WOULD-DENY", "PACKETS", "HITS" };

			cols = kind == MR_CIDR ? 8 : 12;
			cells = mr_grow(cells, &cap, (size_t)cols, sizeof(*cells));
			for (int c = 0; c < cols; c++)
				cells[c] = strdup(kind == MR_CIDR ? hc[c] : hr[c]);
			rows = 1;
		}
		for (size_t i = 0; i < n; i++) {
			char a[64], b[64], pb[8], ports[800], v[12][1024];
			__u64 packets, audited, flows = mr_hits(&maps, r[i].id, &packets, &audited);
			/* an audited deny: "deny(audit)" in the table, "audit": true in JSON */
			const char *act = r[i].audit ? "deny(audit)" : mr_action_names[r[i].action];

			if (json) {
				printf("%s{\"id\":%u,", first ? "" : ",", r[i].id);
				if (kind == MR_CIDR) {
					printf("\"cidr\":\"%s\",\"family\":%u,", mr_pfx_text(&r[i].dst.p, a),
					       r[i].dst.p.family);
				} else {
					/* a port left out is "any" (docs/json.md rule 6) */
					printf("\"src\":\"%s\",\"dst\":\"%s\",\"proto\":\"%s\",\"sport\":",
					       mr_sel_text(&r[i].src, a), mr_sel_text(&r[i].dst, b),
					       mr_rule_proto_text(&r[i], pb));
					if (r[i].sport)
						printf("%u,\"dport\":", r[i].sport);
					else
						printf("\"any\",\"dport\":");
					if (r[i].nports == 1 && r[i].ports[0].lo == r[i].ports[0].hi)
						printf("%u,", r[i].ports[0].lo);
					else if (!r[i].nports)
						printf("\"any\",");
					else
						printf("\"%s\",", mr_ports_text(&r[i], ports, sizeof(ports)));
				}
				printf("\"action\":\"%s\",\"priority\":", mr_action_names[r[i].action]);
				/* a failsafe has no priority: it is above them all */
				if (r[i].kind == MR_FAILSAFE)
					printf("null");
				else
					printf("%u", r[i].priority);
				printf(",\"audit\":%s,\"would_deny\":%llu", r[i].audit ? "true" : "false",
				       (unsigned long long)audited);
				printf(",\"hits\":%llu,\"packets\":%llu,\"comment\":",
				       (unsigned long long)flows, (unsigned long long)packets);
				json_str(r[i].comment);
				if (all)
					printf(",\"failsafe\":%s", r[i].kind == MR_FAILSAFE ? "true" : "false");
				putchar('}');
				first = false;
				continue;
			}
			snprintf(v[0], sizeof(v[0]), "%u", r[i].id);
			if (kind == MR_CIDR) {
				snprintf(v[0], sizeof(v[0]), "%s", mr_pfx_text(&r[i].dst.p, a));
				snprintf(v[1], sizeof(v[1]), "%u", r[i].id);
				snprintf(v[2], sizeof(v[2]), "%s", act);
				snprintf(v[3], sizeof(v[3]), "%u", r[i].priority);
				snprintf(v[4], sizeof(v[4]), "%s", r[i].comment[0] ? r[i].comment : "-");
				snprintf(v[5], sizeof(v[5]), "%llu", (unsigned long long)audited);
				snprintf(v[6], sizeof(v[6]), "%llu", (unsigned long long)packets);
				snprintf(v[7], sizeof(v[7]), "%llu", (unsigned long long)flows);
			} else {
				snprintf(v[1], sizeof(v[1]), "%s", mr_sel_text(&r[i].src, a));
				snprintf(v[2], sizeof(v[2]), "%s", mr_sel_text(&r[i].dst, b));
				snprintf(v[3], sizeof(v[3]), "%s", mr_rule_proto_text(&r[i], pb));
				snprintf(v[4], sizeof(v[4]), r[i].sport ? "%u" : "any", r[i].sport);
				snprintf(v[5], sizeof(v[5]), "%s",
					 r[i].nports ? mr_ports_text(&r[i], ports, sizeof(ports)) : "any");
				snprintf(v[6], sizeof(v[6]), "%s", act);
				snprintf(v[7], sizeof(v[7]), "%u", r[i].priority);
				if (r[i].kind == MR_FAILSAFE)
					snprintf(v[7], sizeof(v[7]), "failsafe");
				snprintf(v[8], sizeof(v[8]), "%s", r[i].comment[0] ? r[i].comment : "-");
				snprintf(v[9], sizeof(v[9]), "%llu", (unsigned long long)audited);
				snprintf(v[10], sizeof(v[10]), "%llu", (unsigned long long)packets);
				snprintf(v[11], sizeof(v[11]), "%llu", (unsigned long long)flows);
			}
			cells = mr_grow(cells, &cap, (rows + 1) * (size_t)cols, sizeof(*cells));
			for (int c = 0; c < cols; c++)
				cells[rows * (size_t)cols + (size_t)c] = strdup(v[c]);
			rows++;
		}
		if (json)
			puts("]");
		else
			table(cells, cols, rows);
		free(r);
	}
	return 0;
}

/* The failsafes in force with their ids and counters (docs/policy.md). */
static int cmd_failsafes(__u8 set, bool json)
{
	static const char *head[] = { "ID", "PROTO", "PORT", "SERVICE", "PACKETS", "HITS" };
	struct mr_policy p;
	const struct mr_rule *fs;
	char *cells[(MR_FAILSAFE_MAX + 1) * 6];
	int n;

	open_maps();
	if (!mr_read_policy(&maps, set, &p))
		return 1;
	n = mr_failsafe_rules(&p, &fs);
	if (!json && !n) {
		puts("failsafes: off");
		return 0;
	}
	for (int c = 0; c < 6; c++)
		cells[c] = strdup(head[c]);
	if (json)
		putchar('[');
	for (int i = 0; i < n; i++) {
		struct mr_failsafe f = { .proto = (__u8)fs[i].proto, .port = fs[i].ports[0].lo };
		const char *svc = mr_failsafe_service(&f);
		__u64 packets, audited, flows = mr_hits(&maps, fs[i].id, &packets, &audited);
		char v[6][32], pb[8];

		if (json) {
			printf("%s{\"id\":%u,\"proto\":\"%s\",\"port\":%u,\"service\":", i ? "," : "",
			       fs[i].id, mr_proto_text(fs[i].proto, pb), f.port);
			if (svc)
				printf("\"%s\"", svc);
			else
				printf("null");
			printf(",\"hits\":%llu,\"packets\":%llu}", (unsigned long long)flows,
			       (unsigned long long)packets);
			continue;
		}
		snprintf(v[0], sizeof(v[0]), "%u", fs[i].id);
		snprintf(v[1], sizeof(v[1]), "%s", mr_proto_text(fs[i].proto, pb));
		snprintf(v[2], sizeof(v[2]), "%u", f.port);
		snprintf(v[3], sizeof(v[3]), "%s", svc ? svc : "-");
		snprintf(v[4], sizeof(v[4]), "%llu", (unsigned long long)packets);
		snprintf(v[5], sizeof(v[5]), "%llu", (unsigned long long)flows);
		for (int c = 0; c < 6; c++)
			cells[(i + 1) * 6 + c] = strdup(v[c]);
	}
	if (json)
		puts("]");
	else
		table(cells, 6, (size_t)n + 1);
	return 0;
}

/* What `mseg status` shows of the policy, in one read of it. */
static int cmd_status(__u8 set)
{
	struct mr_policy p;
	const struct mr_rule *fs;
	char pb[8];
	int n;

	open_maps();
	if (!mr_read_policy(&maps, set, &p))
		return 1;
	n = mr_failsafe_rules(&p, &fs);
	printf("{\"rules\":%zu,\"cidrs\":%zu,\"failsafe\":\"%s\",\"failsafes\":[", count(&p, MR_RULE),
	       count(&p, MR_CIDR),
	       p.fs_mode == MR_FS_OFF ? "off" : p.fs_mode == MR_FS_SET ? "set" : "default");
	for (int i = 0; i < n; i++)
		printf("%s{\"id\":%u,\"proto\":\"%s\",\"port\":%u}", i ? "," : "", fs[i].id,
		       mr_proto_text(fs[i].proto, pb), fs[i].ports[0].lo);
	puts("]}");
	return 0;
}

static int cmd_explain(__u8 set, int argc, char **argv)
{
	struct mr_policy p;
	struct mr_compiled c;
	struct mr_flow f;
	struct mr_decision d, *all;
	bool json = false;
	size_t n;
	char text[MSEG_SOURCE_LINE * 2];
	__u8 mode;

	if (argc && !strcmp(argv[0], "--json")) {
		json = true;
		argc--;
		argv++;
	}
	open_maps();
	if (!mr_read_policy(&maps, set, &p))
		return 1;
	config_default(&p);
	mode = config_mode();
	if (!mr_compile(&p, set, &c))
		fail();
	if (argc == 2 && !strcmp(argv[0], "--batch")) {
		/* many flows, one process: "verdict rule_id" per line */
		FILE *in = strcmp(argv[1], "-") ? fopen(argv[1], "r") : stdin;
		char line[1024], *av[16];
		long lineno = 0;

		if (!in) {
			fprintf(stderr, "mseg: cannot read %s: %s\n", argv[1], strerror(errno));
			return 1;
		}
		while (fgets(line, sizeof(line), in)) {
			int ac = mr_split(line, av, 16);

			lineno++;
			if (ac <= 0)
				continue;
			if (!mr_flow_parse(ac, av, &f)) {
				fprintf(stderr, "mseg: line %ld: %s\n", lineno, mr_error());
				return 2;
			}
			mr_lookup(&c, &f, p.def, &d);
			audit_mode(&d, mode);
			printf("%s %u\n", mr_action_names[d.action], d.rule_id);
		}
		return 0;
	}
	if (!mr_flow_parse(argc, argv, &f))
		fail();
	mr_lookup(&c, &f, p.def, &d);
	audit_mode(&d, mode);
	n = mr_matching(&p, &f, &all);
	/* the compiled lookup and the definition must agree */
	if ((n ? all[0].rule_id : 0) != d.rule_id) {
		fprintf(stderr, "mseg: internal: the compiled policy decides by rule %u, the definition by rule %u\n",
			d.rule_id, n ? all[0].rule_id : 0);
		return 1;
	}
	if (json) {
		printf("{\"verdict\":\"%s\",\"rule\":%u,\"failsafe\":%s,\"mode\":\"%s\",",
		       mr_action_names[d.action], d.rule_id,
		       d.rule_id >= MR_FAILSAFE_ID0 ? "true" : "false",
		       (mode & MSEG_MODE_AUDIT) ? "audit" : "enforce");
		printf("\"statement\":");
		if (d.rule_id) {
			mr_rule_text(mr_rule_by_id(&p, d.rule_id), true, text, sizeof(text));
			json_str(text);
		} else {
			printf("\"default %s\"", mr_action_names[p.def]);
		}
		printf(",\"beaten\":[");
		for (size_t i = 1; i < n; i++) {
			mr_rule_text(mr_rule_by_id(&p, all[i].rule_id), true, text, sizeof(text));
			printf("%s{\"rule\":%u,\"action\":\"%s\",\"statement\":", i > 1 ? "," : "",
			       all[i].rule_id, mr_action_names[all[i].action]);
			json_str(text);
			putchar('}');
		}
		printf("]}\n");
		return 0;
	}
	printf("verdict: %s%s\n", mr_action_names[d.action],
	       d.action == MSEG_ACT_AUDIT && (mode & MSEG_MODE_AUDIT) ?
		       " (audit mode: a deny passes, counted and logged)" :
	       d.action == MSEG_ACT_AUDIT ? " (the rule's --audit: a deny passes, counted and logged)" :
					    "");
	if (d.rule_id >= MR_FAILSAFE_ID0) {
		const struct mr_rule *r = mr_rule_by_id(&p, d.rule_id);
		const char *svc = strchr(r->comment, ' ');

		/* "failsafe tcp/22" and the service the comment names */
		mr_rule_text(r, true, text, sizeof(text));
		printf("decided by: failsafe %u: %s%s%s%s\n", d.rule_id, text + strlen("failsafe "),
		       svc ? " (" : "", svc ? svc + 1 : "", svc ? ")" : "");
	} else if (d.rule_id) {
		mr_rule_text(mr_rule_by_id(&p, d.rule_id), true, text, sizeof(text));
		printf("decided by: rule %u: %s\n", d.rule_id, text);
	} else {
		printf("decided by: default %s (no rule matches)\n", mr_action_names[p.def]);
	}
	for (size_t i = 1; i < n; i++) {
		mr_rule_text(mr_rule_by_id(&p, all[i].rule_id), true, text, sizeof(text));
		printf("%s rule %u: %s\n", i == 1 ? "beat:" : "     ", all[i].rule_id, text);
	}
	if (d.rule_id)
		printf("beat: default %s\n", mr_action_names[p.def]);
	return 0;
}

struct keyed {
	char key[MSEG_SOURCE_LINE];
	char line[MSEG_SOURCE_LINE];
};

static size_t keyed_lines(const struct mr_policy *p, struct keyed **out)
{
	size_t n = 0, cap = 0;
	struct keyed *k = NULL;
	char buf[64];

	k = mr_grow(k, &cap, n, sizeof(*k));
	snprintf(k[n].key, sizeof(k[n].key), "default");
	snprintf(k[n++].line, sizeof(k[0].line), "default %s", mr_action_names[p->def]);
	k = mr_grow(k, &cap, n, sizeof(*k));
	snprintf(k[n].key, sizeof(k[n].key), "failsafe");
	mr_failsafe_statement(p, k[n++].line, sizeof(k[0].line));
	for (size_t i = 0; i < p->ns; i++)
		for (size_t j = 0; j < p->s[i].n; j++) {
			k = mr_grow(k, &cap, n, sizeof(*k));
			snprintf(k[n].line, sizeof(k[0].line), "segment add %s %s", p->s[i].name,
				 mr_pfx_text(&p->s[i].p[j], buf));
			memcpy(k[n].key, k[n].line, sizeof(k[n].key));
			n++;
		}
	for (size_t i = 0; i < p->nr; i++) {
		k = mr_grow(k, &cap, n, sizeof(*k));
		snprintf(k[n].key, sizeof(k[n].key), "%c ", p->r[i].kind == MR_CIDR ? 'c' : 'r');
		mr_rule_match_key(&p->r[i], k[n].key + 2, sizeof(k[n].key) - 2);
		mr_rule_text(&p->r[i], true, k[n].line, sizeof(k[n].line));
		n++;
	}
	*out = k;
	return n;
}

static int cmp_keyed(const void *a, const void *b)
{
	return strcmp(((const struct keyed *)a)->key, ((const struct keyed *)b)->key);
}

/* Both lists sorted by key, then merged: linear past the sort at any size. */
static int cmd_diff(__u8 set, const char *file)
{
	struct mr_policy p, old;
	struct mr_compiled c;
	struct mr_target t;
	struct keyed *a, *b;
	size_t na, nb, changes = 0, i = 0, j = 0;

	mr_policy_init(&p);
	if (!mr_parse_file(&p, file, NULL))
		return 2;
	open_maps();
	if (!mr_read_policy(&maps, set, &old))
		return 1;
	config_default(&old);
	build(&p, &old, &c, &t);
	na = keyed_lines(&old, &a);
	nb = keyed_lines(&p, &b);
	qsort(a, na, sizeof(*a), cmp_keyed);
	qsort(b, nb, sizeof(*b), cmp_keyed);
	/* removed and changed first, then added, as before */
	while (i < na) {
		int d = j < nb ? strcmp(a[i].key, b[j].key) : -1;

		if (d < 0) {
			printf("- %s\n", a[i++].line);
			changes++;
		} else if (d > 0) {
			j++;
		} else {
			if (strcmp(a[i].line, b[j].line)) {
				printf("~ %s\n  (was: %s)\n", b[j].line, a[i].line);
				changes++;
			}
			i++;
			j++;
		}
	}
	for (i = 0, j = 0; j < nb;) {
		int d = i < na ? strcmp(a[i].key, b[j].key) : 1;

		if (d > 0) {
			printf("+ %s\n", b[j++].line);
			changes++;
		} else if (d < 0) {
			i++;
		} else {
			i++;
			j++;
		}
	}
	printf("%zu change%s; nothing applied\n", changes, changes == 1 ? "" : "s");
	return 0;
}

static void print_line(void *ctx, __u32 index, const char *line)
{
	(void)ctx;
	(void)index;
	puts(line);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: mseg-ruleset check [--stats] [--allow-empty] [--lines] [--config-only] [--copy OUT] FILE\n"
		   "       mseg-ruleset apply [--allow-empty] SET ACTIVE FILE | clear SET | save SET\n"
		   "       mseg-ruleset copy FILE OUT\n"
		   "       mseg-ruleset stage NEW ACTIVE FILE | promote NEW ACTIVE | unstage NEW ACTIVE\n"
		   "       mseg-ruleset edit SET NEW WRITE SYNC STATEMENT...\n"
		   "       mseg-ruleset list SET rules|cidrs|segments|failsafes [--json] [--all] | show SET SEGMENT\n"
		   "       mseg-ruleset status SET\n"
		   "       mseg-ruleset explain SET [--json] --src A --dst B [--proto P] [--sport N] [--dport N]\n"
		   "       mseg-ruleset explain SET --batch FILE | diff SET FILE\n"
		   "The grammar is docs/policy.md's. FILE '-' is stdin.\n");
}

/*
 * check's options, then FILE: the summary (and the config lines, with
 * their line numbers for --lines); --copy writes the input, once valid, to
 * OUT (the bash commands read stdin so, before they take the edit lock).
 */
static int cmd_check(int argc, char **argv)
{
	bool stats = false, allow_empty = false, lines = false, config_only = false;
	const char *copy = NULL;
	struct mr_policy p;
	struct mr_compiled c;
	struct mr_target t;
	struct mr_input in;
	int i;

	for (i = 0; i < argc - 1; i++) {
		if (!strcmp(argv[i], "--stats")) {
			stats = true;
		} else if (!strcmp(argv[i], "--allow-empty")) {
			allow_empty = true;
		} else if (!strcmp(argv[i], "--lines")) {
			lines = true;
		} else if (!strcmp(argv[i], "--config-only")) {
			/*
			 * apply's read before the lock: the input copied and
			 * its config lines checked (the bash side checks their
			 * values before any write); the apply itself reads
			 * every line, and refuses the input whole, before it
			 * writes anything
			 */
			config_only = true;
		} else if (!strcmp(argv[i], "--copy") && i + 2 < argc) {
			copy = argv[++i];
		} else {
			usage(stderr);
			return 2;
		}
	}
	mr_policy_init(&p);
	p.config_only = config_only;
	if (!mr_input_read(argv[argc - 1], &in))
		return 1;
	if (!mr_parse_input(&p, &in, NULL))
		return 2;
	if (!config_only) {
		refuse_empty(&p, allow_empty);
		build(&p, NULL, &c, &t);
	}
	if (copy && !mr_input_write(&in, copy))
		return 1;
	if (!config_only)
		check_summary(&p, &c, stats);
	for (size_t k = 0; k < p.ncfg; k++) {
		if (lines)
			printf("config %s %s %ld\n", p.cfg[k].key, p.cfg[k].value, p.cfg[k].line);
		else
			printf("config %s %s\n", p.cfg[k].key, p.cfg[k].value);
	}
	mr_input_free(&in);
	return fflush(stdout) ? 1 : 0;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";
	pid_t parent = getppid();

	/*
	 * Die with the command that runs us: a killed `mseg apply` must not
	 * leave its writer running, holding the edit lock it inherited.
	 */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent)
		return 1;

	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "check") && argc >= 3)
		return cmd_check(argc - 2, argv + 2);
	if (!strcmp(cmd, "copy") && argc == 4) {
		/* a --batch input read whole and bounded, before the lock */
		struct mr_input in;
		bool ok;

		if (!mr_input_read(argv[2], &in))
			return 1;
		ok = mr_input_write(&in, argv[3]);
		mr_input_free(&in);
		return ok ? 0 : 1;
	}
	if (!strcmp(cmd, "parse") && argc >= 3) {
		/* one statement's own checks, before any map is opened */
		struct mr_policy p;

		mr_policy_init(&p);
		/* no failsafes to count against: 'failsafe add' checks its entries */
		p.fs_mode = MR_FS_OFF;
		mr_statement(&p, argc - 2, argv + 2, 0, NULL, 0);
		if (mr_failed() && strncmp(mr_error(), "no such", 7))
			fail();
		return 0;
	}
	if (!strcmp(cmd, "apply") && argc == 6 && !strcmp(argv[2], "--allow-empty"))
		return cmd_apply(set_arg(argv[3]), set_arg(argv[4]), argv[5], true);
	if (!strcmp(cmd, "apply") && argc == 5)
		return cmd_apply(set_arg(argv[2]), set_arg(argv[3]), argv[4], false);
	if (!strcmp(cmd, "stage") && argc == 5)
		return cmd_stage(set_arg(argv[2]), set_arg(argv[3]), argv[4]);
	if (!strcmp(cmd, "promote") && argc == 4)
		return cmd_promote(set_arg(argv[2]), set_arg(argv[3]));
	if (!strcmp(cmd, "unstage") && argc == 4)
		return cmd_unstage(set_arg(argv[2]), set_arg(argv[3]));
	if (!strcmp(cmd, "clear") && argc == 3) {
		__u8 set = set_arg(argv[2]);

		open_maps();
		return mr_clear_set(&maps, set) ? 1 : 0;
	}
	if (!strcmp(cmd, "save") && argc == 3) {
		struct mr_policy p;
		__u8 set = set_arg(argv[2]);
		struct mseg_config cfg;

		open_maps();
		if (!mr_read_policy(&maps, set, &p))
			return 1;
		config_default(&p);
		/* the spare set's default, when it holds a staged policy */
		if (!mseg_read_config(maps.config, &cfg) && set != cfg.active_set &&
		    (cfg.mode & MSEG_MODE_STAGED))
			p.def = (cfg.mode & MSEG_MODE_STAGED_DENY) ? MSEG_ACT_DENY : MSEG_ACT_ALLOW;
		mr_policy_lines(&p, print_line, NULL);
		return fflush(stdout) ? 1 : 0;
	}
	if (!strcmp(cmd, "edit") && argc >= 7)
		return cmd_edit(argc - 2, argv + 2);
	if (!strcmp(cmd, "list") && argc >= 4 && argc <= 6) {
		bool json = false, all = false, ok = true;

		for (int i = 4; i < argc; i++) {
			json |= !strcmp(argv[i], "--json");
			all |= !strcmp(argv[i], "--all") && !strcmp(argv[3], "rules");
			ok &= !strcmp(argv[i], "--json") || !strcmp(argv[i], "--all");
		}
		if (ok && !strcmp(argv[3], "failsafes") && !all)
			return cmd_failsafes(set_arg(argv[2]), json);
		if (ok && (!strcmp(argv[3], "rules") || !strcmp(argv[3], "cidrs") ||
			   !strcmp(argv[3], "segments")))
			return cmd_list(set_arg(argv[2]), argv[3], json, all);
	}
	if (!strcmp(cmd, "status") && argc == 3)
		return cmd_status(set_arg(argv[2]));
	if (!strcmp(cmd, "explain") && argc >= 3)
		return cmd_explain(set_arg(argv[2]), argc - 3, argv + 3);
	if (!strcmp(cmd, "diff") && argc == 4)
		return cmd_diff(set_arg(argv[2]), argv[3]);
	usage(stderr);
	return 2;
}
