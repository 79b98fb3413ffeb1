#!/usr/bin/env bash
# Run `ansible-test sanity` on this collection without internet access (only PyPI is needed).
#
#  1. Copies the checkout's tracked and untracked-but-not-ignored files (so no .venv, .cache,
#     tests/output) to .cache/ansible-test/ansible_collections/lift_simulator/postgresql, since
#     ansible-test needs the collection at a path ending in ansible_collections/NS/NAME. The
#     collections named as dependencies in galaxy.yml are copied beside it from the ones bundled
#     with the `ansible` PyPI package, so that imports of their module_utils resolve.
#  2. ansible-test bootstraps pip into each sanity test's venv with a get-pip script downloaded
#     from a host that is not reachable here. A stand-in is saved where ansible-test caches that
#     script (~/.ansible/test/cache/get_pip_<pip version>.py, the version being the one the
#     installed ansible-test asks for): it runs the pip wheel bundled with the interpreter's
#     ensurepip, which then installs the requested pip version from PyPI.
#  3. Runs `ansible-test sanity` in that copy with the project venv's Python; exits non-zero on
#     any failure.
#
# Usage: scripts/ansible_test_sanity.sh [extra ansible-test sanity arguments, e.g. --test pep8]
# Environment:
#   VENV                 the project venv (default: <checkout>/.venv)
#   SANITY_PYTHON        Python version to test with (default: the venv's, e.g. 3.11)
#   ANSIBLE_TEST_MODE    --venv (default: a venv of its own for the controller) or --local
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-${ROOT}/.venv}"
PY="${VENV}/bin/python"
ANSIBLE_TEST="${VENV}/bin/ansible-test"
MODE="${ANSIBLE_TEST_MODE:---venv}"

log() { printf '[ansible_test_sanity] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ -x ${PY} && -x ${ANSIBLE_TEST} ]] || die "no ansible-test in ${VENV} (create the venv first)"
command -v rsync >/dev/null 2>&1 || die "rsync not found (run scripts/bootstrap_host.sh)"
case "${MODE}" in --venv | --local) ;; *) die "ANSIBLE_TEST_MODE must be --venv or --local" ;; esac

read -r NAMESPACE NAME < <("${PY}" - "${ROOT}/galaxy.yml" <<'EOF'
import sys, yaml
with open(sys.argv[1], encoding="utf-8") as f:
    g = yaml.safe_load(f)
print(g["namespace"], g["name"])
EOF
)
PY_VERSION="${SANITY_PYTHON:-$("${PY}" -c 'import sys; print("%d.%d" % sys.version_info[:2])')}"
COLLECTIONS_ROOT="${ROOT}/.cache/ansible-test/ansible_collections"
DEST="${COLLECTIONS_ROOT}/${NAMESPACE}/${NAME}"

# One run at a time: every run rebuilds the same copy.
mkdir -p "${ROOT}/.cache"
exec 9>"${ROOT}/.cache/ansible-test.lock"
flock 9

# --- 1. the copy ---------------------------------------------------------------------------
log "copying the checkout to ${DEST}"
rm -rf --one-file-system "${DEST}"
mkdir -p "${DEST}"
if git -C "${ROOT}" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  # Tracked (minus deleted ones: --ignore-missing-args) and untracked-but-not-ignored files,
  # less the caches that ansible-lint / molecule leave in the checkout (.ansible/).
  git -C "${ROOT}" ls-files -z --cached --others --exclude-standard |
    grep -zv -e '^\.ansible/' -e '^tests/output/' |
    rsync -a --from0 --files-from=- --ignore-missing-args "${ROOT}/" "${DEST}/"
else
  rsync -a --exclude=/.git --exclude=/.venv --exclude=/.cache --exclude=/.ansible --exclude=/tests/output \
    --exclude=__pycache__ --exclude='*.pyc' "${ROOT}/" "${DEST}/"
fi

# ansible-test finds its file list by walking up to the first directory with a .git; without
# one here it would take the outer checkout, whose .gitignore hides .cache, and skip everything.
# An empty repository makes it list this copy's (untracked, not ignored) files instead.
git -C "${DEST}" init -q

# Dependencies (galaxy.yml `dependencies`) from the collections bundled with `ansible`.
while read -r dep; do
  [[ -n ${dep} ]] || continue
  src="$("${PY}" -c 'import os, sys, ansible_collections
for p in ansible_collections.__path__:
    d = os.path.join(p, *sys.argv[1].split("."))
    if os.path.isdir(d):
        print(d)
        break' "${dep}")"
  if [[ -z ${src} ]]; then
    log "warning: dependency ${dep} not found in the venv; tests importing it will fail"
    continue
  fi
  mkdir -p "${COLLECTIONS_ROOT}/${dep%%.*}"
  rsync -a --delete "${src}/" "${COLLECTIONS_ROOT}/${dep%%.*}/${dep#*.}/"
done < <("${PY}" - "${ROOT}/galaxy.yml" <<'EOF'
import sys, yaml
with open(sys.argv[1], encoding="utf-8") as f:
    g = yaml.safe_load(f)
for dep in (g.get("dependencies") or {}):
    print(dep)
EOF
)

# --- 2. the get-pip stand-in ---------------------------------------------------------------
PIP_VERSION="$("${PY}" - <<'EOF'
import types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version="3.11"))["pip"])
EOF
)" || die "cannot tell which pip version ansible-test bootstraps"
GET_PIP="${HOME}/.ansible/test/cache/get_pip_${PIP_VERSION//./_}.py"
MARKER='# lift_simulator offline get-pip stand-in'
if [[ -e ${GET_PIP} ]] && ! grep -qF "${MARKER}" "${GET_PIP}"; then
  log "using the existing ${GET_PIP} (not ours; left alone)"
else
  mkdir -p "$(dirname "${GET_PIP}")"
  cat >"${GET_PIP}.tmp" <<EOF
${MARKER} (written by scripts/ansible_test_sanity.sh).
# ansible-test runs this as get-pip.py with pip install arguments ("pip==${PIP_VERSION}",
# --no-setuptools, --no-wheel, ...). Instead of a downloaded get-pip, run the pip wheel that
# ensurepip bundles with this interpreter, and let it install the requested pip from PyPI.
import glob
import os
import sys

import ensurepip


def _bundled_pip_wheel():
    try:
        for name, pkg in ensurepip._get_packages().items():  # pylint: disable=protected-access
            if name == "pip":
                return pkg.wheel_path or os.path.join(
                    os.path.dirname(ensurepip.__file__), "_bundled", pkg.wheel_name)
    except AttributeError:
        pass
    wheels = sorted(glob.glob(os.path.join(os.path.dirname(ensurepip.__file__), "_bundled", "pip-*.whl")))
    return wheels[-1] if wheels else None


wheel = _bundled_pip_wheel()
if not wheel or not os.path.exists(wheel):
    sys.exit("get-pip stand-in: no pip wheel bundled with ensurepip for " + sys.executable)
sys.path.insert(0, wheel)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]

from pip._internal.cli.main import main  # noqa: E402  pylint: disable=wrong-import-position

sys.exit(main(["install", "--upgrade", "--force-reinstall"] + args))
EOF
  mv "${GET_PIP}.tmp" "${GET_PIP}"
fi
log "pip bootstrap: ${GET_PIP}"

# --- 3. the tests --------------------------------------------------------------------------
cmd=("${ANSIBLE_TEST}" sanity "${MODE}" --python "${PY_VERSION}" --color no "$@")
log "running (in ${DEST}): ${cmd[*]}"
cd "${DEST}"
start=${SECONDS}
# The venv's bin first, so that ansible-test finds this Python (and --venv bases its venv on it).
# ansible-test sets up the collection paths itself: drop the checkout's settings (the Makefile
# exports them) so that only this copy is seen, never the .cache/collections link to the checkout.
rc=0
env -u ANSIBLE_CONFIG -u ANSIBLE_COLLECTIONS_PATH -u ANSIBLE_COLLECTIONS_PATHS \
  PATH="${VENV}/bin:${PATH}" "${cmd[@]}" </dev/null || rc=$?
log "ansible-test sanity exited ${rc} after $((SECONDS - start))s"
exit "${rc}"
