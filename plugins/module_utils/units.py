# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sizes as people read them (1.5 KiB). Pure Python, shared by the modules and the host-side job."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def human_bytes(num):
    """1023 B, 1.5 KiB, 812.3 MiB ... TiB."""
    num = float(num)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(num) < 1024:
            return "%d B" % num if unit == "B" else "%.1f %s" % (num, unit)
        num /= 1024.0
    return "%.1f TiB" % num
