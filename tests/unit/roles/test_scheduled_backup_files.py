# -*- coding: utf-8 -*-
"""The role installs the command with exactly the module_utils it needs, all free of Ansible."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import os

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ROLE = os.path.join(ROOT, "roles", "scheduled_backup")
MODULE_UTILS = os.path.join(ROOT, "plugins", "module_utils")
PACKAGE = "ansible_collections.lift_simulator.postgresql.plugins.module_utils"


def imports(path):
    """(module_utils names, other top-level modules) imported by a Python file."""
    with open(path) as handle:
        tree = ast.parse(handle.read(), path)
    ours, others = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + ["%s.%s" % (node.module, alias.name) for alias in node.names]
        else:
            continue
        for name in names:
            if name.startswith(PACKAGE + "."):
                ours.add(name[len(PACKAGE) + 1:].split(".")[0] + ".py")
            elif name != PACKAGE:
                others.add(name.split(".")[0])
    return ours, others


def test_the_copied_module_utils_are_the_import_closure_of_the_command():
    with open(os.path.join(ROLE, "vars", "main.yml")) as handle:
        listed = yaml.safe_load(handle)["__scheduled_backup_module_utils"]
    needed, others = imports(os.path.join(ROLE, "files", "lift_pg_backup.py"))
    todo = list(needed)
    while todo:
        name = todo.pop()
        found, more = imports(os.path.join(MODULE_UTILS, name))
        others |= more
        for item in found - needed:
            needed.add(item)
            todo.append(item)
    assert sorted(listed) == sorted(needed)
    assert "ansible_common.py" not in listed
    # Nothing but the standard library and psycopg2: no Ansible on the database host.
    assert "ansible" not in others
    assert not [m for m in others if m not in ("psycopg2", "__future__") and m not in __import__("sys").stdlib_module_names]
