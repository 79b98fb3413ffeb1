# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-phase wall-clock timings of a run, for its result and its log (``timings``).

A PhaseClock measures laps: ``lap(name)`` charges the time since the previous lap (or the start)
to ``name``, so the phases never overlap, nothing between them goes uncounted, and their sum is
the elapsed time. A phase lapped twice adds up. Pure Python, no Ansible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time


class PhaseClock(object):
    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self.started = clock()
        self._last = self.started
        self._phases = []  # names in the order they were first lapped
        self._seconds = {}

    def lap(self, name):
        """Charge the time since the previous lap to ``name``; return that time."""
        now = self._clock()
        spent = now - self._last
        self._last = now
        if name not in self._seconds:
            self._phases.append(name)
            self._seconds[name] = 0.0
        self._seconds[name] += spent
        return spent

    def elapsed(self):
        return self._clock() - self.started

    def as_dict(self, digits=3):
        """The phases' seconds, rounded (a phase rounded to 0 stays, as 0.0)."""
        return dict((name, round(self._seconds[name], digits)) for name in self._phases)

    def summary(self, digits=3):
        """``name 1.234 s, ...`` in the order the phases ran (for a log line)."""
        return ", ".join("%s %.*f s" % (name, digits, self._seconds[name]) for name in self._phases)
