# -*- coding: utf-8 -*-
"""Fixtures shared by the unit tests."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULES = sorted(name[:-3] for name in os.listdir(os.path.join(ROOT, "plugins", "modules"))
                 if name.endswith(".py") and name != "__init__.py")


@pytest.fixture(scope="session")
def module_docs():
    """Each module's documentation as ansible-doc renders it (doc fragments included)."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".cache", "collections"))
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-doc"), "--json", "-t", "module"]
                         + ["lift_simulator.postgresql." + m for m in MODULES], env=env, check=True,
                         stdout=subprocess.PIPE, universal_newlines=True).stdout
    docs = json.loads(out)
    return dict((m, docs["lift_simulator.postgresql." + m]["doc"]) for m in MODULES)
