# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading pg_dump's plain SQL format as data, never as a program.

psql runs a plain dump as a script: besides SQL it obeys meta-commands (a backslash outside a
quoted string: ``\\!`` runs a shell command, ``\\o`` writes a file...). A backup file is not
trusted, so this reader follows psql's own lexical rules and accepts only what pg_dump writes:

- SQL statements, scanned as psql scans them (sql_lexer.py: quoted strings, ``E''`` strings with backslash
  escapes, dollar quotes, quoted identifiers, ``--`` and nested ``/* */`` comments, parentheses),
  so that a backslash outside them - a meta-command - is found wherever it stands;
- ``COPY <schema>.<table> (<columns>) FROM stdin;`` exactly as pg_dump writes it, followed by data
  lines that end where psql ends them: at a line ``\\.`` followed by ``\\n`` or ``\\r\\n``;
- pg_dump's ``\\restrict <key>`` as the first line that is not a comment, and its
  ``\\unrestrict <key>`` as the last one (only comments after it).
Anything else raises PlainDumpError naming the line. Statements are not parsed beyond that: what
they do is limited by the rights of the role that runs them (docs/security.md).

Used three ways: ``validate`` reads a whole dump before anything is created; ``psql_input`` is
the stream a full restore gives psql (it starts with a ``\\restrict`` of a random key of our own,
so psql refuses every meta-command whatever this reader might miss, and stops before the first
line outside the grammar reaches psql); the selective restore takes the COPY blocks and sequence
positions from ``PlainDumpReader.events`` and builds its own statements. Pure Python.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import secrets

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact.sql_lexer import (
    PlainDumpError, SqlScanner, show_line)

CHUNK = 1024 * 1024
MAX_LINE = 64 * 1024 * 1024


# Event kinds of PlainDumpReader.events(): (kind, raw bytes, detail).
SQL = "sql"                # a line of SQL text or comments (detail: Line)
STATEMENT = "statement"    # a statement completed on the line just reported (detail: Statement)
RESTRICT = "restrict"      # pg_dump's \restrict line
UNRESTRICT = "unrestrict"  # pg_dump's \unrestrict line
COPY_START = "copy"        # after the COPY statement's line (detail: CopyHeader)
DATA = "data"              # whole data lines of the current COPY block (detail: CopyHeader)
COPY_END = "copy_end"      # the line that ends the block (detail: CopyHeader)

_RESTRICT_RE = re.compile(rb"^\\restrict ([A-Za-z0-9]{1,256})\r?\n?$")
_UNRESTRICT_RE = re.compile(rb"^\\unrestrict ([A-Za-z0-9]{1,256})\r?\n?$")
_TOC_HEADER_RE = re.compile(rb"^-- (?:Data for )?Name: .*; Type: (?P<type>[A-Z][A-Z ]*); Schema: .*; Owner: .*$")

# A possibly quoted identifier as pg_dump writes it.
IDENT = _IDENT = rb'(?:"(?:[^"]|"")+"|[A-Za-z_\x80-\xff][A-Za-z0-9_$\x80-\xff]*)'
_COPY_RE = re.compile(rb"^COPY (?P<schema>" + _IDENT + rb")\.(?P<table>" + _IDENT + rb") "
                      rb"(?:\((?P<columns>" + _IDENT + rb"(?:, " + _IDENT + rb")*)\) )?FROM stdin;$")
_COPY_WORD_RE = re.compile(rb"^(?:\s|/\*.*?\*/)*copy\b", re.IGNORECASE | re.DOTALL)
_IDENT_ITEM_RE = re.compile(_IDENT)
_SETVAL_RE = re.compile(rb"^SELECT pg_catalog\.setval\('(?P<sequence>(?:[^']|'')+)', (?P<value>-?\d{1,20}), "
                        rb"(?P<called>true|false)\);$")
_SCS_RE = re.compile(rb"standard_conforming_strings", re.IGNORECASE)
# pg_dump's ownership statements (its role names are unquoted only when [a-z_][a-z0-9_]*).
_OWNER_RE = re.compile(rb'^ALTER [A-Z][A-Z ]* .+ OWNER TO (?:"(?:[^"]|"")+"|[a-z_][a-z0-9_]*);$')
_SESSION_AUTH_RE = re.compile(rb"^(?:SET SESSION AUTHORIZATION .+|RESET SESSION AUTHORIZATION);$")
_SCS_ON = b"SET standard_conforming_strings = on;"


class Statement(object):
    """A complete SQL statement: its text (capped), the line it ended on, and what it is."""

    def __init__(self, text, lineno, kind, detail=None):
        self.text = text
        self.lineno = lineno
        self.kind = kind        # "copy", "setval", "owner" (ALTER ... OWNER TO, SET SESSION AUTHORIZATION) or "sql"
        self.detail = detail    # CopyHeader, or (schema, name, value, is_called) for setval


class Line(object):
    """What a line of SQL is part of: the type of its TOC entry (pg_dump's ``-- Name: ...; Type:``
    comments), and the statement when the line holds exactly one whole statement."""

    def __init__(self, toc_type, statement=None, starts_idle=True, ended=0, rest=b""):
        self.toc_type = toc_type
        self.statement = statement
        self.starts_idle = starts_idle  # no statement, string or comment open where the line starts
        self.ended = ended              # how many statements end on the line
        self.rest = rest                # what follows the last of them (the line when none ends)


class CopyHeader(object):
    """``COPY schema.table (columns) FROM stdin;``, its names unquoted as the server reads them."""

    def __init__(self, schema, table, columns, lineno):
        self.schema = schema
        self.table = table
        self.columns = columns
        self.lineno = lineno
        self.rows = 0

    @property
    def name(self):
        return (self.schema, self.table)


def parse_identifier(raw):
    """One identifier as pg_dump writes it (quoted or not) -> its name; unquoted ones fold to lower case."""
    if raw.startswith(b'"'):
        return raw[1:-1].replace(b'""', b'"').decode("utf-8")
    return raw.decode("utf-8").translate(_ASCII_LOWER)


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def parse_qualified(raw):
    """``schema.name`` (each part possibly quoted) -> (schema, name), or None."""
    match = re.match(rb"^(" + _IDENT + rb")\.(" + _IDENT + rb")$", raw)
    if not match:
        return None
    return parse_identifier(match.group(1)), parse_identifier(match.group(2))


def _classify(text, lineno):
    """What a complete statement is; raises PlainDumpError for COPY forms pg_dump never writes."""
    if _COPY_WORD_RE.match(text):
        match = _COPY_RE.match(text)
        if not match:
            raise PlainDumpError("line %d: a COPY statement that pg_dump does not write (only "
                                 "COPY <schema>.<table> (<columns>) FROM stdin; is accepted): %s"
                                 % (lineno, show_line(text)))
        columns = [parse_identifier(m.group(0)) for m in _IDENT_ITEM_RE.finditer(match.group("columns") or b"")]
        header = CopyHeader(parse_identifier(match.group("schema")), parse_identifier(match.group("table")),
                            columns, lineno)
        return Statement(text, lineno, "copy", header)
    if _SCS_RE.search(text) and text != _SCS_ON:
        # psql scans strings differently when it is off; pg_dump only ever turns it on.
        raise PlainDumpError("line %d: a statement that changes standard_conforming_strings: %s"
                             % (lineno, show_line(text)))
    if _OWNER_RE.match(text) or _SESSION_AUTH_RE.match(text):
        return Statement(text, lineno, "owner")
    if text.startswith(b"SELECT pg_catalog.setval("):
        match = _SETVAL_RE.match(text)
        if match:
            name = parse_qualified(match.group("sequence").replace(b"''", b"'"))
            if name is not None:
                return Statement(text, lineno, "setval",
                                 (name[0], name[1], int(match.group("value")), match.group("called") == b"true"))
    return Statement(text, lineno, "sql")


class _Buffer(object):
    """A binary stream read in large chunks, handed out as lines or as runs of COPY data."""

    def __init__(self, stream, chunk):
        self.stream = stream
        self.chunk = chunk
        self.buf = b""
        self.pos = 0
        self.eof = False

    def _fill(self):
        if self.eof:
            return False
        data = self.stream.read(self.chunk)
        if not data:
            self.eof = True
            return False
        self.buf = self.buf[self.pos:] + data
        self.pos = 0
        return True

    def readline(self):
        """The next line with its newline (the last one possibly without), or None at the end."""
        while True:
            end = self.buf.find(b"\n", self.pos)
            if end >= 0:
                line = self.buf[self.pos:end + 1]
                self.pos = end + 1
                return line
            if len(self.buf) - self.pos > MAX_LINE:
                raise PlainDumpError("a line longer than %d bytes" % MAX_LINE)
            if not self._fill():
                if self.pos < len(self.buf):
                    line = self.buf[self.pos:]
                    self.pos = len(self.buf)
                    return line
                return None

    def copy_data(self):
        """Yield runs of whole data lines up to the end of a COPY block, then return its end line
        (None when the stream ends first). The end is a line that is exactly ``\\.`` followed by
        ``\\n`` or ``\\r\\n``, found with bytes.find so that the data passes at the speed of C."""
        at_line_start = True
        while True:
            buf, start = self.buf, self.pos
            scan = start
            while True:
                if at_line_start and buf.startswith(b"\\.", scan):
                    candidate = scan
                else:
                    found = buf.find(b"\n\\.", scan)
                    candidate = found + 1 if found >= 0 else -1
                at_line_start = False
                if candidate < 0 or len(buf) < candidate + 4 and not self.eof:
                    break
                after = buf[candidate + 2:candidate + 4]
                if after[:1] == b"\n" or after == b"\r\n":
                    if candidate > start:
                        yield buf[start:candidate]
                    stop = candidate + (3 if after[:1] == b"\n" else 4)
                    self.pos = stop
                    return buf[candidate:stop]
                scan = candidate + 2  # "\." followed by something else: a data line (the server judges it)
            # No end in what is buffered: pass on the whole lines, keep the partial last one.
            cut = buf.rfind(b"\n", start) + 1 if candidate < 0 else candidate
            if cut > start:
                yield buf[start:cut]
                self.pos = cut
            elif len(buf) - start > MAX_LINE:
                raise PlainDumpError("a data line longer than %d bytes" % MAX_LINE)
            at_line_start = True
            if not self._fill():
                return None


class PlainDumpReader(object):
    """Reads a plain dump from a binary stream and reports what it holds (see the module docstring).

    ``events()`` yields (kind, raw bytes, detail) tuples; the raw bytes of every event, in order,
    are the dump itself (so a consumer can pass the dump on, leaving out what it chooses).
    """

    def __init__(self, stream, chunk=CHUNK, restrict_key=None, toc_type=None):
        # ``restrict_key``: the dump's own key, when ``stream`` is a part of a dump that starts
        # after its \restrict line (plain_split.py), so that its \unrestrict line is known.
        self.buffer = _Buffer(stream, chunk)
        self.restrict_key = restrict_key
        self.lineno = 0
        self.toc_type = toc_type  # with a part of a dump: the TOC type in force where it starts

    def events(self):
        scanner = SqlScanner()
        seen_sql = False
        after_unrestrict = False
        while True:
            line = self.buffer.readline()
            if line is None:
                break
            self.lineno += 1
            if after_unrestrict:
                # Only blank and comment lines (pg_dumpall writes its trailer comment there).
                if line.strip() and not line.startswith(b"--"):
                    raise PlainDumpError("line %d: content after pg_dump's \\unrestrict line: %s"
                                         % (self.lineno, show_line(line)))
                yield SQL, line, Line(None)
                continue
            if scanner.idle and line.startswith(b"\\"):
                kind = self._restrict_line(line, seen_sql)
                if kind == UNRESTRICT:
                    after_unrestrict = True
                yield kind, line, None
                continue
            was_idle = scanner.idle
            if was_idle:
                header = _TOC_HEADER_RE.match(line.rstrip(b"\r\n"))
                if header:
                    self.toc_type = header.group("type").decode("ascii")
            found = [(_classify(text, self.lineno), end) for text, end in scanner.scan(line, self.lineno)]
            if line.strip() and not line.lstrip().startswith(b"--"):
                seen_sql = True
            whole = found[0][0] if was_idle and len(found) == 1 and line[found[0][1]:] in (b"\n", b"\r\n", b"") else None
            yield SQL, line, Line(self.toc_type, whole, was_idle, len(found), line[found[-1][1]:] if found else line)
            for number, (statement, end) in enumerate(found):
                yield STATEMENT, b"", statement
                if statement.kind != "copy":
                    continue
                if number != len(found) - 1 or line[end:] not in (b"\n", b"\r\n"):
                    raise PlainDumpError("line %d: text after a COPY statement on its line: %s"
                                         % (self.lineno, show_line(line[end:])))
                header = statement.detail
                yield COPY_START, b"", header
                yield from self._copy_block(header)
        if not scanner.idle:
            raise PlainDumpError("the dump ends inside a statement, string or comment: it is truncated")

    def _restrict_line(self, line, seen_sql):
        restrict = _RESTRICT_RE.match(line)
        if restrict and self.restrict_key is None and not seen_sql:
            self.restrict_key = restrict.group(1)
            return RESTRICT
        unrestrict = _UNRESTRICT_RE.match(line)
        if unrestrict and self.restrict_key is not None and unrestrict.group(1) == self.restrict_key:
            return UNRESTRICT
        raise PlainDumpError("line %d: a psql meta-command: %s" % (self.lineno, show_line(line)))

    def _data_runs(self, header):
        """DATA events for the runs of one COPY block; returns its end line (None: the dump ended)."""
        runs = self.buffer.copy_data()
        while True:
            try:
                run = next(runs)
            except StopIteration as stop:
                return stop.value
            lines = run.count(b"\n")
            header.rows += lines
            self.lineno += lines
            yield DATA, run, header

    def _copy_block(self, header):
        """The data of one COPY block, in runs of whole lines, then its end line."""
        end = yield from self._data_runs(header)
        if end is None:
            raise PlainDumpError("the dump ends inside the data of %s.%s: it is truncated" % header.name)
        self.lineno += 1
        yield COPY_END, end, header


def validate(stream):
    """Read a whole plain dump; return what it holds, or raise PlainDumpError naming the first
    line pg_dump would not have written."""
    reader = PlainDumpReader(stream)
    tables = 0
    for kind, _raw, _detail in reader.events():
        if kind == COPY_START:
            tables += 1
    return dict(restrict=reader.restrict_key is not None, tables=tables, lines=reader.lineno)


def new_restrict_key():
    """A key for psql's \\restrict that nobody who wrote the dump can know."""
    return secrets.token_hex(32)


def psql_input(stream, key, skip_privileges=False, skip_ownership=False, preamble=(), dump_key=None,
               toc_type=None):
    """The bytes to give psql for restoring a plain dump, in pieces.

    The first line switches psql into restricted mode with ``key`` (psql then refuses every
    meta-command); the dump's own \\restrict / \\unrestrict lines are left out; with
    ``skip_privileges`` so are its GRANT/REVOKE entries (TOC types ACL and DEFAULT ACL), and with
    ``skip_ownership`` its ownership statements (``ALTER ... OWNER TO``, ``SET SESSION
    AUTHORIZATION``: what pg_restore --no-owner leaves out). Raises PlainDumpError before passing
    on the first line that pg_dump would not have written. For a part of a dump (the parallel
    load, plain_split.py): ``preamble`` are whole statements of the dump, checked there, given
    before the part (its session settings), ``dump_key`` is the dump's own restrict key and
    ``toc_type`` the TOC type in force where the part starts.
    """
    yield b"\\restrict " + key.encode("ascii") + b"\n"
    for statement in preamble:
        yield statement + b"\n"
    reader = PlainDumpReader(stream, restrict_key=dump_key, toc_type=toc_type)
    for kind, raw, detail in reader.events():
        if kind in (RESTRICT, UNRESTRICT):
            continue
        if kind == SQL:
            if skip_privileges and detail.toc_type in ("ACL", "DEFAULT ACL") and not raw.lstrip().startswith(b"--"):
                continue
            if skip_ownership and detail.statement is not None and detail.statement.kind == "owner":
                continue
        if raw:
            yield raw
