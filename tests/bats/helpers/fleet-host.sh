#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# fleet-host.sh DIR: become one host of the lab fleet (helpers/fleet.bash).
# Started by `ip netns exec HOSTNS unshare --mount --propagation private`, so
# it runs in the host's network namespace and in a mount namespace of its
# own, where it gives the host a root of its own on top of the machine's:
#
#   /usr /etc /var  overlays of the machine's (changes go to a tmpfs), so
#                   `apt-get install ./mseg.deb` installs into this host only,
#                   with its own dpkg database and its own /etc/mseg
#   /run            a fresh tmpfs (no systemd here: maintainer scripts see none)
#   /sys/fs/bpf     the host's own bpffs (DIR/bpffs, mounted by fleet.bash)
#
# then becomes the host's sshd (exec, so its pid is the host's "init" for
# nsenter). Everything here vanishes with the mount namespace.
set -euo pipefail

main() {
  local dir=$1 t d
  t=$dir/root
  mkdir -p "$t"
  # The host's changes, bounded in size, gone with the namespace.
  mount -t tmpfs -o size=512m,mode=0755 "mseg-fleet" "$t"
  for d in usr etc var; do
    mkdir -p "$t/$d.upper" "$t/$d.work"
    mount -t overlay overlay \
      -o "lowerdir=/$d,upperdir=$t/$d.upper,workdir=$t/$d.work" "/$d"
  done
  mount -t tmpfs -o size=16m,mode=0755 "mseg-fleet-run" /run
  mkdir -p /run/sshd /run/lock
  chmod 0755 /run/sshd
  chmod 1777 /run/lock
  mount --bind "$dir/bpffs" /sys/fs/bpf
  mkdir -p /var/lib/prometheus/node-exporter
  echo "$$" >"$dir/init.pid"
  exec /usr/sbin/sshd -D -e -f "$dir/sshd_config"
}

main "$@"
