# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a plain dump splits into the three parts of a parallel load, as pg_restore splits an
archive: everything before the data (pre-data), each table's COPY block, and everything after
the data (post-data: indexes, constraints, triggers, privileges...).

``plan`` reads a whole plain dump once with plain_dump's reader (so the dump is checked before
anything runs) and returns byte offsets: the pre-data part is ``[0, pre_end)``, each block's data
``[start, end)`` (without its ``\\.`` line), the post-data part ``[post_start, end of file)``.
It splits only what pg_dump writes and proves it, else raises Unsplittable (the caller then loads
the dump serially; it never guesses):

- the dump's first statements, before its first TOC entry, are only session settings
  (``SET name = value;`` and pg_dump's ``set_config('search_path', '', false)``), with
  ``client_encoding`` UTF8: every session of the load replays them;
- after them, no statement changes session state except ``SET default_tablespace`` and
  ``SET default_table_access_method`` (pg_dump's own; the last of each is replayed before the
  post-data part), and no ``SET SESSION AUTHORIZATION``;
- the data section is one run of COPY blocks (each beginning its line; the reader ends it where
  psql does) and sequence positions (``setval``, each alone on its line); no table's data comes
  twice, and none after another statement.
The ``setval`` statements run at the start of the post-data part (after all the data, as in the
dump). Pure Python.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import plain_dump

_VALUE = rb"(?:'[^'\\]*'|[A-Za-z0-9_.-]+)"
PROLOGUE_RE = re.compile(rb"^SET (?P<name>[a-z_]+) = (?P<value>" + _VALUE + rb");$")
_SEARCH_PATH = b"SELECT pg_catalog.set_config('search_path', '', false);"
_CARRIED_RE = re.compile(rb"^SET (?P<name>default_tablespace|default_table_access_method) = " + _VALUE + rb";$")
_TABLE = rb"(?P<table>" + plain_dump.IDENT + rb"\." + plain_dump.IDENT + rb")"
# What opens pg_dump's post-data part: indexes and the constraints that build one, each on one table.
_INDEX_RE = re.compile(rb"^CREATE (?:UNIQUE )?INDEX " + plain_dump.IDENT + rb" ON (?:ONLY )?" + _TABLE + rb" USING ")
_KEY_RE = re.compile(rb"^ALTER TABLE ONLY " + _TABLE + rb"\n    ADD CONSTRAINT " + plain_dump.IDENT
                     + rb" (?:PRIMARY KEY|UNIQUE|EXCLUDE) ")
_INDEX_COMMENT_RE = re.compile(rb"^COMMENT ON (?:INDEX|CONSTRAINT) ")
_PRIVILEGES = ("ACL", "DEFAULT ACL")
# Statements that change a session's state in ways pg_dump only writes in its prologue.
_SESSION_RE = re.compile(rb"^(?:SET|RESET)\b|^SELECT\b.*\bset_config\b", re.IGNORECASE | re.DOTALL)


class Unsplittable(Exception):
    """The dump cannot be split with proof; load it serially. The message says why."""


class Block(object):
    """One table's COPY block: its header (plain_dump.CopyHeader) and where its data lies."""

    def __init__(self, header, start):
        self.header = header
        self.start = start
        self.end = None

    @property
    def size(self):
        return self.end - self.start


class FilePart(object):
    """Bytes ``[start, end)`` (``end`` None: to the end) of an open binary file, as a stream. A
    file that ends early raises PlainDumpError (it changed after it was split)."""

    def __init__(self, handle, start, end=None):
        self.handle = handle
        self.left = end - start if end is not None else None
        handle.seek(start)

    def read(self, size=-1):
        if self.left is None:
            return self.handle.read(size)
        if self.left <= 0:
            return b""
        data = self.handle.read(self.left if size is None or size < 0 else min(size, self.left))
        if not data:
            raise plain_dump.PlainDumpError("the backup file became shorter while it was loaded")
        self.left -= len(data)
        return data

    readline = read


class WaveStatement(object):
    """An index or key constraint of the post-data part's opening: its table (schema, name), its
    text, and the ``SET default_tablespace`` in force before it in the dump (None: none yet)."""

    def __init__(self, table, text, tablespace):
        self.table = table
        self.text = text
        self.tablespace = tablespace


class Plan(object):
    """The parts of a plain dump (byte offsets) and the statements every session replays."""

    def __init__(self):
        self.restrict_key = None
        self.prologue = []      # the dump's session settings, statement texts
        self.carried = {}       # name -> the last SET default_tablespace / default_table_access_method
        self.pre_end = None
        self.blocks = []
        self.setvals = []
        self.post_start = None
        self.client_encoding = None
        self.post_toc_type = None  # the TOC type in force at post_start
        # The opening of the post-data part that may run in parallel: its statements, where the
        # rest begins (and the TOC type there), the comments on them (run after them).
        self.wave = []
        self.wave_end = None
        self.wave_toc_type = None
        self.wave_carried = {}
        self.deferred = []

    def post_preamble(self, wave=False):
        """What the post-data session runs before its part: settings, carried settings, setvals
        (with ``wave``: the part after the parallel indexes, and their comments too)."""
        carried = self.wave_carried if wave else self.carried
        return (self.prologue + [carried[k] for k in sorted(carried)] + self.setvals
                + (self.deferred if wave else []))

    def largest_first(self):
        return sorted(self.blocks, key=lambda b: (-b.size, b.start))


def plan(stream):
    """Read the plain dump in ``stream`` (binary, from its start) and return its Plan. Raises
    Unsplittable when it cannot be split with proof, plain_dump.PlainDumpError when pg_dump did
    not write it (nothing may run then)."""
    return _Splitter().read(stream)


def scan(stream):
    """Read the whole plain dump in ``stream`` once, both as plain_dump.validate does (it raises
    PlainDumpError for what pg_dump does not write) and to split it: (what validate returns,
    the Plan or None, why not). A dump that cannot be split is still read to its end."""
    splitter = _Splitter()
    try:
        found, why_not = splitter.read(stream), None
    except Unsplittable as exc:
        found, why_not = None, str(exc)
        for _event in splitter.events:
            pass  # the reader's own checks go on to the end
    reader = splitter.reader
    return dict(restrict=reader.restrict_key is not None, tables=splitter.copies[0], lines=reader.lineno), found, why_not


def _counted(events, copies):
    """The reader's ``events`` as they are, counting its COPY blocks in ``copies[0]``."""
    for event in events:
        if event[0] == plain_dump.COPY_START:
            copies[0] += 1
        yield event


class _Splitter(object):
    """The state of one pass over a dump (see ``plan``)."""

    def __init__(self):
        self.result = Plan()
        self.copies = [0]  # COPY blocks the reader has met
        self.events = None
        self.state = "pre"
        self.wave_open = False
        self.data_end = None
        self.data_toc = None

    def read(self, stream):
        result = self.result
        reader = self.reader = plain_dump.PlainDumpReader(stream)
        self.events = _counted(reader.events(), self.copies)
        offset = line_start = line_end = ended = 0
        line = block = began = None  # began: where the statement being read began (a line start), or None
        tables = set()
        for kind, raw, detail in self.events:
            if kind == plain_dump.SQL:
                line_start, line_end, line, ended = offset, offset + len(raw), detail, 0
                if detail.starts_idle:
                    began = line_start
            elif kind == plain_dump.STATEMENT:
                ended += 1
                ends_line = began is not None and ended == line.ended and not line.rest.strip()
                self.statement(detail, began, ends_line and line.statement is detail, ends_line, line_end)
                began = None  # the next statement on this line does not begin at a line start
            elif kind == plain_dump.COPY_START:
                if detail.name in tables:
                    raise Unsplittable("the data of %s.%s comes twice" % detail.name)
                tables.add(detail.name)
                block = Block(detail, offset)
            elif kind == plain_dump.COPY_END:
                block.end = offset
                result.blocks.append(block)
                self.data_end, self.data_toc = offset + len(raw), reader.toc_type
            offset += len(raw)
        result.restrict_key = reader.restrict_key
        if self.state == "pre":
            raise Unsplittable("the dump holds no table data")
        if self.state == "data":
            self.to_post()
        if result.client_encoding != b"'UTF8'":
            raise Unsplittable("the dump's client_encoding is not UTF8")
        return result

    def to_post(self):
        result = self.result
        result.post_start = result.wave_end = self.data_end
        result.post_toc_type = result.wave_toc_type = self.data_toc
        result.wave_carried = dict(result.carried)
        self.state, self.wave_open = "post", True

    def statement(self, statement, began, whole, ends_line, line_end):
        """Account for one statement (``whole``: alone on its one line; ``began``: the offset of
        the line start it began at, None when something came before it there; ``ends_line``: it
        began so and nothing but blanks follows it on the line where it ends)."""
        result, text, toc = self.result, statement.text, self.reader.toc_type
        if self.state in ("pre", "data") and statement.kind in ("copy", "setval") and toc in _PRIVILEGES:
            # A serial load with privileges: skip would leave these lines out.
            raise Unsplittable("line %d: table data under a TOC entry of privileges" % statement.lineno)
        if self.state == "pre":
            if statement.kind == "copy":
                if began is None:
                    raise Unsplittable("line %d: a COPY statement that does not begin its line" % statement.lineno)
                result.pre_end = began
                self.state = "data"
                return
            if toc is None:
                match = PROLOGUE_RE.match(text)
                if not match and text != _SEARCH_PATH:
                    raise Unsplittable("line %d: the dump's first statements are not only session settings"
                                       % statement.lineno)
                if match and match.group("name") == b"client_encoding":
                    result.client_encoding = match.group("value")
                result.prologue.append(text)
                return
            carried = _CARRIED_RE.match(text)
            if carried:
                result.carried[carried.group("name")] = text
            elif _SESSION_RE.match(text):
                raise Unsplittable("line %d: a statement that changes the session's state: %s"
                                   % (statement.lineno, plain_dump.show_line(text)))
            return
        if self.state == "data":
            if statement.kind == "copy":
                if began is None:
                    raise Unsplittable("line %d: a COPY statement that does not begin its line" % statement.lineno)
                return
            if statement.kind == "setval" and whole:
                result.setvals.append(text)
                self.data_end, self.data_toc = line_end, toc
                return
            self.to_post()
        if statement.kind == "copy":
            raise Unsplittable("line %d: table data after other statements (%s.%s)" % (
                statement.lineno, statement.detail.schema, statement.detail.table))
        if self.wave_open:
            self.wave(statement, ends_line, line_end)

    def wave(self, statement, ends_line, line_end):
        """The opening of the post-data part: pg_dump's indexes and key constraints (each on one
        table), the comments on them and ``SET default_tablespace``, each ending its line. The
        first other statement closes it."""
        result, text, toc = self.result, statement.text, self.reader.toc_type
        if ends_line and toc not in _PRIVILEGES and statement.kind == "sql":
            match = _INDEX_RE.match(text) or _KEY_RE.match(text)
            table = plain_dump.parse_qualified(match.group("table")) if match else None
            carried = _CARRIED_RE.match(text)
            if table is not None:
                result.wave.append(WaveStatement(table, text, result.wave_carried.get(b"default_tablespace")))
            elif _INDEX_COMMENT_RE.match(text):
                result.deferred.append(text)
            elif carried and carried.group("name") == b"default_tablespace":
                result.wave_carried[b"default_tablespace"] = text
            else:
                self.wave_open = False
                return
            result.wave_end, result.wave_toc_type = line_end, toc
            return
        self.wave_open = False
