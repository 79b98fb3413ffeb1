#!/usr/bin/env bash
# Run the molecule scenarios (all of them, or those named) from the repository root, with no
# standard input. Needs the venv, the collection link (make collection-link), a Docker engine
# and the lab images (make lab-images).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
export PATH="${ROOT}/.venv/bin:${PATH}"
export NO_COLOR=1 ANSIBLE_FORCE_COLOR=0 PY_COLORS=0
# molecule writes its own ansible.cfg; the repository's must not leak into it.
unset ANSIBLE_CONFIG

if [[ $# -gt 0 ]]; then
  scenarios=("$@")
else
  mapfile -t scenarios < <(find molecule -mindepth 2 -maxdepth 2 -name molecule.yml -printf '%h\n' | xargs -n1 basename | sort)
fi
for scenario in "${scenarios[@]}"; do
  echo "=== molecule test -s ${scenario}"
  start=${SECONDS}
  molecule test -s "${scenario}" </dev/null
  echo "=== molecule scenario ${scenario} passed in $((SECONDS - start)) s"
done
