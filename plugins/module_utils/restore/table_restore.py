# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restoring the data of chosen tables into an existing database, from any backup format.

The dump's data sections (a plain dump read directly; an archive through ``pg_restore
--data-only -f -``) are read by plain_dump's reader, which ends each COPY block exactly where
psql would; nothing of the file is ever run. Each table's COPY statement is built here from the
target's catalog (quoted identifiers, the dump's columns checked against the table's), the rows
go through COPY FROM STDIN, and sequence positions through setval with checked values. All of it
runs in one transaction of the connection it is given (the loading role, not a superuser: the
owner's triggers and defaults run with the owner's rights), parents before the tables that
reference them; a table whose parents are not loaded yet waits in an anonymous temporary file.
Pure Python over psycopg2 (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import tempfile

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import plain_dump
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.connection import (
    DatabaseError, ident, pg_sql, quote_for_message)


class TableRestoreError(Exception):
    pass


class Target(object):
    """A table of the target database chosen for restore."""

    def __init__(self, oid, schema, name, qualified, columns):
        self.oid = oid
        self.schema = schema
        self.name = name
        self.qualified = qualified
        self.columns = columns
        self.references = set()

    @property
    def key(self):
        return (self.schema, self.name)


def _listing(names, limit=40):
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (" and %d more" % (len(names) - limit) if len(names) > limit else "")


def resolve(cur, requested, backup_tables=None):
    """{(schema, name): Target} for each requested ``schema.table``, with its columns and its
    foreign-key parents among the requested tables. ``backup_tables`` (qualified names, when the
    backup's manifest lists them) are named in errors."""
    found = {}
    has = " The backup has: %s." % _listing(backup_tables) if backup_tables else ""
    for name in requested:
        try:
            cur.execute("SELECT array_length(parse_ident(%s), 1)", (name,))
            parts = cur.fetchone()[0]
        except DatabaseError as exc:
            cur.connection.rollback()
            raise TableRestoreError("%s is not a valid table name: %s" % (
                quote_for_message(name), str(exc).strip().splitlines()[0]))
        if parts != 2:
            cur.execute("SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') "
                        "AND c.relname = (parse_ident(%s))[array_upper(parse_ident(%s), 1)] ORDER BY 1",
                        (name, name))
            guesses = [r[0] for r in cur.fetchall()]
            hint = " Did you mean %s?" % " or ".join(guesses) if guesses else ""
            raise TableRestoreError("name the table %s with its schema, as schema.table.%s%s"
                                    % (quote_for_message(name), hint, has))
        cur.execute("SELECT c.oid, n.nspname, c.relname, quote_ident(n.nspname) || '.' || quote_ident(c.relname) "
                    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.oid = to_regclass(%s) AND c.relkind IN ('r', 'p')", (name,))
        row = cur.fetchone()
        if row is None:
            raise TableRestoreError("table %s does not exist in the target database.%s"
                                    % (quote_for_message(name), has))
        cur.execute("SELECT attname FROM pg_attribute WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped",
                    (row[0],))
        target = Target(row[0], row[1], row[2], row[3], set(r[0] for r in cur.fetchall()))
        found[target.key] = target
    by_oid = dict((t.oid, t) for t in found.values())
    for target in found.values():
        cur.execute("SELECT confrelid FROM pg_constraint WHERE contype = 'f' AND conrelid = %s", (target.oid,))
        target.references = set(by_oid[r[0]].key for r in cur.fetchall() if r[0] in by_oid and r[0] != target.oid)
    return found


def owned_sequences(cur, targets):
    """{(schema, name): oid} of the sequences owned by (serial/identity columns of) these tables."""
    cur.execute("SELECT sn.nspname, s.relname, s.oid FROM pg_depend d "
                "JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' "
                "JOIN pg_namespace sn ON sn.oid = s.relnamespace "
                "WHERE d.classid = 'pg_class'::regclass AND d.refobjid = ANY(%s::oid[]) "
                "AND d.deptype IN ('a', 'i')", ([t.oid for t in targets],))
    return dict(((schema, name), oid) for schema, name, oid in cur.fetchall())


def dependency_order(keys, references):
    """Order ``keys`` so a referenced table comes before the tables that reference it.

    ``references`` maps key -> set of keys it references; references outside ``keys`` and
    self-references are ignored. Raises TableRestoreError for a cycle.
    """
    pending = dict((k, set(r for r in references.get(k, ()) if r in keys and r != k)) for k in keys)
    order = []
    while pending:
        ready = sorted(k for k, deps in pending.items() if not deps)
        if not ready:
            raise TableRestoreError("the tables %s reference each other in a cycle; restore them with their "
                                    "foreign keys deferred or one at a time"
                                    % ", ".join(".".join(k) for k in sorted(pending)))
        for key in ready:
            order.append(key)
            del pending[key]
        for deps in pending.values():
            deps.difference_update(ready)
    return order


class _BlockSource(object):
    """A COPY block's data as a file for psycopg2's copy_expert (read until the block ends)."""

    def __init__(self, events, sink=None):
        self.events = events
        self.sink = sink
        self.done = False

    def read(self, _size=-1):
        while not self.done:
            kind, raw, _header = next(self.events)
            if kind == plain_dump.COPY_END:
                self.done = True
                return b""
            if kind == plain_dump.DATA and raw:
                return raw
        return b""

    readline = read


def _copy_sql(target, columns):
    return pg_sql.SQL("COPY {} ({}) FROM STDIN").format(
        ident(target.schema, target.name), pg_sql.SQL(", ").join(pg_sql.Identifier(c) for c in columns))


def _check_columns(target, header):
    unknown = [c for c in header.columns if c not in target.columns]
    if unknown or len(set(header.columns)) != len(header.columns):
        raise TableRestoreError(
            "the backup's data for %s names columns the table does not have (or names one twice): %s"
            % (target.qualified, ", ".join(quote_for_message(c) for c in unknown) or "a repeated column"))


def restore_tables(conn, stream, requested, truncate=False, backup_tables=None, lock_timeout_s=60,
                   before_commit=None):
    """Load the data of ``requested`` tables from the dump text in ``stream`` in one transaction
    of ``conn``, committed at the end after ``before_commit()`` (which raises when the program
    that wrote the stream failed); rolled back on any error. Returns {qualified: rows}."""
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            cur.execute(pg_sql.SQL("SET LOCAL lock_timeout = {}").format(pg_sql.Literal("%ds" % int(lock_timeout_s))))
            targets = resolve(cur, requested, backup_tables)
            order = dependency_order(list(targets), dict((k, t.references) for k, t in targets.items()))
            sequences = owned_sequences(cur, targets.values())
            if truncate:
                _refuse_unselected_referrers(cur, targets)
                cur.execute(pg_sql.SQL("TRUNCATE ONLY {}").format(pg_sql.SQL(", ").join(
                    ident(*key) for key in order)))
            loaded = _load(cur, plain_dump.PlainDumpReader(stream).events(), targets, order, sequences)
        if before_commit is not None:
            before_commit()
        conn.commit()
        return loaded
    except BaseException:
        try:
            conn.rollback()
        except DatabaseError:
            pass
        raise


def _refuse_unselected_referrers(cur, targets):
    """TRUNCATE empties the selected tables only; a table outside the selection whose foreign key
    points at one of them would keep rows that point at nothing, so PostgreSQL refuses. Name every
    such table at once (PostgreSQL names one per attempt), before anything is emptied."""
    cur.execute("SELECT DISTINCT quote_ident(rn.nspname) || '.' || quote_ident(r.relname), "
                "quote_ident(tn.nspname) || '.' || quote_ident(t.relname) "
                "FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid "
                "JOIN pg_namespace rn ON rn.oid = r.relnamespace "
                "JOIN pg_class t ON t.oid = c.confrelid JOIN pg_namespace tn ON tn.oid = t.relnamespace "
                "WHERE c.contype = 'f' AND c.confrelid = ANY(%s::oid[]) AND NOT c.conrelid = ANY(%s::oid[]) "
                "ORDER BY 1, 2", ([t.oid for t in targets.values()], [t.oid for t in targets.values()]))
    referrers = cur.fetchall()
    if referrers:
        missing = sorted(set(r[0] for r in referrers))
        raise TableRestoreError(
            "truncate would empty tables that other tables refer to: %s. Add %s to tables (their data comes from "
            "the backup too), or restore without truncate; nothing was changed"
            % ("; ".join("%s references %s" % (a, b) for a, b in referrers), ", ".join(missing)))


def _load(cur, events, targets, order, sequences):
    done, loaded, seen, setvals = set(), {}, [], []
    spooled = {}
    position = dict((key, index) for index, key in enumerate(order))

    def ready(key):
        return all(k in done for k in order[:position[key]])

    def copy_from(target, header, source):
        cur.copy_expert(_copy_sql(target, header.columns), source)
        loaded[target.qualified] = header.rows
        done.add(target.key)

    def flush_spooled():
        for key in [k for k in order if k in spooled and ready(k)]:
            spool, header = spooled.pop(key)
            spool.seek(0)
            with spool:
                copy_from(targets[key], header, spool)

    for kind, raw, detail in events:
        if kind == plain_dump.COPY_START:
            seen.append(".".join(detail.name))
            target = targets.get(detail.name)
            if target is None:
                continue
            _check_columns(target, detail)
            if ready(target.key):
                copy_from(target, detail, _BlockSource(events))
                flush_spooled()
            else:
                spool = tempfile.TemporaryFile()
                for inner, data, _h in events:
                    if inner == plain_dump.COPY_END:
                        break
                    spool.write(data)
                spooled[target.key] = (spool, detail)
        elif kind == plain_dump.STATEMENT and detail.kind == "setval":
            schema, name, value, is_called = detail.detail
            if (schema, name) in sequences:
                setvals.append((sequences[(schema, name)], value, is_called))
    missing = [targets[k].qualified for k in order if k not in done and k not in spooled]
    if missing:
        raise TableRestoreError("the backup has no table %s; it has: %s"
                                % (", ".join(missing), _listing(seen) if seen else "no table data"))
    flush_spooled()
    for oid, value, is_called in setvals:
        cur.execute("SELECT pg_catalog.setval(%s::oid::regclass, %s, %s)", (oid, value, is_called))
    return loaded
