# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The parallel phases of a plain dump's load (plain_split.py finds their parts): the tables' COPY
blocks, and the indexes and key constraints that open the post-data part, each loaded in ``jobs``
sessions at once, largest first.

Every session connects with the parameters it is given (the loading role: loader_role.py) and
replays the dump's session settings. A block's data goes through ``COPY ... FROM STDIN`` built
from the block's header (quoted identifiers): the data never reaches a SQL parser. An index group
(one table's, or one inheritance tree's, statements, in the dump's order) runs its statements,
which plain_split matched as pg_dump's CREATE INDEX and ADD CONSTRAINT ... PRIMARY KEY / UNIQUE /
EXCLUDE, with the default_tablespace each had in the dump. Each task commits on its own, as
pg_restore's do. The first failure cancels the other sessions and is raised as CopyFailure; the
caller drops the database. A stall watch (stall_watch.py) cancels them all when none makes
progress. Pure Python over psycopg2 (threads; psycopg2 releases the GIL while it waits for the
server).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import threading

from ansible_collections.lift_simulator.postgresql.plugins.module_utils import stall_watch
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import plain_split
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import connection as pg_connection
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.connection import (
    DatabaseError, pg_sql)

CHUNK = 1024 * 1024

# Every table's inheritance root (partitions and inheritance children run with their root's group).
_ROOTS_SQL = """
WITH RECURSIVE up(child, parent) AS (
    SELECT inhrelid, inhparent FROM pg_catalog.pg_inherits
    UNION
    SELECT up.child, i.inhparent FROM up JOIN pg_catalog.pg_inherits i ON i.inhrelid = up.parent)
SELECT cn.nspname, c.relname, pn.nspname, p.relname
  FROM up JOIN pg_catalog.pg_class c ON c.oid = up.child JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace
  JOIN pg_catalog.pg_class p ON p.oid = up.parent JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
 WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits g WHERE g.inhrelid = up.parent)"""


class CopyFailure(Exception):
    """A session failed; ``detail`` holds PostgreSQL's whole message."""

    def __init__(self, message, detail=""):
        Exception.__init__(self, message)
        self.detail = detail


def copy_sql(header):
    """``COPY schema.table (columns) FROM STDIN`` for a block's header, every name quoted."""
    table = pg_sql.SQL("{}.{}").format(pg_sql.Identifier(header.schema), pg_sql.Identifier(header.table))
    if not header.columns:
        return pg_sql.SQL("COPY {} FROM STDIN").format(table)
    return pg_sql.SQL("COPY {} ({}) FROM STDIN").format(
        table, pg_sql.SQL(", ").join(pg_sql.Identifier(c) for c in header.columns))


def _settings(conn, prologue):
    """Replay the dump's session settings (plain_split checked them: SET name = value, and
    pg_dump's search_path); client_encoding through psycopg2, so that it encodes alike."""
    with conn.cursor() as cur:
        for statement in prologue:
            match = plain_split.PROLOGUE_RE.match(statement)
            if match and match.group("name") == b"client_encoding":
                conn.set_client_encoding(match.group("value").strip(b"'").decode("ascii"))
                continue
            cur.execute(statement.decode("utf-8"))


class Task(object):
    """One unit of a parallel phase: what to call a failure in it, its size, and how to run it
    on a cursor of a session that has the dump's settings."""

    def __init__(self, what, size, run):
        self.what = what
        self.size = size
        self.run = run


def copy_tasks(path, blocks):
    """A task per COPY block of the dump file ``path``: in one transaction, the (empty) table is
    truncated, as pg_restore does, so that its rows go to a file of this transaction, which a
    failure removes at once (a full disk gets its space back before the staging database is
    dropped: that checkpoints first, and PostgreSQL stops on a checkpoint it cannot write), and
    with wal_level minimal they need no WAL; then COPY, then commit."""
    def task(block):
        table = pg_sql.SQL("{}.{}").format(pg_sql.Identifier(block.header.schema), pg_sql.Identifier(block.header.table))

        def run(cur):
            cur.execute("BEGIN")
            cur.execute(pg_sql.SQL("SELECT EXISTS (SELECT FROM ONLY {})").format(table))
            if not cur.fetchone()[0]:
                cur.execute(pg_sql.SQL("TRUNCATE ONLY {}").format(table))
            with open(path, "rb") as handle:
                cur.copy_expert(copy_sql(block.header), plain_split.FilePart(handle, block.start, block.end),
                                size=CHUNK)
            cur.execute("COMMIT")
        return Task("loading the data of %s.%s" % block.header.name, block.size, run)
    return [task(b) for b in blocks]


def index_tasks(wave, roots, sizes):
    """A task per inheritance tree (``roots``: table -> its root) of the index statements in
    ``wave`` (plain_split.WaveStatement), each tree's statements in the dump's order; a tree's
    size is its tables' data (``sizes``: table -> bytes)."""
    groups, size = {}, {}
    for statement in wave:
        root = roots.get(statement.table, statement.table)
        groups.setdefault(root, []).append(statement)
        size[root] = size.get(root, 0) + len(statement.text)
    for table, data in sizes.items():
        if roots.get(table, table) in size:
            size[roots.get(table, table)] += data

    def task(root, statements):
        def run(cur):
            tablespace = None
            for statement in statements:
                if statement.tablespace is not None and statement.tablespace != tablespace:
                    cur.execute(statement.tablespace.decode("utf-8"))
                    tablespace = statement.tablespace
                cur.execute(statement.text.decode("utf-8"))
        return Task("building the indexes of %s.%s" % root, size[root], run)
    return [task(root, statements) for root, statements in sorted(groups.items())]


def inheritance_roots(params):
    """{(schema, table): (schema, root)} for every table with an inheritance parent."""
    conn = pg_connection.connect(params, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(_ROOTS_SQL)
            return dict(((r[0], r[1]), (r[2], r[3])) for r in cur.fetchall())
    finally:
        conn.close()


class _ThisProcess(object):
    """The sessions of a phase as the process stall_watch watches: the module's own process (its
    reads of the dump and writes to the server are the progress); killing it cancels them."""

    def __init__(self, phase):
        self.pid = os.getpid()
        self.phase = phase

    def poll(self):
        return None

    def kill(self):
        self.phase.stalled = True
        self.phase.fail(None, CopyFailure(stall_watch.message("the parallel load", self.phase.stall.timeout)), None)


class Phase(object):
    """Run ``tasks`` in ``jobs`` sessions, largest first; the first failure cancels the others.
    ``stall`` (a stall_watch.Stall) cancels them all when none makes progress."""

    def __init__(self, params, tasks, jobs, prologue, stall=None):
        self.params = params
        self.stall = stall
        self.stalled = False
        self.pending = sorted(tasks, key=lambda t: -t.size)
        self.jobs = max(1, min(jobs, len(tasks)))
        self.prologue = prologue
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.conns = []
        self.failure = None

    def run(self):
        """Run every task; raise CopyFailure for the first failure (the others then cancelled)."""
        threads = [threading.Thread(target=self._worker, name="lift-load-%d" % n) for n in range(self.jobs)]
        watch = stall_watch.StallWatch(self.stall.timeout if self.stall else None, lambda: [_ThisProcess(self)],
                                       self.stall.busy if self.stall else None)
        with watch:
            for thread in threads:
                thread.daemon = True
                thread.start()
            for thread in threads:
                thread.join()
        if self.failure is not None:
            raise self.failure

    def _next(self):
        with self.lock:
            if self.stop.is_set() or not self.pending:
                return None
            return self.pending.pop(0)

    def fail(self, task, exc, conn):
        detail = str(exc).strip()
        said = detail.splitlines()[0] if detail else type(exc).__name__
        if task is not None:
            said = "%s failed: %s" % (task.what, said)
        elif not isinstance(exc, CopyFailure):
            said = "a loading session failed: %s" % said
        with self.lock:
            if self.failure is not None:
                return  # the first failure is the one to report (the others were cancelled after it)
            self.failure = CopyFailure(said, detail)
            self.stop.set()
            others = [c for c in self.conns if c is not conn]
        for other in others:
            try:
                other.cancel()
            except Exception:  # closed meanwhile: nothing left to cancel
                pass

    def _worker(self):
        conn = task = None
        try:
            conn = pg_connection.connect(self.params, autocommit=True)
            with self.lock:
                self.conns.append(conn)
                if self.stop.is_set():
                    return
            _settings(conn, self.prologue)
            with conn.cursor() as cur:
                while True:
                    task = self._next()
                    if task is None:
                        return
                    task.run(cur)
        except BaseException as exc:  # pylint: disable=broad-except
            # Any failure (PostgreSQL's, the file's, a killed session's) fails the whole load.
            self.fail(task, exc, conn)
        finally:
            if conn is not None:
                with self.lock:
                    if conn in self.conns:
                        self.conns.remove(conn)
                try:
                    conn.close()
                except DatabaseError:
                    pass
