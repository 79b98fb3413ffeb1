#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: backup_info
short_description: List the backups in a directory and on off-site targets, newest first, with their health
version_added: 0.1.0
description:
  - Lists the backups of O(database) in O(backup_dir), newest first, with their manifest data, their
    age, whether their manifest exists and is valid, and whether their sha256 still matches.
  - With O(targets) (SFTP servers, S3-compatible buckets) it lists the copies on each target the same way, in
    RV(targets), with each target's newest good copy and its age; and it sets the local and remote copies side
    by side in RV(copies) - for each backup name, where it exists and whether it is good there.
  - Returns the newest good backup in RV(newest_good), so that a playbook can alert when the
    scheduled backups stopped (see the examples).
  - A backup is good exactly as for M(lift_simulator.postgresql.prune) (see the collection's
    C(docs/retention.md)) - this collection's name, a valid manifest naming it, the size (and with
    O(verify_checksums), the sha256) of the manifest - or, with O(include_legacy), a non-empty
    backup of the earlier processes.
  - Read-only. Symlinks are never followed; entries whose names are not backups of O(database)
    are not listed.
options:
  backup_dir:
    description:
      - The backup directory (O(lift_simulator.postgresql.backup#module:backup_dir) of the backup module).
        When it does not exist the module returns no backups and RV(path_exists=false).
      - At least one of O(backup_dir) and O(targets) is required. Without O(backup_dir), RV(path) is null and
        RV(path_exists) false.
      - O(path) is its older name, deprecated.
    type: path
    version_added: 0.2.0
    aliases: [ path ]
  targets:
    description:
      - Off-site targets whose copies are listed beside the directory's, each with the settings of the
        O(lift_simulator.postgresql.offsite#module:target) option of M(lift_simulator.postgresql.offsite) (the
        collection's doc fragment C(offsite_target) describes them) and an optional O(targets[].name).
      - A target that cannot be read (connection, credentials) fails the module, after the other targets are
        listed; one whose location does not exist yet lists no copies, with a warning.
    type: list
    elements: dict
    version_added: 0.2.0
    suboptions:
      name:
        description:
          - The target's label in RV(targets[].name) and RV(copies[].where); by default its description without
            credentials (RV(targets[].target)). Labels must differ from each other and from V(local) (the
            directory's label).
        type: str
      type:
        description: As O(lift_simulator.postgresql.offsite#module:target.type).
        type: str
        choices: [ sftp, s3 ]
        required: true
      host:
        description: As O(lift_simulator.postgresql.offsite#module:target.host).
        type: str
      port:
        description: As O(lift_simulator.postgresql.offsite#module:target.port).
        type: int
        default: 22
      user:
        description: As O(lift_simulator.postgresql.offsite#module:target.user).
        type: str
      directory:
        description: As O(lift_simulator.postgresql.offsite#module:target.directory) (never created here).
        type: str
      private_key:
        description: As O(lift_simulator.postgresql.offsite#module:target.private_key); never logged.
        type: str
      private_key_file:
        description: As O(lift_simulator.postgresql.offsite#module:target.private_key_file).
        type: path
      known_hosts:
        description: As O(lift_simulator.postgresql.offsite#module:target.known_hosts).
        type: str
      known_hosts_file:
        description: As O(lift_simulator.postgresql.offsite#module:target.known_hosts_file).
        type: path
      connect_timeout:
        description: As O(lift_simulator.postgresql.offsite#module:target.connect_timeout).
        type: int
        default: 10
      bucket:
        description: As O(lift_simulator.postgresql.offsite#module:target.bucket).
        type: str
      prefix:
        description: As O(lift_simulator.postgresql.offsite#module:target.prefix).
        type: str
        default: ''
      endpoint_url:
        description: As O(lift_simulator.postgresql.offsite#module:target.endpoint_url).
        type: str
      region:
        description: As O(lift_simulator.postgresql.offsite#module:target.region).
        type: str
      addressing_style:
        description: As O(lift_simulator.postgresql.offsite#module:target.addressing_style).
        type: str
        choices: [ auto, path, virtual ]
        default: auto
      access_key:
        description: As O(lift_simulator.postgresql.offsite#module:target.access_key); never logged.
        type: str
      secret_key:
        description: As O(lift_simulator.postgresql.offsite#module:target.secret_key); never logged.
        type: str
      session_token:
        description: As O(lift_simulator.postgresql.offsite#module:target.session_token); never logged.
        type: str
      validate_certs:
        description: As O(lift_simulator.postgresql.offsite#module:target.validate_certs).
        type: bool
        default: true
      ca_bundle:
        description: As O(lift_simulator.postgresql.offsite#module:target.ca_bundle).
        type: path
      object_lock_days:
        description: As O(lift_simulator.postgresql.offsite#module:target.object_lock_days); not used here (nothing is
          uploaded).
        type: int
      object_lock_mode:
        description: As O(lift_simulator.postgresql.offsite#module:target.object_lock_mode); not used here.
        type: str
        choices: [ COMPLIANCE, GOVERNANCE ]
        default: COMPLIANCE
  database:
    description:
      - The name prefix of the backups to list, C(<database>_backup_...).
      - O(prefix) is an older name, deprecated.
    type: str
    default: lift_simulator
    aliases: [ db, prefix ]
  include_legacy:
    description:
      - Also list the earlier processes' backups (C(<database>_backup_YYYYMMDD_HHMMSS.sql)
        without a manifest, C(<database>_backup_YYYY-MM-DD_HH-mm-ss.backup)); a non-empty one
        counts as good.
      - The default is that of M(lift_simulator.postgresql.prune), this collection's backups only unless
        asked. (Before 0.2.0 the default was V(true).)
    type: bool
    default: false
  verify_checksums:
    description:
      - Hash every backup that is otherwise good and compare it with its manifest's sha256.
      - V(false) skips the hashing for speed; RV(backups[].checksum_ok) is then null and sizes are
        still compared with the manifests.
      - On O(targets) the hashing re-reads (downloads) every copy at each run, which costs time, bandwidth and, on a
        paid S3 service, egress; V(false) judges the copies by their sizes only (a copy damaged without a change of
        size then counts as good).
    type: bool
    default: true
  legacy_timezone:
    description:
      - Time zone of the times in the earlier processes' backup names (this collection's names,
        and all manifest times, are UTC).
    type: str
    choices: [ local, utc ]
    default: local
extends_documentation_fragment:
  - lift_simulator.postgresql.attributes
  - lift_simulator.postgresql.attributes.read_only
  - lift_simulator.postgresql.directory_checks
notes:
  - With O(targets), needs paramiko (Debian package C(python3-paramiko)) for SFTP and boto3 (C(python3-boto3)) for
    S3; the targets' credentials never appear in arguments, logs or results.
seealso:
  - module: lift_simulator.postgresql.prune
  - module: lift_simulator.postgresql.backup
  - module: lift_simulator.postgresql.offsite
author:
  - lift_simulator maintainers (@lift-simulator)
"""

EXAMPLES = r"""
- name: List the backups
  become: true
  become_user: postgres
  lift_simulator.postgresql.backup_info:
    backup_dir: /var/backups/lift_simulator
  register: backups

- name: Show them
  ansible.builtin.debug:
    msg: "{{ item.name }}: {{ item.age_days }} days, {{ item.size_bytes }} bytes, good {{ item.good }}"
  loop: "{{ backups.backups }}"
  loop_control:
    label: "{{ item.name }}"

# The alert for a missed schedule: fail (and let monitoring see the failed run) when the newest
# good backup is older than 8 days, or when there is none.
- name: Find the newest good backup (sizes only, quick)
  become: true
  become_user: postgres
  lift_simulator.postgresql.backup_info:
    backup_dir: /var/backups/lift_simulator
    verify_checksums: false
  register: info

- name: The newest good backup is younger than 8 days
  ansible.builtin.assert:
    that:
      - info.newest_good is not none
      - info.newest_good.age_days < 8
    fail_msg: >-
      No good backup of lift_simulator in the last 8 days on {{ inventory_hostname }}
      (newest good: {{ info.newest_good_path | default('none', true) }}).
    success_msg: "Newest good backup: {{ info.newest_good_path }}"
"""

RETURN = r"""
path:
  description: The backup directory (null without O(backup_dir)).
  returned: always
  type: str
  sample: /var/backups/lift_simulator
path_exists:
  description: Whether O(backup_dir) exists (false without it).
  returned: always
  type: bool
  sample: true
count:
  description: How many backups are listed.
  returned: always
  type: int
  sample: 7
good_count:
  description: How many of them are good.
  returned: always
  type: int
  sample: 6
newest_good_path:
  description: Path of the newest good backup, or null when there is none.
  returned: always
  type: str
  sample: /var/backups/lift_simulator/lift_simulator_backup_20261124_080001.sql
newest_good:
  description:
    - The entry of RV(backups) of the newest good backup, or null when there is none. A backup dated in
      the future never is (see RV(backups[].future)), so an age alert on it cannot stay green because
      of a wrong clock.
  returned: always
  type: dict
anomalies:
  description: What looks wrong beyond single backups, in words (backups dated in the future).
  returned: always
  type: list
  elements: str
future_count:
  description: How many backups are dated in the future.
  returned: always
  type: int
  sample: 0
backups:
  description: The backups, newest first.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: File (or folder) name.
      type: str
      sample: lift_simulator_backup_20261124_080001.sql
    path:
      description: Full path.
      type: str
      sample: /var/backups/lift_simulator/lift_simulator_backup_20261124_080001.sql
    kind:
      description: V(file), or V(directory) for a directory archive.
      type: str
      sample: file
    legacy:
      description: Whether it is an earlier process's backup (no manifest; time from its name).
      type: bool
      sample: false
    good:
      description: Whether it is a good backup.
      type: bool
      sample: true
    problem:
      description:
        - Why it is not good (null when it is), V(zero_bytes), V(no_manifest), V(invalid_manifest),
          V(size_mismatch) or V(checksum_mismatch).
      type: str
      sample: null
    problem_detail:
      description: The problem in words.
      type: str
      sample: the sha256 no longer matches the manifest
    manifest_path:
      description: The manifest's path, or null when it does not exist.
      type: str
      sample: /var/backups/lift_simulator/lift_simulator_backup_20261124_080001.sql.manifest.json
    manifest_exists:
      description: Whether a manifest entry exists beside the backup.
      type: bool
      sample: true
    manifest_valid:
      description: Whether the manifest is valid and names this backup.
      type: bool
      sample: true
    manifest_error:
      description: Why the manifest is not valid (null when it is or does not exist).
      type: str
      sample: null
    globals_path:
      description: The role definitions taken with the backup (C(<backup>.globals.sql)), or null.
      type: str
      sample: /var/backups/lift_simulator/lift_simulator_backup_20261124_080001.sql.globals.sql
    checksum_ok:
      description:
        - Whether the backup's sha256 matches its manifest; null when it was not hashed
          (O(verify_checksums=false), no valid manifest, a legacy backup, a size mismatch).
      type: bool
      sample: true
    database:
      description: The database, from the manifest (the name's prefix without one).
      type: str
      sample: lift_simulator
    format:
      description: V(plain), V(custom) or V(directory), from the manifest (the name without one).
      type: str
      sample: plain
    compression:
      description: V(none), V(gzip), V(zstd), V(lz4), from the manifest (the name without one; null when unknown).
      type: str
      sample: none
    size_bytes:
      description: Size on disk (the sum of the files for a directory archive).
      type: int
      sample: 861235
    sha256:
      description: The manifest's sha256 (null without a valid manifest).
      type: str
      sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    started_at:
      description: The manifest's C(started_at) (null without a valid manifest).
      type: str
      sample: "2026-11-24T08:00:01.123456Z"
    time:
      description: The backup's time, UTC - the manifest's C(started_at), or the time in its name.
      type: str
      sample: "2026-11-24T08:00:01Z"
    age_seconds:
      description: Age at the time of the run, in seconds.
      type: int
      sample: 108000
    age_days:
      description: Age at the time of the run, in days (negative for a backup dated in the future).
      type: float
      sample: 1.25
    future:
      description:
        - Whether the backup is dated after the time of the run (more than 10 minutes). A clock was wrong
          when it was made, or is wrong now. Such a backup never counts as RV(newest_good) and is
          listed in RV(anomalies); M(lift_simulator.postgresql.prune) keeps it and does not let it
          displace older backups.
      type: bool
      sample: false
    row_counts_total:
      description: Sum of the manifest's row counts (null without a valid manifest).
      type: int
      sample: 123456
    tables:
      description: Number of tables in the manifest's row counts (null without a valid manifest).
      type: int
      sample: 14
    flyway_version:
      description: The manifest's Flyway version (null when unknown).
      type: str
      sample: "13"
left_alone:
  description: Backup-named entries that are not listed, and why (symlinks, other kinds of file).
  returned: always
  type: list
  elements: dict
orphan_manifests:
  description: Manifests whose backup is gone (M(lift_simulator.postgresql.prune) removes them).
  returned: always
  type: list
  elements: str
orphan_globals:
  description: Role definitions files (C(<backup>.globals.sql)) whose backup is gone (prune removes them).
  returned: always
  type: list
  elements: str
targets:
  description:
    - Each of O(targets), in their order, with its copies listed as the directory's backups are at the top level
      (RV(path), RV(backups), RV(newest_good)... with the target's location for the directory).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The target's label (O(targets[].name), or its description).
      type: str
      sample: offsite-s3
    target:
      description: The target, without credentials, as M(lift_simulator.postgresql.offsite) names it.
      type: str
      sample: s3://lift-backups/db1 (https://s3.example.net:8333)
    path:
      description: The target's location; the paths of its backups are inside it.
      type: str
      sample: s3://lift-backups/db1
    path_exists:
      description: Whether the location exists (an SFTP directory, an S3 bucket).
      type: bool
      sample: true
    count:
      description: How many copies are listed.
      type: int
      sample: 7
    good_count:
      description: How many of them are good.
      type: int
      sample: 6
    newest_good:
      description: The entry of RV(targets[].backups) of the newest good copy, or null (never one dated in the future).
      type: dict
    newest_good_path:
      description: Location and name of the newest good copy, or null.
      type: str
      sample: s3://lift-backups/db1/lift_simulator_backup_20261124_080001.sql.zst.age
    newest_good_age_days:
      description: The newest good copy's age in days, or null when there is none (the value to alert on).
      type: float
      sample: 0.25
    backups:
      description:
        - The copies, newest first, with the fields of RV(backups) (C(path) is the location and the name).
        - On an S3 target also C(object_lock), the S3 Object Lock of the copy's objects (the backup, its role
          definitions, its manifest) as the server reports them - null when none of them carries one, else a dict
          with C(retain_until) (the earliest retain-until date among them, UTC; null when one of them has none),
          C(mode), C(legal_hold) (one of them is under a legal hold) and C(immutable) (the server retains every one of
          them now, by its own clock).
      type: list
      elements: dict
    anomalies:
      description: As RV(anomalies), for the target.
      type: list
      elements: str
    future_count:
      description: How many copies are dated in the future.
      type: int
      sample: 0
    left_alone:
      description: Backup-named entries that are not listed, and why.
      type: list
      elements: dict
    orphan_manifests:
      description: Manifests whose backup is gone.
      type: list
      elements: str
    orphan_globals:
      description: Role definitions files whose backup is gone.
      type: list
      elements: str
    error:
      description: Why the target could not be read (null when it could); the module then fails.
      type: str
      sample: null
copies:
  description:
    - The local and remote copies side by side - one entry per backup name found in the directory or on a target,
      newest first.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The backup's name.
      type: str
      sample: lift_simulator_backup_20261124_080001.sql.zst.age
    time:
      description: The backup's time, UTC (as in RV(backups[].time), from the first place that holds it).
      type: str
      sample: "2026-11-24T08:00:01Z"
    age_days:
      description: Its age in days at the time of the run.
      type: float
      sample: 1.25
    where:
      description:
        - Where it exists - a dict from the place's label (V(local) for the directory, RV(targets[].name) for a
          target) to C(good) (bool) and C(problem) (as RV(backups[].problem)).
      type: dict
      sample: {"local": {"good": true, "problem": null}, "offsite-s3": {"good": false, "problem": "checksum_mismatch"}}
    good_in:
      description: The labels of the places where it is good.
      type: list
      elements: str
      sample: [local]
    missing_from:
      description: The labels of the places examined where it does not exist.
      type: list
      elements: str
      sample: [offsite-sftp]
"""

import datetime
import errno
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.ansible_common import (
    directory_checks_argument_spec, offsite_target_argument_spec, renamed, target_settings)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact.naming import (
    manifest_name, parse_backup_name, safe_component)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.offsite import targets as offsite_targets
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.retention import apply as retention_apply
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.retention import policy as retention
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import path_trust
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.posix import PosixStorage

UTC = datetime.timezone.utc
LOCAL = "local"


def describe(candidate, path, now):
    manifest = candidate.manifest if candidate.manifest_valid else None
    parsed = parse_backup_name(candidate.name)
    age = int((now - candidate.time).total_seconds())
    counts = manifest["row_counts"] if manifest else None
    return dict(
        name=candidate.name,
        path=os.path.join(path, candidate.name),
        kind=candidate.kind,
        legacy=candidate.legacy,
        good=candidate.good,
        problem=candidate.problem,
        problem_detail=candidate.detail,
        manifest_path=(os.path.join(path, manifest_name(candidate.name))
                       if candidate.manifest_exists else None),
        manifest_exists=candidate.manifest_exists,
        globals_path=os.path.join(path, candidate.globals_name) if candidate.globals_name else None,
        manifest_valid=candidate.manifest_valid,
        manifest_error=candidate.manifest_error,
        checksum_ok=candidate.checksum_ok,
        database=manifest["database"] if manifest else parsed.prefix,
        format=manifest["format"] if manifest else parsed.format,
        compression=manifest["compression"] if manifest else parsed.compression,
        size_bytes=candidate.size,
        sha256=manifest["sha256"] if manifest else None,
        started_at=manifest["started_at"] if manifest else None,
        time=candidate.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        age_seconds=age,
        age_days=round(age / 86400.0, 3),
        row_counts_total=sum(counts.values()) if counts is not None else None,
        tables=len(counts) if counts is not None else None,
        flyway_version=manifest.get("flyway_version") if manifest else None,
        future=retention.is_future(candidate, now),
    )


def empty_listing(path, exists):
    """The result keys of one place (the directory at the top level, or a target) with nothing listed."""
    return dict(path=path, path_exists=exists, count=0, good_count=0, newest_good=None, newest_good_path=None,
                backups=[], left_alone=[], orphan_manifests=[], anomalies=[], future_count=0, orphan_globals=[])


def listing(store, path, p, now):
    """The backups of ``p["database"]`` in ``store`` (the directory or a target) as the result keys of a place;
    and the candidates (name -> candidate). Raises OSError when the place cannot be read."""
    scanned, candidates, _left_out, _ids = retention_apply.examine(
        store, safe_component(p["database"]), p["include_legacy"], p["verify_checksums"],
        legacy_tz=None if p["legacy_timezone"] == "local" else UTC)
    backups = [describe(c, path, now) for c in candidates]
    object_lock = getattr(store, "object_lock", None)  # S3 targets: the copies' Object Lock, as the server says
    if object_lock is not None:
        for backup, candidate in zip(backups, candidates):
            backup["object_lock"] = copy_lock(object_lock, candidate)
    good = [b for b in backups if b["good"] and not b["future"]]
    future = [b for b in backups if b["future"]]
    result = empty_listing(path, True)
    result.update(
        future_count=len(future),
        anomalies=["%s is dated %s, %.1f days after now: the clock was wrong when it was made or is wrong now"
                   % (b["name"], b["time"], -b["age_days"]) for b in future],
        backups=backups, count=len(backups), good_count=len([b for b in backups if b["good"]]),
        newest_good=good[0] if good else None, newest_good_path=good[0]["path"] if good else None,
        left_alone=[dict(path=os.path.join(path, entry.name), reason=reason) for entry, reason in scanned.skipped],
        orphan_manifests=[os.path.join(path, entry.name) for entry in scanned.orphan_manifests],
        orphan_globals=[os.path.join(path, entry.name) for entry in scanned.orphan_globals])
    return result


def copy_lock(object_lock, candidate):
    """RV(targets[].backups[].object_lock) of a copy: ``object_lock(name)`` of each of its objects."""
    names = [n for n in (candidate.name, candidate.globals_name, candidate.manifest_name) if n]
    locks = [object_lock(n) for n in names]
    if not any(locks):
        return None
    dates = [lock["retain_until"] if lock else None for lock in locks]
    return dict(retain_until=(min(dates).strftime("%Y-%m-%dT%H:%M:%SZ") if None not in dates else None),
                mode="/".join(sorted(set(lock["mode"] for lock in locks if lock and lock["mode"]))) or None,
                legal_hold=any(lock["legal_hold"] for lock in locks if lock),
                immutable=all(lock and lock["retained"] for lock in locks))


def local_listing(module, result, now):
    """The directory's backups, into the top-level keys (unchanged since 0.1.0)."""
    p = module.params
    path = result["path"]
    result["path_exists"] = os.path.lexists(path)
    if not result["path_exists"]:
        return
    if not os.path.isdir(path):
        module.fail_json(msg="%s is not a directory" % path, **result)
    try:
        for warning in path_trust.check([path], p["directory_checks"], "the backup directory"):
            module.warn(warning)
    except path_trust.UntrustedPathError as exc:
        module.fail_json(msg=str(exc), **result)
    try:
        result.update(listing(PosixStorage(path), path, p, now))
    except OSError as exc:
        module.fail_json(msg="cannot examine %s: %s" % (path, exc), **result)


def open_targets(module, result):
    """[(label, description, settings)] of O(targets), checked before anything is read."""
    opened, labels = [], set([LOCAL])
    for index, target in enumerate(module.params["targets"] or []):
        try:
            settings = target_settings(target)
            description = offsite_targets.describe(settings)
        except offsite_targets.TargetError as exc:
            module.fail_json(msg="targets[%d]: %s" % (index, exc), **result)
        label = target.get("name") or description
        if label in labels:
            module.fail_json(msg="targets[%d]: the label %r is taken (%s): give each target its own name" % (
                index, label, "the directory's" if label == LOCAL else "by another target"), **result)
        labels.add(label)
        opened.append((label, description, settings))
    return opened


def target_listing(module, label, description, settings, now):
    """One target's entry of RV(targets); ``error`` set when it cannot be read."""
    entry = dict(name=label, target=description, error=None, newest_good_age_days=None)
    entry.update(empty_listing(None, False))
    try:
        store = offsite_targets.open_target(settings)
    except (OSError, ImportError) as exc:
        entry["error"] = str(exc)
        return entry
    entry.update(path=store.location, path_exists=True)
    try:
        entry.update(listing(store, store.location, module.params, now))
    except OSError as exc:
        if exc.errno == errno.ENOENT and not_there(store):
            module.warn("%s does not exist (yet): no copies" % description)
            entry["path_exists"] = False
        else:
            entry["error"] = exc.strerror or str(exc)
    finally:
        store.close()
    if entry["newest_good"] is not None:
        entry["newest_good_age_days"] = entry["newest_good"]["age_days"]
    return entry


def not_there(store):
    """Whether the location itself is missing (not one of its files, gone while it was examined)."""
    try:
        store.entries()
    except OSError as exc:
        return exc.errno == errno.ENOENT
    return False


def side_by_side(places):
    """RV(copies): for each backup name in any place (label, listing), where it exists and whether it is good
    there, newest first."""
    copies = {}
    for label, place in places:
        for backup in place["backups"]:
            copy = copies.setdefault(backup["name"], dict(name=backup["name"], time=backup["time"],
                                                          age_days=backup["age_days"], where={}, good_in=[]))
            copy["where"][label] = dict(good=backup["good"], problem=backup["problem"])
            if backup["good"]:
                copy["good_in"].append(label)
    for copy in copies.values():
        copy["missing_from"] = [label for label, _place in places if label not in copy["where"]]
    return sorted(copies.values(), key=lambda c: (c["time"], c["name"]), reverse=True)


def main():
    target_options = offsite_target_argument_spec()["target"]
    module = AnsibleModule(
        argument_spec=dict(
            backup_dir=renamed(dict(type="path"), "path"),
            # Each target takes the options of `target` (the doc fragment offsite_target), and a label.
            targets=dict(type="list", elements="dict", options=dict(target_options["options"], name=dict(type="str")),
                         mutually_exclusive=target_options["mutually_exclusive"],
                         required_if=target_options["required_if"]),
            database=renamed(dict(type="str", default="lift_simulator", aliases=["db"]), "prefix"),
            include_legacy=dict(type="bool", default=False),
            verify_checksums=dict(type="bool", default=True),
            legacy_timezone=dict(type="str", default="local", choices=["local", "utc"]),
            **directory_checks_argument_spec()
        ),
        required_one_of=[["backup_dir", "targets"]],
        supports_check_mode=True,
    )
    p = module.params
    path = os.path.abspath(p["backup_dir"]) if p["backup_dir"] else None
    result = dict(changed=False, targets=[], copies=[], **empty_listing(path, False))
    if path is None and not p["targets"]:
        module.fail_json(msg="give backup_dir or at least one target in targets", **result)
    remote = open_targets(module, result)
    now = datetime.datetime.now(UTC)
    places = []
    if path is not None:
        local_listing(module, result, now)
        places.append((LOCAL, result))
    for label, description, settings in remote:
        entry = target_listing(module, label, description, settings, now)
        result["targets"].append(entry)
        places.append((label, entry))
    result["copies"] = side_by_side(places)
    failed = [t for t in result["targets"] if t["error"]]
    if failed:
        module.fail_json(msg="cannot read %s" % "; ".join("%s: %s" % (t["name"], t["error"]) for t in failed),
                         **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
