# shellcheck shell=bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# The Debian package for tests and benches: build it once per caller with
# `make deb` (serialised: suites run side by side and share build/), and
# keep installs into the machine's real root from ever meeting a fleet
# whose per-host roots sit on top of it (see fleet.bash).
#
# Requires common.bash.

# The lock between a real-root install (exclusive) and the lab fleets
# (shared: their hosts' /usr, /etc and /var are overlays of the real ones,
# which must not change under them).
MSEG_REALROOT_LOCK=/run/lock/mseg-realroot.lock

# deb_build: `make deb`, print the path of the .deb it built. A package
# built from the same tree (no source file newer than it) is reused.
deb_build() {
	local out stamp=$MSEG_BUILD/.deb.built
	need "dpkg-deb" command -v dpkg-deb || return 1
	# shellcheck disable=SC2016 # the script's own variables
	out=$(flock -w 300 "$MSEG_BUILD/.deb.lock" bash -c '
		stamp=$1
		if [[ -s $stamp && -f $(cat "$stamp") ]] &&
			[[ -z $(find "$2" \( -path "$2/build" -o -path "$2/.git" \) -prune -o -newer "$stamp" -print -quit) ]]; then
			cat "$stamp"
			exit 0
		fi
		timeout -k 5 300 make -s -C "$2" deb | tail -n 1 >"$stamp.new" &&
			mv "$stamp.new" "$stamp" && cat "$stamp"' _ "$stamp" "$MSEG_ROOT" 2>&1) || {
		echo "make deb failed: $out" >&2
		return 1
	}
	out=$(tail -n 1 <<<"$out")
	[[ $out == /* ]] || out=$MSEG_ROOT/$out
	test -f "$out" || { echo "make deb printed no package: $out" >&2; return 1; }
	echo "$out"
}

# realroot_lock MODE: take the real-root lock (-x or -s) on fd 8 for the
# rest of this process and its children; waits at most 25 minutes (a whole
# fleet suite under load). Take it in setup_file, which no test timeout cuts.
realroot_lock() {
	exec 8>>"$MSEG_REALROOT_LOCK"
	flock -w 1500 "$1" 8 || { echo "timed out waiting for $MSEG_REALROOT_LOCK" >&2; return 1; }
}

realroot_unlock() { exec 8>&-; }

# installed_mseg NS ARGS...: the INSTALLED /usr/sbin/mseg in netns NS (none:
# here), with none of the tests' variables that point commands at the
# source tree; only TC_BPF_MNT, so it works on the test's private bpffs.
installed_mseg() {
	local ns=$1
	shift
	nsrun "$ns" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		TC_BPF_MNT="${TC_BPF_MNT:-/sys/fs/bpf}" /usr/sbin/mseg "$@"
}
