# -*- coding: utf-8 -*-
"""The scheduled job's library as the role ships it (files/lift_pg_backup_library.py): the files it
selects, a reproducible archive, root-owned members with fixed modes, SHA256SUMS last and the
release named by its checksum."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile

import pytest

from lift_job import ROLE, ROOT, module_utils_files, role_vars

BUILDER = os.path.join(ROLE, "files", "lift_pg_backup_library.py")


def build(tmp_path):
    variables = role_vars()
    argv = [sys.executable, BUILDER, "--source", os.path.join(ROOT, "plugins", "module_utils"),
            "--exclude-lines", variables["__scheduled_backup_ansible_import_re"], "--tmpdir", str(tmp_path)]
    argv += ["--package-dir=%s" % d for d in variables["__scheduled_backup_packages_dirs"]]
    out = json.loads(subprocess.run(argv, check=True, stdout=subprocess.PIPE, universal_newlines=True).stdout)
    return out


@pytest.fixture
def built(tmp_path):
    first = build(tmp_path)
    yield first
    shutil.rmtree(os.path.dirname(first["archive"]), ignore_errors=True)


def test_it_ships_the_pure_module_utils(built):
    assert built["files"] == module_utils_files()
    assert "ansible_common.py" not in built["files"] and "backup/run.py" in built["files"]


def test_the_archive_is_reproducible(built, tmp_path):
    again = build(tmp_path)
    try:
        with open(built["archive"], "rb") as one, open(again["archive"], "rb") as two:
            assert one.read() == two.read()
        assert again["release"] == built["release"]
    finally:
        shutil.rmtree(os.path.dirname(again["archive"]), ignore_errors=True)


def test_members_are_roots_with_fixed_modes_and_the_release_is_named_by_its_sums(built):
    with tarfile.open(built["archive"]) as archive:
        members = archive.getmembers()
        for member in members:
            assert (member.uid, member.gid, member.mtime) == (0, 0, 0), member.name
            assert member.mode == (0o755 if member.isdir() else 0o644), member.name
            assert member.isdir() or member.isfile(), member.name
        assert members[-1].name.endswith("SHA256SUMS")
        sums = archive.extractfile(members[-1]).read()
    assert built["release"] == hashlib.sha256(sums).hexdigest()
    listed = dict(line.split("  ", 1)[::-1] for line in sums.decode().splitlines())
    assert set(name.split("/module_utils/", 1)[-1] for name in listed if "/module_utils/" in name) >= set(
        built["files"])
