# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""psql's lexical rules for SQL text, as data: where statements end, and where a backslash stands
outside every quoted string and comment (a psql meta-command, which a backup may never contain).

Follows psql's own lexer: quoted strings, ``E''`` strings with backslash escapes, dollar quotes,
quoted identifiers, ``--`` and nested ``/* */`` comments, parentheses. plain_dump.py feeds it the
SQL between COPY blocks one line at a time. Pure Python.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

MAX_STATEMENT_TEXT = 1024 * 1024

_NORMAL, _SQUOTE, _ESTRING, _DQUOTE, _DOLLAR, _COMMENT = range(6)

# psql: identifier characters (a '$' after them belongs to the identifier, it starts no dollar quote).
_IDENT_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$") | frozenset(
    range(0x80, 0x100))
_NORMAL_SPECIAL = re.compile(rb"['\"$\\;()]|--|/\*")
_DOLLAR_TAG = re.compile(rb"\$(?:[A-Za-z\x80-\xff_][A-Za-z\x80-\xff_0-9]*)?\$")
_COMMENT_SPECIAL = re.compile(rb"/\*|\*/")
_QUOTED_SPECIAL = {_SQUOTE: re.compile(rb"'"), _DQUOTE: re.compile(rb'"'), _ESTRING: re.compile(rb"['\\]")}


class PlainDumpError(Exception):
    """The dump holds something pg_dump does not write (or is cut short); nothing of it was run."""


def show_line(text, limit=120):
    shown = text[:limit].decode("utf-8", "replace").replace("\n", "\\n").replace("\r", "\\r")
    return shown + ("..." if len(text) > limit else "")


class SqlScanner(object):
    """psql's lexical state for the SQL between COPY blocks, fed one line at a time."""

    def __init__(self):
        self.state = _NORMAL
        self.tag = None
        self.depth = 0
        self.parens = 0
        self.text = bytearray()
        self.capped = False

    @property
    def idle(self):
        """No statement, string or comment is open."""
        return self.state == _NORMAL and not self.text and self.parens == 0

    def _keep(self, piece):
        if not self.capped:
            if len(self.text) + len(piece) > MAX_STATEMENT_TEXT:
                self.capped = True
            else:
                self.text += piece

    def scan(self, line, lineno):
        """Scan one line; return the statements it completes, as (text, end offset in the line)."""
        done = []
        pos = 0
        size = len(line)
        while pos < size:
            state = self.state
            if state == _NORMAL:
                match = _NORMAL_SPECIAL.search(line, pos)
                end = match.start() if match else size
                if end > pos:
                    piece = line[pos:end]
                    if self.text or piece.strip():
                        self._keep(piece.lstrip() if not self.text else piece)
                if match is None:
                    break
                token = match.group()
                if token == b"\\":
                    raise PlainDumpError("line %d: a psql meta-command (a backslash outside quotes): %s"
                                         % (lineno, show_line(line[end:])))
                if token == b"--":
                    break  # a comment to the end of the line
                if token == b";":
                    self._keep(b";")
                    if self.parens == 0:
                        if self.capped:
                            raise PlainDumpError("line %d: a statement longer than %d bytes"
                                                 % (lineno, MAX_STATEMENT_TEXT))
                        done.append((bytes(self.text), end + 1))
                        self.text = bytearray()
                    pos = end + 1
                    continue
                if token == b"(":
                    self.parens += 1
                elif token == b")":
                    self.parens = max(0, self.parens - 1)
                elif token == b"/*":
                    self.state, self.depth = _COMMENT, 1
                    self._keep(token)
                    pos = end + 2
                    continue
                elif token == b"'":
                    before = line[end - 1:end] if end > 0 else b""
                    prefix_start = line[end - 2:end - 1] if end > 1 else b""
                    # E'...' (backslash escapes) only when the E starts a token, as in psql's lexer.
                    if before in (b"e", b"E") and (not prefix_start or prefix_start[0] not in _IDENT_BYTES):
                        self.state = _ESTRING
                    else:
                        self.state = _SQUOTE
                elif token == b'"':
                    self.state = _DQUOTE
                elif token == b"$":
                    if end == 0 or line[end - 1] not in _IDENT_BYTES:
                        tag = _DOLLAR_TAG.match(line, end)
                        if tag:
                            self.state, self.tag = _DOLLAR, tag.group()
                            self._keep(self.tag)
                            pos = tag.end()
                            continue
                self._keep(token)
                pos = end + 1
            elif state in _QUOTED_SPECIAL:
                match = _QUOTED_SPECIAL[state].search(line, pos)
                if match is None:
                    self._keep(line[pos:])
                    break
                end = match.start()
                # A backslash escape (E'' strings only), or a doubled quote: still inside.
                if match.group() == b"\\" or line[end + 1:end + 2] == match.group():
                    self._keep(line[pos:end + 2])
                    pos = end + 2
                    continue
                self._keep(line[pos:end + 1])
                self.state = _NORMAL
                pos = end + 1
            elif state == _DOLLAR:
                end = line.find(self.tag, pos)
                if end < 0:
                    self._keep(line[pos:])
                    break
                stop = end + len(self.tag)
                self._keep(line[pos:stop])
                self.state, self.tag = _NORMAL, None
                pos = stop
            else:  # _COMMENT
                match = _COMMENT_SPECIAL.search(line, pos)
                if match is None:
                    self._keep(line[pos:])
                    break
                end = match.start()
                self._keep(line[pos:end + 2])
                self.depth += 1 if match.group() == b"/*" else -1
                if self.depth == 0:
                    self.state = _NORMAL
                pos = end + 2
        return done
