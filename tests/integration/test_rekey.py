# -*- coding: utf-8 -*-
"""Key rotation: the rekey module with real age and backups of a real PostgreSQL cluster. A backup
re-encrypted to new recipients opens with the new keys only, keeps its name and its data, and
records the rotation; check mode and diff list what would change; a second run changes nothing;
a wrong identity changes nothing."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat

import pytest

from agekeys import encrypted_backup, keys  # noqa: F401 pylint: disable=unused-import
from helpers import backup, clone_database, drop_databases, listing, run_module, sha256_file, verify
from pglab import run_playbook

PREFIX = "rekey_"


@pytest.fixture
def db(cluster):
    name = clone_database(cluster, PREFIX + "src")
    yield name
    drop_databases(cluster, PREFIX)


def rekey(expect_ok=True, check=False, diff=False, **args):
    return run_module("rekey", args, expect_ok, check=check, diff=diff)


def manifest_of(path):
    with open(path + ".manifest.json") as handle:
        return json.load(handle)


def structure(result):
    return [c for c in result["checks"] if c["name"] == "structure"][0]


def new_recipients(keys):
    return [keys["new"]["recipient"], keys["escrow"]["recipients_file"]]


@pytest.mark.parametrize("fmt, compression", [("plain", "zstd"), ("custom", None)])
def test_a_backup_is_re_encrypted_to_the_new_keys_and_a_second_run_changes_nothing(
        cluster, workdir, db, keys, fmt, compression):
    directory = os.path.join(workdir, "b")
    made = encrypted_backup(cluster, workdir, db, keys, format=fmt,
                            **(dict(compression=compression) if compression else {}))
    path, name = made["path"], os.path.basename(made["path"])
    before_listing, before_sha, before_manifest = listing(directory), sha256_file(path), manifest_of(path)

    planned = rekey(check=True, diff=True, path=path, identity=keys["ops"]["identity"],
                    encryption_recipients=new_recipients(keys))
    assert planned["changed"] is True and planned["rekeyed"] == [name]  # would change
    assert keys["ops"]["recipient"] in planned["diff"]["before"] and keys["new"]["recipient"] in planned["diff"]["after"]
    assert keys["new"]["recipient"] not in planned["diff"]["before"]
    assert listing(directory) == before_listing and sha256_file(path) == before_sha
    assert manifest_of(path) == before_manifest

    done = rekey(path=path, identity=keys["ops"]["identity"], encryption_recipients=new_recipients(keys))
    assert done["changed"] is True and done["rekeyed"] == [name] and done["refused"] == []
    entry = done["backups"][0]
    assert entry["sha256_before"] == before_sha and entry["sha256_after"] == sha256_file(path) != before_sha
    assert listing(directory) == before_listing  # the same names; no staged copy left
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    manifest = manifest_of(path)
    assert manifest["sha256"] == sha256_file(path) and manifest["size_bytes"] == os.path.getsize(path)
    assert sorted(r["recipient"] for r in manifest["recipients"]) == sorted(r["recipient"] for r in done["recipients"])
    assert keys["new"]["recipient"] in [r["recipient"] for r in manifest["recipients"]]
    assert "rekey_pending" not in manifest and len(manifest["rotations"]) == 1
    rotation = manifest["rotations"][0]
    assert rotation["previous_sha256"] == before_sha
    assert keys["ops"]["recipient"] in [r["recipient"] for r in rotation["previous_recipients"]]
    assert manifest["row_counts"] == before_manifest["row_counts"]

    # Without a key the header matches the new recipients; the new keys read it, the old one no more.
    quick = verify(cluster, path)
    assert all(c["passed"] for c in quick["checks"]) and structure(quick)["skipped"]
    for identity in (dict(identity=keys["new"]["identity"]), dict(identity_file=keys["escrow"]["identity_file"])):
        assert structure(verify(cluster, path, **identity))["passed"]
    old = verify(cluster, path, expect_ok=False, identity=keys["ops"]["identity"])
    assert "cannot decrypt it with the identity given" in structure(old)["detail"]
    assert keys["new"]["recipient"] in structure(old)["detail"]
    # The data came through: restored into a scratch database, every table's rows as the manifest says.
    restored = verify(cluster, path, level="restore", identity=keys["new"]["identity"])
    assert restored["row_counts"] and not restored["failed_checks"]

    again = rekey(path=path, identity=keys["new"]["identity"], encryption_recipients=new_recipients(keys))
    assert again["changed"] is False and again["unchanged"] == [name] and sha256_file(path) == entry["sha256_after"]
    assert manifest_of(path) == manifest


def test_a_wrong_identity_changes_nothing_and_names_the_recipients(cluster, workdir, db, keys):
    directory = os.path.join(workdir, "b")
    made = encrypted_backup(cluster, workdir, db, keys, compression="zstd")
    before = (listing(directory), sha256_file(made["path"]), manifest_of(made["path"]))
    for check in (True, False):
        wrong = rekey(expect_ok=False, check=check, path=made["path"], identity=keys["stranger"]["identity"],
                      encryption_recipients=new_recipients(keys))
        assert wrong["refused"] == [os.path.basename(made["path"])]
        assert "the identity given must be one of those it was made for" in wrong["msg"]
        assert keys["ops"]["recipient"] in wrong["msg"] and "SHA256:" in wrong["msg"]
        assert keys["stranger"]["identity"].strip() not in json.dumps(wrong)
        assert (listing(directory), sha256_file(made["path"]), manifest_of(made["path"])) == before


def test_bad_recipients_are_refused_before_anything_is_read(cluster, workdir, db, keys):
    directory = os.path.join(workdir, "b")
    made = encrypted_backup(cluster, workdir, db, keys)
    before = (listing(directory), sha256_file(made["path"]))
    refused = rekey(expect_ok=False, path=made["path"], identity=keys["ops"]["identity"],
                    encryption_recipients=[keys["ops"]["identity_file"]])
    assert "private key" in refused["msg"] and refused["backups"] == []
    assert "AGE-SECRET-KEY" not in json.dumps(refused)
    assert (listing(directory), sha256_file(made["path"])) == before


def test_a_directory_is_rotated_whole_and_unencrypted_backups_are_skipped(cluster, workdir, db, keys):
    directory = os.path.join(workdir, "b")
    first = encrypted_backup(cluster, workdir, db, keys, compression="zstd", name_template="{database}_backup_20261101_000001")
    second = encrypted_backup(cluster, workdir, db, keys, format="custom", name_template="{database}_backup_20261101_000002")
    plain = backup(cluster, directory, database=db, name_template="{database}_backup_20261101_000003")
    names = sorted(os.path.basename(m["path"]) for m in (first, second))
    done = rekey(backup_dir=directory, database=db, identity_file=keys["escrow"]["identity_file"],
                 encryption_recipients=new_recipients(keys))
    assert sorted(done["rekeyed"]) == names and done["not_encrypted"] == [os.path.basename(plain["path"])]
    info = run_playbook("backup_info_module.yml", {"info_args": {"path": directory, "database": db,
                                                                 "verify_checksums": True}, "run_as": "postgres"})
    assert info.rc == 0, info.stderr
    result = info.task("Backup info")
    assert sorted(b["name"] for b in result["backups"] if b["good"]) == sorted(names + [os.path.basename(plain["path"])])
    again = rekey(backup_dir=directory, database=db, identity=keys["new"]["identity"],
                  encryption_recipients=new_recipients(keys))
    assert again["changed"] is False and sorted(again["unchanged"]) == names


def test_the_identity_is_never_shown_even_at_vvv(cluster, workdir, db, keys):
    made = encrypted_backup(cluster, workdir, db, keys)
    run = run_playbook("rekey_module.yml", {"rekey_args": dict(path=made["path"], identity=keys["ops"]["identity"],
                                                               encryption_recipients=new_recipients(keys))},
                       verbosity=3, json_output=False)
    assert run.rc == 0, run.stdout[-3000:]
    secret = keys["ops"]["identity"].strip().splitlines()[-1]
    assert secret.startswith("AGE-SECRET-KEY-") and secret not in run.stdout + run.stderr
