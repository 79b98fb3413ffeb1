# -*- coding: utf-8 -*-
"""Off-site copies: the offsite module through ansible-playbook against real servers the test run
starts (OpenSSH's sshd on 127.0.0.1, tests/lib/sftpserver.py; SeaweedFS's S3 server on 127.0.0.1,
tests/lib/s3server.py), with backups of a real PostgreSQL cluster. A copy is pushed once and then
left alone, listed, re-read, pulled back identical; a damaged copy is found and never pulled; a
wrong host key or credentials change nothing."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from agekeys import encrypted_backup, keys  # noqa: F401 pylint: disable=unused-import
from helpers import backup, clone_database, drop_databases, listing, run_module, sha256_file
from s3server import s3_server  # noqa: F401 pylint: disable=unused-import
from sftpserver import damage_file, sftp_server_fixture  # noqa: F401 pylint: disable=unused-import

PREFIX = "offsite_"


@pytest.fixture
def db(cluster):
    name = clone_database(cluster, PREFIX + "src")
    yield name
    drop_databases(cluster, PREFIX)


@pytest.fixture(params=["sftp", "s3"])
def target(request):
    """A target's module settings on a real server, and a function that damages a remote file."""
    if request.param == "sftp":
        server = request.getfixturevalue("sftp_server")
        settings = server.target_settings("copies-%s" % request.node.name.replace("[", "-").strip("]"))
        return settings, lambda name, how: damage_file(os.path.join(settings["directory"], name), how)
    server = request.getfixturevalue("s3_server")
    prefix = "copies/%s" % request.node.name.replace("[", "-").strip("]")
    settings = dict(server.target_settings(), prefix=prefix)

    def damage_object(name, how):
        server.damage(prefix + "/" + name, how)
    return settings, damage_object


def offsite(expect_ok=True, check=False, **args):
    return run_module("offsite", args, expect_ok, check=check)


def test_a_backup_goes_off_site_once_and_comes_back_identical(cluster, workdir, db, keys, target):
    settings, _damage = target
    made = encrypted_backup(cluster, workdir, db, keys, compression="zstd")
    name = os.path.basename(made["path"])

    planned = offsite(check=True, action="push", path=made["path"], target=settings)
    assert planned["copy"] == "copied" and planned["changed"] is True
    assert offsite(action="list", database=db, target=settings)["backups"] == []  # check mode wrote nothing

    pushed = offsite(action="push", path=made["path"], target=settings)
    assert pushed["copy"] == "copied" and pushed["sha256"] == made["sha256"] == sha256_file(made["path"])
    secrets = [settings.get("secret_key")] + (settings.get("private_key") or "").splitlines()[1:2]
    assert secrets and all(secret and secret not in json.dumps(pushed) for secret in secrets if secret)
    again = offsite(action="push", path=made["path"], target=settings)
    assert again["copy"] == "unchanged" and again["changed"] is False

    listed = offsite(action="list", database=db, target=settings)
    assert listed["newest_good"] == name and [b["name"] for b in listed["backups"]] == [name]
    assert listed["backups"][0]["encryption"] == "age" and listed["backups"][0]["sha256"] == made["sha256"]
    checked = offsite(action="verify", name="latest", database=db, target=settings)
    assert checked["name"] == name and all(c["passed"] for c in checked["checks"]) and len(checked["checks"]) == 3

    dest = os.path.join(workdir, "pulled")
    pulled = offsite(action="pull", name="latest", database=db, dest_dir=dest, target=settings)
    assert pulled["copy"] == "copied" and pulled["path"] == os.path.join(dest, name)
    assert listing(dest) == sorted([name, name + ".globals.sql", name + ".manifest.json"])
    for entry in listing(dest):
        original = os.path.join(os.path.dirname(made["path"]), entry)
        with open(os.path.join(dest, entry), "rb") as a, open(original, "rb") as b:
            assert a.read() == b.read(), entry
        assert os.stat(os.path.join(dest, entry)).st_mode & 0o777 == 0o600
    assert offsite(action="pull", name=name, dest_dir=dest, target=settings)["copy"] == "unchanged"


@pytest.mark.parametrize("how", ["truncate", "flip"])
def test_a_damaged_copy_is_found_and_never_pulled(cluster, workdir, db, keys, target, how):
    settings, damage = target
    made = encrypted_backup(cluster, workdir, db, keys)
    name = os.path.basename(made["path"])
    offsite(action="push", path=made["path"], target=settings)
    damage(name, how)
    bad = offsite(expect_ok=False, action="verify", name=name, target=settings)
    assert [c["name"] for c in bad["checks"] if not c["passed"]] == [name]
    dest = os.path.join(workdir, "pulled")
    refused = offsite(expect_ok=False, action="pull", name=name, dest_dir=dest, target=settings)
    assert "does not match its manifest" in refused["msg"] or "the manifest records" in refused["msg"]
    assert [e for e in listing(dest) if not e.startswith(".")] == []
    # Pushing again repairs it: the copy differs, so it is replaced.
    repaired = offsite(action="push", path=made["path"], target=settings)
    assert repaired["copy"] == "replaced"
    assert all(c["passed"] for c in offsite(action="verify", name=name, target=settings)["checks"])


def test_an_unencrypted_backup_is_pushed_with_a_warning(cluster, workdir, db, target):
    settings, _damage = target
    made = backup(cluster, os.path.join(workdir, "b"), database=db)
    pushed = offsite(action="push", path=made["path"], target=settings)
    assert any("is not encrypted" in w for w in pushed.get("warnings", []))
