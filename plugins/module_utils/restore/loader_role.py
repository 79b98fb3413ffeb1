# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The transient role that loads and reads restored content, with the owner's rights only.

Whatever a backup holds, and whatever the database owner planted (triggers, CHECK functions,
defaults, index expressions), runs with the rights of the session that loads or reads it. A
superuser session that switches role is no boundary (a function can RESET ROLE), so every such
session logs in as its own role: ``lift_simulator_restore_<random>``, LOGIN, NOSUPERUSER,
NOCREATEDB, NOCREATEROLE, NOREPLICATION, NOBYPASSRLS, a member of the owner role and nothing
else, with a random password stored as a SCRAM verifier (so no server log ever holds it) and
valid for a day. It is recorded in the bookkeeping schema in the transaction that creates it,
held by an advisory lock while its run lives, and dropped at the end; the next run drops the
role of a killed one. Pure Python over psycopg2 (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import secrets
import socket

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import connection as pg_connection
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import scram
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.connection import (
    DatabaseError, PgError, pg_sql, quote_for_message)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore import bookkeeping

ROLE_PREFIX = "lift_simulator_restore_"
DEFAULT_LOAD_HOST = "127.0.0.1"


class LoaderError(Exception):
    pass


def loader_params(base, role, password, load_host=None):
    """Connection parameters of the loading role: ``load_host`` (a host name, or a socket
    directory when it starts with '/'), else the login host, else 127.0.0.1; the same port. Its
    sessions keep the database's search_path (pg_connection.PINNED_SEARCH_PATH is for sessions
    with more rights than the owner's): the owner's code they run is written for it."""
    params = base.unpinned()
    host = load_host or base.login_host or DEFAULT_LOAD_HOST
    params.login_host = None if host.startswith("/") else host
    params.login_unix_socket = host if host.startswith("/") else None
    params.login_user = role
    params.login_password = password
    return params


class LoaderRole(object):
    """A created loading role: its name and how to connect as it."""

    def __init__(self, name, password, base, load_host):
        self.name = name
        self._password = password
        self._base = base
        self.load_host = load_host

    def params(self, database):
        return loader_params(self._base.with_database(database), self.name, self._password, self.load_host)

    def probe(self, database):
        """Log in once, so that a pg_hba.conf without a rule for it fails with a clear error
        before anything is loaded."""
        params = self.params(database)
        try:
            pg_connection.connect(params).close()
        except PgError as exc:
            raise LoaderError(
                "the restore loads and checks the backup as a transient role without superuser rights "
                "(docs/security.md), and that role could not log in: %s. Allow password logins there (pg_hba.conf, "
                "e.g. Debian's default 'host all all 127.0.0.1/32 scram-sha-256'), point load_host at a host or "
                "socket directory that allows them, or set load_as: superuser for a backup and an owner you trust "
                "completely" % exc)


def create(admin, member_of, base, load_host=None):
    """Create a loading role that is a member of ``member_of``; the caller drops it (``drop``)."""
    name = ROLE_PREFIX + secrets.token_hex(8)
    password = secrets.token_urlsafe(32)
    if not admin.try_lock(name):
        raise LoaderError("cannot take the lock of the new role %s" % name)
    valid_until = admin.query("SELECT (now() + interval '1 day')::text")[0][0]
    role = pg_sql.Identifier(name)
    try:
        admin.in_transaction([
            bookkeeping.put_role_sql(name, socket.gethostname(), os.getpid()),
            pg_sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT "
                       "PASSWORD {} VALID UNTIL {}").format(
                role, pg_sql.Literal(scram.verifier(password)), pg_sql.Literal(valid_until)),
            pg_sql.SQL("COMMENT ON ROLE {} IS {}").format(role, pg_sql.Literal(
                "lift_simulator.postgresql: loads a restore with the rights of %s; dropped when the restore ends"
                % member_of)),
            pg_sql.SQL("GRANT {} TO {}").format(pg_sql.Identifier(member_of), role),
        ])
    except DatabaseError:
        admin.unlock(name)
        raise
    return LoaderRole(name, password, base, load_host)


def drop(admin, role_name):
    """Drop a loading role and its record. Raises DatabaseError when it still owns something."""
    admin.in_transaction([
        pg_sql.SQL("DROP ROLE IF EXISTS {}").format(pg_sql.Identifier(role_name)),
        bookkeeping.forget_role_sql(role_name),
    ])
    try:
        admin.unlock(role_name)
    except DatabaseError:
        pass


def drop_quietly(admin, role):
    """Drop after a failure, best effort: a role that cannot be dropped now is left recorded,
    and the next run drops it. Never masks the original error."""
    if role is None:
        return
    try:
        drop(admin, role.name)
    except (DatabaseError, PgError):
        pass


def drop_stale(admin):
    """Drop the recorded loading roles whose run is gone (lock free). Returns (dropped, problems)."""
    dropped, problems = [], []
    for name in bookkeeping.roles(admin):
        if not name.startswith(ROLE_PREFIX) or not admin.try_lock(name):
            continue
        try:
            drop(admin, name)
            dropped.append(name)
        except DatabaseError as exc:
            problems.append("the transient role %s of an interrupted run cannot be dropped yet: %s"
                            % (quote_for_message(name), str(exc).strip().splitlines()[0]))
            admin.unlock(name)
    return dropped, problems
