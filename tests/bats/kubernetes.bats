#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Kubernetes (issue 7/7), offline: no cluster and no Docker engine here.
#   - The manifests: `kubectl kustomize` renders them (kubectl's own parsing;
#     `kubectl apply --dry-run=client` needs an API server for discovery
#     even then), and deploy/kubernetes/check/validate.mjs checks every
#     object against two renderings of the Kubernetes OpenAPI schema (types,
#     required fields, unknown fields). What they must say for mseg to work
#     is checked here: privileged, hostNetwork, the node's bpffs, the policy
#     ConfigMap mounted where mseg-watch reads it, a ruleset mseg accepts.
#   - The Dockerfile: dockerfilelint's rules, and that every file it copies
#     exists and every program it runs is in the image (the package's file
#     list and the watcher).
#   - mseg-watch, the DaemonSet's process, for real in the namespace lab: a
#     ConfigMap-style mount (kubelet's ..data symlink swap) changes, and the
#     policy follows; a broken file and a policy failing its probe do not
#     stick.

# shellcheck disable=SC2154,SC2153 # bats sets $output/$status; lab.bash sets LAB_*
bats_require_minimum_version 1.5.0

load helpers/common
load helpers/lab
load helpers/deb

K8S=$MSEG_ROOT/deploy/kubernetes
CHECK=$MSEG_BUILD/k8s-check

setup() {
	require_build
	WATCH_PID=
}

teardown() {
	if [[ -n ${WATCH_PID:-} ]]; then
		kill "$WATCH_PID" 2>/dev/null || true
		wait "$WATCH_PID" 2>/dev/null || true
	fi
	[[ -n ${LAB_C:-} ]] && lab_teardown
	return 0
}

# check_tools: the pinned npm packages of deploy/kubernetes/check, installed
# once into build/k8s-check (again only when the lock file changes).
check_tools() {
	need node command -v node
	need npm command -v npm
	mkdir -p "$CHECK"
	# shellcheck disable=SC2016 # the inner script's own arguments
	flock -w 300 "$CHECK/.lock" bash -c '
		set -e
		if ! cmp -s "$1/package-lock.json" "$2/.installed-lock"; then
			cp "$1/package.json" "$1/package-lock.json" "$2/"
			(cd "$2" && timeout -k 5 280 npm ci --no-audit --no-fund --loglevel=error >/dev/null)
			cp "$1/package-lock.json" "$2/.installed-lock"
		fi' _ "$K8S/check" "$CHECK"
	cp "$K8S/check/validate.mjs" "$CHECK/"
}

# render: the manifests as kubectl kustomize renders them, offline.
render() { KUBECONFIG=/dev/null timeout -k 5 60 kubectl kustomize "$K8S"; }

@test "kubernetes: the manifests render offline and pass the schema check; the checker rejects what it should" {
	need kubectl command -v kubectl
	check_tools
	local m=$BATS_TEST_TMPDIR/manifests.yaml
	render >"$m"
	run node "$CHECK/validate.mjs" "$m"
	echo "$output" >&2
	[ "$status" -eq 0 ]
	[ "$output" = "2 objects valid" ]
	# The checker can fail: a wrong type, an unknown field, a missing
	# required field.
	sed -e 's/privileged: true/privileged: "yes"/' "$m" >"$m.type"
	run node "$CHECK/validate.mjs" "$m.type"
	[ "$status" -eq 1 ]
	[[ $output == *"securityContext.privileged: expected a boolean, got string"* ]]
	sed -e 's/^      hostNetwork: true/      hostNetwork: true\n      hostNetworking: true/' "$m" >"$m.field"
	run node "$CHECK/validate.mjs" "$m.field"
	[ "$status" -eq 1 ]
	[[ $output == *"spec.template.spec.hostNetworking: unknown field"* ]]
	"$MSEG_PYTHON" -c 'import sys, yaml
d = list(yaml.safe_load_all(open(sys.argv[1])))
del d[1]["spec"]["selector"]
yaml.safe_dump_all(d, open(sys.argv[2], "w"))' "$m" "$m.req"
	run node "$CHECK/validate.mjs" "$m.req"
	[ "$status" -eq 1 ]
	[[ $output == *"data/spec must have required property selector"* ]]
}

@test "kubernetes: the DaemonSet is privileged on the host network with the node's bpffs, and reads a valid policy from its ConfigMap" {
	need kubectl command -v kubectl
	local json
	json=$(render | "$MSEG_PYTHON" -c 'import sys, json, yaml; print(json.dumps(list(yaml.safe_load_all(sys.stdin))))')
	local ds='.[] | select(.kind == "DaemonSet") | .spec.template.spec'
	jq -e "$ds | .hostNetwork == true" <<<"$json"
	jq -e "$ds | .containers[] | select(.name == \"mseg\") | .securityContext.privileged == true" <<<"$json"
	# The node's bpffs, where tc pins the maps, shared both ways.
	jq -e "$ds | .volumes[] | select(.name == \"bpffs\") | .hostPath.path == \"/sys/fs/bpf\"" <<<"$json"
	jq -e "$ds | .containers[] | select(.name == \"mseg\") | .volumeMounts[]
		| select(.name == \"bpffs\") | .mountPath == \"/sys/fs/bpf\" and .mountPropagation == \"Bidirectional\"" <<<"$json"
	# The ConfigMap is mounted where MSEG_RULES points, under its key.
	local cm rules dir
	cm=$(jq -r "$ds | .volumes[] | select(.name == \"policy\") | .configMap.name" <<<"$json")
	jq -e --arg cm "$cm" '.[] | select(.kind == "ConfigMap" and .metadata.name == $cm)' <<<"$json" >/dev/null
	rules=$(jq -r "$ds | .containers[] | select(.name == \"mseg\") | .env[] | select(.name == \"MSEG_RULES\") | .value" <<<"$json")
	dir=$(jq -r "$ds | .containers[] | select(.name == \"mseg\") | .volumeMounts[] | select(.name == \"policy\") | .mountPath" <<<"$json")
	[ "$rules" = "$dir/mseg.rules" ]
	jq -r --arg cm "$cm" '.[] | select(.kind == "ConfigMap" and .metadata.name == $cm) | .data["mseg.rules"]' \
		<<<"$json" >"$BATS_TEST_TMPDIR/mseg.rules"
	mseg apply --check "$BATS_TEST_TMPDIR/mseg.rules" >/dev/null
	# Every command the containers run is in the image: the package's files
	# or the watcher the Dockerfile copies.
	local deb files cmd
	deb=$(deb_build)
	files=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|')
	while IFS= read -r cmd; do
		grep -qx -- "$cmd" <<<"$files" || { echo "not in the package: $cmd" >&2; false; }
	done < <(jq -r "$ds | .containers[] | select(.command) | .command[0]" <<<"$json")
	grep -qx 'ENTRYPOINT \["/usr/local/sbin/mseg-watch"\]' "$K8S/Dockerfile"
}

@test "kubernetes: the Dockerfile passes dockerfilelint, copies files that exist and installs the package" {
	check_tools
	local df=$K8S/Dockerfile deb src
	run "$CHECK/node_modules/.bin/dockerfilelint" -o json "$df"
	jq -e '.totalIssues == 0' <<<"$output" || { echo "$output" >&2; false; }
	# And it can fail.
	printf 'FROM debian\nRUN apt-get install foo\n' >"$BATS_TEST_TMPDIR/Dockerfile"
	run "$CHECK/node_modules/.bin/dockerfilelint" -o json "$BATS_TEST_TMPDIR/Dockerfile"
	jq -e '.totalIssues >= 2' <<<"$output"
	# The base is the Debian release the package is built for and tested on.
	[ "$(grep -c '^FROM ' "$df")" = 1 ]
	grep -qx "FROM debian:$(. /etc/os-release && echo "$VERSION_CODENAME")-slim" "$df"
	# Every COPY source exists in the build context (the repository root),
	# with MSEG_DEB what make deb builds.
	deb=$(deb_build)
	while read -r src _; do
		src=${src//\$\{MSEG_DEB\}/${deb#"$MSEG_ROOT"/}}
		test -e "$MSEG_ROOT/$src" || { echo "COPY source missing: $src" >&2; false; }
	done < <(sed -n 's/^COPY \([^ ]*\) \(.*\)$/\1 \2/p' "$df")
	grep -q 'apt-get install -y --no-install-recommends /tmp/mseg.deb' "$df"
	grep -q '^COPY deploy/kubernetes/mseg-watch /usr/local/sbin/mseg-watch$' "$df"
}

# saved_has REGEX: the policy in force has a line matching REGEX.
saved_has() { mseg save | grep -q -- "$1"; }

# configmap_mount DIR FILE: make DIR look like kubelet's ConfigMap volume
# holding FILE as mseg.rules, or swap its content atomically as kubelet
# does (a new ..TIMESTAMP dir, then ..data renamed onto it).
configmap_mount() {
	local dir=$1 ts
	ts=..$(date +%s%N)
	mkdir -p "$dir/$ts"
	cp "$2" "$dir/$ts/mseg.rules"
	ln -sfn "$ts" "$dir/..data_tmp"
	mv -T "$dir/..data_tmp" "$dir/..data"
	[[ -L $dir/mseg.rules ]] || ln -s ..data/mseg.rules "$dir/mseg.rules"
}

@test "kubernetes: mseg-watch applies the mounted policy whenever it changes; a broken file or a failing probe never sticks" {
	local cm=$BATS_TEST_TMPDIR/cm state=$BATS_TEST_TMPDIR/state log=$BATS_TEST_TMPDIR/watch.log p=$BATS_TEST_TMPDIR
	lab_setup --no-filter
	lab_start_servers 400
	# The watcher runs on the "node" (the router), attached to the link to
	# the server; its probe, router -> server:5001, crosses that link.
	printf 'default allow\n' >"$p/allow"
	printf '%s\n' 'default deny' \
		"rule --src $LAB_R4S --dst $LAB_S4 --proto tcp --dport 5001 --action allow" \
		"rule --src $LAB_C4 --dst $LAB_S4 --proto tcp --dport 5001 --action allow" >"$p/good"
	printf '%s\n' 'default deny' \
		"rule --src $LAB_C4 --dst $LAB_S4 --proto tcp --dport 5002 --action allow" >"$p/cuts-probe"
	printf '%s\n' 'default deny' 'rule --src nonsense --action allow' >"$p/broken"
	configmap_mount "$cm" "$p/allow"
	ip netns exec "$LAB_R" env MSEG_RULES="$cm/mseg.rules" MSEG_INTERFACES="$LAB_RS" \
		MSEG_PROBES="$LAB_S4:5001" MSEG_PROBE_TIMEOUT=2 MSEG_WATCH_INTERVAL=1 \
		MSEG_STATE_DIR="$state" MSEG_CMD="$MSEG_SCRIPTS/mseg" \
		timeout -k 5 400 "$K8S/mseg-watch" >"$log" 2>&1 3>&- &
	WATCH_PID=$!
	wait_until 900 test -e "$state/ready" || { cat "$log" >&2; false; }
	prog_id "$LAB_RS" "$LAB_R" egress >/dev/null
	lab_tcp_connect "$LAB_S4" 5002

	# The ConfigMap changes: the policy follows.
	configmap_mount "$cm" "$p/good"
	wait_until 600 saved_has 'rule .*--dport 5001' || { cat "$log" >&2; false; }
	mseg save | grep -qx 'default deny'
	# through mseg apply --confirm, confirmed once the probe passed
	wait_until 300 confirm_state_is confirmed || { mseg status --json >&2; cat "$log" >&2; false; }
	lab_tcp_connect "$LAB_S4" 5001
	run ! lab_tcp_connect "$LAB_S4" 5002 1
	local good
	good=$(mseg save)

	# A file mseg cannot read: refused, the policy stays.
	configmap_mount "$cm" "$p/broken"
	wait_until 600 grep -q "rejected $cm/mseg.rules" "$log" || { cat "$log" >&2; false; }
	[ "$(mseg save)" = "$good" ]

	# A policy that cuts the probe: applied, probed, rolled back.
	configmap_mount "$cm" "$p/cuts-probe"
	wait_until 900 grep -q 'rolled back: the new policy failed a probe' "$log" || { cat "$log" >&2; false; }
	grep -q "probe $LAB_S4:5001 failed" "$log"
	[ "$(mseg save)" = "$good" ]
	confirm_state_is rolled_back
	lab_tcp_connect "$LAB_S4" 5001

	# SIGTERM: it stops, the policy stays in force.
	kill "$WATCH_PID"
	wait "$WATCH_PID" || true
	WATCH_PID=
	grep -q 'stopping; the policy in force stays' "$log"
	[ "$(mseg save)" = "$good" ]
	run ! lab_tcp_connect "$LAB_S4" 5002 1

	# A watcher that stopped between its apply and its confirm, and whose
	# rollback process ended with its container: the next watcher rolls
	# back before anything else.
	configmap_mount "$cm" "$p/good"
	mseg apply --confirm 600 "$p/cuts-probe" >/dev/null
	local pid
	pid=$(mseg status --json | jq -r .confirm.pid)
	kill "$pid"
	wait_until 100 confirm_timer_dead || { mseg status --json >&2; false; }
	ip netns exec "$LAB_R" env MSEG_RULES="$cm/mseg.rules" MSEG_INTERFACES="$LAB_RS" \
		MSEG_PROBES="$LAB_S4:5001" MSEG_PROBE_TIMEOUT=2 MSEG_STATE_DIR="$state" \
		MSEG_CMD="$MSEG_SCRIPTS/mseg" timeout -k 5 300 "$K8S/mseg-watch" --once >"$log" 2>&1 3>&-
	grep -q 'left pending by a watcher that stopped' "$log" || { cat "$log" >&2; false; }
	[ "$(mseg save)" = "$good" ]
	lab_tcp_connect "$LAB_S4" 5001
}

# confirm_state_is STATE: mseg status names STATE for apply --confirm.
confirm_state_is() { [ "$(mseg status --json | jq -r .confirm.state)" = "$1" ]; }

# confirm_timer_dead: a confirmation is pending, its rollback process gone.
confirm_timer_dead() { mseg status --json | jq -e '.confirm | .state == "pending" and .timer_alive == false' >/dev/null; }
