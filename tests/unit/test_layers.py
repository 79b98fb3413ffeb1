# -*- coding: utf-8 -*-
"""The layering docs/development.md describes ("Architecture"): the lower packages (pg/, artifact/,
storage/) and the pure helpers never import the packages that run backups, restores, verification,
retention or the job, nor the Ansible glue."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import os

import pytest

from conftest import ROOT

MODULE_UTILS = os.path.join(ROOT, "plugins", "module_utils")
LOWER_PACKAGES = ("pg", "artifact", "storage")
LOWER_FILES = ("codecs.py", "process.py", "secret_file.py", "stall_watch.py", "units.py", "version.py", "failpoints.py")
UPPER = ("backup", "restore", "verify", "retention", "rekey", "offsite", "job", "app", "compare", "ansible_common", "report")
PREFIX = "ansible_collections.lift_simulator.postgresql.plugins.module_utils"


def lower_files():
    found = list(LOWER_FILES)
    for package in LOWER_PACKAGES:
        for name in sorted(os.listdir(os.path.join(MODULE_UTILS, package))):
            if name.endswith(".py"):
                found.append(package + "/" + name)
    return found


def imported(path):
    with open(path) as handle:
        tree = ast.parse(handle.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PREFIX):
            rest = node.module[len(PREFIX):].lstrip(".")
            if rest:
                yield rest.split(".")[0]
            else:
                for alias in node.names:
                    yield alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(PREFIX + "."):
                    yield alias.name[len(PREFIX) + 1:].split(".")[0]


@pytest.mark.parametrize("name", lower_files())
def test_lower_layers_do_not_import_upper_ones(name):
    found = set(imported(os.path.join(MODULE_UTILS, name)))
    assert not found & set(UPPER), "%s imports %s" % (name, sorted(found & set(UPPER)))


def test_the_lists_name_real_files_and_packages():
    assert len(lower_files()) > len(LOWER_FILES) + 10
    for name in LOWER_FILES:
        assert os.path.isfile(os.path.join(MODULE_UTILS, name)), name
    for name in UPPER:
        assert (os.path.isdir(os.path.join(MODULE_UTILS, name))
                or os.path.isfile(os.path.join(MODULE_UTILS, name + ".py"))), name


def test_module_utils_is_packages_by_concern():
    """Only the shared helpers stay at the top; everything else lives in its concern's package."""
    top = sorted(name for name in os.listdir(MODULE_UTILS) if name.endswith(".py") and name != "__init__.py")
    assert top == sorted(set(LOWER_FILES) | {"ansible_common.py", "compare.py"}), top
