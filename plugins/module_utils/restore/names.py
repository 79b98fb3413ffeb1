# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The names of the databases a restore makes, and the advisory locks on names.

A restore's staging database is ``<database>_staging_<time>``, a verification's scratch database
``<database>_verify_<time>``, the live database a swap replaces ``<database>_pre_restore_<time>``
and the one a rollback replaces ``<database>_pre_rollback_<time>`` (UTC, to the second), all
within PostgreSQL's 63-byte limit. A run holds the advisory lock of every name it works on
(pg/cluster_admin.py): a second restore of the same database stops, naming the holder, and a
later run drops only temporary databases whose lock is free. Pure Python (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.cluster_admin import ClusterError
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.connection import (
    DatabaseError, quote_for_message)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.request import RestoreError

NAMEDATALEN = 63


def timestamp():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d%H%M%S")


def derived_name(base, kind, stamp):
    """``<base>_<kind>_<stamp>`` within PostgreSQL's 63-byte limit (the base is shortened)."""
    suffix = "_%s_%s" % (kind, stamp)
    room = NAMEDATALEN - len(suffix.encode("utf-8"))
    encoded = base.encode("utf-8")
    if len(encoded) > room:
        base = encoded[:room].decode("utf-8", "ignore")
    return base + suffix


def is_staging_name(database, name):
    """Whether ``name`` has the shape of a staging database that the stage phase makes for ``database``."""
    stamp = timestamp()
    prefix = derived_name(database, "staging", stamp)[:-len(stamp)]
    rest = name[len(prefix):] if name.startswith(prefix) else ""
    return len(rest) == len(stamp) and rest.isdigit()


def lock_database(admin, database):
    """Take the lock of a restore of ``database``; another one holding it stops this run."""
    try:
        admin.lock_or_explain(database, "another restore of %s" % quote_for_message(database))
    except ClusterError as exc:
        raise RestoreError(str(exc))


def unlock_quietly(admin, name):
    try:
        admin.unlock(name)
    except DatabaseError:
        pass  # the session is gone, and its locks with it
