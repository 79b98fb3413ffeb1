# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Strategies swap and create: restore beside the live database, check, then put it in place.

The stage restores into ``<database>_staging_<time>`` and checks it there (the live database is
not touched); the swap is one short critical section: the live database stops taking
connections, its sessions end, and one transaction renames live -> previous and staging -> live
and gives the new live database the old one's owner, comment, privileges and settings. Without a
live database (strategy create) the staging database is only renamed. A failure (or SIGKILL)
anywhere leaves the old live database in place. The previous databases beyond ``keep_previous``
are dropped afterwards. With ``phase: stage`` and ``phase: swap`` the two halves run apart; the
staged database waits, recorded as ``staged`` (bookkeeping.py). Pure Python (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.lift_simulator.postgresql.plugins.module_utils import failpoints
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.app import lift_simulator as checklist
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import cluster_admin
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.cluster_admin import DatabaseAttributes
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.connection import (
    DatabaseError, quote_for_message)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore import bookkeeping
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore import names
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore import provenance
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.leftovers import discard
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.loader import Loader
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.opening import connect
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.request import RestoreError, finish


def restore_via_staging(request, backup, admin, major, live, staging, previous, result):
    """Phases full and stage: restore and check in ``staging``; with phase full, swap it in."""
    live_attributes = admin.attributes(request.database) if live is not None else None
    oid, record = _stage(request, backup, admin, major, live, staging, result)
    if request.phase == "stage":
        admin.unlock(staging)
        result["msg"] = "restored and checked in %s; the swap phase puts it in place" % staging
        return
    _swap_in(request, admin, staging, oid, previous, record, wanted_attributes(request, live_attributes), result)


def swap_phase(request, check_mode, started):
    """Second phase: put a database restored and checked by the stage phase in place."""
    db = request.database
    staging = request.staging_database
    admin = connect(request)
    try:
        facts = admin.database(staging or "")
        if facts is None and check_mode and names.is_staging_name(db, staging or ""):
            # The stage phase in check mode names the database it would make; it does not exist.
            live = admin.database(db)
            result = dict(database=db, strategy=request.strategy, backup=request.backup_path,
                          previous_database=(names.derived_name(db, "pre_restore", names.timestamp())
                                             if live is not None else None),
                          staging_database=staging, downtime_s=0.0, changed=True, checks=[], warnings=[], tables=[],
                          removed_previous=[], previous_dropped=False, sha256=None,
                          msg="would swap in the database the stage phase would restore and check (%s) as %s"
                          % (staging, db))
            return finish(result, started)
        record = bookkeeping.database(admin, facts["oid"], staging) if facts else None
        if record is None or record.kind != "staged" or record.for_database != db:
            raise RestoreError("%s is not a database staged for %s by the stage phase"
                               % (quote_for_message(staging or ""), quote_for_message(db)))
        live = admin.database(db)
        previous = names.derived_name(db, "pre_restore", names.timestamp()) if live is not None else None
        result = dict(database=db, strategy=request.strategy, backup=request.backup_path, previous_database=previous,
                      staging_database=staging, downtime_s=0.0, changed=True, checks=[], warnings=[], tables=[],
                      removed_previous=[], previous_dropped=False, sha256=record.record.get("sha256"))
        if check_mode:
            result["msg"] = "would swap %s in as %s" % (staging, db)
            return finish(result, started)
        names.lock_database(admin, db)
        if not admin.try_lock(staging):
            raise RestoreError("%s is in use by another run" % quote_for_message(staging))
        wanted = wanted_attributes(request, admin.attributes(db) if live is not None else None)
        _swap_in(request, admin, staging, facts["oid"], previous, record.record, wanted, result)
        return finish(result, started)
    finally:
        admin.close()


def wanted_attributes(request, live_attributes):
    """The attributes the restored database takes: the live database's, or a new one's."""
    if live_attributes is not None:
        return live_attributes
    return DatabaseAttributes(request.owner, None, None, [])


def swap_databases(admin, live, staging, previous, steps):
    """Replace ``live`` by ``staging``; returns seconds the live name could not be connected to.

    Only the two ALLOW_CONNECTIONS changes and the wait for sessions to end happen outside the
    renaming transaction; a failure anywhere restores the old state."""
    started = time.monotonic()
    admin.set_allow_connections(live, False)
    try:
        admin.set_allow_connections(staging, False)
        admin.end_sessions([live, staging])
        failpoints.reached("restore-swap-before-rename")
        admin.in_transaction([cluster_admin.rename_sql(live, previous),
                              lambda: failpoints.reached("restore-swap-between-renames")] + steps)
    except BaseException:
        # Whatever failed, the live database is still there under its name: let it serve again
        # (best effort: when the server is gone, the next run does it).
        try:
            facts = admin.database(live)
            if facts is not None and not facts["allow_connections"]:
                admin.set_allow_connections(live, True)
        except DatabaseError:
            pass
        raise
    downtime = time.monotonic() - started
    failpoints.reached("restore-swap-committed")
    admin.set_allow_connections(previous, True)
    return downtime


def _stage(request, backup, admin, major, live, staging, result):
    """Restore into ``staging`` and check it; on success it is the superuser's, with its record
    (kind staged) holding the provenance. On any failure it is dropped. The caller holds its lock."""
    db = request.database
    admin.try_lock(staging)
    load = Loader(request, admin, request.owner)
    try:
        oid = load.create(staging, "staging", db, like=live)
        checks, counts = load.load_and_check(backup, staging, request.owner, major, result)
        if checklist.failing(checks):
            raise RestoreError("the restored database failed its checks; the live database was not touched: %s"
                               % checklist.summary(checks), checks=result["checks"])
        load.hand_over(staging, request.owner)
        record = provenance.record(backup, request.strategy, provenance.capture_in(request.connection, staging, counts))
        bookkeeping.put_database(admin, oid, staging, "staged", db, record)
        return oid, record
    except BaseException:
        discard(admin, staging)
        names.unlock_quietly(admin, staging)
        load.drop_role_quietly()
        raise


def _swap_in(request, admin, staging, staging_oid, previous, record, wanted, result):
    """The critical section (or a plain rename when there is no live database)."""
    db = request.database
    current = admin.attributes(staging)
    live = admin.database(db)
    steps = [cluster_admin.rename_sql(staging, db)]
    steps += admin.attribute_statements(db, wanted, current)
    steps += [cluster_admin.allow_sql(db, True), bookkeeping.put_database_sql(staging_oid, db, "restored", db, record)]
    try:
        if previous is not None and live is not None:
            steps.append(bookkeeping.put_database_sql(live["oid"], previous, "previous", db, {
                "replaced_at": record["restored_at"], "replaced_by": record["backup"]}))
            result["downtime_s"] = round(swap_databases(admin, db, staging, previous, steps), 4)
        else:
            admin.set_allow_connections(staging, False)
            admin.end_sessions([staging])
            admin.in_transaction(steps)
    except BaseException:
        discard(admin, staging)
        raise
    finally:
        names.unlock_quietly(admin, staging)
    _apply_keep_previous(request, admin, previous, result)


def _apply_keep_previous(request, admin, previous, result):
    """Keep the newest ``keep_previous`` previous databases of this database, drop older ones.
    The swap has committed: a failure here is a warning, never a failed restore."""
    keep = request.keep_previous
    records = [r for r in bookkeeping.databases(admin, request.database, ("previous",)) if r.exists]
    for record in records[keep:]:
        try:
            admin.drop_database(record.name)
            bookkeeping.forget_database(admin, record.oid)
            result["removed_previous"].append(record.name)
            if record.name == previous:
                result["previous_dropped"] = True
        except DatabaseError as exc:
            result["warnings"].append(
                "the restore is complete, but the previous database %s could not be dropped: %s. It is kept, "
                "recorded as previous, and a later restore drops it; DROP DATABASE it by hand once that is fixed"
                % (quote_for_message(record.name), str(exc).strip().splitlines()[0]))
