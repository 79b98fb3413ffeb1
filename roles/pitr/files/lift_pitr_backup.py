# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""lift-pitr-backup: the scheduled pgBackRest job of lift_simulator.postgresql's role pitr.

`lift-pitr-backup --type full|diff|incr` takes one pgBackRest backup and refreshes the Prometheus
textfile; `--metrics-only` refreshes the textfile alone; `--notify-failure --unit U` runs the
operator's notification command (systemd OnFailure=). Everything is in the collection's
module_utils (job/pitr_job.py), which the role installs as a release below /usr/local/lib/lift-pitr
and points the symlink /usr/local/lib/lift-pitr/current at (LIFT_PITR_LIB overrides that). Ansible
is not needed. The role installs this file as /usr/local/sbin/lift-pitr-backup with the
interpreter line "#!/usr/bin/python3 -I" in front (the source has none, as ansible-test wants of
role files).
"""

import os
import sys

LIB_DIR = os.environ.get("LIFT_PITR_LIB", "/usr/local/lib/lift-pitr/current")
EXIT_USAGE = 2
# The release `current` points to now: a run keeps its library when the role switches to another.
LIB_PATH = os.path.realpath(LIB_DIR)
if os.path.isdir(LIB_PATH) and LIB_PATH not in sys.path:
    sys.path.insert(0, LIB_PATH)

try:
    from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import pitr_job
    LIBRARY_ERROR = None
except ImportError as exc:  # reported by main(): this file stays importable
    pitr_job = None
    LIBRARY_ERROR = exc


def main():
    if LIBRARY_ERROR is not None:
        sys.stderr.write("lift-pitr-backup: the collection's module_utils are missing or broken in %s (%s); run the "
                         "role lift_simulator.postgresql.pitr again, or set LIFT_PITR_LIB\n" % (LIB_DIR, LIBRARY_ERROR))
        return EXIT_USAGE
    return pitr_job.main()


if __name__ == "__main__":
    sys.exit(main())
