# -*- coding: utf-8 -*-
"""Fixtures shared by the unit tests."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib
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


class _Spec(Exception):
    pass


@pytest.fixture()
def argument_spec_of(monkeypatch):
    """The argument_spec a module's main() gives AnsibleModule: argument_spec_of("backup")."""
    def get(name):
        module = importlib.import_module("ansible_collections.lift_simulator.postgresql.plugins.modules." + name)

        def capture(argument_spec, **_kwargs):
            raise _Spec(argument_spec)
        monkeypatch.setattr(module, "AnsibleModule", capture)
        with pytest.raises(_Spec) as info:
            module.main()
        return info.value.args[0]
    return get
