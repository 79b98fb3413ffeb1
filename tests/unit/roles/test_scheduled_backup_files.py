# -*- coding: utf-8 -*-
"""The role installs the command with the collection's module_utils as a whole; what the command
imports, transitively, is all there and free of Ansible."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import os
import sys

from lift_job import module_utils_files

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ROLE = os.path.join(ROOT, "roles", "scheduled_backup")
COMMAND = os.path.join(ROLE, "files", "lift_pg_backup.py")
MODULE_UTILS = os.path.join(ROOT, "plugins", "module_utils")
PACKAGE = "ansible_collections.lift_simulator.postgresql.plugins.module_utils"


def _module_file(dotted):
    """The file of a module_utils module (``job.cli``: job/cli.py), or None (an attribute)."""
    base = os.path.join(*dotted.split("."))
    for candidate in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(os.path.join(MODULE_UTILS, candidate)):
            return candidate
    return None


def imports(path):
    """(module_utils files, other top-level modules) imported by a Python file, anywhere in it."""
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
                parts = name[len(PACKAGE) + 1:].split(".")
                # a module of a subpackage imports the package's __init__.py first
                for depth in range(1, len(parts) + 1):
                    found = _module_file(".".join(parts[:depth]))
                    if found:
                        ours.add(found)
            elif name != PACKAGE:
                others.add(name.split(".")[0])
    return ours, others


def import_closure(path):
    """Every module_utils file ``path`` imports, transitively, and the other modules they import."""
    needed, others = imports(path)
    todo = list(needed)
    while todo:
        name = todo.pop()
        found, more = imports(os.path.join(MODULE_UTILS, name))
        others |= more
        for item in found - needed:
            needed.add(item)
            todo.append(item)
    return needed, others


OFFSITE_LIBRARIES = ("boto3", "botocore", "paramiko", "urllib3")


def test_the_command_imports_no_ansible_transitively():
    needed, others = import_closure(COMMAND)
    assert "job/cli.py" in needed and "backup/run.py" in needed and "retention/apply.py" in needed
    assert "ansible_common.py" not in needed
    # Nothing but the standard library and psycopg2: no Ansible on the database host. The off-site
    # drivers' libraries are imported only when a target of their type is used (the role installs
    # Debian's python3-boto3 and python3-paramiko then).
    assert "ansible" not in others
    assert not [m for m in others if m not in ("psycopg2", "__future__") + OFFSITE_LIBRARIES
                and m not in sys.stdlib_module_names]


def test_the_role_copies_everything_the_command_imports():
    copied = module_utils_files()
    needed = import_closure(COMMAND)[0]
    assert not needed - set(copied)
    # module_utils as a whole: every *.py, subpackages with their __init__.py ...
    assert "job/__init__.py" in copied and "restore/__init__.py" in copied
    # ... but those that import Ansible (the job could not import them on the host).
    assert "ansible_common.py" not in copied
    for name in copied:
        assert "ansible" not in imports(os.path.join(MODULE_UTILS, name))[1], name


def test_the_command_is_a_thin_shell():
    with open(COMMAND) as handle:
        assert len(handle.read().splitlines()) < 80
    for name in os.listdir(os.path.join(MODULE_UTILS, "job")):
        if name.endswith(".py"):
            with open(os.path.join(MODULE_UTILS, "job", name)) as handle:
                assert len(handle.read().splitlines()) <= 400, name
