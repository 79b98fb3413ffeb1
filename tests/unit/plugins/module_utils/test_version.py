# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.version import COLLECTION_VERSION

GALAXY = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "galaxy.yml")


def test_manifest_version_follows_galaxy_yml():
    with open(GALAXY) as handle:
        version = re.search(r"^version:\s*(\S+)", handle.read(), re.M).group(1)
    assert COLLECTION_VERSION == version
