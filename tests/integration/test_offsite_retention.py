# -*- coding: utf-8 -*-
"""Retention and monitoring of off-site copies: the prune and backup_info modules through
ansible-playbook against the real servers the test run starts (OpenSSH's sshd, tests/lib/sftpserver.py;
SeaweedFS's S3 gateway, tests/lib/s3server.py), with backups of the test cluster pushed there by the
offsite module.

prune on a target applies the directory's rules (apply_retention_to): check mode removes nothing and
its diff lists what would go; then exactly the planned backups go, each with its role definitions and
manifest; the newest good copy stays even with keep_last 0 and max_age_days 0; a damaged newer copy
does not count as good (verify_checksums re-reads the copies); objects that are not backups of the
database are never touched. backup_info sets the directory and both targets side by side."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os
import shutil

import pytest

from helpers import backup, clone_database, drop_databases, run_module, undocumented_keys
from pglab import postgres_owned_dir, run_playbook
from s3server import s3_server  # noqa: F401 pylint: disable=unused-import
from sftpserver import TEST_USER, damage_file, sftp_server_fixture  # noqa: F401 pylint: disable=unused-import

PREFIX = "offret_"
UTC = datetime.timezone.utc
COMPANIONS = (".globals.sql", ".manifest.json")


def with_companions(*names):
    """The backups ``names`` with their role definitions and manifests."""
    return set(n + suffix for n in names for suffix in ("",) + COMPANIONS)


@pytest.fixture(scope="module")
def made(cluster):
    """Six backups of a database of their own, oldest first, named (as the default name template
    names them) with distinct times; their times are their manifests' started_at, so their order is
    the order they were made in."""
    db = clone_database(cluster, PREFIX + "src")
    work = postgres_owned_dir("lift-it-offret-")
    try:
        directory = os.path.join(work, "b")
        paths = []
        for second in range(6):
            result = backup(cluster, directory, database=db, compression="gzip",
                            name_template="{database}_backup_20261101_00000%d" % second)
            paths.append(result["path"])
        yield dict(db=db, dir=directory, paths=paths, names=[os.path.basename(p) for p in paths], work=work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        drop_databases(cluster, PREFIX)


class Remote(object):
    """A target's module settings on a real server, and direct access to its objects (as the
    server's own administrator, not through the collection)."""

    def __init__(self, kind, settings, root):
        self.kind = kind
        self.settings = settings
        self.root = root

    def location(self):
        """The location the modules name."""
        if self.kind == "sftp":
            return "sftp://%s@%s:%d%s" % (TEST_USER, self.settings["host"], self.settings["port"], self.root)
        return "s3://%s/%s" % (self.settings["bucket"], self.root)

    def names(self):
        raise NotImplementedError

    def put(self, name, data):
        raise NotImplementedError

    def delete(self, name):
        raise NotImplementedError

    def damage(self, name, how):
        raise NotImplementedError


class SFTPRemote(Remote):
    def names(self):
        found = []
        for base, dirs, files in os.walk(self.root):
            for name in files + [d for d in dirs if os.path.islink(os.path.join(base, d))]:
                found.append(os.path.relpath(os.path.join(base, name), self.root))
        return set(found)

    def put(self, name, data):
        path = os.path.join(self.root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)

    def delete(self, name):
        os.remove(os.path.join(self.root, name))

    def damage(self, name, how):
        damage_file(os.path.join(self.root, name), how)


class S3Remote(Remote):
    def __init__(self, server, settings, prefix):
        super(S3Remote, self).__init__("s3", settings, prefix)
        self.server = server

    def names(self):
        client = self.server.client()
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=self.server.bucket, Prefix=self.root + "/")
        return set(item["Key"][len(self.root) + 1:] for page in pages for item in page.get("Contents", ()))

    def put(self, name, data):
        self.server.client().put_object(Bucket=self.server.bucket, Key=self.root + "/" + name, Body=data)

    def delete(self, name):
        self.server.client().delete_object(Bucket=self.server.bucket, Key=self.root + "/" + name)

    def damage(self, name, how):
        self.server.damage(self.root + "/" + name, how)


def sftp_remote(server, label):
    directory = os.path.join(server.root, "retention-%s" % label)
    settings = dict(type="sftp", host=server.host, port=server.port, user=TEST_USER, directory=directory,
                    private_key=server.private(), known_hosts=server.known_hosts)
    return SFTPRemote("sftp", settings, directory)


def s3_remote(server, label):
    prefix = "retention/%s" % label
    return S3Remote(server, dict(server.target_settings(), prefix=prefix), prefix)


def label_of(request):
    return request.node.name.replace("[", "-").strip("]")


@pytest.fixture(params=["sftp", "s3"])
def remote(request):
    if request.param == "sftp":
        return sftp_remote(request.getfixturevalue("sftp_server"), label_of(request))
    return s3_remote(request.getfixturevalue("s3_server"), label_of(request))


def push(path, remote_):
    return run_module("offsite", dict(action="push", path=path, target=remote_.settings))


def prune(remote_, check=False, expect_ok=True, **args):
    return run_module("prune", dict(args, target=remote_.settings), expect_ok, check=check, prune_diff=True)


def info(expect_ok=True, run_as="root", **args):
    """backup_info through its playbook (its task is "Backup info", which run_module does not name)."""
    run = run_playbook("backup_info_module.yml", {"info_args": args, "run_as": run_as})
    result = run.task("Backup info")
    assert result is not None and not undocumented_keys("backup_info", result), undocumented_keys("backup_info", result)
    assert (run.rc == 0) == expect_ok, "backup_info: %s\n%s" % (result.get("msg"), run.stderr[-3000:])
    return result


def names_of(entries):
    return [e["name"] for e in entries]


def test_prune_on_a_target_never_the_newest_good_copy_never_a_foreign_object(made, remote):
    db, names = made["db"], made["names"]
    for path in made["paths"]:
        push(path, remote)
    b0, b1, b2, b3, b4, b5 = names
    # The oldest copy loses its manifest (an interrupted push, a manual deletion): not good, and
    # its time is the one in its name, a month ago. The newest is damaged without a change of size.
    remote.delete(b0 + ".manifest.json")
    remote.damage(b5, "flip")
    foreign = {
        "README.txt": b"not a backup",
        "otherdb_backup_20261101_000001.sql.gz": b"another database's backup",
        "otherdb_backup_20261101_000001.sql.gz.manifest.json": b"{}",
        b1 + ".old": b"a backup's name with another suffix",
        "archive/" + b2: b"a backup's name one level down",
        "archive/" + b2 + ".manifest.json": b"{}",
    }
    for name, data in foreign.items():
        remote.put(name, data)
    everything = with_companions(*names) - {b0 + ".manifest.json"} | set(foreign)
    assert remote.names() == everything

    # Check mode: the plan, the diff, nothing removed.
    planned = prune(remote, check=True, database=db, keep_last=2)
    location = planned["path"]
    assert planned["changed"] is True and remote.names() == everything
    assert location == remote.location() and planned["target"].startswith(location)
    assert sorted(names_of(planned["removed"])) == sorted([b0, b1, b2])
    rules = dict((e["name"], e["rule"]) for e in planned["removed"] + planned["kept"])
    assert rules[b0] == "no_manifest" and rules[b1] == rules[b2] == "not_selected"
    assert rules[b4] == "keep_last" and rules[b3] == "keep_last" and rules[b5] == "no_newer_good_backup"
    assert all(e["path"] == location + "/" + e["name"] for e in planned["removed"] + planned["kept"])
    before = set(planned["diff"]["before"].splitlines())
    after = set(planned["diff"]["after"].splitlines())
    assert planned["diff"]["before_header"] == location
    assert before == everything - set(foreign)  # only backups of the database and their companions
    assert before - after == with_companions(b1, b2) | {b0, b0 + ".globals.sql"}

    # For real: exactly those, each with its role definitions and manifest.
    pruned = prune(remote, database=db, keep_last=2)
    assert sorted(names_of(pruned["removed"])) == sorted([b0, b1, b2]) and pruned["changed"] is True
    assert remote.names() == with_companions(b3, b4, b5) | set(foreign)
    kept = dict((e["name"], e) for e in pruned["kept"])
    assert "newest_good" in kept[b4]["rules"] and kept[b5]["problem"] == "checksum_mismatch"
    assert "diff" in pruned and not any(secret in json.dumps(pruned) for secret in secrets_of(remote))

    # keep_last 0 and max_age_days 0 still keep the newest good copy; the damaged newer one is kept
    # as long as no newer good copy exists, and counts for nothing.
    zero = prune(remote, database=db, keep_last=0, max_age_days=0)
    assert names_of(zero["removed"]) == [b3] and zero["removed"][0]["rule"] == "max_age_days"
    kept = dict((e["name"], e) for e in zero["kept"])
    assert kept[b4]["rule"] == "newest_good" and kept[b5]["rule"] == "no_newer_good_backup"
    assert remote.names() == with_companions(b4, b5) | set(foreign)
    again = prune(remote, database=db, keep_last=0, max_age_days=0)
    assert again["changed"] is False and again["removed"] == []
    assert remote.names() == with_companions(b4, b5) | set(foreign)

    # verify_checksums keeps its meaning on a target: without the re-read the damaged copy (its
    # size unchanged) counts as good, becomes the newest good copy, and the last intact one goes.
    sizes_only = prune(remote, database=db, keep_last=0, verify_checksums=False)
    assert names_of(sizes_only["removed"]) == [b4]
    assert [e["rule"] for e in sizes_only["kept"] if e["name"] == b5] == ["newest_good"]
    assert remote.names() == with_companions(b5) | set(foreign)


def secrets_of(remote_):
    found = [remote_.settings.get("secret_key")] + (remote_.settings.get("private_key") or "").splitlines()[1:2]
    return [s for s in found if s]


def test_prune_on_a_target_that_holds_nothing_yet(made, remote):
    result = prune(remote, database=made["db"], keep_last=0)
    assert result["changed"] is False and result["removed"] == [] and result["kept"] == []
    if remote.kind == "sftp":  # a directory that does not exist; a prefix without objects just lists nothing
        assert any("does not exist" in w for w in result.get("warnings", []))
    assert remote.names() == set()


def test_prune_needs_a_directory_or_a_target_not_both(made, s3_server):  # noqa: F811
    neither = run_module("prune", dict(database=made["db"]), expect_ok=False)
    assert "one of the following is required" in neither["msg"]
    remote_ = s3_remote(s3_server, "both")
    both = run_module("prune", dict(path=made["dir"], target=remote_.settings), expect_ok=False)
    assert "mutually exclusive" in both["msg"]
    assert not any(secret in json.dumps(both) for secret in secrets_of(remote_))


def test_backup_info_sets_the_directory_and_the_targets_side_by_side(made, request):
    db, names = made["db"], made["names"]
    sftp = sftp_remote(request.getfixturevalue("sftp_server"), "info")
    s3 = s3_remote(request.getfixturevalue("s3_server"), "info")
    local = os.path.join(made["work"], "local")
    shutil.copytree(made["dir"], local)
    for entry in [local] + [os.path.join(local, n) for n in os.listdir(local)]:
        shutil.chown(entry, "postgres", "postgres")
    _b0, old, only_local, both, only_remote, newest = names
    # `old` is a month older than it is: its manifest says so (time is the manifest's started_at).
    with open(os.path.join(local, old + ".manifest.json")) as handle:
        manifest = json.load(handle)
    month_ago = datetime.datetime.now(UTC) - datetime.timedelta(days=30)
    manifest["started_at"] = month_ago.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    manifest["finished_at"] = (month_ago + datetime.timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    with open(os.path.join(local, old + ".manifest.json"), "r+") as handle:
        handle.truncate()
        json.dump(manifest, handle)
    # Placed: `old` only on the bucket; `both` here and on both targets, damaged on the bucket;
    # `only_remote` and `newest` on the SFTP server only; `only_local` here only.
    push(os.path.join(local, old), s3)
    for name in (both, only_remote, newest):
        push(os.path.join(local, name), sftp)
    push(os.path.join(local, both), s3)
    s3.damage(both, "flip")
    for name in (_b0, old, only_remote, newest):
        for entry in with_companions(name):
            os.remove(os.path.join(local, entry))

    result = info(path=local, database=db, run_as="postgres",
                  targets=[dict(sftp.settings, name="offsite-sftp"), dict(s3.settings, name="offsite-s3")])
    # The directory, at the top level as before.
    assert result["path"] == local and result["path_exists"] is True
    assert names_of(result["backups"]) == [both, only_local] and result["newest_good"]["name"] == both
    assert result["newest_good_path"] == os.path.join(local, both)
    # Each target, listed the same way, with its newest good copy and that copy's age.
    by_target = dict((t["name"], t) for t in result["targets"])
    assert [t["name"] for t in result["targets"]] == ["offsite-sftp", "offsite-s3"]
    on_sftp, on_s3 = by_target["offsite-sftp"], by_target["offsite-s3"]
    assert names_of(on_sftp["backups"]) == [newest, only_remote, both]
    assert on_sftp["good_count"] == 3 and on_sftp["newest_good"]["name"] == newest
    assert 0 <= on_sftp["newest_good_age_days"] < 0.1 and on_sftp["error"] is None
    assert on_sftp["newest_good_path"] == on_sftp["path"] + "/" + newest
    assert names_of(on_s3["backups"]) == [both, old] and on_s3["good_count"] == 1
    assert on_s3["backups"][0]["problem"] == "checksum_mismatch" and on_s3["backups"][0]["good"] is False
    assert on_s3["newest_good"]["name"] == old and 29.9 < on_s3["newest_good_age_days"] < 30.1
    assert on_s3["path"] == s3.location() and on_s3["target"].startswith(on_s3["path"])
    assert on_sftp["path"] == sftp.location()
    # Side by side, newest first.
    copies = result["copies"]
    assert names_of(copies) == [newest, only_remote, both, only_local, old]
    by_name = dict((c["name"], c) for c in copies)
    assert by_name[newest]["where"] == {"offsite-sftp": {"good": True, "problem": None}}
    assert by_name[newest]["missing_from"] == ["local", "offsite-s3"]
    assert by_name[only_local]["good_in"] == ["local"] and by_name[only_local]["missing_from"] == [
        "offsite-sftp", "offsite-s3"]
    assert by_name[both]["good_in"] == ["local", "offsite-sftp"] and by_name[both]["missing_from"] == []
    assert by_name[both]["where"]["offsite-s3"] == {"good": False, "problem": "checksum_mismatch"}
    assert by_name[old]["good_in"] == ["offsite-s3"] and 29.9 < by_name[old]["age_days"] < 30.1
    assert not any(secret in json.dumps(result) for secret in secrets_of(sftp) + secrets_of(s3))

    # Targets alone (no directory), labelled by their descriptions; the sizes-only listing counts the
    # damaged copy as good.
    quick = info(database=db, verify_checksums=False, targets=[s3.settings])
    assert quick["path"] is None and quick["path_exists"] is False and quick["backups"] == []
    assert quick["targets"][0]["name"] == quick["targets"][0]["target"]
    assert quick["targets"][0]["newest_good"]["name"] == both
    assert [c["good_in"] for c in quick["copies"]] == [[quick["targets"][0]["name"]]] * 2

    # A label taken twice is refused before anything is read.
    clash = info(path=local, database=db, expect_ok=False, targets=[dict(s3.settings, name="local")])
    assert "taken" in clash["msg"]
