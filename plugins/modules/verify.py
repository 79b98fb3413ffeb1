#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: verify
short_description: Prove that a backup is good, quickly or by restoring it
version_added: 0.1.0
description:
  - Runs on the database host. Never changes anything lasting (C(changed=false); a copy from O(target)
    kept with O(keep_pulled) is the one exception); fails when the
    verification fails, with a message that names each failing check.
  - B(level=quick) needs no database. The backup exists and is not empty; its sha256 (and size)
    equal the manifest's, and the manifest belongs to this file; a plain dump starts with
    C(pg_dump)'s header and ends with its completion trailer (which catches truncation), also
    when it is gzip, zstd or lz4 compressed (decompressed as a stream); custom and directory
    archives have a table of contents that C(pg_restore --list) reads, and without a manifest to
    rely on every data block is read too.
  - B(level=restore) also restores the backup into a scratch database (C(<database>_verify_<time>),
    created with a marker and dropped afterwards, also when a check or the restore fails; scratch
    databases of killed runs are dropped by the next run) and checks, schema-qualified, that per-table
    row counts equal the manifest's, the backup strategy's checklist (Flyway history present and
    all successful, with the manifest's latest version; lift_system count; version count per
    system_key; published versions per system, all compared with the figures the backup recorded in
    its snapshot); and the operator's O(checks).
  - B(From an off-site copy.) With O(target) and O(name) instead of O(path), the backup comes from an
    SFTP server or an S3-compatible bucket (docs/offsite.md), pulled as
    M(lift_simulator.postgresql.offsite) pulls it - each file checked against the target's manifest
    while it streams, the manifest last - into a private directory (O(pull_dir)) that is removed
    afterwards, hashed again on the host, then verified exactly as a backup on the host is. A copy
    that fails a check is removed and the verification fails. RV(source) says where it came from.
  - Accepts backups made by earlier processes, which have no manifest (plain C(.sql), custom-format
    C(.backup), gzip-compressed plain). It says so in a warning and checks what it can.
options:
  path:
    description:
      - The backup file (or directory-format folder). Its manifest is read from
        C(<path>.manifest.json) when present.
      - Required unless O(target) gives the backup; mutually exclusive with it.
    type: path
    aliases: [ backup ]
  target:
    description:
      - The off-site target (an SFTP server or an S3-compatible bucket, as
        M(lift_simulator.postgresql.offsite) takes it) the backup O(name) is taken from, instead of
        O(path). The copy is pulled into a private directory (O(pull_dir)), each file checked against
        the target's manifest as it streams, hashed again on the host, then verified as a backup on the
        host is. Its credentials never appear in arguments, logs or results.
    version_added: 0.2.0
  level:
    description:
      - V(quick) checks the file; V(restore) also restores it into a scratch database and checks that.
    type: str
    choices: [ quick, restore ]
    default: quick
  database:
    description:
      - Name the scratch database is derived from when the backup has no manifest (a manifest's
        database name is used otherwise); with O(target) and O(name=latest), whose backups V(latest) picks from.
    type: str
    default: lift_simulator
    aliases: [ db ]
  owner:
    description:
      - Level restore. The role whose rights the scratch restore and its checks run with (see
        O(load_as)), normally the application's role, which owns the objects in the backup.
    type: str
    default: lift_admin
  jobs:
    description:
      - Level restore. Parallel sessions that load the backup into the scratch database, as the restore module's
        O(jobs) - C(pg_restore --jobs) for custom and directory archives, the three-phase parallel load for a plain
        dump that is neither compressed nor encrypted (the collection's C(docs/restore.md)).
      - Default is the number of CPU cores of the host the module runs on. V(1) loads serially.
    type: int
  bin_dir:
    description:
      - Directory of C(psql) and C(pg_restore); by default the newest C(/usr/lib/postgresql/<major>/bin),
        then C(PATH).
    type: path
  maintenance_db:
    description:
      - Database to connect to for creating and dropping the scratch database (level restore).
    type: str
    default: postgres
  report_path:
    description:
      - When set, the result (checks, row counts, outcome) is also written there as JSON (mode 0600),
        whether the verification passes or fails. The file is replaced atomically.
    type: path
extends_documentation_fragment:
  - lift_simulator.postgresql.attributes
  - lift_simulator.postgresql.connection
  - lift_simulator.postgresql.checks
  - lift_simulator.postgresql.loading
  - lift_simulator.postgresql.directory_checks
  - lift_simulator.postgresql.encryption.identity
  - lift_simulator.postgresql.offsite_target
  - lift_simulator.postgresql.offsite_target.source
attributes:
  check_mode:
    support: full
    details:
      - Check mode only reads. O(level=quick) runs as usual; O(level=restore) runs the quick verification and
        reports the restore test it would run, without creating the scratch database. O(report_path) is not
        written in check mode.
      - With O(target) it pulls nothing. It re-reads the copy on the target and checks it against its manifest;
        when O(keep_pulled) finds an identical copy in O(pull_dir), that copy is verified as well.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: C(changed) is true only when O(keep_pulled) left a new copy in O(pull_dir).
notes:
  - Level restore connects as O(login_user), which must be a superuser (normally C(postgres) over the
    local socket), because it creates and drops the scratch database and the transient loading role. The
    backup itself is loaded and checked with the rights of O(owner) only (O(load_as)).
  - Nothing in a backup is ever run as a program. A plain dump is read by the collection's own reader
    (which accepts only what pg_dump writes) and given to psql in restricted mode, in which psql
    refuses every meta-command (C(\\!) and the like); see the collection's C(docs/security.md).
author:
  - lift_simulator maintainers (@lift-simulator)
"""

EXAMPLES = r"""
- name: Quick check of a backup (no database needed)
  become: true
  become_user: postgres    # the backups' owner
  lift_simulator.postgresql.verify:
    path: /var/backups/lift_simulator/lift_simulator_backup_20261124_080001.sql

- name: Periodic restore test, with an extra check
  become: true
  become_user: postgres
  lift_simulator.postgresql.verify:
    path: "{{ newest_backup }}"
    level: restore
    checks:
      - name: every system has a key
        sql: SELECT count(*) FROM lift_simulator.lift_system WHERE system_key IS NULL
        expect: 0
      - name: some simulation runs
        sql: SELECT count(*) FROM lift_simulator.simulation_run
        min: 1
  register: verification
"""

RETURN = r"""
path:
  description: The backup verified (O(path), or where the copy from O(target) was pulled to; null when check mode
    pulled nothing).
  returned: always
  type: str
  sample: /var/backups/lift_simulator/lift_simulator_backup_20261124_080001.sql
source:
  description:
    - With O(target), where the backup came from. C(target) (the target without credentials), C(type),
      C(requested) (O(name) as given), C(name), C(sha256), C(size_bytes), C(format), C(compression),
      C(encryption), C(source_host) and C(taken_at) (from the copy's manifest), C(age_s) (seconds since
      C(taken_at) by this host's clock).
    - C(path) (where the copy was pulled to; gone after the run unless C(kept)), C(kept), C(copy) (V(copied), or
      V(unchanged) for an identical copy kept earlier), C(checks) (each check of the copy - on the target in check
      mode, on the host otherwise - with name, passed, skipped, detail) and C(pull_s).
    - On failure, as much of it as was known.
  returned: when O(target) is set
  type: dict
level:
  description: The verification level (O(level)).
  returned: always
  type: str
  sample: restore
stderr_tail:
  description: The last lines the client program wrote to its error output, passwords removed.
  returned: on failure
  type: str
format:
  description: The backup's format (from its content).
  returned: always
  type: str
  sample: plain
compression:
  description: Compression of a plain dump (null for archives).
  returned: always
  type: str
  sample: zstd
encryption:
  description: The backup's encryption (V(none) or V(age)); without O(identity) or O(identity_file) an encrypted
    backup's header is checked against the manifest's recipients and its content is not read.
  returned: on success
  type: str
  sample: none
size_bytes:
  description: Size of the backup.
  returned: always
  type: int
  sample: 13930333
sha256:
  description: sha256 of the backup as computed now.
  returned: when the file could be read
  type: str
manifest:
  description: Whether a valid manifest was found.
  returned: always
  type: bool
checks:
  description: Every check with its outcome.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "sha256", "passed": true, "skipped": false, "detail": "matches the manifest"}]
failed_checks:
  description: Names of the failing checks.
  returned: always
  type: list
  elements: str
row_counts:
  description: Rows per table found in the restored database (level restore).
  returned: level restore
  type: dict
scratch_database:
  description: The scratch database that was used and dropped (level restore).
  returned: level restore
  type: str
duration_s:
  description: How long the verification took.
  returned: always
  type: float
report_path:
  description: Where the JSON report was written.
  returned: when O(report_path) is set
  type: str
"""

import json
import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.ansible_common import (
    CONNECTION_MUTUALLY_EXCLUSIVE, checks_argument_spec, connection_argument_spec, connection_params,
    directory_checks_argument_spec, loading_argument_spec, offsite_target_argument_spec, target_settings)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.app import lift_simulator as checklist
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import backup_files
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.offsite import source as remote_source
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.offsite import targets, transfer
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.clients import find_client_binary
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.connection import DatabaseError, PgError
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.opening import backup_warnings
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.secret_file import SecretFileError, secret_or_file
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.request import (
    RestoreError, RestoreRequest)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.atomic_files import (
    ensure_private_dir, write_file_atomic)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.base import StorageError
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.path_trust import UntrustedPathError
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.verify.by_restore import run_verify_restore
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.verify.quick import verify_quickly

# What makes a copy from a target unusable: the verification fails then.
SOURCE_ERRORS = (transfer.TransferError, targets.TargetError, StorageError, UntrustedPathError)


class RemoteChecked(Exception):
    """Check mode with nothing local to read: the copy on the target was checked, nothing else."""

    def __init__(self, info):
        Exception.__init__(self, "checked on the target")
        self.info = info


def quick(module, path, bin_dir, identity):
    started = time.monotonic()
    backup = backup_files.inspect(path, module.params["directory_checks"])
    checks = verify_quickly(backup, lambda: find_client_binary("pg_restore", bin_dir)[0], identity)
    return backup, checks, {}, None, round(time.monotonic() - started, 3)


def run_level(module, path, identity):
    """The verification the options ask for: (backup, checks, row counts, scratch database, seconds)."""
    p = module.params
    if p["jobs"] is not None and p["jobs"] < 1:
        module.fail_json(msg="jobs must be 1 or more (default: the number of CPU cores)")
    if p["level"] == "quick" or module.check_mode:
        # Check mode never creates the scratch database: only the reading part runs.
        return quick(module, path, p["bin_dir"], identity)
    request = RestoreRequest(
        connection=connection_params(module, p["database"]), backup_path=path, database=p["database"],
        owner=p["owner"], jobs=p["jobs"] or os.cpu_count() or 1, bin_dir=p["bin_dir"], checks=p["checks"],
        app_schema=p["app_schema"], maintenance_db=p["maintenance_db"], load_as=p["load_as"],
        load_host=p["load_host"], privileges=p["privileges"], lock_timeout=p["lock_timeout"],
        directory_checks=p["directory_checks"], stall_timeout=p["stall_timeout"], identity=identity)
    return run_verify_restore(request)


def run_from_target(module, identity, source, result):
    """The verification of a copy from the target: pulled and checked (offsite/source.py), then
    verified as a backup on the host is. ``source`` and ``result`` are filled in as the copy
    becomes known."""
    p = module.params
    with remote_source.remote_copy(target_settings(p["target"]), p["name"], p["database"], pull_dir=p["pull_dir"],
                                   keep=p["keep_pulled"], check_mode=module.check_mode,
                                   directory_checks=p["directory_checks"], info=source) as copy:
        result["path"] = copy.path
        for warning in copy.warnings:
            module.warn(warning)
        if copy.path is None:
            raise RemoteChecked(copy.info)
        if p["keep_pulled"] and copy.info["copy"] != transfer.UNCHANGED:
            result["changed"] = True  # a new copy stays on the host
        return run_level(module, copy.path, identity)


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(checks_argument_spec())
    argument_spec.update(loading_argument_spec())
    argument_spec.update(directory_checks_argument_spec())
    argument_spec.update(offsite_target_argument_spec(required=False))
    argument_spec.update(
        path=dict(type="path", aliases=["backup"]),
        name=dict(type="str"),
        pull_dir=dict(type="path"),
        keep_pulled=dict(type="bool", default=False),
        level=dict(type="str", default="quick", choices=["quick", "restore"]),
        database=dict(type="str", default="lift_simulator", aliases=["db"]),
        owner=dict(type="str", default="lift_admin"),
        jobs=dict(type="int"),
        bin_dir=dict(type="path"),
        maintenance_db=dict(type="str", default="postgres"),
        report_path=dict(type="path"),
        identity=dict(type="str", no_log=True),
        identity_file=dict(type="path"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           mutually_exclusive=CONNECTION_MUTUALLY_EXCLUSIVE + [["identity", "identity_file"],
                                                                               ["path", "target"]],
                           required_one_of=[["path", "target"]],
                           required_together=[["target", "name"]],
                           required_by={"name": "target", "pull_dir": "target"},
                           required_if=[["keep_pulled", True, ["target", "pull_dir"]]])
    p = module.params
    result = dict(changed=False, path=p["path"], level=p["level"])
    source = {}
    what = p["path"]
    if p["target"]:
        try:
            source.update(target=targets.describe(target_settings(p["target"])), requested=p["name"])
        except targets.TargetError as exc:
            module.fail_json(msg="target: %s" % exc, **result)
        result["source"] = source
        what = "%s from %s" % (p["name"], source["target"])
    try:
        try:
            # The identity (if any) is open for the whole run: the quick checks and the scratch restore.
            with secret_or_file(p["identity"], p["identity_file"], "lift-age-identity") as identity:
                if p["target"]:
                    backup, checks, counts, scratch, duration = run_from_target(module, identity, source, result)
                else:
                    backup, checks, counts, scratch, duration = run_level(module, p["path"], identity)
        except SecretFileError as exc:
            raise backup_files.BackupFileError("identity_file: %s" % exc)
    except RemoteChecked as checked:
        exit_checked_on_target(module, result, checked.info)
    except (backup_files.BackupFileError, RestoreError, PgError, DatabaseError) + SOURCE_ERRORS as exc:
        if source.get("name"):
            what = "%s from %s" % (source["name"], source["target"])
        checks = getattr(exc, "checks", None) or [checklist.check("source" if isinstance(exc, SOURCE_ERRORS)
                                                                  else "backup", False, str(exc))]
        result.update(msg="verification of %s failed: %s" % (what, exc), checks=checks,
                      failed_checks=[c["name"] for c in checklist.failing(checks)],
                      stderr_tail=getattr(exc, "stderr", "") or "")
        write_report(module, result)
        module.fail_json(**result)
    result.update(format=backup.format, compression=backup.compression, encryption=backup.encryption,
                  size_bytes=backup.size, sha256=backup.sha256,
                  manifest=backup.manifest is not None, checks=checks, row_counts=counts, duration_s=duration,
                  failed_checks=[c["name"] for c in checklist.failing(checks)])
    if scratch:
        result["scratch_database"] = scratch
    for warning in backup_warnings(backup):
        module.warn(warning)
    write_report(module, result)
    if result["failed_checks"]:
        module.fail_json(msg="verification of %s failed: %s" % (what, checklist.summary(checks)), **result)
    result["msg"] = "%s: %s" % (os.path.basename(result["path"].rstrip("/")), checklist.summary(checks))
    if p["target"]:
        result["msg"] += " (from %s)" % source["target"]
    if module.check_mode and p["level"] == "restore":
        result["msg"] += "; check mode: would restore it into a scratch database and check it there"
    module.exit_json(**result)


def exit_checked_on_target(module, result, info):
    """Check mode with nothing pulled: what the target's copy showed, and what the run would do."""
    checks = [checklist.check(c["name"], c["passed"], c["detail"]) for c in info["checks"]]
    # keep_pulled would leave a copy on the host.
    result.update(changed=bool(module.params["keep_pulled"]), format=info["format"], compression=info["compression"], encryption=info["encryption"],
                  size_bytes=info["size_bytes"], sha256=info["sha256"], manifest=True, checks=checks, row_counts={},
                  duration_s=info["pull_s"], failed_checks=[],
                  msg="%s on %s: %s; check mode: would pull it, hash it again on the host and verify it (level %s)"
                      % (info["name"], info["target"], checklist.summary(checks), module.params["level"]))
    module.exit_json(**result)


def write_report(module, result):
    path = module.params["report_path"]
    if not path or module.check_mode:
        return
    try:
        ensure_private_dir(os.path.dirname(os.path.abspath(path)))
        write_file_atomic(os.path.dirname(os.path.abspath(path)), os.path.basename(path),
                          json.dumps(dict(result, passed=not result.get("failed_checks")), indent=2, sort_keys=True)
                          + "\n", replace=True)
        result["report_path"] = path
    except OSError as exc:
        module.warn("cannot write the report %s: %s" % (path, exc))


if __name__ == "__main__":
    main()
