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


# A table's data is split into pieces for several sessions only when each piece gets at least this.
MIN_PIECE = 1024 * 1024
# How far past a planned cut the first row boundary is looked for (a longer row: no cut there).
_CUT_WINDOW = 4 * 1024 * 1024


def row_boundary(handle, offset, end):
    """The first offset in ``(offset, end)`` where a row of COPY text data begins - just after a
    newline that no backslash escapes (an odd run of backslashes before it makes it data: COPY
    reads backslash-newline as a newline in a value) - or None within _CUT_WINDOW."""
    handle.seek(offset)
    window = handle.read(min(_CUT_WINDOW, end - offset))
    at = window.find(b"\n")
    while at != -1:
        slashes = 0
        while at - slashes > 0 and window[at - slashes - 1:at - slashes] == b"\\":
            slashes += 1
        # A run of backslashes that reaches the window's start may go on before it: not a cut.
        if slashes % 2 == 0 and at - slashes > 0 and offset + at + 1 < end:
            return offset + at + 1
        at = window.find(b"\n", at + 1)
    return None


def pieces(handle, block, parts):
    """``block``'s data as up to ``parts`` byte ranges [start, end) of whole rows, about equal."""
    cuts = [block.start]
    for n in range(1, parts):
        planned = block.start + block.size * n // parts
        if planned <= cuts[-1]:
            continue
        cut = row_boundary(handle, planned, block.end)
        if cut is not None and cut > cuts[-1]:
            cuts.append(cut)
    return list(zip(cuts, cuts[1:] + [block.end]))


def copy_tasks(path, blocks, jobs=1, cut=True):
    """The tasks of the data phase. A table whose data is more than its share (the data of all
    tables over ``jobs``) is cut at row boundaries into pieces loaded by several sessions at once
    (the dump usually holds one big table: table by table, one session would do most of the work).
    A table in one piece is truncated in its task's transaction first, as pg_restore does, so that
    its rows go to a file of this transaction, which a failure removes at once (a full disk gets
    its space back before the staging database is dropped: that checkpoints first, and PostgreSQL
    stops on a checkpoint it cannot write), and with wal_level minimal they need no WAL; then
    COPY, then commit. Pieces are not truncated (that would serialise them); after a failure the
    caller drops what the loading role made (loader.Loader._free_space), which needs some room:
    ``cut`` False (not room enough to spare) keeps every table in one part."""
    total = sum(b.size for b in blocks)
    share = max(MIN_PIECE, -(-total // max(1, jobs)))

    def task(block, start, end, number, count):
        whole = count == 1
        table = pg_sql.SQL("{}.{}").format(pg_sql.Identifier(block.header.schema), pg_sql.Identifier(block.header.table))

        def run(cur):
            cur.execute("BEGIN")
            if whole:
                # A partitioned table (its data copied through it: pg_dump --load-via-partition-root,
                # or pg_dump's own choice for a hash partitioning on an enum) holds no rows of its own
                # and cannot be truncated ONLY.
                cur.execute(pg_sql.SQL(
                    "SELECT c.relkind <> 'p' AND NOT EXISTS (SELECT FROM ONLY {}) FROM pg_catalog.pg_class c "
                    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = %s AND c.relname = %s").format(table), (block.header.schema, block.header.table))
                if cur.fetchone()[0]:
                    cur.execute(pg_sql.SQL("TRUNCATE ONLY {}").format(table))
            with open(path, "rb") as handle:
                cur.copy_expert(copy_sql(block.header), plain_split.FilePart(handle, start, end), size=CHUNK)
            cur.execute("COMMIT")
        what = "loading the data of %s.%s" % block.header.name
        return Task(what if whole else "%s (part %d of %d)" % (what, number, count), end - start, run)

    tasks = []
    with open(path, "rb") as handle:
        for block in blocks:
            parts = min(max(1, jobs), -(-block.size // share)) if cut and block.size > share else 1
            ranges = pieces(handle, block, parts) if parts > 1 else [(block.start, block.end)]
            tasks += [task(block, start, end, n + 1, len(ranges)) for n, (start, end) in enumerate(ranges)]
    return tasks


def _statements_task(what, size, statements):
    """A task that runs ``statements`` (plain_split.WaveStatement) in order, each under the
    default_tablespace it had in the dump (None: the session's own, RESET)."""
    def run(cur):
        current = False  # unknown: a session runs several tasks
        for statement in statements:
            if statement.tablespace != current:
                cur.execute(statement.tablespace.decode("utf-8") if statement.tablespace is not None
                            else "RESET default_tablespace")
                current = statement.tablespace
            cur.execute(statement.text.decode("utf-8"))
    return Task(what, size, run)


def index_phases(wave, roots, sizes):
    """The tasks of the index phase, as two lists run one after the other. A table without
    inheritance: its key constraints (they lock the table exclusively) in one task of the first
    list, then each of its CREATE INDEX statements a task of the second (they only share-lock the
    table, so several build at once). An inheritance tree (``roots``: table -> its root): all its
    statements in the dump's order in one task of the first list (an index on a partitioned table
    builds its partitions' own). A task's size is its table's data (``sizes``: table -> bytes),
    so that the biggest tables' work starts first."""
    trees, keys, indexes = {}, {}, []
    tree_roots = set(roots.values())
    for statement in wave:
        root = roots.get(statement.table)
        if root is None and statement.table not in tree_roots:
            if statement.text.startswith(b"CREATE "):
                indexes.append(statement)
            else:
                keys.setdefault(statement.table, []).append(statement)
        else:
            trees.setdefault(root or statement.table, []).append(statement)

    def size(table):
        return sizes.get(table, 0) + 1

    def tree_size(root):
        return sum(data for table, data in sizes.items() if roots.get(table, table) == root) + 1

    first = [_statements_task("building the indexes of %s.%s" % root, tree_size(root), statements)
             for root, statements in sorted(trees.items())]
    first += [_statements_task("adding the keys of %s.%s" % table, size(table), statements)
              for table, statements in sorted(keys.items())]
    second = [_statements_task("building an index of %s.%s" % s.table, size(s.table), [s]) for s in indexes]
    return first, second


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
