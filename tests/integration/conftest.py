# -*- coding: utf-8 -*-
"""Fixtures of the PostgreSQL test lab (tests/lib/pglab.py), registered for this folder.
Test modules import everything else from pglab itself."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from pglab import ansible, cluster, workdir  # noqa: F401 pylint: disable=unused-import
