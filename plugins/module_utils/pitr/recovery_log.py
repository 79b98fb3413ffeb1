# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What PostgreSQL's log says about a point-in-time recovery, read as data.

The recovered copy runs with ``lc_messages = 'C'`` (recovery_layout.py), so its messages are
PostgreSQL's English ones whatever the machine's locale; they are matched anywhere in a line,
whatever ``log_line_prefix`` puts before them. pgBackRest's own errors reach the same log: the
``restore_command`` (``pgbackrest archive-get``) writes them to its stderr, which PostgreSQL logs
as they are (``ERROR: [042]: unable to get ...`` and indented continuation lines).
Pure Python (no I/O, no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

_RESTORED = re.compile(r'restored log file "([0-9A-F]{24})" from archive')
_STOP_XACT = re.compile(r"recovery stopping (before|after) (commit|abort) of transaction (\d+), time (.+?)\s*$")
_STOP_POINT = re.compile(r'recovery stopping at restore point "(.*)", time (.+?)\s*$')
_STOP_LSN = re.compile(r'recovery stopping (before|after) WAL location \(LSN\) "([0-9A-F]+/[0-9A-F]+)"')
_STOP_CONSISTENT = re.compile(r"recovery stopping after reaching consistency")
_REDO_DONE = re.compile(r"redo done at ([0-9A-F]+/[0-9A-F]+)")
_LAST_XACT = re.compile(r"last completed transaction was at log time (.+?)\s*$")
_NEW_TIMELINE = re.compile(r"selected new timeline ID: (\d+)")
_PAUSED = re.compile(r"pausing at the end of recovery|recovery has paused")
_READY = re.compile(r"database system is ready to accept connections")
_CONSISTENT = re.compile(r"consistent recovery state reached at ([0-9A-F]+/[0-9A-F]+)")
_FATAL = re.compile(r"\b(FATAL|PANIC):\s+(.*?)\s*$")
_DETAIL = re.compile(r"\b(DETAIL|HINT):\s+(.*?)\s*$")
# pgBackRest's messages on stderr: "ERROR: [042]: unable to get ..." / "WARN: ...", then lines
# indented by seven spaces.
_PGBR = re.compile(r"^(ERROR: \[\d+\]|WARN):\s(.*)$")
_PGBR_MORE = re.compile(r"^\s{4,}(\S.*)$")

ENDED_BEFORE_TARGET = "recovery ended before configured recovery target was reached"


class RecoveryLog(object):
    """The facts of one recovery's log (what ``parse`` found)."""

    def __init__(self):
        self.restored = []          # segment names, in the order restored (history files excluded)
        self.stop = None            # {kind, detail, time} when PostgreSQL stopped at a target
        self.redo_done = None       # LSN text
        self.last_transaction = None  # time text of the last completed transaction
        self.new_timeline = None    # int, when it was promoted
        self.paused = False
        self.ready = False          # promoted and accepting connections
        self.consistent_at = None
        self.fatal = []             # "FATAL: ..." lines, with their DETAIL/HINT appended
        self.pgbackrest = []        # pgBackRest's ERROR/WARN messages (continuations joined)

    @property
    def last_restored(self):
        return self.restored[-1] if self.restored else None

    @property
    def ended_before_target(self):
        return any(ENDED_BEFORE_TARGET in line for line in self.fatal)

    def to_dict(self):
        return {"restored_segments": len(self.restored), "first_restored": self.restored[0] if self.restored else None,
                "last_restored": self.last_restored, "stop": self.stop, "redo_done": self.redo_done,
                "last_transaction": self.last_transaction, "new_timeline": self.new_timeline,
                "paused": self.paused, "ready": self.ready, "consistent_at": self.consistent_at,
                "fatal": list(self.fatal), "pgbackrest": list(self.pgbackrest)}


def parse(text):
    """Read a recovery's log text (from the start of this recovery's run) into a RecoveryLog."""
    found = RecoveryLog()
    pgbr = None
    after_fatal = False
    for line in (text or "").splitlines():
        detail = _DETAIL.search(line)
        if after_fatal and detail:
            found.fatal[-1] += " | %s: %s" % (detail.group(1), detail.group(2))
            continue
        after_fatal = False
        if pgbr is not None:
            more = _PGBR_MORE.match(line)
            if more and not _FATAL.search(line):
                pgbr.append(more.group(1))
                continue
            _add_pgbackrest(found, pgbr)
            pgbr = None
        match = _PGBR.match(line)
        if match:
            pgbr = ["%s: %s" % (match.group(1), match.group(2).strip())]
            continue
        match = _RESTORED.search(line)
        if match:
            found.restored.append(match.group(1))
            continue
        match = _STOP_XACT.search(line)
        if match:
            found.stop = {"kind": "%s %s" % (match.group(1), match.group(2)),
                          "detail": "transaction %s" % match.group(3), "time": match.group(4)}
            continue
        match = _STOP_POINT.search(line)
        if match:
            found.stop = {"kind": "restore point", "detail": match.group(1), "time": match.group(2)}
            continue
        match = _STOP_LSN.search(line)
        if match:
            found.stop = {"kind": "%s lsn" % match.group(1), "detail": match.group(2), "time": None}
            continue
        if _STOP_CONSISTENT.search(line):
            found.stop = {"kind": "consistent", "detail": "", "time": None}
            continue
        match = _REDO_DONE.search(line)
        if match:
            found.redo_done = match.group(1)
            continue
        match = _LAST_XACT.search(line)
        if match:
            found.last_transaction = match.group(1)
            continue
        match = _NEW_TIMELINE.search(line)
        if match:
            found.new_timeline = int(match.group(1))
            continue
        match = _CONSISTENT.search(line)
        if match:
            found.consistent_at = match.group(1)
            continue
        if _PAUSED.search(line):
            found.paused = True
            continue
        if _READY.search(line):
            found.ready = True
            continue
        match = _FATAL.search(line)
        if match:
            found.fatal.append("%s: %s" % (match.group(1), match.group(2)))
            after_fatal = True
    if pgbr is not None:
        _add_pgbackrest(found, pgbr)
    return found


def _add_pgbackrest(found, parts):
    message = " ".join(parts)
    if message not in found.pgbackrest:
        found.pgbackrest.append(message)
