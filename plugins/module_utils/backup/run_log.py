# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One log file per backup run (success or failure and why), written atomically, mode 0600.

Pure Python, shared by the modules and the host-side job.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import errno
import os

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.atomic_files import (
    AtomicFileError, ensure_private_dir, write_file_atomic)


class RunLog(object):
    """Collects timestamped lines; ``write`` puts them in ``<log_dir>/<stem>.log``."""

    def __init__(self, scrub=None):
        self.lines = []
        self.scrub = scrub or (lambda text: text)

    def add(self, message):
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        for line in self.scrub(str(message)).splitlines() or [""]:
            self.lines.append("%s %s" % (stamp, line))

    def text(self):
        return "\n".join(self.lines) + "\n"

    def write(self, log_dir, stem):
        if os.path.islink(log_dir):
            raise AtomicFileError(errno.ELOOP, "%s is a symlink; a log is never written through one" % log_dir)
        ensure_private_dir(log_dir)
        try:
            return write_file_atomic(log_dir, "%s.log" % stem, self.text())
        except AtomicFileError as exc:
            if exc.errno != errno.EEXIST:
                raise
        # Two runs in the same second: keep both logs.
        return write_file_atomic(log_dir, "%s.%d.log" % (stem, os.getpid()), self.text())
