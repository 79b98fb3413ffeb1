# -*- coding: utf-8 -*-
# Makes the checkout importable as ansible_collections.lift_simulator.postgresql for pytest
# (ansible-test does the same with its own copy).
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".cache", "collections")
LINK = os.path.join(COLLECTIONS, "ansible_collections", "lift_simulator", "postgresql")

if not os.path.exists(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    os.symlink("../../../..", LINK)
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
# The PostgreSQL test lab and helpers shared by tests/integration and tests/faults.
LIB = os.path.join(ROOT, "tests", "lib")
if LIB not in sys.path:
    sys.path.insert(0, LIB)
