# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Proving that a restored database still holds exactly what its backup holds.

A restore records, once the restored database is complete (its last write done), a transaction
id R, the rows of every table it checked, each sequence's position and how many rows the
catalogs of user objects have. Any later change writes a row version newer than R: an INSERT,
UPDATE, COPY or any DDL (new catalog rows; TRUNCATE gives a table a new file, which updates
pg_class), and a DELETE changes a count. So the database is unchanged since the restore exactly
when no table or catalog row is newer than R, every count is the same and every sequence is
where it was. VACUUM and ANALYZE update the catalogs in place and keep row versions' xmin;
frozen rows count as old. Reading the proof runs no user code: plain tables are counted with
count(*) by the superuser (row security does not apply to it), sequences read directly.
Capturing and checking the proof read the database as the superuser, in a session whose
search_path is pinned to pg_catalog (pg_connection.PINNED_SEARCH_PATH), and name pg_catalog's
functions and operators themselves: a function or operator the backup or the owner put in public
is never called instead.
When the proof cannot be made (the record is too old to compare transaction ids safely,
a table is gone), the database counts as changed and the restore runs. The provenance a
restore records with a database it put in place (``record``: backup, sha256, strategy, host,
time and that proof) lives in the collection's records (bookkeeping.py). Pure Python over psycopg2.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import socket

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import connection as pg_connection
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.connection import ident, pg_sql

# Beyond this many transactions since the restore, xids can no longer be compared safely.
_MAX_XID_DISTANCE = 1 << 30
_TEMP_NS = ("(SELECT oid FROM pg_catalog.pg_namespace WHERE nspname LIKE 'pg\\_temp\\_%%' "
            "OR nspname LIKE 'pg\\_toast\\_temp\\_%%')")
_PERSISTENT_RELS = "(SELECT oid FROM pg_catalog.pg_class WHERE relpersistence <> 't')"
# The catalogs of the objects a dump holds (temporary objects left out: applications make them).
CATALOGS = (
    ("pg_namespace", "x.oid NOT IN " + _TEMP_NS),
    ("pg_class", "x.relpersistence <> 't'"),
    ("pg_attribute", "x.attrelid IN " + _PERSISTENT_RELS),
    ("pg_attrdef", "x.adrelid IN " + _PERSISTENT_RELS),
    ("pg_constraint", "x.connamespace NOT IN " + _TEMP_NS),
    ("pg_index", "x.indrelid IN " + _PERSISTENT_RELS),
    ("pg_trigger", "x.tgrelid IN " + _PERSISTENT_RELS),
    ("pg_rewrite", "x.ev_class IN " + _PERSISTENT_RELS),
    ("pg_sequence", "x.seqrelid IN " + _PERSISTENT_RELS),
    ("pg_proc", "x.pronamespace NOT IN " + _TEMP_NS),
    ("pg_type", "x.typnamespace NOT IN " + _TEMP_NS),
    ("pg_operator", "x.oprnamespace NOT IN " + _TEMP_NS),
    ("pg_policy", "true"), ("pg_description", "true"), ("pg_default_acl", "true"), ("pg_event_trigger", "true"),
    ("pg_extension", "true"), ("pg_largeobject_metadata", "true"), ("pg_largeobject", "true"),
    ("pg_inherits", "true"), ("pg_enum", "true"), ("pg_range", "true"), ("pg_statistic_ext", "true"),
    ("pg_publication", "true"), ("pg_publication_rel", "true"), ("pg_aggregate", "true"), ("pg_cast", "true"),
    ("pg_collation", "true"), ("pg_conversion", "true"), ("pg_foreign_table", "true"), ("pg_init_privs", "true"),
    ("pg_seclabel", "true"), ("pg_partitioned_table", "true"), ("pg_language", "true"), ("pg_transform", "true"),
    ("pg_opclass", "true"), ("pg_opfamily", "true"), ("pg_ts_config", "true"), ("pg_ts_dict", "true"),
)


def _catalog_sql(with_age):
    parts = []
    for name, where in CATALOGS:
        newer = ("count(*) FILTER (WHERE pg_catalog.age(x.xmin) OPERATOR(pg_catalog.<) %(age)s::pg_catalog.int4)"
                 if with_age else "0")
        parts.append("SELECT '%s', count(*), %s FROM pg_catalog.%s x WHERE %s" % (name, newer, name, where))
    return " UNION ALL ".join(parts)


def _sequences(cur):
    cur.execute("SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c "
                "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind = 'S' AND c.relpersistence <> 't' ORDER BY c.oid")
    found = {}
    for oid, schema, name in cur.fetchall():
        cur.execute(pg_sql.SQL("SELECT last_value, is_called FROM {}").format(ident(schema, name)))
        last_value, is_called = cur.fetchone()
        found[str(oid)] = [int(last_value), bool(is_called)]
    return found


def capture(conn, row_counts):
    """The proof for a database just restored (``conn``: a superuser's autocommit connection to it,
    after the last write). ``row_counts``: {qualified table: rows} as the checks found them."""
    with conn.cursor() as cur:
        tables = {}
        for table, rows in sorted(row_counts.items()):
            cur.execute("SELECT c.oid FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) "
                        "pg_catalog.to_regclass(%s::pg_catalog.text)::pg_catalog.oid AND c.relkind = 'r'", (table,))
            row = cur.fetchone()
            if row is not None:
                tables[table] = [int(row[0]), int(rows)]
        cur.execute(_catalog_sql(False), {})
        catalogs = {name: int(count) for name, count, _newer in cur.fetchall()}
        sequences = _sequences(cur)
        # A new transaction id (``conn`` is in autocommit): every write of the restore committed before it.
        cur.execute("SELECT pg_catalog.pg_current_xact_id()::pg_catalog.text::pg_catalog.int8")
        xid = int(cur.fetchone()[0])
    return dict(xid=xid, tables=tables, catalogs=catalogs, sequences=sequences)


def capture_in(connection, database, row_counts):
    """``capture`` over a superuser's connection of its own to ``database`` (``connection``: the
    request's connection parameters)."""
    conn = pg_connection.connect(connection.with_database(database), autocommit=True)
    try:
        return capture(conn, row_counts)
    finally:
        conn.close()


def record(backup, strategy, proof):
    """The provenance of a database restored from ``backup``, as bookkeeping keeps it."""
    return {"backup": backup.name, "sha256": backup.sha256, "strategy": strategy, "host": socket.gethostname(),
            "restored_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "proof": proof}


def unchanged(conn, proof):
    """(True, "") when the database still holds what ``proof`` recorded, else (False, why)."""
    if not proof or "xid" not in proof:
        return False, "no proof of its content was recorded"
    with conn.cursor() as cur:
        cur.execute("SELECT pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())::pg_catalog.text::"
                    "pg_catalog.int8")
        next_xid = int(cur.fetchone()[0])
        if not 0 <= next_xid - proof["xid"] < _MAX_XID_DISTANCE:
            return False, "too many transactions since the restore to prove it unchanged"
        cur.execute("SELECT pg_catalog.age(%s::pg_catalog.text::pg_catalog.xid)", (str(proof["xid"] & 0xFFFFFFFF),))
        age = int(cur.fetchone()[0])
        cur.execute(_catalog_sql(True), {"age": age})
        for name, count, newer in cur.fetchall():
            if newer or proof["catalogs"].get(name) != count:
                return False, "its definitions changed since the restore (%s)" % name
        for table, (oid, rows) in sorted(proof["tables"].items()):
            cur.execute("SELECT n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
                        "ON n.oid OPERATOR(pg_catalog.=) c.relnamespace WHERE c.oid OPERATOR(pg_catalog.=) "
                        "%s::pg_catalog.oid AND c.relkind = 'r'", (oid,))
            row = cur.fetchone()
            if row is None:
                return False, "table %s is gone" % table
            cur.execute(pg_sql.SQL("SELECT pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE pg_catalog.age(xmin) "
                                   "OPERATOR(pg_catalog.<) %s::pg_catalog.int4) FROM ONLY {}").format(ident(*row)),
                        (age,))
            count, newer = cur.fetchone()
            if newer or count != rows:
                return False, "the data of %s changed since the restore" % table
        if _sequences(cur) != proof["sequences"]:
            return False, "a sequence moved since the restore"
    return True, ""
