# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The checks of a recovered copy, through its temporary port, before it may go in service.

Server: every database that allows connections opens (as the superuser, over the local socket:
a connection and ``SELECT 1`` run nothing of the owner's). Application (the collection's
checklist, app/lift_simulator.py): the Flyway history is there and all successful, the checklist's
figures (lift_system count, versions and published versions per system), exact row counts of the
ordinary tables the login may read, and the operator's checks. Those read the owner's tables; through a superuser
session they would run whatever the owner made of them (a view in place of a table, a function
in it), so as the superuser they read ordinary tables only and refuse the rest, and the
operator's checks run there only when the login is not a superuser or the caller allows it. The
docs recommend the owner's own login for them. No Ansible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.app import lift_simulator as checklist
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import catalog as pg_catalog
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import connection as pg_connection

_DATABASES_SQL = ("SELECT datname FROM pg_catalog.pg_database WHERE datallowconn AND NOT datistemplate "
                  "ORDER BY datname")
_SUPER_SQL = "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) current_user"
_RELKIND_SQL = ("SELECT c.relkind FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
                "ON n.oid OPERATOR(pg_catalog.=) c.relnamespace WHERE n.nspname = %s AND c.relname = %s")
_APP_TABLES = ("lift_system", "lift_system_version", "flyway_schema_history")
_READABLE_SQL = ("SELECT pg_catalog.has_table_privilege(c.oid, 'SELECT') FROM pg_catalog.pg_class c "
                 "JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace "
                 "WHERE n.nspname = %s AND c.relname = %s")


def server_checks(admin_params):
    """One check per database: it opens. Returns (checks, database names)."""
    conn = pg_connection.connect(admin_params.with_database("postgres"))
    try:
        with conn.cursor() as cur:
            cur.execute(_DATABASES_SQL)
            names = [row[0] for row in cur.fetchall()]
    finally:
        conn.close()
    checks = []
    for name in names:
        try:
            conn = pg_connection.connect(admin_params.with_database(name))
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
                    cur.fetchone()
            finally:
                conn.close()
            checks.append(checklist.check("database %s opens" % name, True, "connected"))
        except pg_connection.PgError as exc:
            checks.append(checklist.check("database %s opens" % name, False, str(exc)))
    return checks, names


def _not_ordinary(cur, schema):
    """The application's tables that exist and are not ordinary tables (views and the like)."""
    odd = []
    for table in _APP_TABLES:
        cur.execute(_RELKIND_SQL, (schema, table))
        row = cur.fetchone()
        if row is not None and row[0] not in ("r", "p"):
            odd.append("%s.%s" % (schema, table))
    return odd


def app_checks(params, app_schema=checklist.DEFAULT_APP_SCHEMA, user_checks=None, user_checks_as_superuser=False,
               count_rows=True):
    """The checklist and the operator's checks in ``params.database``. Returns (checks, figures):
    figures = {checklist, flyway, row_counts, superuser}."""
    conn = pg_connection.connect(params)
    try:
        with conn.cursor() as cur:
            cur.execute(_SUPER_SQL)
            row = cur.fetchone()
            superuser = bool(row and row[0])
            checks = []
            odd = _not_ordinary(cur, app_schema) if superuser else []
            if odd:
                checks.append(checklist.check(
                    "application tables", False, "%s not an ordinary table: not read with superuser rights (give "
                    "the owner's login for the checks)" % ", ".join(odd)))
                figures = None
            else:
                figures = checklist.capture(cur, app_schema)
                if figures is not None or _exists(cur, app_schema, "flyway_schema_history"):
                    checks.append(checklist.flyway_check(cur, app_schema))
                checks.extend(checklist.checklist_checks(cur, None, app_schema))
            if user_checks:
                if superuser and not user_checks_as_superuser:
                    checks.append(checklist.check(
                        "operator's checks", False, "not run: the login is a superuser, and the checks read what the "
                        "database owner made; give the owner's login (pitr_restore_check_user / _password)"))
                else:
                    checks.extend(checklist.user_checks(cur, user_checks))
            counts, unreadable = _row_counts(cur) if count_rows else ({}, [])
            flyway = pg_catalog.flyway_state(cur) if not odd else []
    finally:
        conn.close()
    return checks, {"checklist": figures, "flyway": flyway[0] if flyway else None, "row_counts": counts,
                    "not_counted": unreadable, "superuser": superuser}


def _row_counts(cur):
    """Exact row counts of the tables the login may read; the others are listed, not counted."""
    readable, unreadable = [], []
    for table in pg_catalog.dumped_tables(cur):
        cur.execute(_READABLE_SQL, (table.schema, table.name))
        (readable if cur.fetchone()[0] else unreadable).append(table)
    return pg_catalog.row_counts(cur, readable), [t.qualified for t in unreadable]


def _exists(cur, schema, table):
    cur.execute(_RELKIND_SQL, (schema, table))
    return cur.fetchone() is not None
