# -*- coding: utf-8 -*-
"""PhaseClock: laps charge the time since the previous lap, repeated phases add up, nothing is
lost between phases, and the rounded figures keep the order the phases ran in."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.backup.timings import PhaseClock


class FakeClock(object):
    def __init__(self, *times):
        self.times = list(times)

    def __call__(self):
        return self.times.pop(0)


def test_laps_charge_the_time_since_the_previous_lap():
    clock = PhaseClock(FakeClock(10.0, 10.25, 11.0, 11.0004, 13.5))
    assert clock.lap("connect") == 0.25
    assert clock.lap("dump") == 0.75
    clock.lap("close")
    assert clock.as_dict() == {"connect": 0.25, "dump": 0.75, "close": 0.0}
    assert list(clock.as_dict()) == ["connect", "dump", "close"]
    assert clock.elapsed() == 3.5


def test_a_phase_lapped_twice_adds_up_and_keeps_its_first_place():
    clock = PhaseClock(FakeClock(0.0, 1.0, 3.0, 3.5, 3.5))
    clock.lap("connect")
    clock.lap("dump")
    clock.lap("connect")
    assert clock.as_dict() == {"connect": 1.5, "dump": 2.0}
    assert list(clock.as_dict()) == ["connect", "dump"]
    assert clock.elapsed() == 3.5  # nothing between the laps went uncounted


def test_summary_and_rounding():
    clock = PhaseClock(FakeClock(0.0, 0.12345, 2.0))
    clock.lap("catalog")
    clock.lap("dump")
    assert clock.as_dict() == {"catalog": 0.123, "dump": 1.877}
    assert clock.as_dict(digits=1) == {"catalog": 0.1, "dump": 1.9}
    assert clock.summary() == "catalog 0.123 s, dump 1.877 s"


def test_the_real_clock_never_goes_backwards():
    clock = PhaseClock()
    for name in ("a", "b", "a"):
        assert clock.lap(name) >= 0
    assert sum(clock.as_dict(digits=9).values()) <= clock.elapsed()
