# -*- coding: utf-8 -*-
"""The layering docs/development.md describes ("Architecture"): the connection, artefact and
storage files never import the files that run backups, restores, retention or the job."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import os

import pytest

from conftest import ROOT

MODULE_UTILS = os.path.join(ROOT, "plugins", "module_utils")
LOWER = ["pg_connection.py", "pg_catalog.py", "cluster_admin.py", "scram.py", "codecs.py", "naming.py",
         "manifest.py", "checksums.py", "plain_dump.py", "backup_files.py", "path_trust.py", "atomic_files.py",
         "backup_dir.py", "storage/base.py", "storage/posix.py", "units.py"]
UPPER = ("backup_run", "backup_dump", "backup_reuse", "retention_apply", "restore", "compare", "job", "ansible_common")
PREFIX = "ansible_collections.lift_simulator.postgresql.plugins.module_utils"


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


@pytest.mark.parametrize("name", LOWER)
def test_lower_layers_do_not_import_upper_ones(name):
    found = set(imported(os.path.join(MODULE_UTILS, name)))
    assert not found & set(UPPER), "%s imports %s" % (name, sorted(found & set(UPPER)))


def test_the_list_names_real_files():
    for name in LOWER:
        assert os.path.isfile(os.path.join(MODULE_UTILS, name)), name
