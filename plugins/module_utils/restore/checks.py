# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""After a backup is loaded: ownership of its objects, and the checks of the restored database.

``set_ownership`` runs as the superuser and only changes owners (no user code runs in ALTER ...
OWNER); its session's search_path is pinned to pg_catalog (pg_connection.PINNED_SEARCH_PATH), so
a function or operator the backup put in public never stands in for pg_catalog's.
``database_checks`` reads the restored content, so its connection is the loading role's
(loader_role.py): a view, a function or a row-security policy of the owner runs with the
owner's rights. Pure Python over psycopg2 (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.app import lift_simulator as checklist
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import catalog as pg_catalog
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import connection as pg_connection
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.connection import pg_sql

# Every name schema-qualified, and the operators where the types differ: the session's search_path
# is pinned to pg_catalog (pg_connection.PINNED_SEARCH_PATH), and these do not depend on it either.
_OWNERSHIP_QUERIES = (
    # Tables first: their owned sequences follow them.
    ("SELECT 'ALTER ' || CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' "
     "WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END || ' ' || pg_catalog.quote_ident(n.nspname) || '.' "
     "|| pg_catalog.quote_ident(c.relname) "
     "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace "
     "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {user} AND c.relowner <> {owner} AND {not_ext}"),
    ("SELECT 'ALTER SEQUENCE ' || pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) "
     "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace "
     "WHERE c.relkind = 'S' AND {user} AND c.relowner <> {owner} AND {not_ext}"),
    ("SELECT 'ALTER SCHEMA ' || pg_catalog.quote_ident(n.nspname) FROM pg_catalog.pg_namespace n "
     "WHERE {user} AND n.nspname <> 'public' AND n.nspowner <> {owner}"),
    # regprocedure's text is schema-qualified under the pinned search_path.
    ("SELECT 'ALTER ' || CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END "
     "|| ' ' || p.oid::pg_catalog.regprocedure::pg_catalog.text FROM pg_catalog.pg_proc p "
     "JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace "
     "WHERE {user} AND p.proowner <> {owner} AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid "
     "OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass::pg_catalog.oid AND d.objid "
     "OPERATOR(pg_catalog.=) p.oid AND d.deptype = 'e')"),
    ("SELECT 'ALTER ' || CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END || ' ' "
     "|| pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(t.typname) FROM pg_catalog.pg_type t "
     "JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) t.typnamespace "
     "WHERE {user} AND t.typowner <> {owner} AND t.typtype IN ('d', 'e', 'r') "
     "AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid OPERATOR(pg_catalog.=) "
     "'pg_catalog.pg_type'::pg_catalog.regclass::pg_catalog.oid AND d.objid OPERATOR(pg_catalog.=) t.oid "
     "AND d.deptype = 'e')"),
)
_USER_NS = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'"


def set_ownership(conn, owner):
    """Make ``owner`` own every object in the user schemas (the dump's owners may differ)."""
    changed = 0
    with conn.cursor() as cur:
        owner_oid = "(SELECT oid FROM pg_catalog.pg_roles WHERE rolname = %s)"
        for template in _OWNERSHIP_QUERIES:
            query = template.format(user=_USER_NS, owner=owner_oid,
                                    not_ext="NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid "
                                            "OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass::"
                                            "pg_catalog.oid AND d.objid OPERATOR(pg_catalog.=) c.oid "
                                            "AND d.deptype = 'e')")
            cur.execute(query, (owner,))
            for (statement,) in cur.fetchall():
                cur.execute(pg_sql.SQL(statement) + pg_sql.SQL(" OWNER TO {}").format(pg_sql.Identifier(owner)))
                changed += 1
    return changed


def database_checks(params, database, backup, app_schema=checklist.DEFAULT_APP_SCHEMA, user_checks=None):
    """Row counts against the manifest, the strategy's checklist and the operator's checks.

    Returns (checks, row_counts found)."""
    conn = pg_connection.connect(params.with_database(database), autocommit=True)
    try:
        with conn.cursor() as cur:
            checks = []
            counts = {}
            if backup.expected_rows is not None:
                row_checks, counts = checklist.row_count_checks(cur, backup.expected_rows)
                checks.extend(row_checks)
            else:
                checks.append(checklist.check("row counts", True, "no manifest to compare with", skipped=True))
            manifest = backup.manifest or {}
            if manifest.get("checklist") or checklist.is_app_database(cur, app_schema):
                checks.append(checklist.flyway_check(cur, app_schema, manifest.get("flyway_version")))
            checks.extend(checklist.checklist_checks(cur, manifest.get("checklist"), app_schema))
            checks.extend(checklist.user_checks(cur, user_checks))
            if not counts:
                tables = pg_catalog.dumped_tables(cur)
                counts = pg_catalog.row_counts(cur, tables)
        return checks, counts
    finally:
        conn.close()
