# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the scheduled job shows: in a terminal the live progress, the steps and a summary on
stderr; otherwise (systemd, cron, a pipe) the log lines on stdout. Pure Python (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import sys

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.settings import PROG
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.units import human_bytes


def format_duration(seconds):
    """7.3 s, 1:05, 1:02:03."""
    if seconds < 60:
        return "%.1f s" % seconds
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return "%d:%02d:%02d" % (hours, minutes, secs) if hours else "%d:%02d" % (minutes, secs)


def format_progress(size, elapsed):
    """The live progress line: bytes written, average rate, elapsed time."""
    rate = size / elapsed if elapsed > 0 else 0.0
    return "dumping: %s written, %s/s, %s elapsed" % (human_bytes(size), human_bytes(rate), format_duration(elapsed))


class Reporter(object):
    """Terminal: live progress and a summary on stderr. Otherwise: the log lines on stdout."""

    def __init__(self, interactive, out=None, err=None):
        self.interactive = interactive
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._progress_shown = False

    def log_line(self, line):
        if not self.interactive:
            self.out.write(line + "\n")
            self.out.flush()

    def step(self, text):
        if self.interactive:
            self._clear_progress()
            self.err.write("%s: %s\n" % (PROG, text))
            self.err.flush()

    def progress(self, size, elapsed):
        if self.interactive:
            self.err.write("\r\033[K  " + format_progress(size, elapsed))
            self.err.flush()
            self._progress_shown = True

    def _clear_progress(self):
        if self._progress_shown:
            self.err.write("\n")
            self._progress_shown = False

    def error(self, text):
        self._clear_progress()
        self.err.write("%s: %s\n" % (PROG, text))
        self.err.flush()

    def summary(self, rows):
        if self.interactive:
            self._clear_progress()
            width = max(len(label) for label, _value in rows) if rows else 0
            for label, value in rows:
                self.err.write("  %s  %s\n" % (label.ljust(width), value))
            self.err.flush()


def summary_rows(outcome, duration):
    """The summary of a run (runner.Outcome) as (label, value) rows."""
    rows = []
    result = outcome.result or {}
    if result.get("size_bytes") is not None:
        rows.append(("backup", result["path"]))
        rows.append(("size", "%s (%d bytes)" % (human_bytes(result["size_bytes"]), result["size_bytes"])))
        rows.append(("sha256", result["sha256"]))
        counts = result.get("row_counts") or {}
        rows.append(("rows", "%d in %d tables" % (sum(counts.values()), len(counts))))
    if outcome.checks:
        rows.append(("verification", ("passed: " if outcome.verified else "FAILED: ")
                     + ", ".join(c["name"] for c in outcome.checks)))
    if outcome.pruned is not None:
        removed = ", ".join(d.name for d in outcome.pruned.removed) or "nothing"
        rows.append(("retention", "%d kept; removed %s" % (len(outcome.pruned.plan.kept), removed)))
    if outcome.metrics_path:
        rows.append(("metrics", outcome.metrics_path))
    rows.append(("log", outcome.log_path or "(none)"))
    rows.append(("duration", format_duration(duration)))
    return rows
