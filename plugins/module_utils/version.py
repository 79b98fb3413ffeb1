# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's version, recorded in every manifest (kept equal to galaxy.yml by a unit test)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

COLLECTION_NAME = "lift_simulator.postgresql"
COLLECTION_VERSION = "0.2.0"
