# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restoring backups without ever losing the live database, and without running anything from a
backup or from the database owner with more rights than the owner has: the ``restore`` module's
entry point, ``run_restore``, which checks what it is asked, chooses the strategy and runs it.
Pure Python (psycopg2 and the PostgreSQL client programs).

- The superuser login only creates, renames and drops databases and roles and reads catalogs
  (pg/cluster_admin.py). Loading the backup and every check that reads restored content run as a
  transient loading role with the owner's rights (loader.py, loader_role.py); a staging or
  scratch database belongs to that role and accepts no other connection while it loads.
- Strategies swap and create go through a staging database that is checked before it is put in
  place (swap.py); replace drops the live database first (replace.py); ``tables`` restores the
  data of chosen tables into the live database (selected.py); ``phase: rollback`` puts a previous
  database back (rollback.py). The restore-level verification is verify/by_restore.py.
- The collection's own records (bookkeeping.py) say which databases are its staging, scratch,
  restored and previous ones; a later run drops the temporary ones of killed runs (leftovers.py),
  and keeps at most ``keep_previous`` previous databases. Restoring the backup a database was
  restored from is a no-op only while that database provably still holds what the backup holds
  (provenance.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import connection as pg_connection
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.connection import (
    DatabaseError, quote_for_message)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore import bookkeeping
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore import names
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore import opening
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore import provenance
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.leftovers import drop_stale
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.replace import replace
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.request import (
    RestoreError, finish, lock_timeout_message)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.roles import provide_roles
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.rollback import rollback_phase
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.selected import restore_selected
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.swap import (
    restore_via_staging, swap_phase)


def run_restore(request, check_mode=False):
    """The restore module's job. Returns a result dict; raises RestoreError (nothing changed)."""
    started = time.monotonic()
    if request.phase == "swap":
        return swap_phase(request, check_mode, started)
    if request.phase == "rollback":
        return rollback_phase(request, check_mode, started)
    backup, admin, major = opening.open_run(request, check_mode)
    db = request.database
    result = dict(database=db, strategy=request.strategy, backup=backup.path, format=backup.format,
                  previous_database=None, staging_database=None, downtime_s=0.0, changed=False,
                  warnings=opening.backup_warnings(backup), tables=list(request.tables), removed_previous=[],
                  previous_dropped=False)
    try:
        checks = opening.verify_quickly(backup, request, major)
        result.update(sha256=backup.sha256, checks=checks)
        live = admin.database(db)
        if request.tables:
            return restore_selected(request, backup, admin, major, live, result, check_mode, started)
        if not admin.role_exists(request.owner):
            raise RestoreError("the owner role %s does not exist; create it first (for example with the server "
                               "role)" % quote_for_message(request.owner))
        if live is not None:
            prepared = admin.prepared_transactions(db)
            if prepared:
                raise RestoreError("database %s has prepared transactions (%s); a restore would wait for them or fail "
                                   "half-way. COMMIT PREPARED or ROLLBACK PREPARED them first; nothing was changed"
                                   % (quote_for_message(db), ", ".join(quote_for_message(g) for g in prepared)))
            if _already_restored(request, admin, backup, live, result):
                return finish(result, started)
        if request.strategy == "create" and live is not None:
            raise RestoreError("database %s exists; strategy create is for a machine without it (use swap)"
                               % quote_for_message(db))
        provide_roles(request, admin, backup, result, check_mode)
        if request.strategy == "replace" and not request.force:
            raise RestoreError("strategy replace drops the live database before restoring (downtime for the whole "
                               "restore, data lost if the restore fails); it needs force: true")
        stamp = names.timestamp()
        staging = names.derived_name(db, "staging", stamp)
        previous = (names.derived_name(db, "pre_restore", stamp)
                    if live is not None and request.strategy == "swap" else None)
        result.update(changed=True, staging_database=staging if request.strategy != "replace" else None,
                      previous_database=previous)
        if check_mode:
            result["msg"] = _plan(request, db, staging, previous, live)
            return finish(result, started)
        names.lock_database(admin, db)
        dropped, warnings = drop_stale(admin, db)
        result["removed_leftovers"] = dropped
        result["warnings"].extend(warnings)
        live = admin.database(db)
        if dropped and live is not None and not live["allow_connections"]:
            # An earlier run was killed inside its swap: the live database is intact, let it serve again.
            admin.set_allow_connections(db, True)
        if request.strategy == "replace":
            replace(request, backup, admin, major, live, result)
        else:
            restore_via_staging(request, backup, admin, major, live, staging, previous, result)
        return finish(result, started)
    except DatabaseError as exc:
        locked = lock_timeout_message(exc, request.lock_timeout)
        if locked is None:
            raise
        # Up to the swap's commit a failure leaves the live database as it was (swap.py rolls the
        # renames back and drops the staging database).
        raise RestoreError("%s; the live database %s was left as it was" % (locked, quote_for_message(db)))
    finally:
        admin.close()


def _already_restored(request, admin, backup, live, result):
    """True (and the message set) when ``live`` was restored from this backup and provably still
    holds what it holds; a database changed since is restored again."""
    record = bookkeeping.database(admin, live["oid"], request.database) if not request.force else None
    if record is None or record.kind != "restored" or record.record.get("sha256") != backup.sha256:
        return False
    # The proof counts the live database's rows: a table another session holds locked must not
    # make it wait for ever (lock_timeout, as every session of the run).
    params = request.connection.with_database(request.database)
    params.options = " ".join(o for o in (params.options, "-c lock_timeout=%ds" % int(request.lock_timeout)) if o)
    conn = pg_connection.connect(params, autocommit=True)
    try:
        same, why = provenance.unchanged(conn, record.record.get("proof"))
    finally:
        conn.close()
    if not same:
        result["warnings"].append("%s was restored from this backup on %s, but %s: restoring it again"
                                  % (quote_for_message(request.database), record.record.get("restored_at"), why))
        return False
    result.update(msg="%s was already restored from this backup (sha256 %s) on %s and is unchanged since; force: true "
                      "restores it again" % (quote_for_message(request.database), backup.sha256,
                                             record.record.get("restored_at")))
    return True


def _plan(request, db, staging, previous, live):
    """What check mode says a restore would do."""
    if request.strategy == "replace":
        return "would drop %s, create it again and restore into it (downtime: the whole restore)" % db
    if live is None:
        return "would restore into %s, check it and rename it to %s" % (staging, db)
    keep = request.keep_previous
    return ("would restore into %s, check it, then rename %s to %s and %s to %s%s"
            % (staging, db, previous, staging, db,
               " and drop %s" % previous if keep == 0 else ", keeping at most %d previous database%s"
               % (keep, "" if keep == 1 else "s")))
