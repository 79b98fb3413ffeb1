# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scheduled job's log of a run: one file, the backup code's own.

The job passes its JobLog (a backup/run_log.py RunLog) to backup/run.py's run_backup, which writes the file once
the backup's outcome is known (the job's first lines included); the job then appends its later
lines (verification, retention, metrics, result) to that same file instead of rewriting it. A
run that ends before run_backup wrote a log (refused by the lock, a bad setting, a log that
could not be written) gets a log of its own. Each line is also echoed through the reporter.
Pure Python (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os
import sys

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.backup.run_log import RunLog
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.settings import PROG


class JobLog(RunLog):
    """The run's log (module_utils/run_log.RunLog), echoed line by line through the reporter, and
    the file it was written to with how many of its lines that file holds."""

    def __init__(self, scrub=None, reporter=None):
        RunLog.__init__(self, scrub=scrub)
        self.reporter = reporter
        self.path = None
        self.written = 0

    def add(self, message):
        before = len(self.lines)
        RunLog.add(self, message)
        if self.reporter is not None:
            for line in self.lines[before:]:
                self.reporter.log_line(line)

    def write(self, log_dir, stem):
        """Write the log file (RunLog.write: atomically, never over another run's log); remember it."""
        path = RunLog.write(self, log_dir, stem)
        self.path, self.written = path, len(self.lines)
        return path

    def append_rest(self):
        """Append the lines added since the file was written to it (never through a symlink); returns its path."""
        rest = self.lines[self.written:]
        if rest:
            data = ("\n".join(rest) + "\n").encode("utf-8")
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                while data:
                    data = data[os.write(fd, data):]
                os.fsync(fd)
            finally:
                os.close(fd)
            self.written = len(self.lines)
        return self.path


def other_stem(settings, kind):
    """Log name of a run that has no backup name: <name>_<kind>_YYYYMMDD_HHMMSS (UTC)."""
    return "%s_%s_%s" % (settings["name"], kind, datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d_%H%M%S"))


def finish_log(settings, log, stem=None):
    """The run's log complete on disk; returns its path (None when it could not be written).

    Appends to the file run_backup wrote, or writes one for a run that has none yet."""
    try:
        if log.path:
            return log.append_rest()
        return log.write(settings["log_dir"], stem or other_stem(settings, "failed"))
    except OSError as exc:
        sys.stderr.write("%s: cannot write the run's log in %s: %s\n" % (PROG, settings["log_dir"], exc))
        return None
