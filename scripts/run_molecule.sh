#!/usr/bin/env bash
# Run the molecule scenarios (all of them, or those named) from the repository root, with no
# standard input, MOLECULE_JOBS at a time, the longest first. Needs the venv, the collection link
# (make collection-link), a Docker engine and the lab images (make lab-images).
#
# Each scenario runs `molecule test -s NAME` with its own log file and its own molecule state
# directory (MOLECULE_EPHEMERAL_DIRECTORY=~/.ansible/tmp/mol-<checkout hash>/<scenario
# directory>: scenarios that run at the same time never share an inventory or state, even when two
# molecule.yml files give the same scenario.name). The scenarios' container, network and published-port names are distinct
# (lift-mol-*, lift-dr-*, lift-mig-*, ...), so they can run side by side. When a scenario ends,
# its log is printed between "=== BEGIN/END" lines with PASSED or FAILED; a summary follows the
# last one, and the exit status is non-zero when any scenario failed (the others still run to the
# end). With one job at a time the output streams as it comes.
#
# Usage: scripts/run_molecule.sh [SCENARIO...]
# Environment:
#   MOLECULE_JOBS      scenarios at a time (default: the number of CPUs, at most 4)
#   MOLECULE_LOG_DIR   where the logs go (default .cache/molecule/logs/<date-time>)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
export PATH="${ROOT}/.venv/bin:${PATH}"
export NO_COLOR=1 ANSIBLE_FORCE_COLOR=0 PY_COLORS=0
# molecule writes its own ansible.cfg; the repository's must not leak into it.
unset ANSIBLE_CONFIG

log() { printf '[run_molecule] %s\n' "$*" >&2; }

# How long each scenario took on a 2-core CI machine (seconds), to start the longest first; the
# last passing run on this machine (.cache/molecule/durations) wins. A scenario known to neither
# counts as the longest.
declare -A DEFAULT_SECONDS=(
  [pitr]=270 [migrate]=192 [schedule]=180 [disaster]=172 [provision]=158 [quickstart]=120 [restore]=78
  [default]=67
)
UNKNOWN_SECONDS=10000
STATE="${ROOT}/.cache/molecule"
DURATIONS="${STATE}/durations"
# The scenarios' molecule state directories: one per checkout and scenario directory, under a
# short path like molecule's own (~/.ansible/tmp/molecule.*): scenarios put SSH control sockets
# below theirs (quickstart's operator home), and a socket path may not exceed 107 bytes.
EPHEMERAL="${HOME}/.ansible/tmp/mol-$(printf '%s' "${ROOT}" | sha256sum | cut -c1-8)"

if [[ $# -gt 0 ]]; then
  scenarios=("$@")
else
  mapfile -t scenarios < <(find molecule -mindepth 2 -maxdepth 2 -name molecule.yml -printf '%h\n' | xargs -n1 basename | sort)
fi
for scenario in "${scenarios[@]}"; do
  [[ -f molecule/${scenario}/molecule.yml ]] || { log "no scenario ${scenario} (molecule/${scenario}/molecule.yml)"; exit 2; }
done

jobs="${MOLECULE_JOBS:-}"
if [[ -z ${jobs} ]]; then
  jobs="$(nproc 2>/dev/null || echo 1)"
  ((jobs <= 4)) || jobs=4
fi
[[ ${jobs} =~ ^[1-9][0-9]*$ ]] || { log "MOLECULE_JOBS must be a positive number (it is ${jobs})"; exit 2; }

# Longest first.
declare -A seconds=()
for scenario in "${scenarios[@]}"; do
  seconds[${scenario}]="${DEFAULT_SECONDS[${scenario}]:-${UNKNOWN_SECONDS}}"
done
if [[ -r ${DURATIONS} ]]; then
  while read -r scenario secs; do
    [[ -n ${seconds[${scenario}]+set} && ${secs} =~ ^[0-9]+$ ]] && seconds[${scenario}]=${secs}
  done <"${DURATIONS}"
fi
mapfile -t scenarios < <(for scenario in "${scenarios[@]}"; do printf '%s %s\n' "${seconds[${scenario}]}" "${scenario}"; done |
  sort -k1,1nr -k2,2 | awk '{ print $2 }')

LOGDIR="${MOLECULE_LOG_DIR:-${STATE}/logs/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "${LOGDIR}" "${EPHEMERAL}"
# The logs of the last five runs are kept.
find "${STATE}/logs" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | sort | head -n -5 | xargs -r rm -rf --

declare -A started=() result=() took=()
declare -A pid_scenario=()

record_duration() { # $1 = scenario, $2 = seconds
  local tmp="${DURATIONS}.$$"
  { grep -v "^$1 " "${DURATIONS}" 2>/dev/null || true; printf '%s %s\n' "$1" "$2"; } >"${tmp}"
  mv -f "${tmp}" "${DURATIONS}"
}

# Starts one scenario in the background (its log in LOGDIR) and records its PID.
start() { # $1 = scenario
  local scenario=$1
  started[${scenario}]=${SECONDS}
  # The molecule state of this scenario directory (cleared by molecule's own destroy); a process
  # group of its own, so that an interrupt stops molecule and everything it started.
  MOLECULE_EPHEMERAL_DIRECTORY="${EPHEMERAL}/${scenario}" \
    setsid molecule test -s "${scenario}" </dev/null >"${LOGDIR}/${scenario}.log" 2>&1 &
  pid_scenario[$!]=${scenario}
  log "started ${scenario} (log: ${LOGDIR}/${scenario}.log)"
}

finish() { # $1 = scenario, $2 = exit status
  local scenario=$1 status=$2 word
  took[${scenario}]=$((SECONDS - started[${scenario}]))
  if [[ ${status} -eq 0 ]]; then
    result[${scenario}]=passed
    word=PASSED
    record_duration "${scenario}" "${took[${scenario}]}"
  else
    result[${scenario}]="FAILED (exit ${status})"
    word=FAILED
  fi
  if [[ ${jobs} -gt 1 ]]; then
    echo "=== BEGIN molecule test -s ${scenario} (log: ${LOGDIR}/${scenario}.log)"
    cat "${LOGDIR}/${scenario}.log"
    echo "=== END molecule test -s ${scenario}"
  fi
  echo "=== molecule scenario ${scenario} ${word} in ${took[${scenario}]} s"
}

# shellcheck disable=SC2317  # called from the trap
stop_all() {
  local pid
  for pid in "${!pid_scenario[@]}"; do
    kill -TERM -- "-${pid}" 2>/dev/null || true
  done
}
trap 'stop_all; exit 130' INT TERM

log "scenarios, longest first: ${scenarios[*]} (${jobs} at a time)"
total_start=${SECONDS}
if [[ ${jobs} -eq 1 ]]; then
  for scenario in "${scenarios[@]}"; do
    echo "=== molecule test -s ${scenario}"
    started[${scenario}]=${SECONDS}
    status=0
    MOLECULE_EPHEMERAL_DIRECTORY="${EPHEMERAL}/${scenario}" \
      molecule test -s "${scenario}" </dev/null 2>&1 | tee "${LOGDIR}/${scenario}.log" || status=$?
    finish "${scenario}" "${status}"
  done
else
  queue=("${scenarios[@]}")
  while [[ ${#queue[@]} -gt 0 || ${#pid_scenario[@]} -gt 0 ]]; do
    while [[ ${#queue[@]} -gt 0 && ${#pid_scenario[@]} -lt ${jobs} ]]; do
      start "${queue[0]}"
      queue=("${queue[@]:1}")
    done
    status=0
    wait -n -p done_pid "${!pid_scenario[@]}" || status=$?
    scenario="${pid_scenario[${done_pid}]}"
    unset "pid_scenario[${done_pid}]"
    finish "${scenario}" "${status}"
  done
fi

failed=()
echo "=== molecule summary ($((SECONDS - total_start)) s in all, ${jobs} at a time; logs in ${LOGDIR})"
for scenario in "${scenarios[@]}"; do
  printf '    %-12s %-18s %5s s\n' "${scenario}" "${result[${scenario}]}" "${took[${scenario}]}"
  [[ ${result[${scenario}]} == passed ]] || failed+=("${scenario}")
done
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "=== molecule: ${#failed[@]} of ${#scenarios[@]} scenarios FAILED: ${failed[*]}"
  exit 1
fi
echo "=== molecule: all ${#scenarios[@]} scenarios passed"
