# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``phase: rollback``: put a previous database (kept by an earlier swap) back in place.

The live database is kept in turn as ``<database>_pre_rollback_<time>``, recorded as previous,
so that a rollback can itself be rolled back; the renaming is the same critical section as a
swap's (swap.py), so the application sees the same fraction of a second of downtime. Nothing
is dropped. Pure Python (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import cluster_admin
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.connection import quote_for_message
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore import bookkeeping
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore import names
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.opening import connect
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.request import RestoreError, finish
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.swap import swap_databases


def rollback_phase(request, check_mode, started):
    """Put a previous database (kept by an earlier swap) back in place of the live one, which is
    kept in turn as ``<database>_pre_rollback_<time>``: the same renaming transaction as a swap,
    so the application sees the same fraction of a second of downtime. Nothing is dropped."""
    db = request.database
    admin = connect(request)
    try:
        previous = [r for r in bookkeeping.databases(admin, db, ("previous",)) if r.exists]
        listed = ", ".join(quote_for_message(r.name) for r in previous) or "none"
        if request.rollback_to == "newest":
            chosen = previous[0] if previous else None
            if chosen is None:
                raise RestoreError("there is no previous database of %s to roll back to (a swap restore keeps one "
                                   "unless keep_previous is false); nothing was changed" % quote_for_message(db))
        else:
            chosen = next((r for r in previous if r.name == request.rollback_to), None)
            if chosen is None:
                raise RestoreError("%s is not a previous database of %s kept by a restore; the previous databases "
                                   "are: %s. Nothing was changed" % (quote_for_message(request.rollback_to),
                                                                     quote_for_message(db), listed))
        live = admin.database(db)
        kept = names.derived_name(db, "pre_rollback", names.timestamp()) if live is not None else None
        result = dict(database=db, strategy="rollback", backup=None, previous_database=kept,
                      rolled_back_to=chosen.name, staging_database=None, downtime_s=0.0, changed=True, checks=[],
                      warnings=[], tables=[], removed_previous=[], previous_dropped=False, sha256=None)
        if check_mode:
            result["msg"] = ("would rename %s to %s and %s to %s" % (db, kept, chosen.name, db) if kept
                             else "would rename %s to %s" % (chosen.name, db))
            return finish(result, started)
        names.lock_database(admin, db)
        if not admin.try_lock(chosen.name):
            raise RestoreError("%s is in use by another run" % quote_for_message(chosen.name))
        try:
            # The database put back is live again: its "previous" record goes; the one it
            # replaces becomes previous, so that a rollback of the rollback is possible too.
            steps = [cluster_admin.rename_sql(chosen.name, db), cluster_admin.allow_sql(db, True),
                     bookkeeping.forget_database_sql(chosen.oid)]
            if live is not None:
                steps.append(bookkeeping.put_database_sql(live["oid"], kept, "previous", db, {
                    "replaced_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "replaced_by": "rollback to %s" % chosen.name}))
                result["downtime_s"] = round(swap_databases(admin, db, chosen.name, kept, steps), 4)
            else:
                admin.in_transaction(steps)
        finally:
            names.unlock_quietly(admin, chosen.name)
        kept_note = "; the replaced one is kept as %s" % kept if kept else ""
        result["msg"] = "rolled back: %s is %s again%s" % (chosen.name, db, kept_note)
        return finish(result, started)
    finally:
        admin.close()
