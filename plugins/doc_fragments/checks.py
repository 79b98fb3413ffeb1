# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The checks run on a restored database (verify level restore, restore).
    DOCUMENTATION = r"""
options:
  checks:
    description:
      - Extra checks on the restored database, besides the row counts and the strategy's checklist.
        The first column of the first row of O(checks[].sql) is compared with O(checks[].expect), or
        must be at least O(checks[].min). A query that fails is a failed check.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name of the check in the report.
        type: str
        required: true
      sql:
        description: A query, run in the restored database. Qualify table names with their schema.
        type: str
        required: true
      expect:
        description: The expected value (compared as text). Mutually exclusive with O(checks[].min).
        type: raw
      min:
        description: The minimum value (compared as a number).
        type: float
  app_schema:
    description: Schema of the application's tables, for the strategy's checklist.
    type: str
    default: lift_simulator
"""
