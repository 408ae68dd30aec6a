# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""Random policies and random frames for the differential fuzzer.

Frames come in groups of one to three that share a flow (a reply, a later
fragment, an ICMP error quoting it, an echo from the other side), built
with every encapsulation mseg reads (VLAN tags, IPv4 options, IPv6
extension chains, fragments, ICMP errors with a quoted packet), then
mutated: random flags, lengths, versions, bounds crossed, a byte flipped,
cut at a random point.
"""
import ipaddress
import random
import struct

V4 = [ipaddress.IPv4Address(a) for a in
      ("10.0.0.1", "10.0.0.2", "10.0.1.1", "10.0.1.2", "10.9.0.1")]
V6 = [ipaddress.IPv6Address(a) for a in
      ("fd00::1", "fd00::2", "fd00:0:0:1::1", "fd00:0:0:1::2", "fe80::1")]
PORTS = (22, 53, 80, 443, 5001)
# docs/policy.md, "failsafes": the default list, as (protocol, port)
FAILSAFE_DEFAULT = frozenset({(6, 22), (6, 53), (17, 53), (17, 67), (17, 68), (17, 123)})
ACTIONS = ("allow", "deny", "log")


def rnd_addr(rng, fam):
    pool = V4 if fam == 4 else V6
    r = rng.random()
    if r < 0.85:
        return rng.choice(pool)
    if fam == 4:
        return ipaddress.IPv4Address(rng.getrandbits(32))
    if r < 0.92:
        # IPv4-mapped (dropped) or a multicast source (ND not exempt)
        return rng.choice([ipaddress.IPv6Address("::ffff:" + str(rng.choice(V4))),
                           ipaddress.IPv6Address("ff02::1"), ipaddress.IPv6Address("::")])
    return ipaddress.IPv6Address(rng.getrandbits(128))


def rnd_port(rng):
    return rng.choice(PORTS) if rng.random() < 0.7 else rng.randrange(1, 65536)


def policy(rng):
    """(mseg apply text, model.Policy arguments)"""
    default = rng.choice(("allow", "deny"))
    lines = ["default " + default]
    # the failsafes: no line (the default list), off, or a drawn list
    r = rng.random()
    failsafes = FAILSAFE_DEFAULT
    if r < 0.2:
        lines.append("failsafe off")
        failsafes = frozenset()
    elif r >= 0.5:
        failsafes = frozenset((rng.choice((6, 17)), rnd_port(rng)) for _ in range(rng.randrange(1, 6)))
        lines.append("failsafe set " + " ".join(
            "%s/%d" % ("tcp" if p == 6 else "udp", port) for p, port in sorted(failsafes)))
    exact, cidrs = {}, []
    for _ in range(rng.randrange(0, 20)):
        fam = rng.choice((4, 6))
        src, dst = rng.choice(V4 if fam == 4 else V6), rng.choice(V4 if fam == 4 else V6)
        if src == dst:
            continue
        shape = rng.randrange(4)
        proto = rng.choice(("tcp", "udp", "icmp"))
        num = {"tcp": 6, "udp": 17, "icmp": 1 if fam == 4 else 58}[proto]
        sport = dport = 0
        words = ["rule", "--src", str(src), "--dst", str(dst)]
        if shape == 0:
            num = 0  # the addresses only
        else:
            words += ["--proto", proto]
            if shape >= 2 and proto != "icmp":
                dport = rnd_port(rng)
                words += ["--dport", str(dport)]
            if shape == 3 and proto != "icmp":
                sport = rnd_port(rng)
                words += ["--sport", str(sport)]
        action = rng.choice(ACTIONS)
        key = (mapped16(src), mapped16(dst), num, sport, dport)
        if key in exact:
            continue
        exact[key] = action
        lines.append(" ".join(words + ["--action", action]))
    for _ in range(rng.randrange(0, 8)):
        fam = rng.choice((4, 6))
        a = rng.choice(V4 if fam == 4 else V6)
        plen = rng.choice((8, 16, 24, 32) if fam == 4 else (16, 48, 64, 128))
        net = ipaddress.ip_network("%s/%d" % (a, plen), strict=False)
        if any(n == net for n, _ in cidrs):
            continue
        action = rng.choice(ACTIONS)
        cidrs.append((net, action))
        lines.append("cidr %s --action %s" % (net, action))
    return "\n".join(lines) + "\n", (default, exact, cidrs, failsafes)


def mapped16(a):
    if a.version == 4:
        return b"\0" * 10 + b"\xff\xff" + a.packed
    return a.packed


class Spec:
    """One packet: every field a frame of it has."""

    def __init__(self, fam, src, dst, proto):
        self.fam, self.src, self.dst, self.proto = fam, src, dst, proto
        self.sport = self.dport = 0
        self.flags = 0x02
        self.seq = self.ack = 0
        self.doff = 5
        self.icmp_type = 8 if fam == 4 else 128
        self.icmp_code = 0
        self.icmp_id = 0
        self.payload = 0
        self.tags = []          # TPIDs, outermost first (VID 0)
        self.ip_opts = 0        # IPv4 option bytes (multiple of 4)
        self.ext = []           # IPv6: (type, length units)
        self.hop = 64
        self.frag_off = 0       # bytes
        self.mf = False
        self.ip_id = 0
        self.fragmentable = None  # bytes kept of a first fragment's L4 part
        self.quote = None       # Spec of the packet an ICMP error quotes
        self.quote_len = None
        self.version = None     # forced IP version nibble
        self.ihl = None         # forced IHL
        self.len_delta = 0      # forced IP length change

    def reply(self):
        r = Spec(self.fam, self.dst, self.src, self.proto)
        r.sport, r.dport = self.dport, self.sport
        r.tags, r.ext = list(self.tags), []
        return r


def l4_bytes(s):
    if s.proto == 6:
        opts = b"\x01" * (s.doff * 4 - 20) if s.doff > 5 else b""
        h = struct.pack("!HHIIBBHHH", s.sport, s.dport, s.seq, s.ack,
                        (s.doff & 0xF) << 4, s.flags, 65535, 0, 0) + opts
        return h + bytes(s.payload)
    if s.proto == 17:
        return struct.pack("!HHHH", s.sport, s.dport, 8 + s.payload, 0) + bytes(s.payload)
    if s.proto in (1, 58):
        if s.quote is not None:
            q = ip_packet(s.quote)
            if s.quote_len is not None:
                q = q[:s.quote_len]
            return struct.pack("!BBHI", s.icmp_type, s.icmp_code, 0, 1200) + q
        return struct.pack("!BBHHH", s.icmp_type, s.icmp_code, 0, s.icmp_id, 1) + bytes(s.payload)
    return bytes(s.payload)


def ext_bytes(s, upper):
    """The IPv6 extension headers of s, each pointing at the next."""
    out, nexts = b"", [t for t, _ in s.ext[1:]] + [upper]
    for (t, units), nxt in zip(s.ext, nexts):
        if t == 44:
            fo = (s.frag_off & 0xFFF8) | (1 if s.mf else 0)
            out += struct.pack("!BBHI", nxt, 0, fo, s.ip_id)
        elif t == 51:
            out += struct.pack("!BBHII", nxt, 2, 0, 0x100, 1) + b"\0" * 4
        else:
            n = 8 * (units + 1)
            body = bytes([1, n - 4]) + b"\0" * (n - 4) if n - 2 >= 2 else b""
            out += bytes([nxt, units]) + body[:n - 2]
    return out


def ip_packet(s):
    """The IP packet of s (header(s) and upper layer), fragment applied."""
    l4 = l4_bytes(s)
    if s.fragmentable is not None:
        l4 = l4[:s.fragmentable]
    if s.frag_off and s.fam == 4:
        l4 = bytes(max(0, len(l4) - 0))  # a later fragment: data, no header
    if s.fam == 4:
        hl = 20 + s.ip_opts
        ihl = s.ihl if s.ihl is not None else hl // 4
        ver = s.version if s.version is not None else 4
        fo = (s.frag_off // 8) | (0x2000 if s.mf else 0)
        tot = (hl + len(l4) + s.len_delta) & 0xFFFF
        h = struct.pack("!BBHHHBBH4s4s", (ver << 4) | (ihl & 0xF), 0, tot, s.ip_id & 0xFFFF,
                        fo, s.hop, s.proto, 0, s.src.packed, s.dst.packed)
        # checksums stay 0: the classifier never reads them
        h += b"\x01" * s.ip_opts
        return h + l4
    first = s.ext[0][0] if s.ext else s.proto
    ext = ext_bytes(s, s.proto)
    if s.frag_off and any(t == 44 for t, _ in s.ext):
        # a later fragment: what follows the fragment header is data
        cut = 0
        for t, units in s.ext:
            cut += 8 if t == 44 else (16 if t == 51 else 8 * (units + 1))
            if t == 44:
                break
        ext = ext[:cut]
        l4 = bytes(len(l4) or 8)
    ver = s.version if s.version is not None else 6
    plen = (len(ext) + len(l4) + s.len_delta) & 0xFFFF
    h = struct.pack("!IHBB16s16s", ver << 28, plen, first, s.hop, s.src.packed, s.dst.packed)
    return h + ext + l4


def frame(s):
    eth = b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01"
    for tpid in s.tags:
        eth += struct.pack("!HH", tpid, 0)
    return eth + struct.pack("!H", 0x0800 if s.fam == 4 else 0x86DD) + ip_packet(s)


def rnd_spec(rng, fam=None, proto=None):
    fam = fam or rng.choice((4, 6))
    proto = proto or rng.choice((6, 6, 17, 17, 1, 58, 47))
    if proto in (1, 58):
        proto = 1 if fam == 4 else 58
        if rng.random() < 0.05:
            proto = 58 if fam == 4 else 1  # the other family's ICMP
    s = Spec(fam, rnd_addr(rng, fam), rnd_addr(rng, fam), proto)
    s.sport, s.dport = rnd_port(rng), rnd_port(rng)
    s.flags = rng.choice((0x02, 0x02, 0x12, 0x10, 0x18, 0x11, 0x01, 0x00, rng.randrange(64) & ~0x04))
    s.seq, s.ack = rng.getrandbits(32), rng.getrandbits(32)
    s.payload = rng.choice((0, 0, 4, 16, 100))
    s.ip_id = rng.randrange(65536)
    s.hop = rng.choice((64, 255, 1, 254, 2))
    if proto == 6 and rng.random() < 0.15:
        s.doff = rng.choice((0, 4, 6, 8, 15))
    if proto in (1, 58):
        req, rep = (8, 0) if fam == 4 else (128, 129)
        s.icmp_type = rng.choice((req, req, rep, rng.randrange(256)) + (
            (3, 11, 13) if fam == 4 else (1, 2, 3, 133, 135, 136, 131, 143, 200)))
        s.icmp_id = rnd_port(rng)
    r = rng.random()
    if r < 0.3:
        n = rng.choice((1, 1, 2, 3, 4, 5, 6))
        s.tags = [rng.choice((0x8100, 0x88A8)) for _ in range(n)]
    if fam == 4 and rng.random() < 0.15:
        s.ip_opts = 4 * rng.randrange(1, 11)
    if fam == 6 and rng.random() < 0.35:
        n = rng.choice((1, 2, 3, 8, 11, 12, 13, 14))
        kinds = [(0, rng.choice((0, 0, 1, 20)))]
        for _ in range(n - 1):
            t = rng.choice((60, 60, 43, 51, 44))
            kinds.append((t, rng.choice((0, 0, 1, 3)) if t in (60, 43) else 0))
        s.ext = kinds
    return s


def mutate(rng, s):
    """Rare field mutations; the frame-level ones come after building."""
    r = rng.random()
    if r < 0.03:
        s.version = rng.randrange(16)
    elif r < 0.06 and s.fam == 4:
        s.ihl = rng.randrange(16)
    elif r < 0.10:
        s.len_delta = rng.choice((-30, -8, -1, 1, 8, 400))


def fragment_first(rng, s):
    s.mf = True
    if s.fam == 6 and not any(t == 44 for t, _ in s.ext):
        s.ext = s.ext + [(44, 0)]
    s.fragmentable = rng.choice((0, 8, 16, 24, 32, 48, 64, 200))


def fragment_later(rng, s, off=None):
    s.mf = rng.random() < 0.5
    if s.fam == 6 and not any(t == 44 for t, _ in s.ext):
        s.ext = s.ext + [(44, 0)]
    s.frag_off = off if off is not None else rng.choice((8, 16, 24, 32, 64, 1480))


def group(rng):
    """One to three frames of one flow, before frame-level mutation."""
    kind = rng.random()
    a = rnd_spec(rng)
    if kind < 0.25:
        mutate(rng, a)
        return [a]
    if kind < 0.55:
        b = a.reply()
        b.flags = rng.choice((0x12, 0x10, 0x18, 0x11, 0x02))
        b.icmp_type = a.icmp_type ^ 8 if a.proto == 1 else (a.icmp_type ^ 1 if a.proto == 58 else 0)
        if a.proto in (1, 58):
            b.icmp_id = a.icmp_id
            if rng.random() < 0.3:
                b.icmp_type = a.icmp_type  # a request from the other side
        c = rnd_spec(rng, a.fam, a.proto)
        c.src, c.dst, c.sport, c.dport = a.src, a.dst, a.sport, a.dport
        c.icmp_id = a.icmp_id
        out = [a, b, c][:rng.choice((2, 3))]
        for s in out:
            mutate(rng, s)
        return out
    if kind < 0.75:
        # fragments of one datagram, sometimes the later one first or alone
        a.ip_id = rng.randrange(65536)
        b = Spec(a.fam, a.src, a.dst, a.proto)
        b.ext, b.tags, b.ip_id = [e for e in a.ext if e[0] == 0], list(a.tags), a.ip_id
        b.payload = 40
        fragment_first(rng, a)
        fragment_later(rng, b)
        if rng.random() < 0.15:
            b.ip_id ^= 1
        out = [a, b] if rng.random() < 0.8 else ([b, a] if rng.random() < 0.5 else [b])
        for s in out:
            if rng.random() < 0.2:
                mutate(rng, s)
        return out
    if kind < 0.92:
        # a flow, then an ICMP error about it (or about something close)
        a.tags, a.ext = [], []
        icmp = 1 if a.fam == 4 else 58
        e = Spec(a.fam, rnd_addr(rng, a.fam), a.src, icmp)
        e.icmp_type = rng.choice((3, 11, 12, 5, 4) if a.fam == 4 else (1, 2, 3, 4))
        q = Spec(a.fam, a.src, a.dst, a.proto)
        q.sport, q.dport, q.flags, q.icmp_type, q.icmp_id = a.sport, a.dport, a.flags, a.icmp_type, a.icmp_id
        q.payload = rng.choice((0, 8, 100))
        r = rng.random()
        if r < 0.15:
            q.src, q.dst, q.sport, q.dport = a.dst, a.src, a.dport, a.sport
            e.dst = a.dst
        elif r < 0.25:
            e.dst = rnd_addr(rng, a.fam)
        elif r < 0.35:
            q.sport ^= 1
        elif r < 0.45 and a.fam == 6:
            q.ext = [(60, 0), (44, 0)] if rng.random() < 0.5 else [(44, 0)]
            q.frag_off = rng.choice((0, 0, 8))
        elif r < 0.5 and a.fam == 4:
            q.frag_off = 8
        e.quote = q
        if rng.random() < 0.2:
            e.quote_len = rng.randrange(0, 60)
        return [a, e]
    # ND and MLD, and their impostors
    fam = 6 if rng.random() < 0.85 else 4
    s = Spec(fam, rnd_addr(rng, fam), rnd_addr(rng, fam), 58)
    s.icmp_type = rng.choice((133, 134, 135, 136, 137, 130, 131, 132, 143))
    s.hop = rng.choice((255, 255, 1, 1, 64))
    if rng.random() < 0.3 and fam == 6:
        s.src = ipaddress.IPv6Address("fe80::%x" % rng.randrange(1, 65536))
    if rng.random() < 0.3 and fam == 6:
        s.ext = [(0, 0)]
    if rng.random() < 0.1 and fam == 6:
        fragment_first(rng, s)
    return [s]


def frames(rng, n):
    """About n frames, as a list of groups of frames (bytes)."""
    out, count = [], 0
    while count < n:
        g = []
        for s in group(rng):
            f = frame(s)
            if rng.random() < 0.04:
                i = rng.randrange(12, min(len(f), 96))
                f = f[:i] + bytes([f[i] ^ (1 << rng.randrange(8))]) + f[i + 1:]
            if rng.random() < 0.12:
                f = f[:rng.randrange(14, len(f) + 1)]
            elif rng.random() < 0.05:
                f += bytes(rng.randrange(1, 40))  # Ethernet padding
            g.append(f)
        out.append(g)
        count += len(g)
    return out
