# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Named points where the fault-injection tests freeze a run to kill it there (as PostgreSQL's
own injection points do). Inert unless LIFT_PG_FAILPOINTS names the point; documented in
docs/reliability.md. Pure Python.

LIFT_PG_FAILPOINTS  comma-separated point names to stop at
LIFT_PG_FAILPOINT_DIR  where ``<point>.<pid>`` is written on arrival (the test reads the pid)
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import time

# Longest a run waits at a point for its killer before it goes on.
HOLD_SECONDS = 300


def reached(name):
    points = os.environ.get("LIFT_PG_FAILPOINTS")
    if not points or name not in points.split(","):
        return
    directory = os.environ.get("LIFT_PG_FAILPOINT_DIR", "/tmp")
    marker = os.path.join(directory, "%s.%d" % (name, os.getpid()))
    with open(marker, "w") as handle:
        handle.write("%d\n" % os.getpid())
    deadline = time.monotonic() + HOLD_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.05)
