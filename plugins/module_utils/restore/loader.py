# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Loading a backup into a private database, as every restore strategy and the restore-level
verification do it.

A ``Loader`` creates the transient loading role (loader_role.py; none with ``load_as:
superuser``), creates the private database that role owns and records it (bookkeeping.py),
loads the backup as that role (backup_load.py) with a stall watch, gives the owner its objects
and runs the checks (checks.py), and at the end hands the database over: the superuser's, with
everything the role still owns given to the owner, and the role dropped. A full disk is named
with the cluster's file system. Pure Python over psycopg2 (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import socket

from ansible_collections.lift_simulator.postgresql.plugins.module_utils import failpoints
from ansible_collections.lift_simulator.postgresql.plugins.module_utils import stall_watch
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import connection as pg_connection
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.connection import (
    DatabaseError, pg_sql, quote_for_message)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore import backup_load
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore import bookkeeping
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore import checks as restore_checks
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore import loader_role
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.request import RestoreError

# How PostgreSQL refuses what only a superuser may create (event triggers, untrusted extensions
# and languages), whatever the object.
_SUPERUSER_ONLY_RE = re.compile(r"must be superuser|permission denied to create (event trigger|extension)|"
                                r"permission denied for language", re.IGNORECASE)
TEMPORARY_COMMENT = "lift_simulator.postgresql: temporary database of a %s of %s; dropped automatically"


class Loader(object):
    """A database being loaded: the admin connection, the loading role (None with load_as
    superuser), and the parameters to load and read it with."""

    def __init__(self, request, admin, owner):
        self.request = request
        self.admin = admin
        self.login = admin.login()[0]
        self.role = None
        if request.load_as != "superuser":
            if not admin.role_exists(owner):
                raise RestoreError("the owner role %s does not exist; create it first (for example with the server "
                                   "role)" % quote_for_message(owner))
            try:
                self.role = loader_role.create(admin, owner, request.connection, request.load_host)
            except (loader_role.LoaderError, DatabaseError) as exc:
                raise RestoreError("cannot create the transient loading role: %s" % exc)

    @property
    def database_owner(self):
        """Who owns a database while it loads: the loading role, so it alone can connect."""
        return self.role.name if self.role else self.login

    def params(self, database):
        """The loading sessions' parameters: the loading role's (with load_as superuser, the
        superuser's, as documented), with the database's own search_path, as the owner's code
        they run expects. The superuser's own sessions into it (ownership, hand-over) pin it."""
        if self.role:
            params = self.role.params(database)
        else:
            params = self.request.connection.with_database(database).unpinned()
        # Lock waits are bounded; the run's sessions are findable for the stall watch.
        params.options = "-c lock_timeout=%ds" % int(self.request.lock_timeout)
        return params.with_application(pg_connection.run_application_name("restore"))

    def stall(self):
        """Stops a psql or pg_restore that makes no progress (stall_watch.py)."""
        if not self.request.stall_timeout:
            return None
        name = pg_connection.run_application_name("restore")
        return stall_watch.Stall(self.request.stall_timeout,
                                 lambda: self.admin.query(pg_connection.busy_sessions_sql(), (name,))[0][0] > 0)

    def create(self, name, kind, for_database, like=None):
        """Create the private database ``name`` and record it. The caller holds its lock."""
        self.admin.create_private_database(name, self.database_owner, like=like)
        facts = self.admin.database(name)
        bookkeeping.put_database(self.admin, facts["oid"], name, kind, for_database,
                                 {"host": socket.gethostname(), "pid": os.getpid()})
        self.admin.set_comment(name, TEMPORARY_COMMENT % ({"verify": "verification"}.get(kind, "restore"),
                                                          for_database))
        if self.role:
            try:
                self.role.probe(name)
            except loader_role.LoaderError as exc:
                raise RestoreError(str(exc))
        return facts["oid"]

    def load_and_check(self, backup, target, owner, major, result):
        """Load ``backup`` into ``target``, give ``owner`` its objects, run the checks; add them and
        the row counts to ``result``. Returns (checks, row counts)."""
        request = self.request
        try:
            # The loading role owns what it creates; the superuser gives it all to the owner afterwards
            # (no CREATE right on the schema needed, as ALTER ... OWNER TO would need from the role).
            how = backup_load.load(backup, self.params(target), request.jobs, request.bin_dir, major,
                                   skip_privileges=request.privileges == "skip", skip_ownership=self.role is not None,
                                   stall=self.stall(), identity=request.identity, room=_data_room(self.admin))
        except backup_load.LoadError as exc:
            if exc.disk_full:
                self._free_space(target)
            raise _load_error(exc, self.admin, target, as_owner=self.role is not None)
        if result is not None:
            result["load"] = how
        failpoints.reached("restore-staging-loaded")
        conn = pg_connection.connect(request.connection.with_database(target), autocommit=True)
        try:
            restore_checks.set_ownership(conn, owner)
        finally:
            conn.close()
        checks, counts = restore_checks.database_checks(self.params(target), target, backup, request.app_schema,
                                                        request.checks)
        if result is not None:
            result["checks"] = result["checks"] + checks
            result["row_counts"] = counts
        return checks, counts

    def _free_space(self, target):
        """After a full disk: drop what the loading role made in ``target`` at once. A parallel
        load commits table by table, and the DROP DATABASE that removes the staging database
        checkpoints first, which PostgreSQL cannot do on a full disk (the server stops: PANIC);
        dropped tables give their space back at commit. Best effort; the drop follows anyway."""
        if self.role is None:
            return
        try:
            conn = pg_connection.connect(self.request.connection.with_database(target), autocommit=True)
            try:
                with conn.cursor() as cur:
                    cur.execute(pg_sql.SQL("DROP OWNED BY {}").format(pg_sql.Identifier(self.role.name)))
            finally:
                conn.close()
        except (DatabaseError, pg_connection.PgError):
            pass

    def hand_over(self, target, owner):
        """After loading: the database becomes the superuser's, everything the loading role still
        owns becomes ``owner``'s, and the role goes. Nobody else can connect yet."""
        self.admin.set_owner(target, self.login)
        if self.role is None:
            return
        conn = pg_connection.connect(self.request.connection.with_database(target), autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(pg_sql.SQL("REASSIGN OWNED BY {} TO {}; DROP OWNED BY {}").format(
                    pg_sql.Identifier(self.role.name), pg_sql.Identifier(owner),
                    pg_sql.Identifier(self.role.name)))
        finally:
            conn.close()
        self.drop_role()

    def drop_role(self):
        if self.role is not None:
            role, self.role = self.role, None
            try:
                loader_role.drop(self.admin, role.name)
            except DatabaseError as exc:
                raise RestoreError("cannot drop the transient loading role %s: %s" % (role.name, exc))

    def drop_role_quietly(self):
        role, self.role = self.role, None
        loader_role.drop_quietly(self.admin, role)


def _load_error(exc, admin, target, as_owner=True):
    message = str(exc)
    if as_owner and _SUPERUSER_ONLY_RE.search(message):
        message = ("%s. The backup holds what only a superuser may create (an event trigger, an extension that is not "
                   "trusted, a function in an untrusted language), and it was loaded with the owner's rights "
                   "(load_as: owner). Restore it with load_as: superuser only if you trust the backup and the owner "
                   "completely: their code then runs as superuser (docs/security.md)" % message.rstrip("."))
    if exc.disk_full:
        where = _data_directory(admin)
        message = ("the disk is full: the file system of the database cluster (%s) ran out of space while the "
                   "backup was loaded into %s. PostgreSQL said: %s" % (where, quote_for_message(target), message))
    return RestoreError(message, exc.stderr)


def _data_space(admin):
    """(the cluster's data directory, free bytes on its file system), or (None, None) when it
    cannot be seen from here (the server on another host)."""
    try:
        path = admin.query("SELECT current_setting('data_directory')")[0][0]
        stat = os.statvfs(path)
        return path, stat.f_bavail * stat.f_frsize
    except (DatabaseError, OSError, IndexError):
        return None, None


def _data_room(admin):
    return _data_space(admin)[1]


def _data_directory(admin):
    path, free = _data_space(admin)
    return "the data directory" if path is None else "%s, %d MiB free now" % (path, free // (1024 * 1024))
