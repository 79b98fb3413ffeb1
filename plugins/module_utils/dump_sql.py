# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading the data sections of a plain SQL dump, for selective (per-table) restores.

pg_restore cannot read plain dumps, so this reads pg_dump's text format itself. A table's data is
a ``-- Data for Name: ...; Type: TABLE DATA; ...`` comment followed by
``COPY <schema>.<table> (<columns>) FROM stdin;``, the rows (one per line: COPY's text format
escapes newlines) and a line ``\\.``. Sequence positions are ``SELECT pg_catalog.setval(...)``
lines. Custom and directory archives are turned into the same text by ``pg_restore --data-only
-f -``, so one reader serves every format. Pure Python.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

_DATA_HEADER_RE = re.compile(rb"^-- Data for Name: .*; Type: TABLE DATA; Schema: .*; Owner: .*$")
# A possibly quoted identifier as pg_dump writes it ("" inside quotes is a quote).
_IDENT = rb'(?:"(?:[^"]|"")*"|[^"\s.(]+)'
_COPY_RE = re.compile(rb"^COPY (?P<target>" + _IDENT + rb"\." + _IDENT + rb") (?:\((?P<columns>.*)\))? FROM stdin;$")
_SETVAL_RE = re.compile(rb"^SELECT pg_catalog\.setval\('(?P<sequence>(?:[^']|'')+)', (?P<value>-?\d+), "
                        rb"(?P<called>true|false)\);$")
END_OF_COPY = b"\\.\n"


class DataBlock(object):
    """One table's COPY block: the statement line, and the row lines (spooled or streamed)."""

    def __init__(self, table, copy_line):
        self.table = table
        self.copy_line = copy_line


class DumpReader(object):
    """Iterates over a plain dump's lines and reports data blocks and sequence positions.

    ``events()`` yields ('copy', DataBlock) at the COPY line, then ('row', bytes) for each row line,
    then ('end', DataBlock); and ('setval', (sequence, statement line)). A COPY is only taken as a
    table's data when pg_dump's TABLE DATA comment stands right before it (blank and ``--`` lines
    between), so ``COPY`` text inside a function body is not mistaken for data.
    """

    def __init__(self, stream):
        self.stream = stream
        self.tables_seen = []

    def events(self):
        expecting_copy = False
        block = None
        for line in self.stream:
            if block is not None:
                if line == END_OF_COPY or line == b"\\.":
                    yield "end", block
                    block = None
                else:
                    yield "row", line
                continue
            stripped = line.rstrip(b"\n")
            if _DATA_HEADER_RE.match(stripped):
                expecting_copy = True
                continue
            if expecting_copy:
                if stripped in (b"", b"--"):
                    continue
                expecting_copy = False
                match = _COPY_RE.match(stripped)
                if match:
                    block = DataBlock(match.group("target").decode("utf-8"), line if line.endswith(b"\n") else line + b"\n")
                    self.tables_seen.append(block.table)
                    yield "copy", block
                continue
            if stripped.startswith(b"SELECT pg_catalog.setval("):
                match = _SETVAL_RE.match(stripped)
                if match:
                    sequence = match.group("sequence").decode("utf-8").replace("''", "'")
                    yield "setval", (sequence, stripped + b"\n")
        if block is not None:
            raise DumpFormatError("the dump ends inside the data of %s: it is truncated" % block.table)


class DumpFormatError(Exception):
    pass


def dependency_order(tables, references):
    """Order ``tables`` so a referenced table comes before the tables that reference it.

    ``references`` maps table -> set of tables it references (foreign keys); references outside
    ``tables`` and self-references are ignored. Raises DumpFormatError for a cycle.
    """
    pending = {t: set(r for r in references.get(t, ()) if r in tables and r != t) for t in tables}
    order = []
    while pending:
        ready = sorted(t for t, deps in pending.items() if not deps)
        if not ready:
            raise DumpFormatError("the tables %s reference each other in a cycle; restore them with their "
                                  "foreign keys deferred or one at a time" % ", ".join(sorted(pending)))
        for table in ready:
            order.append(table)
            del pending[table]
        for deps in pending.values():
            deps.difference_update(ready)
    return order
