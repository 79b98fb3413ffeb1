# -*- coding: utf-8 -*-
"""Every module documents the same attributes, described once (doc fragment `attributes`), each
with the module's own support level."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from conftest import MODULES, ROOT


@pytest.mark.parametrize("module", MODULES)
def test_attributes_come_from_the_fragment(module, module_docs):
    attributes = module_docs[module]["attributes"]
    assert sorted(attributes) == ["check_mode", "diff_mode", "idempotent", "platform"]
    for name, attribute in attributes.items():
        assert attribute["description"] and attribute["support"] in ("full", "partial", "none"), (name, attribute)
    with open(os.path.join(ROOT, "plugins", "modules", module + ".py")) as handle:
        source = handle.read()
    assert "description: Can run in check mode" not in source
    assert "lift_simulator.postgresql.attributes" in source
