# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's own records in the cluster: which databases and roles its restores made.

They live in schema ``lift_simulator_postgresql`` of the maintenance database, owned by the
superuser that restores, with no rights for anyone else: the database owner (which may write its
database's comment) cannot forge them. Each database is recorded by oid and name, so a database
renamed by someone else, or a reused oid, is never taken for ours. Kinds:

- ``staging`` / ``verify``: made by a running restore or verification (its advisory lock on the
  name proves it runs); ``staged``: restored and checked, waiting for the swap phase;
- ``restored``: a live database put in place by a restore, with its provenance (backup, sha256,
  and the proof that it still holds what the backup holds: provenance.py);
- ``previous``: a live database replaced by a swap, kept by ``keep_previous``.
Transient loading roles (loader_role.py) are recorded with their creation, in one transaction.
Pure Python over psycopg2 (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.connection import DatabaseError, pg_sql

SCHEMA = "lift_simulator_postgresql"
KINDS = ("staging", "staged", "verify", "restored", "previous")

_DDL = (
    "CREATE SCHEMA IF NOT EXISTS lift_simulator_postgresql",
    "REVOKE ALL ON SCHEMA lift_simulator_postgresql FROM PUBLIC",
    "COMMENT ON SCHEMA lift_simulator_postgresql IS 'lift_simulator.postgresql: the databases and roles its "
    "restores made, and their provenance (written by the restoring superuser only)'",
    "CREATE TABLE IF NOT EXISTS lift_simulator_postgresql.databases ("
    " database_oid oid PRIMARY KEY, database_name name NOT NULL,"
    " kind text NOT NULL CHECK (kind IN ('staging', 'staged', 'verify', 'restored', 'previous')),"
    " for_database name NOT NULL, seq bigserial NOT NULL,"
    " recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(), record jsonb NOT NULL DEFAULT '{}')",
    "CREATE TABLE IF NOT EXISTS lift_simulator_postgresql.roles ("
    " role_name name PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT clock_timestamp(), host text, pid integer)",
    "REVOKE ALL ON ALL TABLES IN SCHEMA lift_simulator_postgresql FROM PUBLIC",
    "REVOKE ALL ON ALL SEQUENCES IN SCHEMA lift_simulator_postgresql FROM PUBLIC",
)


class Record(object):
    def __init__(self, oid, name, kind, for_database, seq, record, exists):
        self.oid = oid
        self.name = name
        self.kind = kind
        self.for_database = for_database
        self.seq = seq
        self.record = record or {}
        self.exists = exists


def present(admin):
    """Whether the schema and its tables are there (a cluster no restore has run on yet has none:
    reading it then finds nothing, and check mode creates nothing)."""
    return admin.query("SELECT to_regclass('lift_simulator_postgresql.roles') IS NOT NULL")[0][0]


def ensure(admin):
    """Create the schema and its tables when missing (two runs at once: one wins, both go on)."""
    if present(admin):
        return
    try:
        admin.in_transaction([pg_sql.SQL(statement) for statement in _DDL])
    except DatabaseError:
        if not present(admin):
            raise


def put_database_sql(oid, name, kind, for_database, record=None):
    """Record (or re-record) a database; composed, to run inside another transaction."""
    return pg_sql.SQL(
        "INSERT INTO lift_simulator_postgresql.databases (database_oid, database_name, kind, for_database, record) "
        "VALUES ({oid}, {name}, {kind}, {for_db}, {record}::jsonb) ON CONFLICT (database_oid) DO UPDATE SET "
        "database_name = EXCLUDED.database_name, kind = EXCLUDED.kind, for_database = EXCLUDED.for_database, "
        "record = EXCLUDED.record, recorded_at = clock_timestamp(), "
        "seq = nextval(pg_get_serial_sequence('lift_simulator_postgresql.databases', 'seq'))").format(
        oid=pg_sql.Literal(oid), name=pg_sql.Literal(name), kind=pg_sql.Literal(kind),
        for_db=pg_sql.Literal(for_database), record=pg_sql.Literal(json.dumps(record or {}, sort_keys=True)))


def forget_database_sql(oid):
    return pg_sql.SQL("DELETE FROM lift_simulator_postgresql.databases WHERE database_oid = {}").format(
        pg_sql.Literal(oid))


def put_database(admin, oid, name, kind, for_database, record=None):
    admin.execute(put_database_sql(oid, name, kind, for_database, record))


def forget_database(admin, oid):
    admin.execute(forget_database_sql(oid))


def databases(admin, for_database=None, kinds=KINDS):
    """Recorded databases, newest record first. ``exists`` is true when a database with that oid
    still has that name; records of databases that are gone are deleted on the way."""
    if not present(admin):
        return []
    rows = admin.query(
        "SELECT b.database_oid, b.database_name, b.kind, b.for_database, b.seq, b.record, "
        "EXISTS (SELECT 1 FROM pg_database d WHERE d.oid = b.database_oid AND d.datname = b.database_name) "
        "FROM lift_simulator_postgresql.databases b WHERE b.kind = ANY(%s) AND (%s IS NULL OR b.for_database = %s) "
        "ORDER BY b.seq DESC", (list(kinds), for_database, for_database))
    found = []
    for oid, name, kind, for_db, seq, record, exists in rows:
        if not exists and not admin.query("SELECT 1 FROM pg_database WHERE oid = %s", (oid,)):
            forget_database(admin, oid)  # dropped by someone: nothing left to track
            continue
        found.append(Record(oid, name, kind, for_db, seq, record, exists))
    return found


def database(admin, oid, name):
    """The record of the database with this oid and name, or None."""
    for record in databases(admin):
        if record.oid == oid and record.name == name and record.exists:
            return record
    return None


def put_role_sql(name, host, pid):
    return pg_sql.SQL("INSERT INTO lift_simulator_postgresql.roles (role_name, host, pid) VALUES ({}, {}, {})").format(
        pg_sql.Literal(name), pg_sql.Literal(host), pg_sql.Literal(pid))


def forget_role_sql(name):
    return pg_sql.SQL("DELETE FROM lift_simulator_postgresql.roles WHERE role_name = {}").format(pg_sql.Literal(name))


def roles(admin):
    """Names of the transient roles recorded (whether or not they still exist)."""
    if not present(admin):
        return []
    return [r[0] for r in admin.query("SELECT role_name FROM lift_simulator_postgresql.roles ORDER BY created_at")]
