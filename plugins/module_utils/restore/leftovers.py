# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cleaning up after failed and killed runs: the temporary databases (staging, staged, scratch)
and transient loading roles that a killed run left behind, found through the collection's
records (bookkeeping.py) and the advisory locks of the runs still alive, and the best-effort
drop of a temporary database after a failure. Pure Python over psycopg2 (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.cluster_admin import ClusterError
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.connection import DatabaseError, PgError
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore import bookkeeping
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore import loader_role


def drop_stale(admin, for_database, kinds=("staging", "staged", "verify")):
    """Drop the temporary databases of killed runs (recorded, their lock free; or owned by a
    loading role whose run is gone), then those runs' loading roles. Returns (dropped, warnings).

    ``staged`` databases are left on purpose between the two phases of a restore; only a
    restore (not a verification) treats them as leftovers."""
    dropped, warnings = [], []
    if not bookkeeping.present(admin):
        return dropped, warnings
    for record in bookkeeping.databases(admin, for_database, kinds):
        if record.exists and admin.try_lock(record.name):
            try:
                admin.drop_database(record.name)
                bookkeeping.forget_database(admin, record.oid)
                dropped.append(record.name)
            finally:
                admin.unlock(record.name)
    roles = bookkeeping.roles(admin)
    if roles:
        # A run killed between CREATE DATABASE and its record leaves a database owned by its role.
        for name, role in admin.query("SELECT datname, pg_get_userbyid(datdba) FROM pg_database "
                                      "WHERE pg_get_userbyid(datdba) = ANY(%s)", (roles,)):
            if admin.try_lock(role):
                try:
                    admin.drop_database(name)
                    dropped.append(name)
                finally:
                    admin.unlock(role)
    _gone, problems = loader_role.drop_stale(admin)
    return dropped, warnings + problems


def discard(admin, name):
    """Drop a temporary database after a failure, best effort: when the server is gone the
    database stays, recorded, and the next run drops it. Never masks the original error."""
    try:
        facts = admin.database(name)
        if facts is not None:
            admin.drop_database(name)
            bookkeeping.forget_database(admin, facts["oid"])
    except (DatabaseError, PgError, ClusterError):
        pass
