# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Opening a restore: the backup inspected and quickly verified before anything is created, the
superuser's connection to the maintenance database checked to be one, the collection's records
(bookkeeping.py) made ready, and the warnings a backup itself gives. Pure Python (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.app import lift_simulator as checklist
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import backup_files
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.cluster_admin import ClusterAdmin
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.connection import (
    PgError, quote_for_message)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore import backup_load
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore import bookkeeping
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.request import RestoreError
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.verify import quick


def connect(request):
    """The superuser's admin connection, checked to be one (before anything is read or created)."""
    try:
        admin = ClusterAdmin(request.connection, request.maintenance_db, lock_timeout_s=request.lock_timeout)
    except PgError as exc:
        raise RestoreError(str(exc))
    user, superuser, createdb, _createrole = admin.login()
    if not superuser:
        admin.close()
        raise RestoreError(
            "restores and restore-level verification need a superuser login (they create, rename and drop databases "
            "and a transient loading role, and keep their records in the maintenance database); %s is not a "
            "superuser%s. Connect as postgres (become_user: postgres over the local socket)"
            % (quote_for_message(user), "" if createdb else " and has no CREATEDB either"))
    return admin


def open_run(request, check_mode=False):
    """Inspect the backup and connect to the cluster: (backup, admin, server major)."""
    try:
        backup = backup_files.inspect(request.backup_path, request.directory_checks)
    except backup_files.BackupFileError as exc:
        raise RestoreError(str(exc))
    if backup.encryption != "none" and request.identity is None:
        raise RestoreError("%s is encrypted with %s: give the identity that decrypts it (identity or identity_file); "
                           "nothing was changed" % (backup.name, backup.encryption))
    admin = connect(request)
    try:
        if not check_mode:
            bookkeeping.ensure(admin)
        return backup, admin, admin.server_major()
    except BaseException:
        admin.close()
        raise


def verify_quickly(backup, request, major):
    checks = quick.verify_quickly(backup, lambda: backup_load.client("pg_restore", request.bin_dir, major)[0],
                                  request.identity)
    if checklist.failing(checks):
        raise RestoreError("the backup failed verification, nothing was changed: %s" % checklist.summary(checks),
                           checks=checks)
    return checks


def backup_warnings(backup):
    warnings = list(backup.warnings)
    if backup.manifest is None and not backup.manifest_error:
        warnings.append("%s has no manifest (a backup of an earlier process?): its checksum and row counts cannot "
                        "be compared; only its structure and the checklist were checked" % backup.name)
    return warnings
