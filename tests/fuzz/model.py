# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""An independent model of mseg's data path, written from docs/DESIGN.md
("Data path, per packet", "TCP state machine", "Counters"), not from the
BPF code: it reads the frame's bytes itself and says what the classifier
must do with it and which counters that moves.

Frames run in groups that start from an empty session and fragment table
(mseg-testrun's "-" lines), under one policy and one mode (loose or strict)
per round. A group never holds a TCP packet after an RST, so no session of
a group ever reaches CLOSE or TIME_WAIT: a packet of a live session always
gets the session's verdict, but for one thing the model does not decide:
in strict mode the TCP tracker drops a segment outside the window or that
fits no state ("TCP state machine": nf_conntrack's window tracking, which
the model does not repeat). Such a segment is `pending`: the model counts it
passed, and the caller settles it with the verdict the classifier gave. The
tracker may also count such a segment `invalid`: `tracked` bounds how many.
"""
import ipaddress
import struct

PASS, SHOT = 0, 2
ETH_IP, ETH_IP6 = 0x0800, 0x86DD
VLAN_TPIDS = (0x8100, 0x88A8)
TCP, UDP, ICMP, ICMP6 = 6, 17, 1, 58
EXT_HDRS = (0, 43, 44, 51, 60)  # hop-by-hop, routing, fragment, AH, destination
ICMP4_ERRORS = (3, 4, 5, 11, 12)
ND = range(133, 138)
MLD = (130, 131, 132, 143)
SYN, RST, ACK, FIN = 0x02, 0x04, 0x10, 0x01

# the counters the model keeps, as mseg_stats names them
COUNTERS = ("total", "allowed", "denied", "dropped", "non_ip", "unjudged",
            "malformed", "strict_drop", "vlan_limit", "v4_mapped", "exthdr_limit",
            "frag_tiny", "frag_overlap", "fragments", "exempt", "related",
            "session_hit", "policy_hit", "ip_range_hit", "default_hit",
            "new_session", "invalid")


class Refused(Exception):
    """The frame is refused before any decision: dropped under a reason."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class Pkt:
    """What the parser read of a frame."""

    def __init__(self):
        self.family = 0
        self.src = self.dst = b""
        self.proto = 0
        self.sport = self.dport = 0
        self.flags = 0
        self.frag = "none"  # none | first | later
        self.frag_id = 0
        self.frag_off = 0
        self.hop_limit = 0
        self.icmp = None  # echo_req | echo_rep | error | other
        self.exempt = False
        self.l4_off = self.l4_end = 0


def mapped(a4):
    return b"\0" * 10 + b"\xff\xff" + a4


def is_v4_mapped(a16):
    return a16[:12] == b"\0" * 10 + b"\xff\xff"


class Malformed(Exception):
    pass


class Unread(Exception):
    pass


def l4_short(p):
    if p.frag == "first":
        raise Refused("frag_tiny")
    raise Malformed()


def later_fragment(p, off_bytes):
    p.frag = "later"
    p.frag_off = off_bytes
    if p.proto == TCP and off_bytes < 20:
        raise Refused("frag_overlap")


def walk_ext(f, off, end, nexthdr, max_hdrs):
    """The extension chain: (upper-layer offset, its protocol, fragment
    kind, id, offset); raises Refused (too long) or Malformed (runs past
    `end`; the caller tells a tiny first fragment), with `seen` holding the
    fragment kind found so far."""
    frag, frag_id = "none", 0
    for i in range(max_hdrs + 1):
        if nexthdr not in EXT_HDRS:
            return off, nexthdr, frag, frag_id, 0
        if i == max_hdrs:
            raise Refused("exthdr_limit")
        if off + 8 > end:
            e = Malformed()
            e.frag = frag
            raise e
        h = f[off:off + 8]
        if nexthdr == 44:
            fo = struct.unpack_from("!H", h, 2)[0]
            frag_id = struct.unpack_from("!I", h, 4)[0]
            if fo & 0xFFF8:
                return off + 8, h[0], "later", frag_id, fo & 0xFFF8
            if fo & 1:
                frag = "first"
            length = 8
        elif nexthdr == 51:
            length = (h[1] + 2) * 4
        else:
            length = (h[1] + 1) * 8
        nexthdr = h[0]
        off += length
    raise AssertionError("unreachable")


def parse_l4(f, p, off, l4_len):
    p.l4_off, p.l4_end = off, off + l4_len
    if p.proto == TCP:
        if l4_len < 20:
            l4_short(p)
        doff = (f[off + 12] >> 4) * 4
        if doff < 20:
            raise Malformed()
        if doff > l4_len:
            l4_short(p)
        p.sport, p.dport = struct.unpack_from("!HH", f, off)
        p.flags = f[off + 13] & 0x1F
    elif p.proto == UDP:
        if l4_len < 8:
            l4_short(p)
        p.sport, p.dport = struct.unpack_from("!HH", f, off)
    elif p.proto in (ICMP, ICMP6):
        if l4_len < 8:
            l4_short(p)
        typ = f[off]
        ident = struct.unpack_from("!H", f, off + 4)[0]
        if p.family == 4 and p.proto == ICMP:
            if typ in (8, 0):
                echo(p, typ == 8, ident)
            else:
                p.icmp = "error" if typ in ICMP4_ERRORS else "other"
        elif p.family == 6 and p.proto == ICMP6:
            if typ in (128, 129):
                echo(p, typ == 128, ident)
            else:
                p.icmp = "error" if typ < 128 else "other"
                p.exempt = nd_mld(p, typ)


def echo(p, request, ident):
    p.icmp = "echo_req" if request else "echo_rep"
    p.sport, p.dport = (ident, 0) if request else (0, ident)


def nd_mld(p, typ):
    """ND from the link (hop limit 255, source not multicast), MLD from the
    link (hop limit 1, link-local source); never a fragment."""
    if p.frag != "none":
        return False
    if typ in ND:
        return p.hop_limit == 255 and p.src[0] != 0xFF
    if typ in MLD:
        return p.hop_limit == 1 and p.src[0] == 0xFE and (p.src[1] & 0xC0) == 0x80
    return False


def parse_ipv4(f, off, p):
    if len(f) < off + 20:
        raise Unread()
    p.family = 4
    p.src, p.dst = mapped(f[off + 12:off + 16]), mapped(f[off + 16:off + 20])
    p.proto = f[off + 9]
    p.hop_limit = f[off + 8]
    p.frag_id = struct.unpack_from("!H", f, off + 4)[0]
    fo = struct.unpack_from("!H", f, off + 6)[0]
    hlen = (f[off] & 0xF) * 4
    tot = struct.unpack_from("!H", f, off + 2)[0]
    if f[off] >> 4 != 4 or hlen < 20 or tot < hlen or off + tot > len(f):
        raise Malformed()
    if fo & 0x1FFF:
        later_fragment(p, (fo & 0x1FFF) * 8)
        return
    if fo & 0x2000:
        p.frag = "first"
    parse_l4(f, p, off + hlen, tot - hlen)


def parse_ipv6(f, off, p, bounds):
    if len(f) < off + 40:
        raise Unread()
    p.family = 6
    p.src, p.dst = f[off + 8:off + 24], f[off + 24:off + 40]
    p.hop_limit = f[off + 7]
    nexthdr = f[off + 6]
    end = off + 40 + struct.unpack_from("!H", f, off + 4)[0]
    if f[off] >> 4 != 6:
        raise Malformed()
    if is_v4_mapped(p.src) or is_v4_mapped(p.dst):
        raise Refused("v4_mapped")
    if end > len(f):
        raise Malformed()
    off += 40
    if nexthdr in EXT_HDRS:
        try:
            off, nexthdr, p.frag, p.frag_id, fo = walk_ext(f, off, end, nexthdr,
                                                            bounds["MSEG_MAX_EXT_HDRS"])
        except Malformed as e:
            p.frag = e.frag
            l4_short(p)
        if p.frag == "later":
            p.proto = nexthdr
            later_fragment(p, fo)
            return
        if off > end:
            l4_short(p)
    p.proto = nexthdr
    parse_l4(f, p, off, end - off)


def parse(f, bounds):
    """("ok" | "non_ip" | "malformed" | "unread", Pkt); raises Refused."""
    p = Pkt()
    if len(f) < 14:
        return "unread", p
    proto = struct.unpack_from("!H", f, 12)[0]
    off, tags = 14, 0  # a test run has no tag in skb metadata
    if proto in VLAN_TPIDS:
        while proto in VLAN_TPIDS and tags < bounds["MSEG_MAX_VLANS"]:
            if len(f) < off + 4:
                return "unread", p
            proto = struct.unpack_from("!H", f, off + 2)[0]
            off += 4
            tags += 1
        if proto in VLAN_TPIDS:
            raise Refused("vlan_limit")
    try:
        if proto == ETH_IP:
            parse_ipv4(f, off, p)
        elif proto == ETH_IP6:
            parse_ipv6(f, off, p, bounds)
        else:
            return "non_ip", p
    except Malformed:
        return "malformed", p
    except Unread:
        return "unread", p
    return "ok", p


def quoted_flow(f, p, bounds):
    """The flow an ICMP error quotes, as (family, src, dst, proto, sport,
    dport), or None when it quotes nothing a session can be about."""
    off, end = p.l4_off + 8, p.l4_end
    if p.family == 4:
        if off + 20 > end:
            return None
        ihl = (f[off] & 0xF) * 4
        if f[off] >> 4 != 4 or ihl < 20:
            return None
        if struct.unpack_from("!H", f, off + 6)[0] & 0x1FFF:
            return None
        src, dst = mapped(f[off + 12:off + 16]), mapped(f[off + 16:off + 20])
        proto, l4 = f[off + 9], off + ihl
    else:
        if off + 40 > end:
            return None
        if f[off] >> 4 != 6:
            return None
        src, dst = f[off + 8:off + 24], f[off + 24:off + 40]
        proto, l4 = f[off + 6], off + 40
        if proto in EXT_HDRS:
            try:
                l4, proto, frag, _, _ = walk_ext(f, l4, end, proto, bounds["MSEG_MAX_EXT_HDRS"])
            except (Malformed, Refused):
                return None
            if frag == "later":
                return None
    if l4 + 8 > end:
        return None
    sport = dport = 0
    if proto in (TCP, UDP):
        sport, dport = struct.unpack_from("!HH", f, l4)
    elif (p.family == 4 and proto == ICMP) or (p.family == 6 and proto == ICMP6):
        typ, ident = f[l4], struct.unpack_from("!H", f, l4 + 4)[0]
        req, rep = (8, 0) if p.family == 4 else (128, 129)
        if typ == req:
            sport = ident
        elif typ == rep:
            dport = ident
        elif (typ in ICMP4_ERRORS) if p.family == 4 else typ < 128:
            return None
    return (p.family, src, dst, proto, sport, dport)


def session_key(fam, src, sport, dst, dport, proto):
    """Direction-normalised: the endpoint that sorts first (address as a
    128-bit number, then port) is "lo". Returns (key, sender_is_hi)."""
    a, b = (src, sport), (dst, dport)
    hi = not (a < b)
    lo_ep, hi_ep = (b, a) if hi else (a, b)
    return (fam, proto, lo_ep, hi_ep), hi


class Policy:
    """docs/DESIGN.md, data path 3: a failsafe (docs/policy.md: the
    protocol and destination port, any addresses) first, then exact rules
    (the packet's tuple, then sport 0, then both ports 0, then protocol 0
    too), the longest CIDR prefix containing the destination, else the
    source, else the default."""

    def __init__(self, default, exact, cidrs, failsafes=frozenset()):
        self.default = default      # "allow" | "deny"
        self.exact = exact          # {(src16, dst16, proto, sport, dport): action}
        self.cidrs = cidrs          # [(ip_network, action)]
        self.failsafes = failsafes  # {(proto, dport)}

    def _exact(self, src, dst, proto, sport, dport):
        tries = [(src, dst, proto, sport, dport)]
        if sport:
            sport = 0
            tries.append((src, dst, proto, sport, dport))
        if dport:
            dport = 0
            tries.append((src, dst, proto, sport, dport))
        tries.append((src, dst, 0, 0, 0))
        for k in tries:
            if k in self.exact:
                return self.exact[k]
        return None

    def _cidr(self, fam, a16):
        addr = ipaddress.IPv4Address(a16[12:]) if fam == 4 else ipaddress.IPv6Address(a16)
        best = None
        for net, action in self.cidrs:
            if net.version == fam and addr in net and (best is None or net.prefixlen > best[0]):
                best = (net.prefixlen, action)
        return best[1] if best else None

    def decide(self, fam, src, dst, proto, sport, dport):
        """(action, counter)"""
        if proto in (6, 17) and (proto, dport) in self.failsafes:
            return "allow", "policy_hit"  # a failsafe is a rule
        a = self._exact(src, dst, proto, sport, dport)
        if a:
            return a, "policy_hit"
        a = self._cidr(fam, dst) or self._cidr(fam, src)
        if a:
            return a, "ip_range_hit"
        return self.default, "default_hit"


class Classifier:
    """The classifier's decisions over one round: one policy, one mode."""

    def __init__(self, policy, strict, bounds):
        self.policy = policy
        self.strict = strict
        self.bounds = bounds
        self.count = dict.fromkeys(COUNTERS, 0)
        self.count["tracked"] = 0  # segments the TCP tracker judged (may be invalid)
        self.pending = False
        self.reset()

    def settle(self, verdict):
        """The classifier's verdict on a pending segment (strict mode)."""
        if self.pending and verdict == SHOT:
            self.count["allowed"] -= 1
            self.count["dropped"] += 1
        self.pending = False

    def reset(self):
        self.sessions = {}  # key -> action
        self.frags = {}     # (family, src, dst, id, proto) -> (sport, dport, proto)

    def _bump(self, name):
        self.count[name] += 1

    def _drop(self):
        self._bump("dropped")
        return SHOT

    def _judge(self, fam, src, dst, proto, sport, dport, key=None):
        """A new flow: decided by the policy; opens a session under `key`."""
        action, by = self.policy.decide(fam, src, dst, proto, sport, dport)
        self._bump(by)
        if action == "deny":
            self._bump("denied")
            return SHOT
        if key is not None:
            self.sessions[key] = action
            self._bump("new_session")
        self._bump("allowed")
        return PASS

    def frame(self, f):
        self.pending = False
        self._bump("total")
        try:
            kind, p = parse(f, self.bounds)
        except Refused as r:
            self._bump(r.reason)
            return self._drop()
        if kind == "non_ip":
            self._bump("non_ip")
            return PASS
        if kind in ("malformed", "unread"):
            self._bump("malformed")
            if self.strict:
                self._bump("strict_drop")
                return self._drop()
            if kind == "unread":
                self._bump("unjudged")
                return PASS
            # judged by its addresses and protocol, never tracked
            return self._judge(p.family, p.src, p.dst, p.proto, 0, 0)
        if p.exempt:
            self._bump("exempt")
            self._bump("allowed")
            return PASS
        if p.icmp == "error":
            q = quoted_flow(f, p, self.bounds)
            if q is not None and q[1] == p.dst:
                key, _ = session_key(q[0], q[1], q[4], q[2], q[5], q[3])
                action = self.sessions.get(key)
                if action is not None and action != "deny":
                    self._bump("related")
                    self._bump("allowed")
                    return PASS
            return self._judge(p.family, p.src, p.dst, p.proto, 0, 0)
        trackable, ports = True, True
        fkey = (p.family, p.src, p.dst, p.frag_id, p.proto if p.family == 4 else 0)
        if p.frag == "first":
            self.frags[fkey] = (p.sport, p.dport, p.proto)
        elif p.frag == "later":
            self._bump("fragments")
            trackable = False
            if fkey in self.frags:
                p.sport, p.dport, p.proto = self.frags[fkey]
            else:
                ports = False
        key, sender_hi = session_key(p.family, p.src, p.sport, p.dst, p.dport, p.proto)
        if ports and key in self.sessions:
            self._bump("session_hit")
            if self.sessions[key] == "deny":
                self._bump("denied")
                return SHOT
            if p.proto == TCP and p.frag != "later":
                self._bump("tracked")
                self.pending = self.strict
            self._bump("allowed")
            return PASS
        if p.icmp == "echo_rep" and trackable:
            # a reply answers a request: it never opens a session
            self._bump("invalid")
            if self.strict:
                self._bump("strict_drop")
                return self._drop()
            trackable = False
        t = (p.family, p.src, p.dst, p.proto, p.sport, p.dport)
        if trackable and p.proto == TCP:
            first = tcp_first_state(p.flags)
            if first is None or (first != "SYN_SENT" and self.strict):
                self._bump("invalid")
                if self.strict:
                    self._bump("strict_drop")
                    return self._drop()
                trackable = False
            elif first == "ESTABLISHED":
                t = pickup_tuple(self.policy, t)
        return self._judge(*t, key=key if trackable else None)


def pickup_tuple(policy, t):
    """docs/DESIGN.md, "TCP state machine": a connection picked up mid-stream
    is oriented from the side the policy lets open it; when both or neither
    may, from the side on the higher port."""
    fam, src, dst, proto, sport, dport = t
    rev = (fam, dst, src, proto, dport, sport)
    own = policy.decide(*t)[0] != "deny"
    back = policy.decide(*rev)[0] != "deny"
    if (own == back and sport >= dport) or (own != back and own):
        return t
    return rev


def tcp_first_state(flags):
    """docs/DESIGN.md, "TCP state machine": the state of a connection first
    seen with this packet, or None when it cannot start one: a SYN, or a
    plain ACK picked up mid-stream; never a SYN+ACK."""
    f = flags & (SYN | ACK | FIN | RST)
    return {SYN: "SYN_SENT", ACK: "ESTABLISHED"}.get(f)


def check_invariants(c):
    """docs/DESIGN.md, "Counters": one packet, one decision."""
    refused = ("strict_drop", "vlan_limit", "v4_mapped", "exthdr_limit",
               "frag_tiny", "frag_overlap")
    decisions = ("session_hit", "policy_hit", "ip_range_hit", "default_hit",
                 "related", "exempt")
    out = c["total"] - sum(c[k] for k in ("allowed", "denied", "dropped", "non_ip", "unjudged"))
    dec = (c["total"] - c["non_ip"] - c["unjudged"] - sum(c[k] for k in refused)
           - sum(c[k] for k in decisions))
    return out, dec
