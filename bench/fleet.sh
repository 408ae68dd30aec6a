#!/usr/bin/env bash
# bench/fleet.sh: time to roll a 10,000-rule policy out to the lab fleet
# (tests/bats/helpers/fleet.bash) with deploy/ansible/site.yml, for 1, 2
# and 4 hosts, against the bare `mseg apply` of the same file on one host
# measured in the same run.
#
# The policy: default allow, SSH and node_exporter from the controller, and
# one segment rule between two segments of 100 host addresses each (10,000
# exact rules once expanded). Per fleet size: the first rollout (install the
# package, attach, apply) and a second one with the rule's port changed
# (render, apply 10,000 new rules, health check): the everyday rollout.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.bash
source "${ROOT}/bench/lib.bash"
# shellcheck source=tests/bats/helpers/common.bash
source "${ROOT}/tests/bats/helpers/common.bash"
# shellcheck source=tests/bats/helpers/deb.bash
source "${ROOT}/tests/bats/helpers/deb.bash"
# shellcheck source=tests/bats/helpers/fleet.bash
source "${ROOT}/tests/bats/helpers/fleet.bash"

SIZES=(1 2 4)

# policy_vars FILE PORT: the inventory variables of the 10,000-rule policy.
policy_vars() {
  local file=$1 port=$2 i
  {
    echo "mseg_deb: ${DEB}"
    echo "mseg_manage_units: false"
    echo "mseg_policy:"
    echo "  default: allow"
    echo "  segments:"
    echo "    mgmt: {prefixes: [${FLEET_CTL_ADDR}/32]}"
    echo "    fleet: {groups: [mseg]}"
    printf '    clients: {prefixes: ['
    for ((i = 1; i <= 100; i++)); do printf '10.80.%d.%d/32%s' $((i / 50)) $((i % 50 + 1)) "$([[ $i -lt 100 ]] && echo ', ')"; done
    echo ']}'
    printf '    servers: {prefixes: ['
    for ((i = 1; i <= 100; i++)); do printf '10.81.%d.%d/32%s' $((i / 50)) $((i % 50 + 1)) "$([[ $i -lt 100 ]] && echo ', ')"; done
    echo ']}'
    echo "  rules:"
    echo "    - {from: mgmt, to: fleet, proto: tcp, port: 22, action: allow}"
    echo "    - {from: mgmt, to: fleet, proto: tcp, port: 9100, action: allow}"
    echo "    - {from: clients, to: servers, proto: tcp, port: ${port}, action: allow}"
  } >"${file}"
}

# rollout: site.yml on the fleet, its seconds on stdout.
rollout() {
  local t0 rc=0
  t0=$(date +%s.%N)
  ANSIBLE_CONFIG="${ROOT}/deploy/ansible/ansible.cfg" ANSIBLE_NOCOLOR=1 \
    timeout -k 10 600 ansible-playbook -i "${FLEET_INVENTORY}" "${ROOT}/deploy/ansible/site.yml" \
    >"${FLEET_DIR}/ansible.log" 2>&1 </dev/null || rc=$?
  if ((rc != 0)); then
    echo "fleet: ansible-playbook failed:" >&2
    tail -n 30 "${FLEET_DIR}/ansible.log" >&2
    return 1
  fi
  awk -v a="${t0}" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
}

main() {
  local n first second bare base_first="" base_second="" rules
  DEB=$(deb_build)
  trap fleet_teardown EXIT
  echo "fleet: deploy/ansible/site.yml (serial 1, 25 %, 100 %) onto the lab fleet; policy of 10,000 exact rules (100 x 100 hosts, one segment rule)"
  for n in "${SIZES[@]}"; do
    fleet_setup "${n}" 900 >/dev/null
    policy_vars "${FLEET_DIR}/inventory/group_vars/all.yml" 443
    first=$(rollout)
    rules=$(fleet_ssh 1 mseg status --json | jq '.rules')
    policy_vars "${FLEET_DIR}/inventory/group_vars/all.yml" 8443
    second=$(rollout)
    if [[ -z ${base_first} ]]; then
      base_first=${first}
      base_second=${second}
      # The baseline: the same file applied by hand on the host, over ssh.
      local t0
      t0=$(date +%s.%N)
      fleet_ssh 1 mseg apply /etc/mseg/mseg.rules >/dev/null
      bare=$(awk -v a="${t0}" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
      echo "fleet: baseline: mseg apply of the same 10,000-rule file on one host over ssh: ${bare} s"
    fi
    printf 'fleet: %d host(s): %s rules; first rollout (install, attach, apply) %6.1f s (x%s); policy change %6.1f s (x%s, x%s the bare apply)\n' \
      "${n}" "${rules}" "${first}" "$(ratio "${first}" "${base_first}")" \
      "${second}" "$(ratio "${second}" "${base_second}")" "$(ratio "${second}" "${bare}")"
    fleet_teardown
  done
  echo "fleet: x: against 1 host in this run; stages run one after the other, hosts within a stage in parallel (forks 20)"
  echo "fleet: command: ANSIBLE_CONFIG=deploy/ansible/ansible.cfg ansible-playbook -i INVENTORY deploy/ansible/site.yml (inventory and group_vars as bench/fleet.sh writes them)"
}

main "$@"
