# -*- coding: utf-8 -*-
"""Fixtures of the PostgreSQL test lab (tests/lib/pglab.py), re-exported for this folder."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from pglab import *  # noqa: F401,F403 pylint: disable=wildcard-import,unused-wildcard-import
from pglab import (  # noqa: F401 pylint: disable=unused-import
    LIFT_ADMIN_PASSWORD, SUPERUSER_PASSWORD, PgCluster, ansible, cluster, free_port, load_fixture,
    postgres_owned_dir, run_playbook, workdir)
