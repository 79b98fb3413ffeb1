#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: restore
short_description: Restore a backup without ever losing the live database
version_added: 0.1.0
description:
  - Runs on the database host. Takes a backup of any format this collection writes, and the earlier
    processes' plain (C(.sql), also gzip-compressed) and custom (C(.backup)) backups.
  - The quick verification of M(lift_simulator.postgresql.verify) runs first; a corrupt or truncated
    backup is refused with a clear error and nothing changes.
  - B(strategy=swap) (default) restores into a staging database C(<database>_staging_<time>), runs
    the checks there (row counts against the manifest, the backup strategy's checklist, O(checks)),
    then in one short critical section stops new connections to the live database, ends its
    sessions and, in one transaction, renames it to C(<database>_pre_restore_<time>) and the
    staging database to the live name. Any failure before or during the swap leaves the live
    database as it was and drops the staging database. RV(downtime_s) is how long the live name
    could not be connected to; it does not grow with the database's size.
  - B(strategy=create) is for a machine without the database; the restore is checked in staging and
    renamed into place, owned by O(owner).
  - B(strategy=replace) is the strategy document's drop, create, restore. It needs O(force=true)
    because the live database is gone before the restore starts, and the downtime is the whole restore.
  - B(Nothing from the backup runs with more rights than O(owner) has.) A plain dump is read by the
    collection's own reader, which accepts only what pg_dump writes (a file with psql meta-commands
    such as C(\\!) is refused, and psql itself runs in restricted mode with a random key, so it
    refuses every meta-command too), then run by C(psql) under C(ON_ERROR_STOP) in one transaction,
    or with O(jobs) in three phases (schema; data, then keys and indexes, in parallel sessions; the rest);
    custom and directory archives go to C(pg_restore) (in one transaction, or with O(jobs) in
    parallel). Both connect as a transient role with the owner's rights (O(load_as)), and the checks
    that read the restored database do too. See the collection's C(docs/security.md).
  - Afterwards every object in the user schemas is owned by O(owner). The restored database takes
    the owner, comment, database-level privileges and settings (list-valued ones such as
    C(search_path) included) of the database it replaces; a new database is owned by O(owner).
  - B(Selective restore.) With O(tables), only those tables' data is loaded into the existing
    O(database), in one transaction (optionally after O(truncate)), parents before the tables that
    reference them, with their sequences set as in the backup. It works for custom and directory
    archives and for plain SQL dumps (whose data sections the module reads itself). A table the
    backup does not have is an error that lists the tables it has.
  - B(Provenance and idempotency.) Which backup a database was restored from is recorded where only
    the superuser can write it (schema C(lift_simulator_postgresql) of O(maintenance_db)), with a proof
    of what the database held then. Restoring the same backup (same sha256) again reports
    C(changed=false) only while the database provably still holds exactly that (no row, definition
    or sequence changed since); otherwise, or with O(force=true), it restores again. The database
    comment is left to the operator.
  - B(From an off-site copy.) With O(target) and O(name) instead of O(path), the backup comes from an
    SFTP server or an S3-compatible bucket (docs/offsite.md), pulled as
    M(lift_simulator.postgresql.offsite) pulls it - each file checked against the target's manifest
    while it streams, the manifest last - into a private directory (O(pull_dir)), hashed again on the
    host, and then restored exactly as a backup on the host is. A copy that fails a check is removed
    and never restored, and the live database is not touched. RV(source) says where the backup came
    from (the target without credentials, the name, the sha256, the age).
  - Restores of the same database are serialised with an advisory lock (a session of a role that
    may not restore holding it is named in the error); staging databases and transient roles of
    killed runs are dropped by the next run, which also lets a live database whose swap was
    interrupted accept connections again.
options:
  path:
    description:
      - The backup file (or directory-format folder) on the database host.
      - Required unless O(target) gives the backup, or O(phase=swap) or O(phase=rollback), which do not
        read a backup. Mutually exclusive with O(target).
    type: path
    aliases: [ backup ]
  target:
    description:
      - The off-site target (an SFTP server or an S3-compatible bucket, as
        M(lift_simulator.postgresql.offsite) takes it) the backup O(name) is taken from, instead of
        O(path). The copy is pulled into a private directory (O(pull_dir)), each file checked against
        the target's manifest as it streams, hashed again on the host, then restored as a backup on
        the host is; a copy that fails a check is removed and never restored.
      - With O(phase=full) or O(phase=stage). Its credentials never appear in arguments, logs or results.
    version_added: 0.2.0
  database:
    description: The database to restore.
    type: str
    default: lift_simulator
    aliases: [ db ]
  owner:
    description:
      - Role that owns every object in the restored database's user schemas, and whose rights the
        restore runs with (O(load_as)). A new database (O(strategy=create)) is owned by it too; a
        restored database that replaces one keeps that one's owner.
    type: str
    default: lift_admin
  strategy:
    description: How the live database is replaced (see the description).
    type: str
    choices: [ swap, create, replace ]
    default: swap
  keep_previous:
    description:
      - With O(strategy=swap), how many replaced databases (C(<database>_pre_restore_<time>)) to keep.
        After a successful swap the newest ones are kept and older ones dropped. V(true) means 1,
        V(false) means 0 (the database just replaced is dropped after the swap).
      - Only databases this collection recorded as previous ones are ever dropped; one that cannot be
        dropped (for example while a logical replication subscription uses it) is kept with a warning,
        and the restore still reports its change.
    type: raw
    default: 1
  force:
    description:
      - Restore even when the database was already restored from this backup; required for
        O(strategy=replace).
    type: bool
    default: false
  tables:
    description:
      - Restore only the data of these tables (C(schema.table); quote parts that need it as in SQL)
        into the existing database.
    type: list
    elements: str
    default: []
  truncate:
    description: With O(tables), empty those tables first (in the same transaction).
    type: bool
    default: false
  jobs:
    description:
      - Parallel sessions that load the backup. Custom and directory archives go to C(pg_restore --jobs) (an
        encrypted archive, which C(pg_restore) reads from a pipe, loads in one session). A plain dump that is
        neither compressed nor encrypted loads in three phases as C(pg_restore) loads an archive - the schema
        before the data in one session, the tables' data in O(jobs) sessions (largest first; a big table cut
        at row ends into parts loaded at once), then the key constraints (one table each) and the indexes (several
        on one table at once) in O(jobs) sessions and the rest (foreign keys, triggers, privileges) in one
        session - when the collection's reader can split it with proof; otherwise, and for a compressed or
        encrypted plain dump, it loads serially in one transaction. RV(load) says which.
      - Default is the number of CPU cores of the host the module runs on. V(1) keeps the serial load (one
        transaction).
    type: int
  bin_dir:
    description:
      - Directory of C(psql) and C(pg_restore); by default the newest C(/usr/lib/postgresql/<major>/bin),
        then C(PATH). Clients older than the server are refused.
    type: path
  maintenance_db:
    description: Database to connect to for creating, renaming and dropping databases.
    type: str
    default: postgres
  phase:
    description:
      - V(full) (default) does the whole restore.
      - With O(strategy=swap) or O(strategy=create) the work can be split so that the application is
        stopped only for the swap itself (C(playbooks/restore.yml) does this). V(stage) restores and
        checks the staging database and leaves it, marked as staged, returning its name in
        RV(staging_database) (or C(changed=false) and no staging database when the database was
        already restored from this backup). V(swap) puts a staged database in place
        (O(staging_database) names it); it does not read the backup again.
      - A staged database that is never swapped in is dropped by the next restore of the same database.
      - V(rollback) puts a previous database (one a swap kept, C(<database>_pre_restore_<time>); see
        O(rollback_to)) back in place of the live one, in the same renaming transaction as a swap, and
        keeps the live one as C(<database>_pre_rollback_<time>) (so a rollback can itself be rolled
        back). Nothing is dropped and no backup is read.
    type: str
    choices: [ full, stage, swap, rollback ]
    default: full
  staging_database:
    description: With O(phase=swap), the database the stage phase returned.
    type: str
  rollback_to:
    description:
      - With O(phase=rollback), the previous database to put back, by name, or V(newest) for the one
        the latest swap kept. Only databases this collection recorded as previous ones of O(database) are
        accepted; the error lists them.
    type: str
    version_added: 0.2.0
    default: newest
  create_roles:
    description:
      - A backup records the roles its objects refer to. When some that the restore needs do not
        exist here (a new machine without the read-only backup role the backup grants to, say), they
        are created, before anything else, from the role definitions taken with the backup
        (C(<backup>.globals.sql)), with their LOGIN, INHERIT and CONNECTION LIMIT attributes and their
        password verifier if the backup holds one - never as superuser, CREATEDB, CREATEROLE,
        REPLICATION or BYPASSRLS, and without memberships. RV(created_roles) names them.
      - V(false), or a backup without role definitions, stops with an error that names the missing roles
        before anything is created (O(privileges=skip) restores without the backup's GRANTs instead).
    type: bool
    default: true
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
      - Check mode verifies the backup and reports the plan (strategy and database names).
      - With O(target) it pulls nothing. It re-reads the copy on the target and checks it against its manifest,
        and reports that it would pull and restore it; when O(keep_pulled) finds an identical copy in O(pull_dir),
        that copy is verified and the plan is the one for it.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - The second restore of the same backup is a no-op while the database provably still holds what the
        backup holds, except for selective restores (O(tables)), which load again.
      - From O(target) the copy is pulled again for the run (or found in O(pull_dir) with O(keep_pulled)); the
        restore is a no-op all the same. C(changed) is also true when O(keep_pulled) left a new copy.
notes:
  - Connect as a superuser (normally C(postgres) over the local socket, with C(become_user=postgres)).
    The module creates, renames and drops databases and a transient loading role, and keeps its records
    in O(maintenance_db). Another login is refused before anything happens.
author:
  - lift_simulator maintainers (@lift-simulator)
"""

EXAMPLES = r"""
- name: Restore the newest backup beside the live database and swap it in
  become: true
  become_user: postgres
  lift_simulator.postgresql.restore:
    path: /var/backups/lift_simulator/lift_simulator_backup_20261124_080001.sql
  register: restored

- name: Show the downtime
  ansible.builtin.debug:
    msg: "live database unavailable for {{ restored.downtime_s }} s; previous kept as {{ restored.previous_database }}"

- name: Fresh machine
  become: true
  become_user: postgres
  lift_simulator.postgresql.restore:
    path: /var/backups/lift_simulator/lift_simulator_backup_20261124_080001.sql.zst
    strategy: create

- name: Put back the lift systems, their versions and everything that refers to them from last week's backup
  become: true
  become_user: postgres
  lift_simulator.postgresql.restore:
    path: /var/backups/lift_simulator/lift_simulator_backup_20261117_080002.dump
    # With truncate, every table that references a selected one must be selected too.
    tables:
      - lift_simulator.lift_system
      - lift_simulator.lift_system_version
      - lift_simulator.scenario
      - lift_simulator.simulation_run
    truncate: true

- name: Go back to the database the last swap replaced
  become: true
  become_user: postgres
  lift_simulator.postgresql.restore:
    database: lift_simulator
    phase: rollback
"""

RETURN = r"""
database:
  description: The restored database.
  returned: always
  type: str
backup:
  description: The backup restored (O(path), or where the copy from O(target) was pulled to); null for
    O(phase=rollback) and when check mode pulled nothing.
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
  sample:
    target: sftp://lift@backup.example.net:22/srv/copies/db1
    type: sftp
    requested: latest
    name: lift_simulator_backup_20261124_080001.sql.zst.age
    sha256: 00ab1e8f4c52d2b0a1e4a8b4f4bd07b1b8d7a7e4f0d1a2b3c4d5e6f708192a3b
    size_bytes: 13930333
    format: plain
    compression: zstd
    encryption: age
    source_host: db1
    taken_at: "2026-11-24T08:00:01.123456Z"
    age_s: 70200.5
    path: /var/tmp/lift-pull-3x9k2a/lift_simulator_backup_20261124_080001.sql.zst.age
    kept: false
    copy: copied
    checks: [{"name": "on the host: lift_simulator_backup_20261124_080001.sql.zst.age", "passed": true,
              "detail": "sha256 00ab... matches the manifest"}]
    pull_s: 1.27
tables:
  description: The tables whose data was restored (O(tables)); empty for a whole-database restore.
  returned: always
  type: list
  elements: str
stderr_tail:
  description: The last lines the client program (C(psql), C(pg_restore)) wrote to its error output, passwords removed.
  returned: on failure
  type: str
previous_database:
  description: Name the replaced database now has (swap, or rollback), or null.
  returned: always
  type: str
  sample: lift_simulator_pre_restore_20261124083000
rolled_back_to:
  description: With O(phase=rollback), the previous database that is live again.
  returned: with O(phase=rollback)
  type: str
  sample: lift_simulator_pre_restore_20261124083000
previous_dropped:
  description: Whether the database just replaced was dropped after the swap (O(keep_previous)).
  returned: always
  type: bool
removed_previous:
  description: Previous databases dropped after the swap because O(keep_previous) keeps fewer.
  returned: always
  type: list
  elements: str
format:
  description: The backup's format (from its content).
  returned: when the backup could be read
  type: str
  sample: custom
staging_database:
  description: The staging database used (renamed to the live name on success, dropped on failure).
  returned: always
  type: str
strategy:
  description: The strategy used (C(rollback) for O(phase=rollback)).
  returned: always
  type: str
duration_s:
  description: Wall time of the whole restore.
  returned: always
  type: float
downtime_s:
  description: Seconds the live database name could not be connected to.
  returned: always
  type: float
  sample: 0.0123
load:
  description:
    - How the backup was loaded into the staging database - V(parallel) with the number of sessions for
      the data (and the parts a big table's data was cut into) and for the keys and indexes of a plain
      dump (three phases), V(serial) with the reason (O(jobs=1), a compressed or encrypted dump, a dump
      that cannot be split with proof), or the C(pg_restore) mode of an archive.
  returned: when a whole-database restore loaded a backup
  type: str
  sample: "parallel: 2 sessions for the data of 7 tables in 8 parts, 2 for 19 key and index builds"
row_counts:
  description: Rows per table in the restored database (for O(tables), rows loaded per table).
  returned: when a restore happened
  type: dict
checks:
  description: Every check (quick verification, row counts, checklist, O(checks)) with its outcome.
  returned: always
  type: list
  elements: dict
sha256:
  description: sha256 of the backup.
  returned: when the backup could be read
  type: str
created_roles:
  description: Roles created from the backup's role definitions because the restore needed them (O(create_roles)).
  returned: when roles were created
  type: list
  elements: str
  sample: [backup_user]
removed_leftovers:
  description: Staging or scratch databases of interrupted runs that were dropped (their transient roles too).
  returned: when a restore happened
  type: list
  elements: str
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.ansible_common import (
    CONNECTION_MUTUALLY_EXCLUSIVE, checks_argument_spec, connection_argument_spec, connection_params,
    directory_checks_argument_spec, loading_argument_spec, offsite_target_argument_spec, target_settings)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.offsite import source as remote_source
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.offsite import targets, transfer
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.connection import DatabaseError, PgError
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.request import (
    RestoreError, RestoreRequest, keep_previous_count)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.strategies import run_restore
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.secret_file import SecretFileError, secret_or_file
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.base import StorageError
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.path_trust import UntrustedPathError

# What makes a copy from a target unusable: nothing was restored then.
SOURCE_ERRORS = (transfer.TransferError, targets.TargetError, StorageError, UntrustedPathError)


def planned_from_target(request, copy, started):
    """Check mode with nothing local to read: the copy on the target was checked; the plan."""
    info = copy.info
    return dict(database=request.database, strategy=request.strategy, backup=None, tables=list(request.tables),
                previous_database=None, previous_dropped=False, removed_previous=[], staging_database=None,
                downtime_s=0.0, changed=True, sha256=info["sha256"], format=info["format"], checks=info["checks"],
                duration_s=round(time.monotonic() - started, 3),
                msg="check mode: would pull %s from %s (checked there against its manifest, sha256 %s) into a private "
                    "directory, hash it again on the host, verify it and restore it into %s (strategy %s)"
                    % (info["name"], info["target"], info["sha256"], request.database, request.strategy))


def restore_from_target(module, request, source):
    """The restore of a copy from the target: pulled and checked (offsite/source.py), restored as a
    backup on the host is. ``source`` (the result's) is filled in as the copy becomes known."""
    p = module.params
    started = time.monotonic()
    with remote_source.remote_copy(target_settings(p["target"]), p["name"], p["database"], pull_dir=p["pull_dir"],
                                   keep=p["keep_pulled"], check_mode=module.check_mode,
                                   directory_checks=p["directory_checks"], info=source) as copy:
        for warning in copy.warnings:
            module.warn(warning)
        if copy.path is None:
            return planned_from_target(request, copy, started)
        request.backup_path = copy.path
        result = run_restore(request, check_mode=module.check_mode)
        if p["keep_pulled"] and copy.info["copy"] != transfer.UNCHANGED:
            result["changed"] = True  # a new copy stays on the host
        return result


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
        database=dict(type="str", default="lift_simulator", aliases=["db"]),
        owner=dict(type="str", default="lift_admin"),
        strategy=dict(type="str", default="swap", choices=["swap", "create", "replace"]),
        keep_previous=dict(type="raw", default=1),
        force=dict(type="bool", default=False),
        tables=dict(type="list", elements="str", default=[]),
        truncate=dict(type="bool", default=False),
        jobs=dict(type="int"),
        bin_dir=dict(type="path"),
        maintenance_db=dict(type="str", default="postgres"),
        phase=dict(type="str", default="full", choices=["full", "stage", "swap", "rollback"]),
        staging_database=dict(type="str"),
        rollback_to=dict(type="str", default="newest"),
        create_roles=dict(type="bool", default=True),
        identity=dict(type="str", no_log=True),
        identity_file=dict(type="path"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           mutually_exclusive=CONNECTION_MUTUALLY_EXCLUSIVE + [["identity", "identity_file"],
                                                                               ["path", "target"]],
                           required_together=[["target", "name"]],
                           required_by={"name": "target", "pull_dir": "target"},
                           required_if=[["phase", "swap", ["staging_database"]], ["phase", "full", ["path", "target"], True],
                                        ["phase", "stage", ["path", "target"], True],
                                        ["keep_pulled", True, ["target", "pull_dir"]]])
    p = module.params
    if p["jobs"] is not None and p["jobs"] < 1:
        module.fail_json(msg="jobs must be 1 or more (default: the number of CPU cores)")
    if p["truncate"] and not p["tables"]:
        module.fail_json(msg="truncate applies to a selective restore: set tables too")
    if p["tables"] and (p["strategy"] != "swap" or p["phase"] != "full"):
        module.fail_json(msg="tables restores data into the existing database; strategy and phase do not apply")
    if p["phase"] == "rollback" and (p["tables"] or p["strategy"] != "swap"):
        module.fail_json(msg="phase rollback puts a previous database back; tables and strategy do not apply")
    if p["phase"] != "full" and p["strategy"] == "replace":
        module.fail_json(msg="strategy replace has no phases: it drops the database before restoring")
    if p["target"] and p["phase"] not in ("full", "stage"):
        module.fail_json(msg="target gives the backup a restore reads (phase full or stage); phase %s reads none"
                         % p["phase"])
    try:
        keep_previous = keep_previous_count(p["keep_previous"])
    except RestoreError as exc:
        module.fail_json(msg=str(exc))
    source = {}
    if p["target"]:
        try:
            source.update(target=targets.describe(target_settings(p["target"])), requested=p["name"])
        except targets.TargetError as exc:
            module.fail_json(msg="target: %s; nothing was changed" % exc)
    request = RestoreRequest(
        connection=connection_params(module, p["database"]), backup_path=p["path"], database=p["database"],
        owner=p["owner"], strategy=p["strategy"], keep_previous=keep_previous, force=p["force"],
        jobs=p["jobs"] or os.cpu_count() or 1, bin_dir=p["bin_dir"], tables=p["tables"], truncate=p["truncate"], checks=p["checks"],
        app_schema=p["app_schema"], maintenance_db=p["maintenance_db"], phase=p["phase"],
        staging_database=p["staging_database"], load_as=p["load_as"], load_host=p["load_host"],
        privileges=p["privileges"], lock_timeout=p["lock_timeout"],
        directory_checks=p["directory_checks"], stall_timeout=p["stall_timeout"], create_roles=p["create_roles"],
        rollback_to=p["rollback_to"])
    extra = dict(source=source) if p["target"] else {}
    try:
        with secret_or_file(p["identity"], p["identity_file"], "lift-age-identity") as request.identity:
            if p["target"]:
                result = restore_from_target(module, request, source)
            else:
                result = run_restore(request, check_mode=module.check_mode)
    except SecretFileError as exc:
        module.fail_json(msg="identity_file: %s; nothing was changed" % exc, **extra)
    except SOURCE_ERRORS as exc:
        module.fail_json(msg="restore of %s from %s into %s failed, nothing was restored: %s"
                         % (source.get("name") or p["name"], source.get("target"), p["database"], exc), **extra)
    except (RestoreError, PgError, DatabaseError) as exc:
        if p["phase"] == "rollback":
            what = "rollback of %s" % p["database"]
        elif p["target"]:
            what = "restore of %s from %s into %s" % (source.get("name"), source.get("target"), p["database"])
        else:
            what = "restore of %s into %s" % (p["path"] or p["staging_database"], p["database"])
        module.fail_json(msg="%s failed: %s" % (what, exc),
                         checks=getattr(exc, "checks", []), stderr_tail=getattr(exc, "stderr", "") or "", **extra)
    for warning in result.pop("warnings", []):
        module.warn(warning)
    result.update(extra)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
