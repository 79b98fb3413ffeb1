# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a restore (or a restore-level verification) is asked to do, how it fails, and how its
result is finished.

``RestoreRequest`` holds the options of the ``restore`` and ``verify`` modules as the restore
engine reads them; ``keep_previous_count`` reads ``keep_previous``; ``RestoreError`` is the one
error a restore raises (with the failing program's output and the checks, when there are some);
``finish`` stamps a result with its duration. Pure Python (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.app import lift_simulator as checklist


class RestoreError(Exception):
    def __init__(self, message, stderr="", checks=None):
        Exception.__init__(self, message)
        self.stderr = stderr
        self.checks = checks or []


LOCK_NOT_AVAILABLE = "55P03"


def lock_timeout_message(exc, lock_timeout):
    """What to say when a statement of the run gave up waiting for a lock (lock_timeout): that
    another session holds it, and for how long the run waited. None for any other error."""
    if getattr(exc, "pgcode", None) != LOCK_NOT_AVAILABLE:
        return None
    said = str(exc).strip().splitlines()
    return ("another session holds a lock the restore needs (on the database or one of its tables), and it did not "
            "come within lock_timeout (%d s): %s" % (int(lock_timeout), said[0] if said else "lock timeout"))


def keep_previous_count(value):
    """``keep_previous`` as a number of previous databases: true is 1, false is 0."""
    if isinstance(value, bool):
        return 1 if value else 0
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "false", "no", "off"):
        return 1 if value.strip().lower() in ("true", "yes", "on") else 0
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise RestoreError("keep_previous must be true, false or a number of previous databases, not %r" % (value,))
    if count < 0:
        raise RestoreError("keep_previous must not be negative")
    return count


class RestoreRequest(object):
    def __init__(self, connection, backup_path, database="lift_simulator", owner="lift_admin", strategy="swap",
                 keep_previous=1, force=False, jobs=1, bin_dir=None, tables=None, truncate=False, checks=None,
                 app_schema=checklist.DEFAULT_APP_SCHEMA, maintenance_db="postgres", phase="full",
                 staging_database=None, load_as="owner", load_host=None, privileges="keep", lock_timeout=60,
                 directory_checks="strict", stall_timeout=300, create_roles=True, rollback_to="newest",
                 identity=None):
        self.connection = connection
        self.phase = phase
        self.rollback_to = rollback_to
        self.staging_database = staging_database
        self.backup_path = backup_path
        self.database = database
        self.owner = owner
        self.strategy = strategy
        self.keep_previous = keep_previous_count(keep_previous)
        self.force = force
        self.jobs = jobs
        self.bin_dir = bin_dir
        self.tables = tables or []
        self.truncate = truncate
        self.checks = checks or []
        self.app_schema = app_schema
        self.maintenance_db = maintenance_db
        self.load_as = load_as
        self.load_host = load_host
        self.privileges = privileges
        self.lock_timeout = lock_timeout
        self.directory_checks = directory_checks
        self.stall_timeout = stall_timeout
        self.create_roles = create_roles
        # An encrypted backup's identity, open for the run (secret_file.SecretFile or the operator's file).
        self.identity = identity


def finish(result, started):
    """The result with its duration since ``started`` (time.monotonic()), in seconds."""
    result["duration_s"] = round(time.monotonic() - started, 3)
    return result
