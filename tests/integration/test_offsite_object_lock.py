# -*- coding: utf-8 -*-
"""Immutable off-site copies (S3 Object Lock): the offsite, prune and backup_info modules through
ansible-playbook against the real SeaweedFS the test run starts (tests/lib/s3server.py), in a bucket
made with Object Lock enabled, with backups of the test cluster.

What SeaweedFS 4.48 does, as these tests rely on it: a bucket made with ObjectLockEnabledForBucket
is versioned; PutObject and CreateMultipartUpload take ObjectLockMode and ObjectLockRetainUntilDate
and HEAD reports them; deleting a locked version is refused (403 AccessDenied), also to the
server's administrator (GOVERNANCE only with BypassGovernanceRetention); a DELETE without a version
answers success with a delete marker, which hides the object while its locked version stays; a
bucket without Object Lock answers GetObjectLockConfiguration with
ObjectLockConfigurationNotFoundError, and refuses lock headers (InvalidRequest).

A push with object_lock_days locks every object of the copy until the server's time plus the days,
and a second push leaves it as it is, while a copy that differs (planted on top) cannot be replaced
as long as it is locked; a bucket without Object Lock is refused before anything is uploaded; prune with keep_last 0 and
max_age_days 0 removes the unlocked copies for good (no version, no delete marker left) and keeps,
whole, every copy one of whose objects the server still retains, reporting it in `retained`, until
its date has passed by the server's clock; a removal the server refuses all the same (credentials
that cannot read the locks) is an error naming why, and leaves the copy whole; backup_info shows
each copy's lock."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os
import shutil
import time

import botocore.exceptions
import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.retention import policy as retention
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.retention.apply import apply_retention_to
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import s3
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.base import StorageError
from helpers import backup, clone_database, drop_databases, run_module, undocumented_keys
from pglab import postgres_owned_dir, run_playbook
from s3server import s3_server  # noqa: F401 pylint: disable=unused-import

PREFIX = "offlock_"
LOCKED_BUCKET = "lift-locked"
COMPANIONS = ("", ".globals.sql", ".manifest.json")
DAY = datetime.timedelta(days=1)
POLL_INTERVAL = 0.2


@pytest.fixture(scope="module")
def made(cluster):
    """Five backups of a database of their own, oldest first, with distinct times in their names;
    their manifests' started_at (their times) are in the order they were made."""
    db = clone_database(cluster, PREFIX + "src")
    work = postgres_owned_dir("lift-it-offlock-")
    try:
        directory = os.path.join(work, "b")
        paths = [backup(cluster, directory, database=db, compression="gzip",
                        name_template="{database}_backup_20261101_00000%d" % n)["path"] for n in range(5)]
        yield dict(db=db, paths=paths, names=[os.path.basename(p) for p in paths], work=work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        drop_databases(cluster, PREFIX)


@pytest.fixture(scope="module")
def locked_bucket(s3_server):  # noqa: F811
    """A bucket made with Object Lock enabled, as an operator makes one for immutable copies."""
    return s3_server.create_locked_bucket(LOCKED_BUCKET)


class Place(object):
    """A prefix of a bucket on the test server: the modules' target settings for it, and the
    server's own view of its objects (as the server's administrator, not through the collection)."""

    def __init__(self, server, bucket, label, **settings):
        self.server = server
        self.bucket = bucket
        self.prefix = "lock/%s" % label
        self.settings = dict(server.target_settings(), bucket=bucket, prefix=self.prefix, **settings)
        self.client = server.client()

    def key(self, name):
        return self.prefix + "/" + name

    def names(self):
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix + "/")
        return set(item["Key"][len(self.prefix) + 1:] for page in pages for item in page.get("Contents", ()))

    def head(self, name):
        return self.client.head_object(Bucket=self.bucket, Key=self.key(name))

    def versions(self, name):
        return [v for v in self.server.versions(self.bucket, self.key(name)) if v[0] == self.key(name)]

    def lock(self, name, mode, until, bypass=False):
        """Set (or, GOVERNANCE with ``bypass``, shorten) the retention of ``name``'s current version."""
        extra = dict(BypassGovernanceRetention=True) if bypass else {}
        self.client.put_object_retention(Bucket=self.bucket, Key=self.key(name), **dict(
            extra, Retention={"Mode": mode, "RetainUntilDate": until}))

    def server_time(self, name):
        return s3.server_time(self.head(name))

    def location(self):
        return "s3://%s/%s" % (self.bucket, self.prefix)


def copy_of(name):
    return set(name + suffix for suffix in COMPANIONS)


def objects_of(name):
    """The objects of a copy, in one order."""
    return sorted(copy_of(name))


def offsite(expect_ok=True, **args):
    return run_module("offsite", args, expect_ok)


def prune(place, check=False, expect_ok=True, **args):
    return run_module("prune", dict(args, target=place.settings), expect_ok, check=check)


def info(**args):
    """backup_info through its playbook (its task is "Backup info", which run_module does not name)."""
    run = run_playbook("backup_info_module.yml", {"info_args": args})
    result = run.task("Backup info")
    assert result is not None and not undocumented_keys("backup_info", result), undocumented_keys("backup_info", result)
    assert run.rc == 0, "backup_info: %s\n%s" % (result.get("msg"), run.stderr[-3000:])
    return result


def names_of(entries):
    return [e["name"] for e in entries]


def wait_until_passed(place, name, moment, timeout=60):
    """Poll the server's clock (the Date of its answers) until it is past ``moment`` and the driver's
    margin: what the server, not this host, says about a retention's end."""
    deadline = time.monotonic() + timeout
    while place.server_time(name) <= moment + s3.LOCK_MARGIN:
        assert time.monotonic() < deadline, "the server's clock did not pass %s in %ds" % (moment, timeout)
        time.sleep(POLL_INTERVAL)


def test_a_copy_pushed_with_object_lock_stays_immutable_and_is_not_pushed_again(made, s3_server, locked_bucket):  # noqa: F811
    place = Place(s3_server, locked_bucket, "push", object_lock_days=3)
    path, name, db = made["paths"][0], made["names"][0], made["db"]
    pushed = offsite(action="push", path=path, target=place.settings)
    assert pushed["copy"] == "copied" and pushed["changed"] is True
    assert place.names() == copy_of(name)

    heads = dict((n, place.head(n)) for n in objects_of(name))
    server_now = s3.server_time(heads[name])
    assert [h["ObjectLockMode"] for h in heads.values()] == ["COMPLIANCE"] * 3
    dates = set(h["ObjectLockRetainUntilDate"] for h in heads.values())
    assert len(dates) == 1, "the objects of one copy share one date: %s" % dates
    until = dates.pop()
    # The server's time at the push plus 3 days (the push took less than a minute).
    assert datetime.timedelta(0) <= server_now + 3 * DAY - until < datetime.timedelta(minutes=1), (server_now, until)

    # The server refuses to delete a locked version, to its own administrator too (these credentials).
    for n, head in heads.items():
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            place.client.delete_object(Bucket=place.bucket, Key=place.key(n), VersionId=head["VersionId"])
        assert refused.value.response["Error"]["Code"] == "AccessDenied", n
    # A DELETE without a version answers success with a delete marker: the manifest disappears from
    # listings (the copy has none then, and is not good), its locked version stays, and removing the
    # marker brings the same version back.
    manifest = name + ".manifest.json"
    marker = place.client.delete_object(Bucket=place.bucket, Key=place.key(manifest))
    assert marker["DeleteMarker"] is True and manifest not in place.names()
    hidden = offsite(action="list", database=db, target=place.settings)
    assert [(b["name"], b["problem"]) for b in hidden["backups"]] == [(name, "no_manifest")]
    assert (place.key(manifest), heads[manifest]["VersionId"], "version") in place.versions(manifest)
    place.client.delete_object(Bucket=place.bucket, Key=place.key(manifest), VersionId=marker["VersionId"])
    assert place.head(manifest)["VersionId"] == heads[manifest]["VersionId"]

    # Pushed again: the copy is the same, left as it is (its retention is not extended).
    again = offsite(action="push", path=path, target=place.settings)
    assert again["copy"] == "unchanged" and again["changed"] is False
    after = [place.head(n) for n in objects_of(name)]
    assert [(a["VersionId"], a["ObjectLockRetainUntilDate"]) for a in after] == [
        (heads[n]["VersionId"], until) for n in objects_of(name)]
    assert all(len(place.versions(n)) == 1 for n in copy_of(name))
    checked = offsite(action="verify", name=name, target=place.settings)
    assert all(c["passed"] for c in checked["checks"])

    # Someone who can write to the bucket puts another backup on top (a new, unlocked version: what
    # readers see now). A push would replace the copy, manifest first: the server refuses, the push
    # fails naming the lock, and every locked version is still stored.
    place.client.put_object(Bucket=place.bucket, Key=place.key(name), Body=b"planted")
    refused = offsite(expect_ok=False, action="push", path=path, target=place.settings)
    assert "the server refuses, it is under Object Lock (COMPLIANCE until %s" % s3.utc_text(until) in refused["msg"]
    assert all((place.key(n), heads[n]["VersionId"], "version") in place.versions(n) for n in objects_of(name))


def test_object_lock_on_a_bucket_without_it_is_refused_before_anything_is_uploaded(made, s3_server):  # noqa: F811
    place = Place(s3_server, s3_server.bucket, "plain-bucket", object_lock_days=3)
    refused = offsite(expect_ok=False, action="push", path=made["paths"][0], target=place.settings)
    assert "does not have Object Lock enabled" in refused["msg"] and "nothing was uploaded" in refused["msg"]
    assert s3_server.bucket in refused["msg"] and s3_server.secret_key not in json.dumps(refused)
    assert place.names() == set()
    uploads = place.client.list_multipart_uploads(Bucket=place.bucket, Prefix=place.prefix + "/")
    assert uploads.get("Uploads", []) == []


def test_prune_keeps_whole_every_copy_the_server_retains_and_removes_the_others_for_good(made, s3_server,  # noqa: F811
                                                                                         locked_bucket):
    db = made["db"]
    b0, b1, b2, b3, b4 = made["names"]
    place = Place(s3_server, locked_bucket, "prune")
    locked = dict(place.settings, object_lock_days=2)
    # b1 pushed with Object Lock; the others without (in the same bucket: nothing locks them), then
    # b3's manifest alone locked in GOVERNANCE mode by the bucket's administrator.
    for path, name in zip(made["paths"], made["names"]):
        offsite(action="push", path=path, target=locked if name == b1 else place.settings)
    b3_until = (place.server_time(b3) + 2 * DAY).replace(microsecond=0)
    place.lock(b3 + ".manifest.json", "GOVERNANCE", b3_until)
    everything = set().union(*(copy_of(n) for n in made["names"]))
    assert place.names() == everything

    # Check mode: what would go and what the server retains; nothing removed.
    planned = prune(place, check=True, database=db, keep_last=0, max_age_days=0)
    assert names_of(planned["removed"]) == [b2, b0] and planned["changed"] is True
    assert names_of(planned["retained"]) == [b3, b1] and place.names() == everything
    kept = dict((e["name"], e) for e in planned["kept"])
    assert names_of(planned["kept"]) == [b4, b3, b1] and kept[b4]["rule"] == "newest_good"
    assert kept[b1]["rule"] == kept[b3]["rule"] == "object_lock" and kept[b1]["rules"] == ["object_lock", "max_age_days"]

    pruned = prune(place, database=db, keep_last=0, max_age_days=0)
    assert names_of(pruned["removed"]) == [b2, b0] and pruned["changed"] is True
    # Removed for good: no version and no delete marker is left of b0 and b2 (a DELETE without a
    # version would have left their data stored under delete markers).
    assert place.names() == copy_of(b1) | copy_of(b3) | copy_of(b4)
    assert [place.versions(n) for n in copy_of(b0) | copy_of(b2)] == [[]] * 6
    # Kept whole: b3's backup and role definitions, which nothing locks, are there with its manifest.
    retained = dict((e["name"], e) for e in pruned["retained"])
    assert retained[b1]["mode"] == "COMPLIANCE" and retained[b1]["rule"] == "max_age_days"
    assert sorted(o["name"] for o in retained[b1]["objects"]) == sorted(copy_of(b1))
    b1_until = place.head(b1)["ObjectLockRetainUntilDate"]
    assert retained[b1]["retain_until"] == b1_until.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert [o["name"] for o in retained[b3]["objects"]] == [b3 + ".manifest.json"]
    assert retained[b3]["mode"] == "GOVERNANCE" and retained[b3]["retain_until"] == b3_until.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert retained[b3]["path"] == place.location() + "/" + b3 and retained[b3]["legal_hold"] is False
    again = prune(place, database=db, keep_last=0, max_age_days=0)
    assert again["changed"] is False and again["removed"] == [] and names_of(again["retained"]) == [b3, b1]

    # backup_info shows each copy's lock as the server reports it.
    listed = info(database=db, verify_checksums=False, targets=[place.settings])["targets"][0]
    locks = dict((b["name"], b["object_lock"]) for b in listed["backups"])
    assert locks[b4] is None
    assert locks[b1] == dict(retain_until=retained[b1]["retain_until"], mode="COMPLIANCE", legal_hold=False,
                             immutable=True)
    # b3: only its manifest is locked - no date for the whole copy, not immutable.
    assert locks[b3] == dict(retain_until=None, mode="GOVERNANCE", legal_hold=False, immutable=False)

    # Once the server's clock has passed a copy's date, prune removes it: b3's manifest's retention
    # shortened (GOVERNANCE, by the administrator) to a few seconds from the server's now.
    soon = (place.server_time(b3) + datetime.timedelta(seconds=2)).replace(microsecond=0)
    place.lock(b3 + ".manifest.json", "GOVERNANCE", soon, bypass=True)
    wait_until_passed(place, b3, soon)
    expired = prune(place, database=db, keep_last=0, max_age_days=0)
    assert names_of(expired["removed"]) == [b3] and names_of(expired["retained"]) == [b1]
    assert place.names() == copy_of(b1) | copy_of(b4)
    assert [place.versions(n) for n in copy_of(b3)] == [[]] * 3


class LockBlindStorage(s3.S3Storage):
    """The s3 driver with credentials that may not read Object Lock (on AWS, without
    s3:GetObjectRetention and s3:GetObjectLegalHold, HEAD answers carry no lock): the server, real,
    still enforces the lock; only what this client sees of it is taken away."""

    def head(self, key):
        answer = super(LockBlindStorage, self).head(key)
        if answer is not None:
            answer = dict((k, v) for k, v in answer.items() if not k.startswith("ObjectLock"))
        return answer


def test_a_removal_the_server_refuses_is_an_error_that_leaves_the_copy_whole(made, s3_server, locked_bucket):  # noqa: F811
    db = made["db"]
    b0, b1, b2 = made["names"][:3]
    place = Place(s3_server, locked_bucket, "refused")
    offsite(action="push", path=made["paths"][0], target=dict(place.settings, object_lock_days=1))
    for path in made["paths"][1:3]:
        offsite(action="push", path=path, target=place.settings)
    settings = dict((k, v) for k, v in place.settings.items() if k != "type")
    store = LockBlindStorage(**settings)
    outcome = apply_retention_to(store, retention.Rules(keep_last=0, max_age_days=0), database=db)
    store.close()
    # b1 (not locked) went; b0 could not: the server refused its backup, its first object, so its role
    # definitions and manifest are there too; nothing of it was seen as retained.
    assert [d.name for d in outcome.removed] == [b1] and outcome.retained == []
    assert [e["path"] for e in outcome.errors] == [place.location() + "/" + b0]
    message = outcome.errors[0]["msg"]
    assert "cannot remove s3://%s/%s" % (place.bucket, place.key(b0)) in message
    assert "s3:DeleteObjectVersion" in message and "s3:GetObjectRetention" in message
    assert "nothing of this backup was removed" in message and s3_server.secret_key not in message
    assert place.names() == copy_of(b0) | copy_of(b2)
    # Seen by the driver that reads the locks, the refusal is explained by the lock itself.
    with s3.S3Storage(**settings) as seeing:
        _entries, identities = seeing.entries()
        with pytest.raises(StorageError) as info_:
            seeing.remove(b0, identities[b0])
    assert "the server refuses, it is under Object Lock (COMPLIANCE until " in str(info_.value)
