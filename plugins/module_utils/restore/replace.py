# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Strategy replace (``force: true`` only): the strategy document's procedure, drop the live
database, create it again and restore into it. The downtime is the whole restore, and a failure
after the drop leaves no database: the error says so and how to go on. Pure Python (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.app import lift_simulator as checklist
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.connection import (
    DatabaseError, quote_for_message)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore import bookkeeping
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore import provenance
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.leftovers import discard
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.loader import Loader
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.request import (
    RestoreError, lock_timeout_message)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.swap import wanted_attributes


def replace(request, backup, admin, major, live, result):
    """The strategy document's procedure: drop, create, restore. Downtime is the whole restore."""
    db = request.database
    wanted = wanted_attributes(request, admin.attributes(db) if live is not None else None)
    started = time.monotonic()
    if live is not None:
        admin.set_allow_connections(db, False)
        try:
            admin.end_sessions([db])
            admin.drop_database(db)
        except BaseException as exc:
            try:
                admin.set_allow_connections(db, True)
                state = "it accepts connections again, unchanged"
            except DatabaseError:
                state = "it may still refuse connections: ALTER DATABASE ... WITH ALLOW_CONNECTIONS true"
            why = (lock_timeout_message(exc, request.lock_timeout)
                   or (str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__))
            raise RestoreError("strategy replace could not drop %s (%s); %s" % (quote_for_message(db), why, state))
    # The restore's own lock on the name protects the half-loaded database from drop_stale.
    load = Loader(request, admin, request.owner)
    try:
        oid = load.create(db, "staging", db, like=live)
        checks, counts = load.load_and_check(backup, db, request.owner, major, result)
        load.hand_over(db, request.owner)
        record = provenance.record(backup, "replace", provenance.capture_in(request.connection, db, counts))
        admin.in_transaction(admin.attribute_statements(db, wanted, admin.attributes(db))
                             + [bookkeeping.put_database_sql(oid, db, "restored", db, record)])
    except BaseException as exc:
        if not isinstance(exc, Exception):
            raise  # killed: the next run drops the half-loaded database (recorded as staging)
        discard(admin, db)
        load.drop_role_quietly()
        raise RestoreError("strategy replace failed after the old database was dropped: %s. Database %s no longer "
                           "exists; restore a good backup with strategy create" % (exc, quote_for_message(db)),
                           getattr(exc, "stderr", ""), result["checks"])
    result["downtime_s"] = round(time.monotonic() - started, 4)
    if checklist.failing(checks):
        raise RestoreError("the restored database failed its checks (strategy replace: the old database is gone): "
                           "%s" % checklist.summary(checks), checks=result["checks"])
