// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Failsafes (docs/policy.md, "failsafes"): the list in force, the
 * `failsafe` statement that sets it, and the list as the rules the
 * compiler, explain and the listings take.
 */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"

/*
 * What a host needs to stay manageable under default deny. A failsafe
 * names a destination port: DHCP needs both, since the server's answer
 * (to port 68) is a new flow when the client's request went to the
 * broadcast address.
 */
static const struct mr_failsafe default_list[] = {
	{ IPPROTO_TCP, 22 },  { IPPROTO_TCP, 53 }, { IPPROTO_UDP, 53 },
	{ IPPROTO_UDP, 67 },  { IPPROTO_UDP, 68 }, { IPPROTO_UDP, 123 },
};

#define DEFAULT_N ((int)(sizeof(default_list) / sizeof(default_list[0])))

static const struct {
	__u8 proto;
	__u16 port;
	const char *name;
} services[] = {
	{ IPPROTO_TCP, 22, "ssh" },    { IPPROTO_TCP, 53, "dns" },
	{ IPPROTO_UDP, 53, "dns" },    { IPPROTO_UDP, 67, "dhcp" },
	{ IPPROTO_UDP, 68, "dhcp" },   { IPPROTO_UDP, 123, "ntp" },
	{ IPPROTO_UDP, 546, "dhcpv6" }, { IPPROTO_UDP, 547, "dhcpv6" },
};

/* The list's order (and so the ids): by port, then tcp before udp. */
static int cmp_fs(const void *a, const void *b)
{
	const struct mr_failsafe *x = a, *y = b;

	if (x->port != y->port)
		return x->port < y->port ? -1 : 1;
	return (x->proto > y->proto) - (x->proto < y->proto);
}

int mr_failsafe_list(const struct mr_policy *p, struct mr_failsafe out[MR_FAILSAFE_MAX])
{
	if (p->fs_mode == MR_FS_OFF)
		return 0;
	if (p->fs_mode == MR_FS_DEFAULT) {
		memcpy(out, default_list, sizeof(default_list));
		return DEFAULT_N;
	}
	memcpy(out, p->fs, (size_t)p->nfs * sizeof(*out));
	return p->nfs;
}

const char *mr_failsafe_text(const struct mr_failsafe *f, char *buf)
{
	sprintf(buf, "%s/%u", f->proto == IPPROTO_TCP ? "tcp" : "udp", f->port);
	return buf;
}

const char *mr_failsafe_service(const struct mr_failsafe *f)
{
	for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++)
		if (services[i].proto == f->proto && services[i].port == f->port)
			return services[i].name;
	return NULL;
}

/* The canonical statement: what save prints and mseg_source stores. */
void mr_failsafe_statement(const struct mr_policy *p, char *buf, size_t len)
{
	char t[16];
	size_t o;

	if (p->fs_mode != MR_FS_SET) {
		snprintf(buf, len, "failsafe %s", p->fs_mode == MR_FS_OFF ? "off" : "default");
		return;
	}
	o = (size_t)snprintf(buf, len, "failsafe set");
	for (int i = 0; i < p->nfs && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, " %s", mr_failsafe_text(&p->fs[i], t));
}

int mr_failsafe_rules(const struct mr_policy *cp, const struct mr_rule **out)
{
	/* a cache p owns, rebuilt on every call: at most 32 small rules */
	struct mr_policy *p = (struct mr_policy *)cp;
	struct mr_failsafe l[MR_FAILSAFE_MAX];
	int n = mr_failsafe_list(cp, l);

	if (!p->fsr)
		p->fsr = calloc(MR_FAILSAFE_MAX, sizeof(*p->fsr));
	if (!p->fsr)
		abort();
	for (int i = 0; i < n; i++) {
		struct mr_rule *r = &p->fsr[i];
		const char *svc = mr_failsafe_service(&l[i]);

		memset(r, 0, sizeof(*r));
		r->id = MR_FAILSAFE_ID0 + (__u32)i;
		r->kind = MR_FAILSAFE;
		r->src.kind = MR_SEL_ANY;
		r->dst.kind = MR_SEL_ANY;
		r->proto = l[i].proto;
		r->nports = 1;
		r->ports[0].lo = r->ports[0].hi = l[i].port;
		r->action = MSEG_ACT_ALLOW;
		snprintf(r->comment, sizeof(r->comment), "failsafe%s%s", svc ? ": " : "",
			 svc ? svc : "");
	}
	*out = p->fsr;
	return n;
}

/* "tcp/22" or "udp/53"; mr_err otherwise. */
static bool parse_entry(const char *s, struct mr_failsafe *f)
{
	unsigned long long port;

	if ((strncmp(s, "tcp/", 4) && strncmp(s, "udp/", 4)) ||
	    !mr_uint(s + 4, 65535, &port) || !port) {
		mr_err("invalid failsafe '%s' (expected tcp/PORT or udp/PORT, a port 1..65535)", s);
		return false;
	}
	memset(f, 0, sizeof(*f));
	f->proto = s[0] == 't' ? IPPROTO_TCP : IPPROTO_UDP;
	f->port = (__u16)port;
	return true;
}

static int find(const struct mr_failsafe *l, int n, const struct mr_failsafe *f)
{
	for (int i = 0; i < n; i++)
		if (l[i].proto == f->proto && l[i].port == f->port)
			return i;
	return -1;
}

/*
 * failsafe set PROTO/PORT... | add PROTO/PORT... | del PROTO/PORT... | off |
 * default. `add` and `del` start from the list in force (the default list
 * too); an empty list is off.
 */
void mr_failsafe_stmt(struct mr_policy *p, int argc, char **argv, char *msg, size_t len)
{
	const char *cmd = argc > 1 ? argv[1] : "";
	bool set = !strcmp(cmd, "set"), add = !strcmp(cmd, "add"), del = !strcmp(cmd, "del");
	bool whole = set || !strcmp(cmd, "off") || !strcmp(cmd, "default");
	struct mr_failsafe l[MR_FAILSAFE_MAX], e;
	char before[MSEG_SOURCE_LINE], after[MSEG_SOURCE_LINE];
	int n;

	if (!whole && !add && !del)
		return mr_err("failsafe: expected set, add, del, off or default, not '%s'", cmd);
	if ((set || add || del) && argc < 3)
		return mr_err("failsafe %s: give one or more of tcp/PORT udp/PORT (failsafe off turns them off)",
			      cmd);
	if (!set && whole && argc > 2)
		return mr_err("failsafe %s takes nothing more (got '%s')", cmd, argv[2]);
	if (whole && p->replace && p->fs_said)
		return mr_err("a second 'failsafe' line: give the whole list in one ('failsafe set ...')");
	mr_failsafe_statement(p, before, sizeof(before));
	n = set ? 0 : mr_failsafe_list(p, l);
	for (int i = 2; i < argc; i++) {
		int at;

		if (!parse_entry(argv[i], &e))
			return;
		at = find(l, n, &e);
		if (del) {
			if (at < 0)
				return mr_err("no such failsafe: %s", argv[i]);
			l[at] = l[--n];
		} else if (at < 0) {
			if (n == MR_FAILSAFE_MAX)
				return mr_err("at most %d failsafes", MR_FAILSAFE_MAX);
			l[n++] = e;
		}
	}
	if (whole)
		p->fs_said = p->replace;
	if (!strcmp(cmd, "off") || !strcmp(cmd, "default")) {
		p->fs_mode = !strcmp(cmd, "off") ? MR_FS_OFF : MR_FS_DEFAULT;
	} else {
		struct mr_failsafe cur[MR_FAILSAFE_MAX];
		int ncur = mr_failsafe_list(p, cur);
		bool same = !set && n == ncur;

		qsort(l, (size_t)n, sizeof(*l), cmp_fs);
		qsort(cur, (size_t)ncur, sizeof(*cur), cmp_fs);
		for (int i = 0; same && i < n; i++)
			same = !cmp_fs(&l[i], &cur[i]);
		/* add or del that changes nothing leaves the default list the default */
		if (!same) {
			p->fs_mode = n ? MR_FS_SET : MR_FS_OFF;
			p->nfs = n;
			memcpy(p->fs, l, (size_t)n * sizeof(*l));
		}
	}
	mr_failsafe_statement(p, after, sizeof(after));
	if (msg)
		snprintf(msg, len, "%s%s", strcmp(before, after) ? "" : "failsafe unchanged: ",
			 after);
}
