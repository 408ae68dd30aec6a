// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * mseg-pkt: build one Ethernet frame for the tests, byte by byte.
 *
 * Ethernet (fixed MACs), up to eight 802.1Q/802.1ad tags, IPv4 (with
 * options) or IPv6 (with an extension header chain), then TCP (optionally
 * with a window scale option), UDP, ICMP, ICMPv6 or a raw protocol number,
 * then a payload. Every checksum is correct unless a field is forced to a
 * bad value on purpose (--ihl, --tot-len, --truncate). The family follows
 * the address syntax.
 *
 * --layout prints the offset of every header boundary, so a test can cut a
 * frame at each one (and one byte before it) with --truncate.
 *
 * --fragment OFF[:LEN] writes one real fragment of the datagram: the bytes
 * OFF..OFF+LEN of its fragmentable part behind the datagram's own headers,
 * so the fragments of one datagram reassemble into it (checksums included).
 * --inner OPTIONS... builds the packet an ICMP or ICMPv6 error quotes, with
 * the same options.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>

#define PKT_MAX 70000
#define PAYLOAD_MAX 65000
#define EXT_MAX 32
#define VLAN_MAX 8
#define LAYOUT_MAX 64

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86dd
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88a8

#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_PSH 0x08
#define TCPF_ACK 0x10
#define TCPF_URG 0x20
#define TCPF_ECE 0x40
#define TCPF_CWR 0x80

struct ext_hdr {
	const char *name;
	uint8_t type;    /* IPPROTO_* of this header */
	unsigned int len; /* "Hdr Ext Len" (8-byte units beyond the first 8) */
};

struct layout_mark {
	const char *name;
	size_t off;
};

struct pkt_opts {
	int nvlan;
	unsigned int vlan[VLAN_MAX];
	unsigned int vlan_tpid[VLAN_MAX]; /* 0x8100 or 0x88a8, outermost first */
	long ethertype;   /* -1: from the family */
	int family;       /* 0: no IP header (raw Ethernet payload) */
	struct in_addr src4, dst4;
	struct in6_addr src6, dst6;
	bool have_src, have_dst;
	int proto;        /* -1: not given */
	bool proto_is_icmp;
	unsigned int sport, dport;
	unsigned int tcp_flags;
	uint32_t seq, ack;
	unsigned int win;
	int doff;         /* -1: from the options (5 without any) */
	int wscale;       /* -1: no window scale option */
	size_t payload;
	size_t trailer;
	unsigned int ip_opts;
	int ihl;          /* -1: computed */
	unsigned int ttl;
	unsigned int ip_id;
	struct ext_hdr ext[EXT_MAX];
	int next;
	unsigned int frag_off; /* bytes, multiple of 8 */
	bool mf;
	int icmp_type;    /* -1: echo request of the family */
	unsigned int icmp_code;
	unsigned int icmp_id, icmp_seq;
	long truncate;    /* -1: whole frame */
	long tot_len;     /* -1: computed */
	bool layout;
	bool hex;
	unsigned long count;   /* frames to write (--count) */
	unsigned int *stepped; /* what --count advances: &sport, &dport, &ip_id */
	long frag_at;     /* --fragment: -1, or the offset in the fragmentable part */
	long frag_len;    /* --fragment: -1 for the rest */
	unsigned long mtu;  /* ICMP "fragmentation needed" / ICMPv6 "packet too big" */
	const uint8_t *quote; /* the quoted packet of an ICMP error (--inner) */
	size_t quote_len;
	long quote_max;   /* --quote N: quote at most N bytes of it */
	const char *out;
};

struct pkt {
	uint8_t buf[PKT_MAX];
	size_t len;
	struct layout_mark marks[LAYOUT_MAX];
	int nmarks;
};

static struct pkt pkt;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mseg-pkt [options] [-o FILE]\n"
		"Build an Ethernet frame (or --count of them) and write it to FILE\n"
		"(default stdout).\n"
		"\n"
		"  --src IP --dst IP     IPv4 or IPv6 addresses (family by syntax)\n"
		"  --proto P             tcp|udp|icmp|icmpv6|NUM (icmp on IPv6 = icmpv6;\n"
		"                        NUM: no L4 header, payload only)\n"
		"  --sport N --dport N   TCP/UDP ports (default 40000 / 80)\n"
		"  --flags F             TCP flags: letters S A F R P U E C (e.g. SA, FA)\n"
		"                        or a number (default S)\n"
		"  --seq N --ack N --win N  TCP fields (default 1000 / 0 / 65535)\n"
		"  --doff N              force the TCP data offset field (0..15)\n"
		"  --wscale N            TCP window scale option (RFC 7323) with shift N\n"
		"                        (0..255, sent as NOP + kind 3, length 3, N)\n"
		"  --payload N           N payload bytes (default 0)\n"
		"  --trailer N           N bytes of Ethernet padding after the IP packet\n"
		"  --vlan ID             add an 802.1Q tag (again for more, outermost first;\n"
		"                        at most 8)\n"
		"  --svlan ID            add an 802.1ad (QinQ service) tag, in the same order\n"
		"  --ethertype N         force the innermost EtherType (with no --src/--dst:\n"
		"                        a non-IP frame of Ethernet + payload)\n"
		"  --ip-opts N           N bytes of IPv4 options (NOPs then EOL; N%%4 == 0, <= 40)\n"
		"  --ihl N               force the IPv4 IHL field (0..15)\n"
		"  --ttl N --ip-id N     IPv4 TTL / IPv6 hop limit, IPv4 id / fragment id\n"
		"  --ext LIST            IPv6 extension headers in order: hop,dst,rt,frag,ah;\n"
		"                        hop/dst/rt take :N for Hdr Ext Len (e.g. dst:3)\n"
		"  --frag-offset N --mf  fragment offset in bytes (multiple of 8), more\n"
		"                        fragments (IPv4 header, or the IPv6 frag header);\n"
		"                        an offset > 0 carries no L4 header\n"
		"  --fragment OFF[:LEN]  write one fragment of the whole datagram: bytes\n"
		"                        OFF..OFF+LEN (OFF a multiple of 8; default LEN:\n"
		"                        the rest) of what follows the IPv4 header, or the\n"
		"                        IPv6 fragment header (--ext must have frag); MF\n"
		"                        set unless it ends the datagram\n"
		"  --icmp-type T --icmp-code C --icmp-id N --icmp-seq N\n"
		"  --mtu N               the MTU of an ICMP \"fragmentation needed\" (type 3\n"
		"                        code 4) or an ICMPv6 \"packet too big\" (type 2)\n"
		"  --inner OPTIONS...    last: the rest of the line builds the packet an ICMP error\n"
		"                        quotes (same options; its Ethernet header is left\n"
		"                        out; -o, --hex, --layout there still mean the frame);\n"
		"                        it replaces the payload\n"
		"  --quote N             quote only the first N bytes of that packet\n"
		"  --tot-len N           force IPv4 total length / IPv6 payload length\n"
		"  --truncate N          cut the frame after N bytes\n"
		"  --layout              print header offsets: eth 0 ip 14 l4 34 payload 54 end N\n"
		"                        (to stdout; the frame goes to -o FILE if given)\n"
		"  --hex                 write the frame as hex instead of binary\n"
		"  --count N --step F    N frames, one hex line each (with --hex), F (sport,\n"
		"                        the default, dport or ip-id) one higher each time\n"
		"  -o FILE               output file\n"
		"  -h, --help            this text\n");
}

static void die(const char *fmt, const char *arg)
{
	fprintf(stderr, "mseg-pkt: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	exit(2);
}

static unsigned long parse_num(const char *s, unsigned long max, const char *what)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || end == s || *end || s[0] == '-' || v > max)
		die("bad %s", what);
	return v;
}

/* ------------------------------------------------------------------ */
/* argument parsing                                                     */

static int parse_proto(const char *s, bool *is_icmp)
{
	*is_icmp = false;
	if (!strcasecmp(s, "tcp"))
		return IPPROTO_TCP;
	if (!strcasecmp(s, "udp"))
		return IPPROTO_UDP;
	if (!strcasecmp(s, "icmp")) {
		*is_icmp = true;
		return IPPROTO_ICMP;
	}
	if (!strcasecmp(s, "icmpv6") || !strcasecmp(s, "icmp6"))
		return IPPROTO_ICMPV6;
	return (int)parse_num(s, 255, "--proto");
}

static unsigned int parse_flags(const char *s)
{
	unsigned int f = 0;

	if (s[0] >= '0' && s[0] <= '9')
		return (unsigned int)parse_num(s, 255, "--flags");
	for (; *s; s++) {
		switch (*s) {
		case 'F': f |= TCPF_FIN; break;
		case 'S': f |= TCPF_SYN; break;
		case 'R': f |= TCPF_RST; break;
		case 'P': f |= TCPF_PSH; break;
		case 'A': f |= TCPF_ACK; break;
		case 'U': f |= TCPF_URG; break;
		case 'E': f |= TCPF_ECE; break;
		case 'C': f |= TCPF_CWR; break;
		case '.': case '0': break;
		default: die("bad --flags letter in '%s'", s);
		}
	}
	return f;
}

static void parse_ext_one(struct pkt_opts *o, const char *tok)
{
	struct ext_hdr *e;
	const char *colon = strchr(tok, ':');
	size_t n = colon ? (size_t)(colon - tok) : strlen(tok);

	if (o->next >= EXT_MAX)
		die("too many extension headers (max %s)", "32");
	e = &o->ext[o->next];
	if (n == 3 && !strncmp(tok, "hop", 3)) {
		e->type = IPPROTO_HOPOPTS;
		e->name = "hop";
	} else if (n == 3 && !strncmp(tok, "dst", 3)) {
		e->type = IPPROTO_DSTOPTS;
		e->name = "dst";
	} else if (n == 2 && !strncmp(tok, "rt", 2)) {
		e->type = IPPROTO_ROUTING;
		e->name = "rt";
	} else if (n == 4 && !strncmp(tok, "frag", 4)) {
		e->type = IPPROTO_FRAGMENT;
		e->name = "frag";
	} else if (n == 2 && !strncmp(tok, "ah", 2)) {
		e->type = IPPROTO_AH;
		e->name = "ah";
	} else {
		die("unknown extension header '%s'", tok);
	}
	e->len = 0;
	if (colon) {
		if (e->type == IPPROTO_FRAGMENT || e->type == IPPROTO_AH)
			die("'%s' has a fixed length", tok);
		e->len = (unsigned int)parse_num(colon + 1, 255, "extension length");
	}
	o->next++;
}

static void parse_ext(struct pkt_opts *o, const char *list)
{
	char *copy = strdup(list), *save = NULL, *tok;

	if (!copy)
		die("%s", "out of memory");
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		parse_ext_one(o, tok);
	free(copy);
}

static void parse_addr(struct pkt_opts *o, const char *s, bool is_src)
{
	struct in_addr a4;
	struct in6_addr a6;
	int fam;

	if (inet_pton(AF_INET, s, &a4) == 1)
		fam = 4;
	else if (inet_pton(AF_INET6, s, &a6) == 1)
		fam = 6;
	else
		die("bad address '%s'", s);
	if (o->family && o->family != fam)
		die("address family mismatch at '%s'", s);
	o->family = fam;
	if (is_src) {
		o->src4 = a4;
		o->src6 = a6;
		o->have_src = true;
	} else {
		o->dst4 = a4;
		o->dst6 = a6;
		o->have_dst = true;
	}
}

enum {
	OPT_SRC = 256, OPT_DST, OPT_PROTO, OPT_SPORT, OPT_DPORT, OPT_FLAGS,
	OPT_SEQ, OPT_ACK, OPT_WIN, OPT_PAYLOAD, OPT_TRAILER, OPT_VLAN,
	OPT_ETHERTYPE, OPT_IPOPTS, OPT_IHL, OPT_TTL, OPT_IPID, OPT_EXT,
	OPT_FRAGOFF, OPT_MF, OPT_ICMPTYPE, OPT_ICMPCODE, OPT_ICMPID,
	OPT_ICMPSEQ, OPT_TOTLEN, OPT_TRUNCATE, OPT_LAYOUT, OPT_HEX, OPT_DOFF,
	OPT_WSCALE, OPT_COUNT, OPT_STEP, OPT_SVLAN, OPT_FRAGMENT, OPT_MTU,
	OPT_QUOTE,
};

static const struct option long_opts[] = {
	{ "src", required_argument, NULL, OPT_SRC },
	{ "dst", required_argument, NULL, OPT_DST },
	{ "proto", required_argument, NULL, OPT_PROTO },
	{ "sport", required_argument, NULL, OPT_SPORT },
	{ "dport", required_argument, NULL, OPT_DPORT },
	{ "flags", required_argument, NULL, OPT_FLAGS },
	{ "seq", required_argument, NULL, OPT_SEQ },
	{ "ack", required_argument, NULL, OPT_ACK },
	{ "win", required_argument, NULL, OPT_WIN },
	{ "doff", required_argument, NULL, OPT_DOFF },
	{ "wscale", required_argument, NULL, OPT_WSCALE },
	{ "payload", required_argument, NULL, OPT_PAYLOAD },
	{ "trailer", required_argument, NULL, OPT_TRAILER },
	{ "vlan", required_argument, NULL, OPT_VLAN },
	{ "ethertype", required_argument, NULL, OPT_ETHERTYPE },
	{ "ip-opts", required_argument, NULL, OPT_IPOPTS },
	{ "ihl", required_argument, NULL, OPT_IHL },
	{ "ttl", required_argument, NULL, OPT_TTL },
	{ "ip-id", required_argument, NULL, OPT_IPID },
	{ "ext", required_argument, NULL, OPT_EXT },
	{ "frag-offset", required_argument, NULL, OPT_FRAGOFF },
	{ "mf", no_argument, NULL, OPT_MF },
	{ "icmp-type", required_argument, NULL, OPT_ICMPTYPE },
	{ "icmp-code", required_argument, NULL, OPT_ICMPCODE },
	{ "icmp-id", required_argument, NULL, OPT_ICMPID },
	{ "icmp-seq", required_argument, NULL, OPT_ICMPSEQ },
	{ "tot-len", required_argument, NULL, OPT_TOTLEN },
	{ "truncate", required_argument, NULL, OPT_TRUNCATE },
	{ "layout", no_argument, NULL, OPT_LAYOUT },
	{ "hex", no_argument, NULL, OPT_HEX },
	{ "count", required_argument, NULL, OPT_COUNT },
	{ "step", required_argument, NULL, OPT_STEP },
	{ "svlan", required_argument, NULL, OPT_SVLAN },
	{ "fragment", required_argument, NULL, OPT_FRAGMENT },
	{ "mtu", required_argument, NULL, OPT_MTU },
	{ "quote", required_argument, NULL, OPT_QUOTE },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* --fragment OFF[:LEN] */
static void parse_fragment(struct pkt_opts *o, const char *arg)
{
	char buf[64];
	char *colon;

	if (strlen(arg) >= sizeof(buf))
		die("bad --fragment '%s'", arg);
	strcpy(buf, arg);
	colon = strchr(buf, ':');
	if (colon)
		*colon = '\0';
	o->frag_at = (long)parse_num(buf, 65528, "--fragment offset");
	if (o->frag_at % 8)
		die("%s", "--fragment offset must be a multiple of 8");
	o->frag_len = colon ? (long)parse_num(colon + 1, 65535, "--fragment length") : -1;
}

static void parse_one(struct pkt_opts *o, int c, const char *arg)
{
	switch (c) {
	case OPT_SRC: parse_addr(o, arg, true); break;
	case OPT_DST: parse_addr(o, arg, false); break;
	case OPT_PROTO: o->proto = parse_proto(arg, &o->proto_is_icmp); break;
	case OPT_SPORT: o->sport = parse_num(arg, 65535, "--sport"); break;
	case OPT_DPORT: o->dport = parse_num(arg, 65535, "--dport"); break;
	case OPT_FLAGS: o->tcp_flags = parse_flags(arg); break;
	case OPT_SEQ: o->seq = parse_num(arg, UINT32_MAX, "--seq"); break;
	case OPT_ACK: o->ack = parse_num(arg, UINT32_MAX, "--ack"); break;
	case OPT_WIN: o->win = parse_num(arg, 65535, "--win"); break;
	case OPT_DOFF: o->doff = parse_num(arg, 15, "--doff (0..15)"); break;
	case OPT_WSCALE: o->wscale = parse_num(arg, 255, "--wscale (0..255)"); break;
	case OPT_PAYLOAD: o->payload = parse_num(arg, PAYLOAD_MAX, "--payload"); break;
	case OPT_TRAILER: o->trailer = parse_num(arg, 1500, "--trailer"); break;
	case OPT_VLAN:
	case OPT_SVLAN:
		if (o->nvlan >= VLAN_MAX)
			die("at most %s --vlan/--svlan tags", "8");
		o->vlan_tpid[o->nvlan] = c == OPT_VLAN ? ETH_P_8021Q : ETH_P_8021AD;
		o->vlan[o->nvlan++] = parse_num(arg, 4095, "--vlan");
		break;
	case OPT_FRAGMENT: parse_fragment(o, arg); break;
	case OPT_MTU: o->mtu = parse_num(arg, UINT32_MAX, "--mtu"); break;
	case OPT_QUOTE: o->quote_max = parse_num(arg, PKT_MAX, "--quote"); break;
	case OPT_ETHERTYPE: o->ethertype = parse_num(arg, 65535, "--ethertype"); break;
	case OPT_IPOPTS:
		o->ip_opts = parse_num(arg, 40, "--ip-opts (0..40)");
		if (o->ip_opts % 4)
			die("%s", "--ip-opts must be a multiple of 4");
		break;
	case OPT_IHL: o->ihl = parse_num(arg, 15, "--ihl (0..15)"); break;
	case OPT_TTL: o->ttl = parse_num(arg, 255, "--ttl"); break;
	case OPT_IPID: o->ip_id = parse_num(arg, UINT32_MAX, "--ip-id"); break;
	case OPT_EXT: parse_ext(o, arg); break;
	case OPT_FRAGOFF:
		o->frag_off = parse_num(arg, 65528, "--frag-offset");
		if (o->frag_off % 8)
			die("%s", "--frag-offset must be a multiple of 8");
		break;
	case OPT_MF: o->mf = true; break;
	case OPT_ICMPTYPE: o->icmp_type = parse_num(arg, 255, "--icmp-type"); break;
	case OPT_ICMPCODE: o->icmp_code = parse_num(arg, 255, "--icmp-code"); break;
	case OPT_ICMPID: o->icmp_id = parse_num(arg, 65535, "--icmp-id"); break;
	case OPT_ICMPSEQ: o->icmp_seq = parse_num(arg, 65535, "--icmp-seq"); break;
	case OPT_TOTLEN: o->tot_len = parse_num(arg, 65535, "--tot-len"); break;
	case OPT_TRUNCATE: o->truncate = parse_num(arg, PKT_MAX, "--truncate"); break;
	case OPT_LAYOUT: o->layout = true; break;
	case OPT_HEX: o->hex = true; break;
	case OPT_COUNT: o->count = parse_num(arg, 65535, "--count"); break;
	case OPT_STEP:
		if (!strcmp(arg, "sport"))
			o->stepped = &o->sport;
		else if (!strcmp(arg, "dport"))
			o->stepped = &o->dport;
		else if (!strcmp(arg, "ip-id"))
			o->stepped = &o->ip_id;
		else
			die("--step sport|dport|ip-id, not '%s'", arg);
		break;
	case 'o': o->out = arg; break;
	case 'h': usage(stdout); exit(0);
	default: usage(stderr); exit(2);
	}
}

static void check_opts(struct pkt_opts *o)
{
	if (o->have_src != o->have_dst)
		die("%s", "--src and --dst go together");
	if (!o->family) {
		if (o->ethertype < 0)
			die("%s", "need --src and --dst (or --ethertype for a non-IP frame)");
		if (o->proto >= 0)
			die("%s", "--proto needs --src and --dst");
		return;
	}
	if (o->proto < 0)
		die("%s", "need --proto");
	if (o->family == 6 && o->proto_is_icmp)
		o->proto = IPPROTO_ICMPV6;
	if (o->family == 4 && o->next)
		die("%s", "--ext is for IPv6");
	if (o->family == 6 && (o->ip_opts || o->ihl >= 0))
		die("%s", "--ip-opts and --ihl are for IPv4");
	if (o->icmp_type < 0)
		o->icmp_type = o->family == 4 ? 8 : 128;
	if (o->wscale >= 0 && o->proto != IPPROTO_TCP)
		die("%s", "--wscale is a TCP option");
	if (o->count == 0)
		die("%s", "--count is at least 1");
	if (o->count > 1 && !o->hex)
		die("%s", "--count N > 1 writes hex lines: add --hex");
	if (o->count > 1 && *o->stepped + o->count - 1 > 65535)
		die("%s", "--count runs the stepped field past 65535");
	if (o->frag_at >= 0 && (o->frag_off || o->truncate >= 0))
		die("%s", "--fragment goes with neither --frag-offset nor --truncate");
	if (o->frag_at >= 0 && o->family == 6) {
		int i, n = 0;

		for (i = 0; i < o->next; i++)
			n += o->ext[i].type == IPPROTO_FRAGMENT;
		if (n != 1)
			die("%s", "--fragment on IPv6 needs one frag in --ext");
	}
}

static void parse_args(struct pkt_opts *o, int argc, char **argv)
{
	int c;

	memset(o, 0, sizeof(*o));
	o->ethertype = -1;
	o->proto = -1;
	o->sport = 40000;
	o->dport = 80;
	o->tcp_flags = TCPF_SYN;
	o->seq = 1000;
	o->win = 65535;
	o->doff = -1;
	o->wscale = -1;
	o->ihl = -1;
	o->ttl = 64;
	o->ip_id = 0x1234;
	o->icmp_type = -1;
	o->icmp_id = 0x4d53;
	o->icmp_seq = 1;
	o->truncate = -1;
	o->tot_len = -1;
	o->count = 1;
	o->stepped = &o->sport;
	o->frag_at = -1;
	o->frag_len = -1;
	o->quote_max = -1;

	optind = 0; /* glibc: start afresh (the --inner options are parsed second) */
	while ((c = getopt_long(argc, argv, "ho:", long_opts, NULL)) != -1)
		parse_one(o, c, optarg);
	if (optind != argc)
		die("unexpected argument '%s'", argv[optind]);
	check_opts(o);
}

/* ------------------------------------------------------------------ */
/* frame construction                                                   */

static void mark(const char *name)
{
	if (pkt.nmarks < LAYOUT_MAX)
		pkt.marks[pkt.nmarks++] = (struct layout_mark){ name, pkt.len };
}

static uint8_t *reserve(size_t n)
{
	uint8_t *p;

	if (pkt.len + n > PKT_MAX)
		die("%s", "frame too large");
	p = pkt.buf + pkt.len;
	memset(p, 0, n);
	pkt.len += n;
	return p;
}

static void put16(uint8_t *p, unsigned int v)
{
	p[0] = (v >> 8) & 0xff;
	p[1] = v & 0xff;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p + 2, v & 0xffff);
}

/* Ones' complement sum, continued from @sum. */
static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static unsigned int inner_ethertype(const struct pkt_opts *o)
{
	if (o->ethertype >= 0)
		return (unsigned int)o->ethertype;
	return o->family == 6 ? ETH_P_IPV6 : ETH_P_IP;
}

static void build_eth(const struct pkt_opts *o)
{
	static const uint8_t dmac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x02 };
	static const uint8_t smac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 };
	uint8_t *p;
	int i;

	mark("eth");
	p = reserve(12);
	memcpy(p, dmac, 6);
	memcpy(p + 6, smac, 6);
	for (i = 0; i < o->nvlan; i++) {
		p = reserve(2);
		put16(p, o->vlan_tpid[i]);
		mark("vlan");
		p = reserve(2);
		put16(p, o->vlan[i]);
	}
	p = reserve(2);
	put16(p, inner_ethertype(o));
}

/* IPv4 header and options; returns the header's offset. */
static size_t build_ipv4(const struct pkt_opts *o)
{
	size_t off = pkt.len;
	unsigned int hlen = 20 + o->ip_opts;
	unsigned int frag = o->frag_off / 8;
	uint8_t *p;

	mark("ip");
	p = reserve(20);
	p[0] = 0x40 | (o->ihl >= 0 ? (unsigned int)o->ihl : hlen / 4);
	put16(p + 4, o->ip_id & 0xffff);
	put16(p + 6, frag | (o->mf ? 0x2000 : 0));
	p[8] = o->ttl;
	p[9] = o->proto;
	memcpy(p + 12, &o->src4, 4);
	memcpy(p + 16, &o->dst4, 4);
	if (o->ip_opts) {
		mark("opts");
		p = reserve(o->ip_opts);
		memset(p, 1, o->ip_opts - 1); /* NOP ... */
		p[o->ip_opts - 1] = 0;       /* ... EOL */
	}
	return off;
}

/*
 * Options that Linux accepts (exthdrs.c, ip6_parse_tlv): at most 7 bytes of
 * padding in a row, so a long header is filled with an experimental option
 * whose type says "skip me" (RFC 4727: 0x1e), then padding.
 */
static void fill_options(uint8_t *p, size_t n)
{
	while (n > 7) {
		size_t len = n - 2 > 255 ? 255 : n - 2;

		if (n - 2 - len == 1)
			len--; /* leave two bytes or none, not one */
		p[0] = 0x1e;
		p[1] = len;
		p += 2 + len;
		n -= 2 + len;
	}
	if (n == 1) {
		p[0] = 0; /* Pad1 */
	} else if (n > 1) {
		p[0] = 1; /* PadN */
		p[1] = n - 2;
	}
}

static void build_ext_one(const struct ext_hdr *e, uint8_t next,
			  const struct pkt_opts *o)
{
	size_t n = e->type == IPPROTO_AH ? 16 : 8 * ((size_t)e->len + 1);
	uint8_t *p;

	mark(e->name);
	p = reserve(n);
	p[0] = next;
	switch (e->type) {
	case IPPROTO_HOPOPTS:
	case IPPROTO_DSTOPTS:
		p[1] = e->len;
		fill_options(p + 2, n - 2);
		break;
	case IPPROTO_ROUTING:
		p[1] = e->len;
		p[2] = 0; /* type 0, segments left 0: nothing to do */
		p[3] = 0;
		break;
	case IPPROTO_FRAGMENT:
		put16(p + 2, (o->frag_off & 0xfff8) | (o->mf ? 1 : 0));
		put32(p + 4, o->ip_id);
		break;
	case IPPROTO_AH:
		p[1] = n / 4 - 2;
		put32(p + 4, 0x100); /* SPI */
		put32(p + 8, 1);     /* sequence */
		break;
	}
}

static size_t build_ipv6(const struct pkt_opts *o)
{
	size_t off = pkt.len;
	uint8_t *p;
	int i;

	mark("ip");
	p = reserve(40);
	p[0] = 0x60;
	p[6] = o->next ? o->ext[0].type : o->proto;
	p[7] = o->ttl;
	memcpy(p + 8, &o->src6, 16);
	memcpy(p + 24, &o->dst6, 16);
	for (i = 0; i < o->next; i++)
		build_ext_one(&o->ext[i],
			      i + 1 < o->next ? o->ext[i + 1].type : o->proto, o);
	return off;
}

static bool has_l4_header(const struct pkt_opts *o)
{
	if (o->frag_off)
		return false;
	return o->proto == IPPROTO_TCP || o->proto == IPPROTO_UDP ||
	       o->proto == IPPROTO_ICMP || o->proto == IPPROTO_ICMPV6;
}

/* TCP options: NOP, then window scale (kind 3, length 3): 4 bytes. */
#define TCP_WSCALE_OPT_LEN 4

static size_t l4_header_len(const struct pkt_opts *o)
{
	if (o->proto != IPPROTO_TCP)
		return 8;
	return 20 + (o->wscale >= 0 ? TCP_WSCALE_OPT_LEN : 0);
}

static void build_l4_header(const struct pkt_opts *o)
{
	size_t hlen = l4_header_len(o);
	uint8_t *p = reserve(hlen);

	switch (o->proto) {
	case IPPROTO_TCP:
		put16(p, o->sport);
		put16(p + 2, o->dport);
		put32(p + 4, o->seq);
		put32(p + 8, o->ack);
		p[12] = (o->doff >= 0 ? (unsigned int)o->doff : hlen / 4) << 4;
		p[13] = o->tcp_flags;
		put16(p + 14, o->win);
		if (o->wscale >= 0) {
			p[20] = 1; /* NOP */
			p[21] = 3; /* window scale */
			p[22] = 3;
			p[23] = o->wscale;
		}
		break;
	case IPPROTO_UDP:
		put16(p, o->sport);
		put16(p + 2, o->dport);
		break;
	default: /* ICMP, ICMPv6 */
		p[0] = o->icmp_type;
		p[1] = o->icmp_code;
		if (o->quote && o->family == 4) {
			put16(p + 6, o->mtu); /* RFC 1191: next-hop MTU */
		} else if (o->quote) {
			put32(p + 4, o->mtu); /* RFC 4443: MTU, or pointer */
		} else {
			put16(p + 4, o->icmp_id);
			put16(p + 6, o->icmp_seq);
		}
		break;
	}
}

static void build_payload(size_t n)
{
	uint8_t *p;
	size_t i;

	mark("payload");
	p = reserve(n);
	for (i = 0; i < n; i++)
		p[i] = 'a' + i % 26;
}

static void build_quote(const struct pkt_opts *o)
{
	size_t n = o->quote_len;

	if (o->quote_max >= 0 && (size_t)o->quote_max < n)
		n = (size_t)o->quote_max;
	mark("quote");
	memcpy(reserve(n), o->quote, n);
}

/* Pseudo-header sum for the L4 checksum. */
static uint32_t pseudo_sum(const struct pkt_opts *o, size_t l4len)
{
	uint8_t ph[40];

	memset(ph, 0, sizeof(ph));
	if (o->family == 4) {
		memcpy(ph, &o->src4, 4);
		memcpy(ph + 4, &o->dst4, 4);
		ph[9] = o->proto;
		put16(ph + 10, l4len);
		return csum_add(0, ph, 12);
	}
	memcpy(ph, &o->src6, 16);
	memcpy(ph + 16, &o->dst6, 16);
	put32(ph + 32, l4len);
	ph[39] = o->proto;
	return csum_add(0, ph, 40);
}

static void fill_l4_csum(const struct pkt_opts *o, size_t l4off)
{
	size_t l4len = pkt.len - l4off;
	uint8_t *p = pkt.buf + l4off;
	uint32_t sum = 0;
	uint16_t c;
	size_t at;

	if (o->proto == IPPROTO_TCP)
		at = 16;
	else if (o->proto == IPPROTO_UDP)
		at = 6;
	else
		at = 2;
	if (o->proto != IPPROTO_ICMP)
		sum = pseudo_sum(o, l4len);
	if (o->proto == IPPROTO_UDP)
		put16(p + 4, l4len);
	c = csum_fold(csum_add(sum, p, l4len));
	if (o->proto == IPPROTO_UDP && c == 0)
		c = 0xffff;
	put16(p + at, c);
}

static void fill_ip_lengths(const struct pkt_opts *o, size_t ipoff)
{
	uint8_t *ip = pkt.buf + ipoff;
	size_t n = pkt.len - ipoff;

	if (o->tot_len < 0 && n - (o->family == 4 ? 0 : 40) > 65535)
		die("%s", "packet too long for its length field (use --tot-len)");
	if (o->family == 4) {
		put16(ip + 2, o->tot_len >= 0 ? (size_t)o->tot_len : n);
		put16(ip + 10, 0);
		put16(ip + 10, csum_fold(csum_add(0, ip, 20 + o->ip_opts)));
	} else {
		put16(ip + 4, o->tot_len >= 0 ? (size_t)o->tot_len : n - 40);
	}
}

static void build(const struct pkt_opts *o)
{
	size_t ipoff, l4off;

	build_eth(o);
	if (!o->family) {
		build_payload(o->payload);
		mark("end");
		return;
	}
	ipoff = o->family == 4 ? build_ipv4(o) : build_ipv6(o);
	l4off = pkt.len;
	mark("l4");
	if (has_l4_header(o))
		build_l4_header(o);
	if (o->quote)
		build_quote(o);
	else
		build_payload(o->payload);
	if (has_l4_header(o))
		fill_l4_csum(o, l4off);
	fill_ip_lengths(o, ipoff);
	if (o->trailer) {
		mark("trailer");
		reserve(o->trailer);
	}
	mark("end");
}

/* ------------------------------------------------------------------ */
/* output                                                               */

static void print_layout(void)
{
	int i;

	for (i = 0; i < pkt.nmarks; i++)
		printf("%s%s %zu", i ? " " : "", pkt.marks[i].name,
		       pkt.marks[i].off);
	printf("\n");
}

static int write_frame(FILE *f, const struct pkt_opts *o, size_t len)
{
	size_t i;

	if (!o->hex)
		return fwrite(pkt.buf, 1, len, f) != len;
	for (i = 0; i < len; i++)
		fprintf(f, "%02x", pkt.buf[i]);
	fprintf(f, "\n");
	return ferror(f);
}

static size_t mark_at(const char *name)
{
	int i;

	for (i = 0; i < pkt.nmarks; i++)
		if (!strcmp(pkt.marks[i].name, name))
			return pkt.marks[i].off;
	die("no '%s' in the frame", name);
	return 0;
}

/*
 * Keep one fragment of the datagram just built: its headers, then bytes
 * [at, at + len) of its fragmentable part (all after the IPv4 header, or
 * after the IPv6 fragment header), with offset, MF and lengths set.
 */
static void fragment(const struct pkt_opts *o)
{
	static uint8_t data[PKT_MAX];
	size_t ip = mark_at("ip"), end = pkt.len, hdrs, total, len;
	uint8_t *h;
	bool more;

	if (o->trailer)
		end = mark_at("trailer");
	hdrs = o->family == 4 ? ip + 20 + o->ip_opts : mark_at("frag") + 8;
	total = end - hdrs;
	if ((size_t)o->frag_at > total)
		die("%s", "--fragment starts past the end of the datagram");
	len = o->frag_len < 0 ? total - (size_t)o->frag_at : (size_t)o->frag_len;
	if ((size_t)o->frag_at + len > total)
		die("%s", "--fragment ends past the end of the datagram");
	more = (size_t)o->frag_at + len < total || o->mf;
	memcpy(data, pkt.buf + hdrs + o->frag_at, len);
	memcpy(pkt.buf + hdrs, data, len);
	pkt.len = hdrs + len;
	h = pkt.buf + ip;
	if (o->family == 4) {
		put16(h + 2, pkt.len - ip);
		put16(h + 6, (o->frag_at / 8) | (more ? 0x2000 : 0));
		put16(h + 10, 0);
		put16(h + 10, csum_fold(csum_add(0, h, 20 + o->ip_opts)));
	} else {
		put16(h + 4, pkt.len - ip - 40);
		put16(pkt.buf + hdrs - 6, o->frag_at | (more ? 1 : 0));
	}
}

/* Build the frame, cut it at --truncate; returns its length. */
static size_t build_cut(const struct pkt_opts *o)
{
	pkt.len = 0;
	pkt.nmarks = 0;
	build(o);
	if (o->frag_at >= 0)
		fragment(o);
	if (o->truncate >= 0) {
		if ((size_t)o->truncate > pkt.len)
			die("%s", "--truncate is beyond the end of the frame");
		return (size_t)o->truncate;
	}
	return pkt.len;
}

/*
 * The packet an ICMP error quotes: built from the options after --inner,
 * kept from its IP header on.
 */
static void build_inner(struct pkt_opts *o, int argc, char **argv)
{
	static uint8_t quoted[PKT_MAX];
	struct pkt_opts in;
	size_t ip, len;

	parse_args(&in, argc, argv);
	/* where the frame goes may be said after --inner too */
	if (in.out)
		o->out = in.out;
	o->hex |= in.hex;
	o->layout |= in.layout;
	if (in.count != 1)
		die("%s", "--inner takes no --count");
	if (!in.family)
		die("%s", "--inner needs --src and --dst");
	len = build_cut(&in);
	ip = mark_at("ip");
	if (len < ip)
		die("%s", "--inner --truncate cuts into its Ethernet header");
	memcpy(quoted, pkt.buf + ip, len - ip);
	o->quote = quoted;
	o->quote_len = len - ip;
	if (in.family != o->family)
		die("%s", "--inner must be of the error's family");
	if (!o->proto_is_icmp && o->proto != IPPROTO_ICMPV6)
		die("%s", "--inner is for ICMP errors (--proto icmp)");
}

int main(int argc, char **argv)
{
	struct pkt_opts o;
	FILE *f = stdout;
	unsigned long n;
	int err = 0, i, outer = argc;

	for (i = 1; i < argc && outer == argc; i++)
		if (!strcmp(argv[i], "--inner"))
			outer = i;
	parse_args(&o, outer, argv);
	if (outer < argc) {
		/* argv[outer] stands in for the program name */
		build_inner(&o, argc - outer, argv + outer);
	}
	build_cut(&o);
	if (o.layout) {
		print_layout();
		if (!o.out)
			return 0;
	}
	if (o.out && strcmp(o.out, "-")) {
		f = fopen(o.out, "wb");
		if (!f) {
			fprintf(stderr, "mseg-pkt: %s: %s\n", o.out, strerror(errno));
			return 1;
		}
	}
	/* --count: the same frame again with the stepped port one higher,
	 * every checksum computed afresh. */
	for (n = 0; n < o.count && !err; n++, (*o.stepped)++)
		err = write_frame(f, &o, build_cut(&o));
	if (f != stdout ? fclose(f) : fflush(f))
		err = 1;
	if (err)
		fprintf(stderr, "mseg-pkt: write failed\n");
	return err;
}
