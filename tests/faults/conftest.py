# -*- coding: utf-8 -*-
"""Fixtures of the PostgreSQL test lab (tests/lib/pglab.py), re-exported for this folder."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from pglab import ansible, cluster, workdir  # noqa: F401 pylint: disable=unused-import
