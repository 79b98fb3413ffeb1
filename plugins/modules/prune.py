#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: prune
short_description: Remove old backups by retention rules, never the newest good one
version_added: 0.1.0
description:
  - Applies retention rules to the backups in O(backup_dir), or to the off-site copies in O(target), and removes the
    backups (with their manifests) that no rule keeps, plus the leftovers of failed or interrupted runs. The rules
    and every decision are explained in the collection's C(docs/retention.md).
  - B(Off-site targets.) With O(target) (an SFTP server or an S3-compatible bucket, as
    M(lift_simulator.postgresql.offsite) fills them) the same scan, rules and removal order apply to the copies
    there - never the newest good copy, never an object whose name is not a backup (or manifest, or role
    definitions) of O(database). There is no local directory then (O(directory_checks) is not used); results name
    the target's location, C(sftp://user@host:port/dir) or C(s3://bucket/prefix). Hidden temporaries are those of
    writers on this host that no longer run (SFTP), or multipart uploads unfinished for more than a day (S3).
  - B(S3 Object Lock.) On an S3 target, before anything is removed, every object of each backup the rules would
    remove (the backup, its role definitions, its manifest; and orphans) is looked at (HEAD), and a backup any of whose
    objects the server still retains - a retain-until date not yet passed by the server's clock, or a legal hold -
    is kept whole and listed in RV(retained) (rule C(object_lock) in RV(kept)); so a copy is never removed in part.
    On a versioned bucket (every Object Lock bucket is one) a removal deletes the object's version for good, never
    by a delete marker. A removal the server refuses anyway is an error naming the object and why; the backup's
    later objects are left.
  - B(Good backups.) Only a backup with this collection's name C(<database>_backup_YYYYMMDD_HHMMSS)
    (C(.sql), C(.sql.gz), C(.sql.zst), C(.sql.lz4), C(.dump) or a directory archive) and a valid
    manifest whose C(backup_name) is that name, whose size matches the manifest and (with
    O(verify_checksums)) whose sha256 still matches, is good. The rules count good backups only.
  - B(Rules.) The newest good backup and the O(keep_last) newest good backups are always kept.
    O(max_age_days) removes the other good backups older than that. With O(keep_daily),
    O(keep_weekly) or O(keep_monthly) (grandfather-father-son), a good backup is kept when one of
    them selects it, and removed otherwise. Without them, good backups younger than
    O(max_age_days) are kept; without O(max_age_days) either, only the O(keep_last) newest are.
  - B(Backups that are not good.) A 0-byte backup file is removed (unless it was modified in the
    last hour, as another process may still be writing it). A backup without a manifest, with an
    invalid or foreign manifest, of the wrong size or with a checksum mismatch is removed once a
    newer good backup exists, and kept (and reported) while none does.
  - B(Leftovers.) A manifest or role definitions file (C(<backup>.globals.sql)) whose backup is gone
    (an orphan) is removed, and so are hidden temporaries C(.<name>.partial-<host>-<pid>) of this host
    whose writer no longer runs. A backup goes with its role definitions and its manifest (last).
  - B(A wrong clock.) A backup dated more than 10 minutes after now is kept and counts for nothing
    (not as the newest good backup, not for O(keep_last) or a calendar rule) until its time has come,
    so a clock that once ran ahead never makes retention remove today's backups.
  - B(Earlier processes.) C(<database>_backup_YYYYMMDD_HHMMSS.sql) without a manifest and
    C(<database>_backup_YYYY-MM-DD_HH-mm-ss.backup) are the earlier processes' backups. They are
    left alone unless O(include_legacy=true); then a non-empty one is a good backup subject to the
    rules (its time is the time in its name, see O(legacy_timezone)) and an empty one is removed.
  - B(Safety.) Entries whose names are not backups of O(database) (the C(logs) folder, other
    files) are never touched. Symlinks are never followed and never removed, even with a backup's
    name; nothing outside O(backup_dir) is removed. Directory archives are removed recursively without
    following symlinks. An entry that changed between the scan and the removal is left alone
    and reported as an error.
options:
  backup_dir:
    description:
      - The backup directory (O(lift_simulator.postgresql.backup#module:backup_dir) of the backup module).
      - When it does not exist the module warns and removes nothing.
      - One of O(backup_dir) and O(target) is required; they are mutually exclusive.
      - O(path) is its older name, deprecated.
    type: path
    version_added: 0.2.0
    aliases: [ path ]
  database:
    description:
      - The name prefix of the backups to consider, C(<database>_backup_...); the database name
        the backups were made of (made file-name safe as the backup module does).
      - O(prefix) is an older name, deprecated.
    type: str
    default: lift_simulator
    aliases: [ db, prefix ]
  keep_last:
    description:
      - Always keep this many of the newest good backups, whatever the other rules say.
      - The newest good backup is kept even with V(0).
    type: int
    default: 4
  keep_daily:
    description:
      - Keep the newest good backup of each of the last N days that have good backups.
    type: int
  keep_weekly:
    description:
      - Keep the newest good backup of each of the last N ISO weeks that have good backups.
    type: int
  keep_monthly:
    description:
      - Keep the newest good backup of each of the last N months that have good backups.
    type: int
  max_age_days:
    description:
      - Remove good backups older than this many days, unless O(keep_last) keeps them (it always
        wins, so there are never fewer than O(keep_last) good backups).
      - It also limits O(keep_daily), O(keep_weekly) and O(keep_monthly).
      - Without those rules it is the retention period itself; the earlier process kept 90 days but
        never fewer than 3, which is O(max_age_days=90) with O(keep_last=3).
    type: int
  include_legacy:
    description:
      - Also handle the backups of the earlier processes (see the description).
    type: bool
    default: false
  verify_checksums:
    description:
      - Hash every good backup and compare it with its manifest's sha256; a backup that no longer
        matches is not good (and is removed once a newer good backup exists).
      - V(false) skips the hashing (sizes are still compared with the manifests).
      - On a O(target) the hashing re-reads (downloads) every good copy at each run, which costs time, bandwidth
        and, on a paid S3 service, egress; V(false) judges the copies by their sizes only, so a copy damaged without
        a change of size then counts as good (and can become the newest good copy). The meaning is the same as for
        a directory.
    type: bool
    default: true
  calendar_timezone:
    description:
      - Time zone of the day, week and month boundaries of O(keep_daily), O(keep_weekly) and
        O(keep_monthly). Backup times are compared in UTC in every case.
      - O(timezone) is its older name, deprecated. (The clock of the backup's name is another idea, the
        backup module's O(lift_simulator.postgresql.backup#module:name_timezone).)
    type: str
    version_added: 0.2.0
    choices: [ utc, local ]
    default: utc
    aliases: [ timezone ]
  legacy_timezone:
    description:
      - Time zone of the times in the earlier processes' backup names (this collection's names,
        and all manifest times, are UTC). The earlier processes used the host's local time.
    type: str
    choices: [ local, utc ]
    default: local
extends_documentation_fragment:
  - lift_simulator.postgresql.attributes
  - lift_simulator.postgresql.directory_checks
  - lift_simulator.postgresql.offsite_target
attributes:
  check_mode:
    support: full
    details: Check mode lists in RV(removed) what would be removed, and removes nothing (on a O(target) too).
  diff_mode:
    support: full
    details: The diff lists the backups, manifests and leftovers before and after (of the directory or the target).
  idempotent:
    support: full
    details: A second run at (nearly) the same time removes nothing; as time passes the rules select other backups.
notes:
  - With O(target), needs paramiko (Debian package C(python3-paramiko)) for SFTP and boto3 (C(python3-boto3)) for S3;
    the target's credentials never appear in arguments, logs or results.
  - On a versioned S3 bucket the credentials need C(s3:DeleteObjectVersion) to remove, and (AWS) C(s3:GetObjectRetention)
    and C(s3:GetObjectLegalHold) to see locks; without the latter a locked copy is not seen as retained, and the
    server's refusal to remove it is reported as an error.
seealso:
  - module: lift_simulator.postgresql.backup_info
  - module: lift_simulator.postgresql.backup
  - module: lift_simulator.postgresql.offsite
author:
  - lift_simulator maintainers (@lift-simulator)
"""

EXAMPLES = r"""
- name: The earlier process's retention - 90 days, never fewer than 3 backups
  become: true
  become_user: postgres
  lift_simulator.postgresql.prune:
    backup_dir: /var/backups/lift_simulator
    keep_last: 3
    max_age_days: 90
    include_legacy: true

- name: Grandfather-father-son - 7 daily, 5 weekly, 12 monthly, and at least the 4 newest
  become: true
  become_user: postgres
  lift_simulator.postgresql.prune:
    backup_dir: /var/backups/lift_simulator
    keep_daily: 7
    keep_weekly: 5
    keep_monthly: 12

- name: See what would be removed, and why
  become: true
  become_user: postgres    # the backups' owner
  lift_simulator.postgresql.prune:
    backup_dir: /var/backups/lift_simulator
    keep_last: 3
    max_age_days: 90
  check_mode: true
  register: preview

- name: Show it
  ansible.builtin.debug:
    msg: "{{ preview.removed | map(attribute='name') | zip(preview.removed | map(attribute='rule')) | list }}"
"""

RETURN = r"""
path:
  description:
    - The backup directory, or with O(target) the target's location (C(sftp://user@host:port/dir),
      C(s3://bucket/prefix)); the paths of RV(kept) and RV(removed) are inside it.
  returned: always
  type: str
  sample: /var/backups/lift_simulator
target:
  description: The target, without credentials, as M(lift_simulator.postgresql.offsite) names it.
  returned: when O(target) is given
  type: str
  sample: s3://lift-backups/db1 (https://s3.example.net:8333)
kept:
  description:
    - The backups kept, newest first, each with the rule that kept it.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: File (or folder) name.
      type: str
      sample: lift_simulator_backup_20261124_080001.sql
    path:
      description: Full path (on a target, its location and the name).
      type: str
      sample: /var/backups/lift_simulator/lift_simulator_backup_20261124_080001.sql
    rule:
      description:
        - The rule that decided, for example C(keep_last), C(newest_good), C(keep_daily 2026-11-24),
          C(keep_weekly 2026-W48), C(keep_monthly 2026-11), C(within_max_age), C(zero_bytes_recent),
          C(no_newer_good_backup), C(object_lock) (the rules would remove it, the S3 server still retains it; see
          RV(retained)).
      type: str
      sample: keep_daily 2026-11-24
    rules:
      description: Every keep rule that selects the backup.
      type: list
      elements: str
      sample: [keep_last, newest_good, keep_daily 2026-11-24]
    reason:
      description: The decision in words.
      type: str
      sample: one of the 4 newest good backups
    what:
      description: V(backup), V(manifest) or V(globals) (an orphan) or V(partial) (a leftover temporary).
      type: str
      sample: backup
    time:
      description: The backup's time (manifest's C(started_at), or the time in its name), UTC.
      type: str
      sample: "2026-11-24T08:00:01Z"
    age_days:
      description: Age in days at the time of the run.
      type: float
      sample: 1.25
    good:
      description: Whether the backup is good.
      type: bool
      sample: true
    problem:
      description:
        - Why it is not good (null when it is), V(zero_bytes), V(no_manifest), V(invalid_manifest),
          V(size_mismatch) or V(checksum_mismatch).
      type: str
      sample: null
    legacy:
      description: Whether it is an earlier process's backup.
      type: bool
      sample: false
    size_bytes:
      description: Size on disk (the sum of the files for a directory archive).
      type: int
      sample: 861235
    manifest_path:
      description: Its manifest, removed together with it (null when there is none).
      type: str
      sample: /var/backups/lift_simulator/lift_simulator_backup_20261124_080001.sql.manifest.json
removed:
  description:
    - What was removed (in check mode, what would be), newest backups first, then orphan manifests
      and leftover temporaries; the entries have the fields of RV(kept).
    - The rule is for example C(max_age_days), C(not_selected), C(zero_bytes), C(checksum_mismatch),
      C(size_mismatch), C(no_manifest), C(invalid_manifest), C(orphan_manifest), C(orphan_globals) or C(stale_partial).
  returned: always
  type: list
  elements: dict
  sample:
    - name: lift_simulator_backup_20260801_020000.sql
      path: /var/backups/lift_simulator/lift_simulator_backup_20260801_020000.sql
      rule: max_age_days
      reason: older than 90 days
      what: backup
retained:
  description:
    - What the rules would remove but the S3 server still retains (Object Lock, legal hold), as it answered for each
      object; each is also in RV(kept) with the rule C(object_lock). Empty on other storage.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The backup (or orphan's) name.
      type: str
      sample: lift_simulator_backup_20261101_020000.sql.zst.age
    path:
      description: Its location and name.
      type: str
      sample: s3://lift-backups/db1/lift_simulator_backup_20261101_020000.sql.zst.age
    rule:
      description: The rule that would have removed it (as in RV(removed)).
      type: str
      sample: max_age_days
    what:
      description: As in RV(kept).
      type: str
      sample: backup
    retain_until:
      description: The last retain-until date among its objects (UTC), or null (a legal hold only).
      type: str
      sample: "2026-12-31T08:00:01Z"
    mode:
      description: The Object Lock mode (or modes, joined by C(/)) of its objects.
      type: str
      sample: COMPLIANCE
    legal_hold:
      description: Whether one of its objects is under a legal hold.
      type: bool
      sample: false
    objects:
      description: Each object the server retains, with its C(name), C(retain_until), C(mode) and C(legal_hold).
      type: list
      elements: dict
left_alone:
  description:
    - Backup-named entries left alone, and why (symlinks, earlier processes' backups without
      O(include_legacy)).
  returned: always
  type: list
  elements: dict
  sample:
    - path: /var/backups/lift_simulator/lift_simulator_backup_20261101_020000.sql
      reason: "a backup name on a symlink: never followed or removed"
errors:
  description: Entries that could not be removed, and why.
  returned: failure
  type: list
  elements: dict
"""

import datetime
import errno
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.ansible_common import (
    directory_checks_argument_spec, offsite_target_argument_spec, renamed, target_settings)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.backup.options import spec
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.offsite import targets
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.retention import policy as retention
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.retention.apply import (
    PruneError, apply_retention, apply_retention_to)

UTC = datetime.timezone.utc


def location_missing(store, exc):
    """Whether ``exc`` (a PruneError of a target) means the location itself does not exist (yet): an
    ENOENT behind it, and the location still cannot be listed for that reason."""
    cause = exc
    while cause is not None and not (isinstance(cause, OSError) and cause.errno == errno.ENOENT):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return False
    try:
        store.entries()
    except OSError as again:
        return again.errno == errno.ENOENT
    return False


def prune_target(module, rules, options, result):
    """apply_retention_to on the target: the same scan, plan and removal as for a directory."""
    try:
        settings = target_settings(module.params["target"])
        result["target"] = targets.describe(settings)
        store = targets.open_target(settings)
    except targets.TargetError as exc:
        module.fail_json(msg="target: %s" % exc, **result)
    result["path"] = store.location
    outcome = None
    try:
        outcome = apply_retention_to(store, rules, **options)
    except PruneError as exc:
        if not location_missing(store, exc):
            module.fail_json(msg=str(exc), **result)
        module.warn("%s does not exist (yet): nothing to prune" % result["target"])
        module.exit_json(**result)
    finally:
        store.close()
    return outcome


def main():
    module = AnsibleModule(
        argument_spec=dict(
            backup_dir=renamed(dict(type="path"), "path"),
            database=renamed(spec("database", aliases=["db"]), "prefix"),
            keep_last=spec("keep_last"),
            keep_daily=spec("keep_daily"),
            keep_weekly=spec("keep_weekly"),
            keep_monthly=spec("keep_monthly"),
            max_age_days=spec("max_age_days"),
            include_legacy=spec("include_legacy"),
            verify_checksums=spec("verify_checksums"),
            calendar_timezone=renamed(spec("calendar_timezone"), "timezone"),
            legacy_timezone=spec("legacy_timezone"),
            **dict(directory_checks_argument_spec(), **offsite_target_argument_spec())
        ),
        mutually_exclusive=[["backup_dir", "target"]],
        required_one_of=[["backup_dir", "target"]],
        supports_check_mode=True,
    )
    p = module.params
    path = os.path.abspath(p["backup_dir"]) if p["backup_dir"] else None
    try:
        rules = retention.Rules.from_options(p, p["calendar_timezone"])
    except retention.RetentionError as exc:
        module.fail_json(msg=str(exc))
    result = dict(changed=False, path=path, kept=[], removed=[], left_alone=[], retained=[])
    options = dict(database=p["database"], include_legacy=p["include_legacy"], verify_checksums=p["verify_checksums"],
                   legacy_tz=None if p["legacy_timezone"] == "local" else UTC, check_mode=module.check_mode)
    # The scan, the plan and the removal are shared with the scheduled job (module_utils/retention/apply.py).
    if p["target"]:
        outcome = prune_target(module, rules, options, result)
    else:
        try:
            outcome = apply_retention(path, rules, directory_checks=p["directory_checks"], **options)
        except PruneError as exc:
            module.fail_json(msg=str(exc), **result)
    for warning in outcome.warnings:
        module.warn(warning)
    if not outcome.exists:
        module.warn("%s does not exist: nothing to prune" % path)
        module.exit_json(**result)
    result["kept"] = outcome.kept_results()
    result["removed"] = outcome.removed_results()
    result["retained"] = outcome.retained_results()
    result["left_alone"] = outcome.left_alone()
    result["changed"] = bool(outcome.plan.removed)
    if module._diff:
        result["diff"] = outcome.diff()
    if outcome.errors:
        module.fail_json(msg="could not remove %d of %d entries: %s" % (
            len(outcome.errors), len(outcome.plan.removed),
            "; ".join("%s: %s" % (e["path"], e["msg"]) for e in outcome.errors)),
            errors=outcome.errors, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
