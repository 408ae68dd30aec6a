# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""Filters of the mseg role: the fleet's policy as one host's ruleset, and
Prometheus' file_sd target list.

The policy (group_vars/all.yml, variable mseg_policy):

    default: allow|deny
    failsafe: default|"off"|[PROTO/PORT...]   # docs/policy.md, failsafes;
                                   # absent: mseg's default list
    segments:                      # named sets of addresses
      NAME: {prefixes: [CIDR...], groups: [INVENTORY GROUP...]}
    rules:                         # between segments
      - {from: SEG, to: SEG, proto: tcp|udp|icmp|any, port: N, action: allow|deny|log}
    cidrs:                         # prefix rules (mseg cidr)
      - {segment: SEG, action: allow|deny|log, priority: N}

A segment's addresses are its prefixes plus mseg_address (and mseg_address6)
of every host in its inventory groups. Format "save" (the seed's ruleset
lines) has no segments, so a rule between two segments becomes one exact
rule for each pair of host addresses (/32, /128) of the same family; a
segment rule whose segment holds a wider prefix is refused with its name.

Format "segments" writes mseg's policy language (docs/policy.md): a
`segment add NAME PREFIX...` line per segment that mseg can hold as one,
and a rule between two such segments as one `rule add --src A --dst B`
line. In mseg an address belongs to the segment of its longest matching
prefix, so a segment here is written as an mseg segment only when none of
its prefixes overlaps a prefix of another segment (a host in both "fleet"
and "web" is in two of this policy's segments, in one of mseg's); a rule
with a side that is not is written per pair of prefixes, of the same
family, as `rule add --src PREFIX --dst PREFIX` lines (wider prefixes
included).
"""
import ipaddress

from ansible.errors import AnsibleFilterError

ACTIONS = ("allow", "deny", "log")
PROTOS = ("tcp", "udp", "icmp", "any")


def _err(msg):
    raise AnsibleFilterError("mseg policy: " + msg)


def _net(text, where):
    try:
        return ipaddress.ip_network(str(text), strict=True)
    except ValueError as e:
        _err("%s: %s" % (where, e))


def segment_prefixes(policy, groups, hostvars):
    """{segment name: [ip_network...]}, sorted, without duplicates."""
    out = {}
    for name, seg in (policy.get("segments") or {}).items():
        seg = seg or {}
        unknown = set(seg) - {"prefixes", "groups"}
        if unknown:
            _err("segment %s: unknown keys %s" % (name, sorted(unknown)))
        nets = [_net(p, "segment %s" % name) for p in seg.get("prefixes") or []]
        for group in seg.get("groups") or []:
            if group not in groups:
                _err("segment %s: no inventory group %s" % (name, group))
            for host in groups[group]:
                hv = hostvars[host]
                for key in ("mseg_address", "mseg_address6"):
                    addr = hv.get(key)
                    if addr:
                        nets.append(_net(addr, "%s of host %s" % (key, host)))
        out[name] = sorted(set(nets), key=lambda n: (n.version, n.network_address, n.prefixlen))
    return out


def _is_host(net):
    return net.prefixlen == net.max_prefixlen


def _exclusive(segs):
    """The segments none of whose prefixes overlaps another segment's."""
    out = set()
    for name, nets in segs.items():
        others = [n for other, ns in segs.items() if other != name for n in ns]
        if nets and not any(a.version == b.version and a.overlaps(b) for a in nets for b in others):
            out.add(name)
    return out


def _sel(net):
    return str(net.network_address) if _is_host(net) else str(net)


def _rule_lines(policy, segs, fmt="save"):
    lines = []
    whole = _exclusive(segs) if fmt == "segments" else set()
    for i, rule in enumerate(policy.get("rules") or [], 1):
        where = "rule %d (%s -> %s)" % (i, rule.get("from"), rule.get("to"))
        for key in ("from", "to"):
            if rule.get(key) not in segs:
                _err("%s: no segment %r" % (where, rule.get(key)))
        action = rule.get("action")
        if action not in ACTIONS:
            _err("%s: action must be one of %s" % (where, "|".join(ACTIONS)))
        proto = rule.get("proto", "any")
        if proto not in PROTOS:
            _err("%s: proto must be one of %s" % (where, "|".join(PROTOS)))
        port = rule.get("port")
        if port is not None and (proto not in ("tcp", "udp") or not 1 <= int(port) <= 65535):
            _err("%s: a port needs proto tcp or udp and 1..65535" % where)
        opts = []
        if proto != "any":
            opts += ["--proto", proto]
        if port is not None:
            opts += ["--dport", str(int(port))]
        opts += ["--action", action]
        if fmt == "segments":
            if rule["from"] in whole and rule["to"] in whole:
                lines.append(" ".join(["rule", "add", "--src", rule["from"], "--dst", rule["to"]] + opts))
                continue
            for src in segs[rule["from"]]:
                for dst in segs[rule["to"]]:
                    if src.version == dst.version and not (src == dst and _is_host(src)):
                        lines.append(" ".join(["rule", "add", "--src", _sel(src), "--dst", _sel(dst)] + opts))
            continue
        for seg in (rule["from"], rule["to"]):
            wide = [str(n) for n in segs[seg] if not _is_host(n)]
            if wide:
                _err("%s: segment %s holds %s; today's ruleset format takes host "
                     "addresses only (segments of the policy language, 3/6, take prefixes)"
                     % (where, seg, ", ".join(wide)))
        for src in segs[rule["from"]]:
            for dst in segs[rule["to"]]:
                if src.version != dst.version or src == dst:
                    continue
                words = ["rule", "--src", str(src.network_address), "--dst", str(dst.network_address)]
                lines.append(" ".join(words + opts))
    return lines


def _cidr_lines(policy, segs):
    lines = []
    for i, c in enumerate(policy.get("cidrs") or [], 1):
        where = "cidr rule %d (%s)" % (i, c.get("segment"))
        if c.get("segment") not in segs:
            _err("%s: no segment %r" % (where, c.get("segment")))
        if c.get("action") not in ACTIONS:
            _err("%s: action must be one of %s" % (where, "|".join(ACTIONS)))
        for net in segs[c["segment"]]:
            words = ["cidr", str(net), "--action", c["action"]]
            if c.get("priority") is not None:
                words += ["--priority", str(int(c["priority"]))]
            lines.append(" ".join(words))
    return lines


def _failsafe_line(policy):
    """The policy's failsafe statement, or None for mseg's default list.
    YAML reads a bare off as false, so false means off too."""
    fs = policy.get("failsafe", "default")
    if fs == "default":
        return None
    if fs is False or fs == "off" or fs == []:
        return "failsafe off"
    if not isinstance(fs, list):
        _err('failsafe must be default, "off" or a list of PROTO/PORT')
    for item in fs:
        proto, _, port = str(item).partition("/")
        if proto not in ("tcp", "udp") or not port.isdigit() or not 1 <= int(port) <= 65535:
            _err("failsafe %r: must be tcp/PORT or udp/PORT" % (item,))
    return "failsafe set " + " ".join(str(i) for i in fs)


def mseg_ruleset(policy, groups, hostvars, fmt="save"):
    """The policy as the lines of a ruleset file, in a stable order."""
    if fmt not in ("save", "segments"):
        _err("unknown ruleset format %r (save or segments)" % fmt)
    policy = policy or {}
    default = policy.get("default", "allow")
    if default not in ("allow", "deny"):
        _err("default must be allow or deny")
    segs = segment_prefixes(policy, groups, hostvars)
    lines = ["default " + default]
    failsafe = _failsafe_line(policy)
    if failsafe:
        lines.append(failsafe)
    if fmt == "segments":
        whole = _exclusive(segs)
        for name, nets in sorted(segs.items()):
            if name in whole:
                lines.append("segment add %s %s" % (name, " ".join(str(n) for n in nets)))
    seen = set()
    for line in _rule_lines(policy, segs, fmt) + _cidr_lines(policy, segs):
        if line not in seen:
            seen.add(line)
            lines.append(line)
    return lines


def mseg_file_sd(host_vars, names, port):
    """Prometheus file_sd: one target group per host."""
    out = []
    for name, hv in zip(names, host_vars):
        addr = hv.get("mseg_address") or hv.get("ansible_host") or name
        host = "[%s]" % addr if ":" in str(addr) else str(addr)
        out.append({
            "targets": ["%s:%d" % (host, int(port))],
            "labels": {
                "instance": name,
                "mseg_policy_group": str(hv.get("mseg_policy_group") or "fleet"),
            },
        })
    return out


class FilterModule:
    def filters(self):
        return {"mseg_ruleset": mseg_ruleset, "mseg_file_sd": mseg_file_sd}
