# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Catalog queries shared by backup, verify and restore (psycopg2 cursors, no Ansible).

Tables are named ``schema.table`` with PostgreSQL's own quote_ident() on each part, so an
ordinary name reads naturally (``lift_simulator.lift_system``) and a hostile one stays
unambiguous (``"we.ird"."tab;le"``).

The queries run in the backup's session (often the superuser's) inside a database the owner
writes. The session's search_path is pinned to pg_catalog (connection.PINNED_SEARCH_PATH), and the
queries name pg_catalog's functions and operators themselves where the owner could otherwise
offer a better match (a public.quote_ident(name), an operator public.=(oid, regclass)).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.connection import ident, pg_sql

# Ordinary tables whose data pg_dump dumps: leaf tables only (a partitioned parent holds no rows
# of its own), no system schemas, no temporary tables, no tables that belong to an extension.
DUMPED_TABLES_SQL = """
SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) AS qualified,
       n.nspname, c.relname, pg_catalog.pg_table_size(c.oid::pg_catalog.regclass) AS table_bytes
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
 WHERE c.relkind = 'r'
   AND c.relpersistence <> 't'
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\\_toast%'
   AND n.nspname NOT LIKE 'pg\\_temp\\_%'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                    WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid
                      AND d.objid OPERATOR(pg_catalog.=) c.oid AND d.deptype = 'e')
 ORDER BY n.nspname, c.relname
"""

FLYWAY_TABLES_SQL = """
SELECT n.nspname
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
 WHERE c.relname = 'flyway_schema_history' AND c.relkind IN ('r', 'p')
 ORDER BY (n.nspname = 'public'), n.nspname
"""


class Table(object):
    def __init__(self, qualified, schema, name, table_bytes=0):
        self.qualified = qualified
        self.schema = schema
        self.name = name
        self.table_bytes = int(table_bytes or 0)


def dumped_tables(cursor):
    cursor.execute(DUMPED_TABLES_SQL)
    return [Table(*row) for row in cursor.fetchall()]


def row_counts(cursor, tables):
    """Exact row counts, in the cursor's transaction (so in its snapshot)."""
    counts = {}
    for table in tables:
        cursor.execute(pg_sql.SQL("SELECT count(*) FROM {}").format(ident(table.schema, table.name)))
        counts[table.qualified] = int(cursor.fetchone()[0])
    return counts


def flyway_state(cursor):
    """Latest successful Flyway migration of each flyway_schema_history table, application first.

    Returns a list of dicts (schema, version, description, installed_rank, rows, failed).
    """
    cursor.execute(FLYWAY_TABLES_SQL)
    states = []
    for (schema,) in cursor.fetchall():
        table = ident(schema, "flyway_schema_history")
        cursor.execute(pg_sql.SQL(
            "SELECT count(*), count(*) FILTER (WHERE NOT success) FROM {}").format(table))
        rows, failed = cursor.fetchone()
        cursor.execute(pg_sql.SQL(
            "SELECT version, description, installed_rank FROM {} "
            "WHERE success AND version IS NOT NULL ORDER BY installed_rank DESC LIMIT 1").format(table))
        latest = cursor.fetchone()
        states.append({
            "schema": schema,
            "version": latest[0] if latest else None,
            "description": latest[1] if latest else None,
            "installed_rank": latest[2] if latest else None,
            "rows": int(rows),
            "failed": int(failed),
        })
    return states


def server_version(cursor):
    """(server_version_num, server_version text)."""
    cursor.execute("SELECT current_setting('server_version_num')::int, current_setting('server_version')")
    num, text = cursor.fetchone()
    return int(num), text.split()[0]


# Roles the objects of the current database refer to (pg_shdepend; objects owned by the bootstrap
# superuser are pinned and not listed): as owner, in privileges, in row-security policies.
_REFERENCED_ROLES_SQL = """
SELECT r.rolname, array_agg(DISTINCT CASE d.deptype WHEN 'o' THEN 'owner' WHEN 'a' THEN 'privileges'
                                                   WHEN 'r' THEN 'policies' ELSE 'other' END)
  FROM pg_catalog.pg_shdepend d JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) d.refobjid
 WHERE d.dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
   AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_authid'::pg_catalog.regclass::pg_catalog.oid
 GROUP BY r.rolname ORDER BY r.rolname
"""


def referenced_roles(cursor):
    """{role: [how the database's objects refer to it: owner, privileges, policies]}."""
    cursor.execute(_REFERENCED_ROLES_SQL)
    return dict((name, sorted(kinds)) for name, kinds in cursor.fetchall())
