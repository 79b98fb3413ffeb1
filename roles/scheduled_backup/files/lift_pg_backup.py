# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""lift-pg-backup: the scheduled backup job of lift_simulator.postgresql.

One run: take a backup with the collection's own backup code (the code behind the ``backup``
module), verify what it wrote, apply the retention rules (the code behind the ``prune`` module),
and record the outcome: one log file per run, the Prometheus textfile metrics, and a status file
for the failure notification. Overlapping runs are prevented by a lock.

This file only finds the code: everything else is in the collection's module_utils/job/ package
(settings, lock, metrics, notification, privileges, runner, presentation, cli). It needs Python 3
and psycopg2 (Debian: python3-psycopg2) and the collection's module_utils, which the role
lift_simulator.postgresql.scheduled_backup installs as a release below /usr/local/lib/lift-pg-backup
and points the symlink /usr/local/lib/lift-pg-backup/current at (LIFT_PG_BACKUP_LIB overrides
that). Ansible is not needed. The role installs this file as /usr/local/sbin/lift-pg-backup with
the interpreter line "#!/usr/bin/python3 -I" in front (the source has none, as ansible-test wants
of role files).
"""

import os
import sys

LIB_DIR = os.environ.get("LIFT_PG_BACKUP_LIB", "/usr/local/lib/lift-pg-backup/current")
EXIT_USAGE = 2
# The release `current` points to now: a run keeps its library when the role switches to another.
LIB_PATH = os.path.realpath(LIB_DIR)
if os.path.isdir(LIB_PATH) and LIB_PATH not in sys.path:
    sys.path.insert(0, LIB_PATH)

try:
    from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import cli
    LIBRARY_ERROR = None
except ImportError as exc:  # reported by main(): this file stays importable
    cli = None
    LIBRARY_ERROR = exc


def main():
    if LIBRARY_ERROR is not None:
        sys.stderr.write("lift-pg-backup: the collection's module_utils are missing or broken in %s (%s); run the "
                         "role lift_simulator.postgresql.scheduled_backup again, or set LIFT_PG_BACKUP_LIB\n"
                         % (LIB_DIR, LIBRARY_ERROR))
        return EXIT_USAGE
    return cli.main()


if __name__ == "__main__":
    sys.exit(main())
