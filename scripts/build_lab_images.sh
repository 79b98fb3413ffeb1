#!/usr/bin/env bash
# Build the local lab images, for Debian 12 (bookworm) and Debian 13 (trixie):
#   lift-lab/debianNN:bare    Debian with systemd as PID 1, python3, python3-apt, sudo, procps,
#                             ca-certificates and acl, and apt sources for the image's own suite
#                             (main, -updates, -security; mirrors taken from the host's apt
#                             sources) but no apt lists: a bare machine, as users have them.
#   lift-lab/debianNN:latest  the bare image plus the Debian packages that the roles and the
#                             molecule scenarios install on a lab machine (LAB_PACKAGES below:
#                             the PostgreSQL server and client of the release's version, as
#                             roles/server/vars/Debian-NN.yml names it, psycopg2, the compressors,
#                             age, the off-site clients, pgBackRest), installed without a cluster
#                             and with no service started: the server role still creates, configures
#                             and starts the cluster itself, as on a bare machine whose package made
#                             none. The scenarios and the demo use this image; it only saves them
#                             the download and installation of those packages on every machine.
#                             No apt lists either, and no per-machine secret: the snakeoil
#                             certificate that ssl-cert makes is removed and made on the first boot
#                             of each container (lift-lab-snakeoil.service).
#
# Every image carries the label lift-lab.recipe, a hash of this script and of the package list.
# An existing image is reused when its label matches, and rebuilt otherwise (so an older image is
# replaced as soon as the recipe changes); --force rebuilds anyway. The replaced images are removed
# unless a container still uses them. The bare images are built with an ordinary
# `docker build FROM debian:NN` when that base image exists locally or can be pulled; otherwise (no
# registry, as on the CI machines) from `debootstrap --variant=minbase` + `docker import`. The
# :latest images are built FROM the bare ones (`docker build`, apt inside the build).
#
# Usage: scripts/build_lab_images.sh [--force] [--parallel] [debian12] [debian13]   (default: both)
#   --force     rebuild even when the recipe label matches
#   --parallel  build the images at the same time
# Environment:
#   LAB_IMAGE_REPO       image repository prefix          (default lift-lab)
#   LAB_DEBIAN_MIRROR    Debian mirror for the images     (default: from the host, else deb.debian.org)
#   LAB_SECURITY_MIRROR  Debian security mirror           (default: from the host, else deb.debian.org)
#   LAB_BUILD_METHOD     auto | docker-build | debootstrap (default auto; for the bare images)
#   LAB_PULL_TIMEOUT     seconds allowed for pulling the base image (default 120)
#   LAB_BUILD_TMPDIR     where the debootstrap tree is made (default /var/tmp)
# Needs root (debootstrap), docker, debootstrap: run scripts/bootstrap_host.sh first.
set -euo pipefail

SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
ROOT="$(dirname "$(dirname "${SELF}")")"
REPO="${LAB_IMAGE_REPO:-lift-lab}"
METHOD="${LAB_BUILD_METHOD:-auto}"
PULL_TIMEOUT="${LAB_PULL_TIMEOUT:-120}"
BUILD_TMPDIR="${LAB_BUILD_TMPDIR:-/var/tmp}"
# What the images contain besides the base system (python3-apt: for ansible.builtin.apt;
# acl: lets Ansible become an unprivileged user such as postgres without pipelining).
IMAGE_PACKAGES=(python3 python3-apt systemd systemd-sysv sudo procps ca-certificates acl)
# What the :latest images add: the packages that roles/server (@PG@ is the release's PostgreSQL
# major version, from roles/server/vars/Debian-NN.yml), roles/scheduled_backup,
# roles/clean_restore, roles/pitr, lab/prepare.yml and the molecule scenarios install on a lab
# machine.
# Left out on purpose: openssh-server (its host keys would be the same on every machine) and
# cron (a daemon on every machine); the scenarios that need them install them.
LAB_PACKAGES=(postgresql-@PG@ postgresql-client-@PG@ python3-psycopg2 acl zstd lz4 age
  python3-boto3 python3-paramiko pgbackrest)

log() { printf '[build_lab_images] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit "${1:-0}"
}

FORCE=0
PARALLEL=0
TARGETS=()
for arg in "$@"; do
  case "${arg}" in
    --force) FORCE=1 ;;
    --parallel) PARALLEL=1 ;;
    -h | --help) usage 0 ;;
    debian12 | debian13) TARGETS+=("${arg}") ;;
    *) log "unknown argument: ${arg}"; usage 2 ;;
  esac
done
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=(debian12 debian13)
case "${METHOD}" in auto | docker-build | debootstrap) ;; *) die "bad LAB_BUILD_METHOD: ${METHOD}" ;; esac

command -v docker >/dev/null 2>&1 || die "docker client not found (run scripts/bootstrap_host.sh)"
docker info >/dev/null 2>&1 || die "the docker engine does not answer (run scripts/bootstrap_host.sh)"

# ---------------------------------------------------------------------------------------------
# Work directories, removed on exit. A debootstrap tree may still have /proc or /sys mounted
# after a failed run: unmount everything below it before removing it, and never cross into
# another file system while removing.
WORKDIRS=()
cleanup() {
  local dir mnt
  for dir in "${WORKDIRS[@]}"; do
    [[ -d ${dir} ]] || continue
    # Deepest mount points first.
    while read -r mnt; do
      umount -l "${mnt}" 2>/dev/null || true
    done < <(awk -v d="${dir}/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r)
    rm -rf --one-file-system "${dir}"
  done
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------
# Debian mirrors, taken from the host's apt sources (one-line *.list and deb822 *.sources).
# Prints "URI SUITE" for every enabled `deb` entry.
host_apt_entries() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -r ${f} ]] || continue
    # deb [options] URI SUITE COMPONENTS...
    awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                       if (i + 1 <= NF) print $i, $(i + 1) }' "${f}"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -r ${f} ]] || continue
    awk 'function flush() { if (isdeb && enabled) for (u = 1; u <= nu; u++) for (s = 1; s <= ns; s++) print uris[u], suites[s]
                            isdeb = 0; enabled = 1; nu = 0; ns = 0 }
         BEGIN { enabled = 1 }
         /^[ \t]*#/ { next }
         /^[ \t]*$/ { flush(); next }
         tolower($1) == "types:"   { for (i = 2; i <= NF; i++) if ($i == "deb") isdeb = 1 }
         tolower($1) == "enabled:" { if (tolower($2) == "no") enabled = 0 }
         tolower($1) == "uris:"    { for (i = 2; i <= NF; i++) uris[++nu] = $i }
         tolower($1) == "suites:"  { for (i = 2; i <= NF; i++) suites[++ns] = $i }
         END { flush() }' "${f}"
  done
}

DEBIAN_CODENAMES='^(buster|bullseye|bookworm|trixie|forky|duke|sid|stable|testing|unstable|oldstable)'
pick_mirror() { # $1 = security|main
  local uri suite
  while read -r uri suite; do
    [[ ${suite} =~ ${DEBIAN_CODENAMES} ]] || continue
    if [[ $1 == security && ${suite} == *-security ]] ||
      [[ $1 == main && ${suite} != *-security && ${suite} != *-backports ]]; then
      printf '%s\n' "${uri%/}"
      return 0
    fi
  done < <(host_apt_entries)
  return 1
}

MIRROR="${LAB_DEBIAN_MIRROR:-$(pick_mirror main || echo http://deb.debian.org/debian)}"
SECURITY_MIRROR="${LAB_SECURITY_MIRROR:-$(pick_mirror security || echo http://deb.debian.org/debian-security)}"

write_sources() { # $1 = suite, $2 = file
  cat >"$2" <<EOF
# Written by lift_simulator.postgresql scripts/build_lab_images.sh (mirrors from the build host).
Types: deb
URIs: ${MIRROR}
Suites: $1 $1-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${SECURITY_MIRROR}
Suites: $1-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
}

# Run inside the image (docker build RUN, or chroot into the debootstrap tree): make systemd
# behave as PID 1 of an unprivileged container, and make the image small.
write_customize() { # $1 = file
  cat >"$1" <<'EOF'
#!/bin/sh
set -eu
# Package scripts must be able to start services (postgresql) inside the running container.
rm -f /usr/sbin/policy-rc.d
# Units that fail or make no sense in a container without devices, consoles or kernel access,
# and apt's timers, which would hold the apt lock while tests install packages.
for unit in \
  systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
  systemd-udev-trigger.service systemd-udev-settle.service systemd-hwdb-update.service \
  getty.target console-getty.service getty@tty1.service serial-getty@console.service \
  systemd-modules-load.service kmod-static-nodes.service systemd-remount-fs.service \
  systemd-firstboot.service systemd-machine-id-commit.service \
  sys-kernel-debug.mount sys-kernel-tracing.mount sys-kernel-config.mount \
  sys-fs-fuse-connections.mount dev-hugepages.mount proc-sys-fs-binfmt_misc.automount \
  systemd-binfmt.service systemd-pstore.service systemd-logind.service \
  apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer
do
  ln -sf /dev/null "/etc/systemd/system/${unit}"
done
ln -sf /lib/systemd/system/multi-user.target /etc/systemd/system/default.target
# No documentation in packages installed later (postgresql inside the lab containers).
cat >/etc/dpkg/dpkg.cfg.d/01-lift-lab-nodoc <<'EOT'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*/LC_MESSAGES/*.mo
path-exclude /usr/share/lintian/*
EOT
find /usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete
find /usr/share/doc -mindepth 1 -type d -empty -delete
rm -rf /usr/share/man/* /usr/share/info/* /usr/share/lintian/*
find /usr/share/locale -name '*.mo' -delete
# A new machine id on every container start; no host names or logs baked in.
: >/etc/machine-id
rm -f /var/lib/dbus/machine-id
rm -f /etc/hostname 2>/dev/null || true  # bind-mounted during docker build
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old \
  /var/log/apt/* /var/log/dpkg.log /var/log/alternatives.log /var/log/bootstrap.log /tmp/* /var/tmp/*
EOF
}

# Image settings shared by both build methods (`docker import --change` cannot set STOPSIGNAL,
# so the debootstrap path imports the tree and then applies these with a one-step build).
# SIGRTMIN+3 makes systemd halt cleanly on `docker stop`.
write_settings() { # $1 = base image, $2 = suite, $3 = method
  cat <<EOF
FROM $1
ENV container=docker LANG=C.UTF-8
STOPSIGNAL SIGRTMIN+3
LABEL lift-lab.suite=$2 lift-lab.method=$3
CMD ["/lib/systemd/systemd"]
EOF
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

base_available() { # $1 = debian:NN
  image_exists "$1" && return 0
  [[ ${METHOD} == debootstrap ]] && return 1
  log "trying to pull $1 (timeout ${PULL_TIMEOUT}s)"
  timeout "${PULL_TIMEOUT}" docker pull -q "$1" </dev/null >/dev/null 2>&1
}

# The image's lift-lab.recipe label: a hash of this script and of the arguments (the package
# list), so that a changed recipe is seen on every machine that has an older image.
recipe_hash() {
  { cat "${SELF}"; printf '%s\n' "$@"; } | sha256sum | cut -c1-16
}

image_recipe() { # $1 = tag; empty when the image is missing or has no label
  local value
  value="$(docker image inspect -f '{{ index .Config.Labels "lift-lab.recipe" }}' "$1" 2>/dev/null || true)"
  [[ ${value} == '<no value>' ]] && value=""
  printf '%s\n' "${value}"
}

image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }

# Removes an image a rebuild replaced, unless it is still the tag's or a container (or a child
# image) still uses it. (Removing a replaced :latest also removes its untagged parents, which may
# already include the replaced :bare.)
remove_replaced() { # $1 = old image id, $2 = tag
  [[ -n $1 && $1 != "$(image_id "$2")" ]] || return 0
  image_exists "$1" || return 0
  docker image rm "$1" >/dev/null 2>&1 || log "$2: previous image $1 still in use, kept"
}

build_with_docker() { # $1 = suite, $2 = base image, $3 = tag, $4... = docker build options (labels)
  local ctx
  ctx="$(mktemp -d "${BUILD_TMPDIR}/lift-lab-build.XXXXXX")"
  WORKDIRS+=("${ctx}")
  write_sources "$1" "${ctx}/debian.sources"
  write_customize "${ctx}/customize.sh"
  {
    write_settings "$2" "$1" docker-build
    cat <<EOF
COPY debian.sources /etc/apt/sources.list.d/debian.sources
COPY customize.sh /tmp/customize.sh
RUN rm -f /etc/apt/sources.list \\
 && apt-get update -q \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ${IMAGE_PACKAGES[*]} \\
 && sh /tmp/customize.sh
EOF
  } >"${ctx}/Dockerfile"
  docker build "${@:4}" -t "$3" "${ctx}" </dev/null
}

build_with_debootstrap() { # $1 = suite, $2 = tag, $3... = docker build options (labels)
  command -v debootstrap >/dev/null 2>&1 || die "debootstrap not found (run scripts/bootstrap_host.sh)"
  [[ ${EUID} -eq 0 ]] || die "debootstrap needs root"
  local work root include
  work="$(mktemp -d "${BUILD_TMPDIR}/lift-lab-debootstrap.XXXXXX")"
  WORKDIRS+=("${work}")
  root="${work}/root"
  include="$(IFS=,; echo "${IMAGE_PACKAGES[*]}")"
  log "debootstrap $1 from ${MIRROR} into ${root}"
  if ! debootstrap --variant=minbase --include="${include}" "$1" "${root}" "${MIRROR}" \
    </dev/null >"${work}/debootstrap.log" 2>&1; then
    tail -n 40 "${work}/debootstrap.log" >&2
    tail -n 40 "${root}/debootstrap/debootstrap.log" >&2 2>/dev/null || true
    die "debootstrap $1 failed"
  fi
  rm -f "${root}/etc/apt/sources.list"
  write_sources "$1" "${root}/etc/apt/sources.list.d/debian.sources"
  write_customize "${root}/tmp/customize.sh"
  chroot "${root}" /bin/sh /tmp/customize.sh </dev/null
  # The resolver config of the build host is not part of the image (docker provides one).
  rm -f "${root}/etc/resolv.conf"
  local rootfs="${2%:*}:rootfs-tmp"
  log "importing ${root} as $2"
  tar -C "${root}" --numeric-owner -c . | docker import - "${rootfs}" >/dev/null
  rm -rf --one-file-system "${root}"
  write_settings "${rootfs}" "$1" debootstrap | docker build -q "${@:3}" -t "$2" - >/dev/null
  docker image rm "${rootfs}" >/dev/null
}

# Run inside the :latest image's build (root, no systemd): the packages given as arguments, as a
# role installs them, but no service started and no PostgreSQL cluster created (a drop-in of
# postgresql-common's createcluster.conf, removed afterwards: the conffile stays as shipped, so the
# machine behaves as any Debian machine). Nothing machine-specific or cached is left behind.
write_install_packages() { # $1 = file
  cat >"$1" <<'EOF'
#!/bin/sh
set -eu
export DEBIAN_FRONTEND=noninteractive
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
chmod 0755 /usr/sbin/policy-rc.d
dropin=/etc/postgresql-common/createcluster.d/00-lift-lab-build.conf
mkdir -p "${dropin%/*}"
printf 'create_main_cluster = false\n' >"${dropin}"
apt-get update -q
apt-get install -y -q --no-install-recommends "$@"
rm -f "${dropin}" /usr/sbin/policy-rc.d
# The checks: every package installed, no cluster, postgresql-common's conffiles unchanged.
for pkg in "$@"; do
  dpkg-query -W -f='${db:Status-Abbrev}' "${pkg}" | grep -q '^ii' || { echo "${pkg} is not installed" >&2; exit 1; }
done
if [ -n "$(pg_lsclusters -h)" ] || [ -n "$(ls -A /etc/postgresql)" ]; then
  echo "a PostgreSQL cluster was created:" >&2
  pg_lsclusters >&2
  exit 1
fi
if dpkg --verify postgresql-common | grep ' /etc/'; then
  echo "a conffile of postgresql-common was changed" >&2
  exit 1
fi
# ssl-cert made a snakeoil key and certificate: every container makes its own on its first boot
# (before PostgreSQL starts), as a machine does when it installs the package.
if [ -x /usr/sbin/make-ssl-cert ]; then
  rm -f /etc/ssl/private/ssl-cert-snakeoil.key /etc/ssl/certs/ssl-cert-snakeoil.pem
  cat >/etc/systemd/system/lift-lab-snakeoil.service <<'EOT'
[Unit]
Description=Lab image: this machine's own snakeoil certificate (the image ships none)
ConditionPathExists=!/etc/ssl/private/ssl-cert-snakeoil.key
Before=postgresql.service

[Service]
Type=oneshot
ExecStart=/usr/sbin/make-ssl-cert generate-default-snakeoil

[Install]
WantedBy=multi-user.target
EOT
  mkdir -p /etc/systemd/system/multi-user.target.wants
  ln -sf /etc/systemd/system/lift-lab-snakeoil.service /etc/systemd/system/multi-user.target.wants/
fi
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old \
  /var/log/apt/* /var/log/dpkg.log /var/log/alternatives.log /tmp/* /var/tmp/*
EOF
}

build_with_packages() { # $1 = bare image, $2 = tag, $3 = label options (one word each), $4... = packages
  local ctx labels
  read -r -a labels <<<"$3"
  ctx="$(mktemp -d "${BUILD_TMPDIR}/lift-lab-build.XXXXXX")"
  WORKDIRS+=("${ctx}")
  write_install_packages "${ctx}/install-packages.sh"
  cat >"${ctx}/Dockerfile" <<EOF
FROM $1
COPY install-packages.sh /tmp/install-packages.sh
RUN sh /tmp/install-packages.sh ${*:4}
EOF
  log "$2: installing ${*:4}"
  if ! docker build "${labels[@]}" -t "$2" "${ctx}" </dev/null >"${ctx}/build.log" 2>&1; then
    tail -n 60 "${ctx}/build.log" >&2
    die "$2: installing the packages failed"
  fi
}

# The release's PostgreSQL major version, as the server role reads it.
postgresql_version() { # $1 = 12 | 13
  local file="${ROOT}/roles/server/vars/Debian-$1.yml" version
  version="$(sed -n 's/^__server_postgresql_version: *["'\'']\{0,1\}\([0-9][0-9]*\).*$/\1/p' "${file}" 2>/dev/null || true)"
  [[ -n ${version} ]] || die "no __server_postgresql_version in ${file}"
  printf '%s\n' "${version}"
}

build_one() { # $1 = debian12 | debian13
  local version="${1#debian}" suite pg tag bare start recipe bare_recipe have old_id old_bare_id
  case "${version}" in 12) suite=bookworm ;; 13) suite=trixie ;; *) die "unknown target $1" ;; esac
  pg="$(postgresql_version "${version}")"
  local packages=("${LAB_PACKAGES[@]//@PG@/${pg}}")
  tag="${REPO}/$1:latest"
  bare="${REPO}/$1:bare"
  bare_recipe="$(recipe_hash "${suite}")"
  recipe="$(recipe_hash "${suite}" "${packages[@]}")"
  have="$(image_recipe "${tag}")"
  if [[ ${FORCE} -eq 0 && ${have} == "${recipe}" ]]; then
    log "${tag}: recipe ${recipe} unchanged, reused (use --force to rebuild)"
    return 0
  fi
  log "${tag}: building recipe ${recipe} (the existing image has: ${have:-none})"
  old_id="$(image_id "${tag}")"
  old_bare_id="$(image_id "${bare}")"
  start=${SECONDS}
  if [[ ${FORCE} -eq 0 && $(image_recipe "${bare}") == "${bare_recipe}" ]]; then
    log "${bare}: recipe ${bare_recipe} unchanged, reused"
  else
    local bare_labels=(--label "lift-lab.recipe=${bare_recipe}" --label lift-lab.flavor=bare)
    if [[ ${METHOD} != debootstrap ]] && base_available "debian:${version}"; then
      log "${bare}: docker build FROM debian:${version}"
      build_with_docker "${suite}" "debian:${version}" "${bare}" "${bare_labels[@]}"
    elif [[ ${METHOD} == docker-build ]]; then
      die "debian:${version} cannot be pulled and LAB_BUILD_METHOD=docker-build"
    else
      log "${bare}: no base image debian:${version}; using debootstrap ${suite}"
      build_with_debootstrap "${suite}" "${bare}" "${bare_labels[@]}"
    fi
    log "${bare}: built in $((SECONDS - start))s"
  fi
  build_with_packages "${bare}" "${tag}" \
    "--label lift-lab.recipe=${recipe} --label lift-lab.flavor=packages --label lift-lab.postgresql=${pg}" \
    "${packages[@]}"
  # The child first: a replaced :bare can only go once nothing is built on it.
  remove_replaced "${old_id}" "${tag}"
  remove_replaced "${old_bare_id}" "${bare}"
  log "${tag}: built in $((SECONDS - start))s ($(docker image inspect -f '{{.Size}}' "${tag}" | awk '{ printf "%d MB", $1 / 1000000 }'))"
}

log "mirrors: ${MIRROR} / ${SECURITY_MIRROR}"
if [[ ${PARALLEL} -eq 0 || ${#TARGETS[@]} -eq 1 ]]; then
  for target in "${TARGETS[@]}"; do
    build_one "${target}"
  done
  exit 0
fi

# --parallel: one background build per image, each with its own log, shown when it ends.
LOGDIR="$(mktemp -d "${BUILD_TMPDIR}/lift-lab-logs.XXXXXX")"
WORKDIRS+=("${LOGDIR}")
declare -A PIDS=()
for target in "${TARGETS[@]}"; do
  (
    WORKDIRS=()
    trap cleanup EXIT
    build_one "${target}"
  ) >"${LOGDIR}/${target}.log" 2>&1 &
  PIDS[${target}]=$!
done
failed=()
for target in "${TARGETS[@]}"; do
  if ! wait "${PIDS[${target}]}"; then
    failed+=("${target}")
  fi
  cat "${LOGDIR}/${target}.log" >&2
done
[[ ${#failed[@]} -eq 0 ]] || die "build failed: ${failed[*]}"
