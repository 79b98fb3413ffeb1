#!/usr/bin/env bash
# Prepare a Debian 12 host (root, no systemd) for the lift_simulator.postgresql test suite.
#
#  1. Installs the Debian packages the suite needs, but only those that are missing
#     (checked with dpkg-query first, so a second run does no apt work at all).
#  2. Starts the Docker engine when `docker info` does not answer: there is no systemd on
#     the host, so dockerd is run in the background (log in $DOCKERD_LOG) and `docker info`
#     is polled until it answers or $DOCKERD_TIMEOUT seconds have passed.
#
# Idempotent and non-interactive (reads no stdin). Usage: scripts/bootstrap_host.sh
# Environment:
#   DOCKERD_LOG       dockerd's log file         (default /var/log/lift-dockerd.log)
#   DOCKERD_TIMEOUT   seconds to wait for dockerd (default 60)
#   BOOTSTRAP_SKIP_DOCKER=1  only install packages
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
DOCKERD_LOG="${DOCKERD_LOG:-/var/log/lift-dockerd.log}"
DOCKERD_TIMEOUT="${DOCKERD_TIMEOUT:-60}"

# postgresql: PostgreSQL 15 server binaries (/usr/lib/postgresql/15/bin) for the host tests.
# docker.io + debootstrap: the lab/molecule containers and their images.
PACKAGES=(
  postgresql
  docker.io
  debootstrap
  zstd
  lz4
  # age: encrypted backups (the modules run it); openssh-client: ssh-keygen for SSH recipients in the tests;
  # strace: the test that no unencrypted byte of an encrypted backup is written to a file
  age
  openssh-client
  strace
  rsync
  acl
  git
  python3-venv
  # the integration tests run the modules with the system Python, as on a database host
  python3-psycopg2
  # off-site copies: the modules' S3 and SFTP drivers (the distribution's boto3 and paramiko), and
  # the SFTP test server (OpenSSH's own sshd, started by the tests on 127.0.0.1 only)
  python3-boto3
  python3-paramiko
  openssh-server
  # for the shellcheck test of ansible-test sanity, which is skipped when it is absent
  shellcheck
  # point-in-time recovery: the pitr_info module and the role pitr's job, tested against a real pgBackRest
  pgbackrest
  ca-certificates
  # promtool (checks and unit-tests the alert rules, tests/alerts); the Prometheus server of the same
  # package must not run here: see quiet_prometheus_server below
  prometheus
  # /usr/sbin/sendmail for the job's mail notifier test (msmtp relays to the test's own SMTP server; no daemon)
  msmtp-mta
  # headless browser for the status page test (tests/integration/test_status_page.py: screenshot and DOM)
  chromium
)

log() { printf '[bootstrap_host] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ ${EUID} -eq 0 ]] || die "must run as root (apt-get install, dockerd)"

is_installed() {
  local status
  status="$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null || true)"
  [[ ${status} == ii* ]]
}

install_packages() {
  local missing=() pkg
  for pkg in "${PACKAGES[@]}"; do
    is_installed "${pkg}" || missing+=("${pkg}")
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    log "packages: all present"
    return 0
  fi
  log "packages: installing ${missing[*]}"

  # Package maintainer scripts must not start services on the host (no systemd here; the
  # postgresql package would otherwise start a cluster on 5432 and docker.io its init script).
  # Docker-built machine images already ship such a policy-rc.d; add one only for this run.
  local policy=/usr/sbin/policy-rc.d added_policy=0
  if [[ ! -e ${policy} ]]; then
    printf '#!/bin/sh\nexit 101\n' >"${policy}"
    chmod 0755 "${policy}"
    added_policy=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi

  local apt_opts=(-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  apt-get update -q </dev/null
  apt-get install "${apt_opts[@]}" --no-install-recommends "${missing[@]}" </dev/null

  if [[ ${added_policy} -eq 1 ]]; then
    rm -f "${policy}"
    trap - EXIT
  fi
  for pkg in "${missing[@]}"; do
    is_installed "${pkg}" || die "package ${pkg} is still not installed"
    [[ ${pkg} != prometheus ]] || quiet_prometheus_server
  done
}

# Only promtool is wanted from the prometheus package. policy-rc.d kept its maintainer script from
# starting the server; it is also kept from starting at boot (disabled and masked), and stopped
# should it run anyway. Done only when this script installed the package: a server set up on
# purpose before is left alone.
quiet_prometheus_server() {
  if command -v systemctl >/dev/null 2>&1; then
    systemctl disable prometheus.service >/dev/null 2>&1 || true
    systemctl mask prometheus.service >/dev/null 2>&1 || true
    if [[ -d /run/systemd/system ]]; then
      systemctl stop prometheus.service >/dev/null 2>&1 || true
    fi
  fi
  if [[ ! -d /run/systemd/system && -x /etc/init.d/prometheus ]]; then
    /etc/init.d/prometheus stop >/dev/null 2>&1 || true
  fi
  log "prometheus: promtool installed, the server kept from running (disabled and masked)"
}

docker_answers() { docker info >/dev/null 2>&1; }

# A live (not zombie) process; an exited daemon may linger as a zombie when nothing reaps it.
alive() {
  local state
  state="$(ps -o stat= -p "$1" 2>/dev/null)" && [[ -n ${state} && ${state} != Z* ]]
}

dockerd_running() {
  local pid
  for pid in $(pgrep -x dockerd || true); do
    alive "${pid}" && return 0
  done
  return 1
}

start_docker() {
  command -v docker >/dev/null 2>&1 || die "no docker client on PATH"
  if docker_answers; then
    log "docker: engine already answers"
  else
    command -v dockerd >/dev/null 2>&1 || die "dockerd not found (is docker.io installed?)"
    if dockerd_running; then
      log "docker: a dockerd process exists but does not answer yet; waiting for it"
    else
      log "docker: starting dockerd in the background (log: ${DOCKERD_LOG})"
      mkdir -p "$(dirname "${DOCKERD_LOG}")"
      # setsid + nohup: the daemon outlives this script and the CI job's process group.
      setsid nohup dockerd </dev/null >>"${DOCKERD_LOG}" 2>&1 &
    fi
    local start=${SECONDS} deadline=$((SECONDS + DOCKERD_TIMEOUT))
    until docker_answers; do
      if ((SECONDS >= deadline)); then
        log "docker: last lines of ${DOCKERD_LOG}:"
        tail -n 30 "${DOCKERD_LOG}" >&2 || true
        die "docker engine did not answer within ${DOCKERD_TIMEOUT}s"
      fi
      if ! dockerd_running; then
        log "docker: dockerd exited; last lines of ${DOCKERD_LOG}:"
        tail -n 30 "${DOCKERD_LOG}" >&2 || true
        die "dockerd failed to start"
      fi
      sleep 0.5
    done
    log "docker: engine answers after $((SECONDS - start))s"
  fi

  # The client may be newer than Debian's dockerd 20.10 (API 1.41); make sure that the API
  # version negotiation works and report both sides.
  local versions
  versions="$(docker version --format 'client {{.Client.Version}} (API {{.Client.APIVersion}}), server {{.Server.Version}} (API {{.Server.APIVersion}})' 2>&1)" ||
    die "docker client and server cannot agree on an API version: ${versions}"
  log "docker: ${versions}"
}

install_packages
if [[ ${BOOTSTRAP_SKIP_DOCKER:-0} != 1 ]]; then
  start_docker
fi
log "done"
