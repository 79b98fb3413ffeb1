# -*- coding: utf-8 -*-
"""The s3 storage driver against a real S3-compatible server (SeaweedFS, tests/lib/s3server.py):
streaming multipart uploads that appear only on commit and are checked end to end, nothing left
by an abort or a killed writer (its upload found and removed as a stale partial), refusal to
overwrite, removal only of what was listed, errors in plain words without secrets; with the
venv's boto3 (integrity checksums on by default, turned off for this server) and the system
Python's older one."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import uuid

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import manifest as manifest_mod
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import s3
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.base import StorageError
from s3server import ACCESS_KEY, SECRET_KEY, free_ports, s3_server  # noqa: F401 pylint: disable=unused-import

MIB = 1024 * 1024
HERE = os.path.dirname(os.path.abspath(__file__))
ROUNDTRIP = os.path.join(HERE, "s3_roundtrip.py")
SYSTEM_PYTHON = "/usr/bin/python3"


def pattern(size, seed=b"x"):
    out, counter = bytearray(), 0
    while len(out) < size:
        out += hashlib.sha256(b"%s-%d" % (seed, counter)).digest() * 32
        counter += 1
    return bytes(out[:size])


def open_storage(server, prefix=None, **options):
    """A storage under a prefix of its own (tests share the bucket, never their objects)."""
    settings = dict(prefix=prefix or "t-%s/sub" % uuid.uuid4().hex[:10], endpoint_url=server.endpoint, region="us-east-1",
                    addressing_style="path", access_key=server.access_key, secret_key=server.secret_key,
                    part_size=5 * MIB, max_attempts=2)
    settings.update(options)
    return s3.S3Storage(server.bucket, **settings)


def storage_settings(server, **options):
    """open_storage's settings without the bucket, under a prefix of their own."""
    settings = dict(prefix="t-%s/sub" % uuid.uuid4().hex[:10], endpoint_url=server.endpoint, region="us-east-1",
                    addressing_style="path", access_key=server.access_key, secret_key=server.secret_key,
                    part_size=5 * MIB, max_attempts=2)
    settings.update(options)
    return settings


def uploads_of(server, store, name=None):
    """The unfinished multipart uploads under the storage's prefix (of ``name``), as the server lists them."""
    page = server.client().list_multipart_uploads(Bucket=server.bucket, Prefix=store.prefix + (name or ""))
    return [u["Key"] for u in page.get("Uploads", ())]


def metadata_of(server, store, name):
    return server.client().head_object(Bucket=server.bucket, Key=store.prefix + name)["Metadata"]


def test_the_server_listens_on_loopback_only(s3_server):
    lines = s3_server.listening()
    print("\n".join(lines))
    assert len(lines) >= len(s3_server.ports)
    assert all(line.split()[3].startswith("127.0.0.1:") for line in lines), lines


def test_ensure_finds_the_bucket_and_says_when_there_is_none(s3_server):
    store = open_storage(s3_server)
    assert store.ensure() is False
    assert store.location == "s3://%s/%s" % (s3_server.bucket, store.prefix.rstrip("/"))
    missing = s3.S3Storage("no-such-bucket-here", endpoint_url=s3_server.endpoint, region="us-east-1",
                           addressing_style="path", access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    with pytest.raises(StorageError) as info:
        missing.ensure()
    assert info.value.errno == errno.ENOENT
    assert "the bucket no-such-bucket-here does not exist at %s" % s3_server.endpoint in str(info.value)


def test_a_20_mb_stream_roundtrips_in_5_mib_parts(s3_server):
    store = open_storage(s3_server)
    data = pattern(20 * 1000 * 1000 + 17)
    sha256 = hashlib.sha256(data).hexdigest()
    with store.create("b.dump") as writer:
        for start in range(0, len(data), 1000003):
            writer.write(data[start:start + 1000003])
        assert writer.size == len(data)
        # Three parts are in: an upload of that name exists, an object does not.
        assert store.stat("b.dump") is None and "b.dump" not in store.entries()[1]
        assert uploads_of(s3_server, store, "b.dump") == [store.prefix + "b.dump"]
        writer.commit()
    assert writer.sha256 == sha256
    assert metadata_of(s3_server, store, "b.dump") == {"sha256": sha256}
    entry = store.stat("b.dump")
    assert (entry.name, entry.kind, entry.size) == ("b.dump", "file", len(data)) and entry.mtime.tzinfo is not None
    assert store.digest("b.dump") == sha256
    with store.open_read("b.dump") as stream:
        assert stream.read(10) == data[:10]
        rest = hashlib.sha256(data[:10])
        while True:
            chunk = stream.read(MIB)
            if not chunk:
                break
            rest.update(chunk)
    assert rest.hexdigest() == sha256
    assert uploads_of(s3_server, store) == []


def test_a_sha256_known_in_advance_is_the_metadata_from_the_start_and_checked(s3_server):
    store = open_storage(s3_server)
    data = pattern(11 * MIB, b"known")
    sha256 = hashlib.sha256(data).hexdigest()
    with store.create("k.dump", sha256=sha256) as writer:
        writer.write(data)
        writer.commit()
    assert metadata_of(s3_server, store, "k.dump") == {"sha256": sha256}
    with pytest.raises(StorageError) as info:
        with store.create("wrong.dump", sha256="0" * 64) as writer:
            writer.write(data)
            writer.commit()
    assert "not to the expected" in str(info.value) and "nothing was published" in str(info.value)
    assert store.stat("wrong.dump") is None and uploads_of(s3_server, store, "wrong.dump") == []


def test_a_large_object_gets_its_metadata_by_a_multipart_copy(s3_server):
    store = open_storage(s3_server)
    store.copy_object_limit, store.copy_part_size = MIB, 5 * MIB  # as if over CopyObject's 5 GiB
    data = pattern(12 * MIB + 5, b"copy")
    with store.create("c.dump") as writer:
        writer.write(data)
        writer.commit()
    assert metadata_of(s3_server, store, "c.dump") == {"sha256": hashlib.sha256(data).hexdigest()}
    assert store.digest("c.dump") == hashlib.sha256(data).hexdigest() and store.stat("c.dump").size == len(data)
    assert uploads_of(s3_server, store) == []


def test_a_small_object_is_one_put_at_commit(s3_server):
    store = open_storage(s3_server)
    with store.create("s.sql") as writer:
        writer.write(b"-- PostgreSQL database dump\n")
        assert uploads_of(s3_server, store) == [] and store.entries() == ([], {})
        writer.commit()
    assert store.digest("s.sql") == hashlib.sha256(b"-- PostgreSQL database dump\n").hexdigest()
    assert metadata_of(s3_server, store, "s.sql") == {"sha256": store.digest("s.sql")}


def test_an_aborted_or_failed_write_leaves_nothing(s3_server):
    store = open_storage(s3_server)
    writer = store.create("a.dump")
    writer.write(pattern(7 * MIB))
    assert uploads_of(s3_server, store, "a.dump")
    writer.abort()
    with pytest.raises(RuntimeError):
        with store.create("w.dump") as writer:
            writer.write(pattern(6 * MIB))
            raise RuntimeError("the dump failed")
    assert store.entries() == ([], {}) and store.stat("a.dump") is None
    assert uploads_of(s3_server, store) == []
    with pytest.raises(StorageError):
        writer.commit()


def test_a_killed_writer_leaves_no_object_and_its_upload_is_a_stale_partial(s3_server):
    store = open_storage(s3_server)
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    writer = subprocess.Popen([sys.executable, ROUNDTRIP, "hang", s3_server.endpoint, s3_server.bucket, store.prefix, "k.dump"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    try:
        assert writer.stdout.readline() == b"uploading\n"
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert store.stat("k.dump") is None and store.entries() == ([], {})
    assert store.stale_partials() == []  # younger than a day: maybe still being written
    stale = store.stale_partials(older_than_hours=0)
    assert len(stale) == 1 and stale[0].startswith(".k.dump.partial-s3upload-"), stale
    assert store.remove_partials(stale + [".other.partial-s3upload-1", "unrelated"]) == stale
    assert uploads_of(s3_server, store) == [] and store.stale_partials(older_than_hours=0) == []


def test_names_are_never_overwritten_unless_asked(s3_server):
    store = open_storage(s3_server)
    store.write("m.json", "{}")
    with pytest.raises(StorageError) as info:
        store.write("m.json", "{\"x\": 1}")
    assert info.value.errno == errno.EEXIST and "already exists" in str(info.value)
    with pytest.raises(StorageError):
        store.create("m.json")
    store.write("m.json", "{\"x\": 1}", replace=True)
    with store.open_read("m.json") as stream:
        assert stream.read() == b"{\"x\": 1}"


@pytest.mark.parametrize("size", [100, 6 * MIB], ids=["put", "multipart"])
def test_a_name_taken_while_writing_is_not_overwritten(s3_server, size):
    """The HEAD at create passed; another writer takes the name before commit: the conditional
    publish (If-None-Match, which this botocore sends and SeaweedFS honours) refuses."""
    store = open_storage(s3_server)
    writer = store.create("r.dump")
    writer.write(pattern(size))
    store.write("r.dump", b"the other writer's")
    with pytest.raises(StorageError) as info:
        writer.commit()
    assert info.value.errno == errno.EEXIST, info.value
    with store.open_read("r.dump") as stream:
        assert stream.read() == b"the other writer's"
    assert uploads_of(s3_server, store) == []


def test_remove_takes_only_what_was_listed(s3_server):
    store = open_storage(s3_server)
    store.write("a.sql", b"a")
    store.write("b.sql", b"b")
    _entries, identities = store.entries()
    store.write("b.sql", b"someone else's", replace=True)
    with pytest.raises(StorageError) as info:
        store.remove("b.sql", identities["b.sql"])
    assert info.value.errno == errno.EAGAIN and "changed since it was examined" in str(info.value)
    store.remove("a.sql", identities["a.sql"])
    store.remove("a.sql", identities["a.sql"])  # gone already: nothing to do
    assert sorted(store.entries()[1]) == ["b.sql"]


LOCKED_BUCKET = "lift-locked-storage"


@pytest.fixture(scope="module")
def locked_bucket(s3_server):
    """A bucket made with Object Lock enabled (and so versioned)."""
    return s3_server.create_locked_bucket(LOCKED_BUCKET)


def test_on_a_versioned_bucket_remove_deletes_the_version_for_good(s3_server, locked_bucket):
    """No delete marker (which would leave the data stored, hidden): the version examined goes; an
    older version of the name, which a versioned bucket keeps, is then what the name shows."""
    store = s3.S3Storage(locked_bucket, **storage_settings(s3_server))
    store.write("a.sql", b"a")
    store.write("b.sql", b"first")
    store.write("b.sql", b"second", replace=True)
    _entries, identities = store.entries()
    store.remove("a.sql", identities["a.sql"])
    assert s3_server.versions(locked_bucket, store.prefix + "a.sql") == []
    store.remove("b.sql", identities["b.sql"])
    with store.open_read("b.sql") as stream:
        assert stream.read() == b"first"
    assert [kind for _key, _version, kind in s3_server.versions(locked_bucket, store.prefix + "b.sql")] == ["version"]


@pytest.mark.parametrize("size", [100, 12 * MIB], ids=["put", "multipart"])
def test_with_object_lock_every_upload_is_locked_and_cannot_be_removed(s3_server, locked_bucket, size):
    store = s3.S3Storage(locked_bucket, object_lock_days=2, object_lock_mode="GOVERNANCE", **storage_settings(s3_server))
    assert store.ensure() is False
    data = pattern(size)
    with store.create("f.dump", sha256=hashlib.sha256(data).hexdigest()) as writer:
        writer.write(data)
        writer.commit()
    store.write("f.dump.manifest.json", "{}")
    locks = [store.object_lock(n) for n in ("f.dump", "f.dump.manifest.json")]
    asked = store.lock_request()["ObjectLockRetainUntilDate"]
    assert [(lock["mode"], lock["retain_until"], lock["retained"]) for lock in locks] == [("GOVERNANCE", asked, True)] * 2
    # The server's time when the lock was asked for, plus the days (this HEAD came seconds later).
    assert datetime.timedelta(0) <= locks[0]["server_time"] + datetime.timedelta(days=2) - asked < datetime.timedelta(minutes=1)
    _entries, identities = store.entries()
    with pytest.raises(StorageError) as info:
        store.remove("f.dump", identities["f.dump"])
    assert info.value.errno == errno.EACCES
    assert "the server refuses, it is under Object Lock (GOVERNANCE until %s" % s3.utc_text(asked) in str(info.value)
    assert store.digest("f.dump") == hashlib.sha256(data).hexdigest()
    # A file whose sha256 is not known before the upload is refused: a locked object's metadata
    # cannot be rewritten afterwards.
    with pytest.raises(StorageError) as info:
        store.create("g.dump")
    assert info.value.errno == errno.EINVAL and "must be known before its upload" in str(info.value)


def test_object_lock_on_a_bucket_without_it_is_refused_before_any_upload(s3_server):
    store = open_storage(s3_server, object_lock_days=1)
    for attempt in (store.ensure, lambda: store.create("x.dump", sha256="0" * 64), lambda: store.write("m", b"{}")):
        with pytest.raises(StorageError) as info:
            attempt()
        assert info.value.errno == errno.EOPNOTSUPP
        assert "does not have Object Lock enabled" in str(info.value) and "nothing was uploaded" in str(info.value)
    assert store.entries() == ([], {}) and uploads_of(s3_server, store) == []


def test_wrong_credentials_are_refused_in_plain_words_without_the_secret(s3_server):
    wrong = "Wr0ng-Secret-Never-Shown"
    store = open_storage(s3_server, secret_key=wrong, session_token="Sess10n-T0ken-Never-Shown")
    for attempt in (store.ensure, store.entries, lambda: store.write("x", b"x")):
        with pytest.raises(StorageError) as info:
            attempt()
        message = str(info.value)
        assert "refused the credentials" in message or "access denied" in message, message
        assert s3_server.endpoint in message and s3_server.bucket in message
        assert wrong not in message and "Sess10n" not in message
    assert wrong not in repr(store) and wrong not in repr(vars(store))
    # (With the session token, SeaweedFS looks the key up as a temporary one: "does not know the access key".)
    with pytest.raises(StorageError) as info:
        open_storage(s3_server, secret_key=wrong).ensure()
    assert "the secret key does not match the access key" in str(info.value) and wrong not in str(info.value)
    with pytest.raises(StorageError) as info:
        open_storage(s3_server, access_key="nobody").ensure()
    assert "does not know the access key" in str(info.value)


def test_an_unreachable_endpoint_is_named(s3_server):
    port = free_ports(1)[0]
    store = open_storage(s3_server, endpoint_url="http://127.0.0.1:%d" % port, max_attempts=1, connect_timeout=2)
    with pytest.raises(StorageError) as info:
        store.ensure()
    assert "cannot reach the endpoint" in str(info.value) and "127.0.0.1:%d" % port in str(info.value)


def test_manifests_are_validated_and_limited(s3_server):
    store = open_storage(s3_server)
    manifest = manifest_mod.build_manifest(backup_name="b.dump", database="db", format="custom", compression="gzip",
                                           size_bytes=3, sha256="a" * 64, started_at="2026-01-01T00:00:00.000000Z",
                                           finished_at="2026-01-01T00:00:01.000000Z", row_counts={"public.t": 3})
    store.write("good.manifest.json", manifest_mod.dumps(manifest))
    assert store.read_manifest("good.manifest.json") == manifest
    store.write("big.manifest.json", b" " * manifest_mod.MAX_MANIFEST_BYTES + b"{}")
    store.write("bad.manifest.json", b"{not json")
    store.write("wrong.manifest.json", json.dumps(dict(manifest, sha256="short")))
    for name, problem in (("big.manifest.json", "is larger than"), ("bad.manifest.json", "is not valid JSON"),
                          ("wrong.manifest.json", "sha256 is not 64"), ("none.manifest.json", "no such object")):
        with pytest.raises(manifest_mod.ManifestError) as info:
            store.read_manifest(name)
        assert problem in str(info.value), name


def test_entries_are_the_objects_directly_under_the_prefix(s3_server):
    store = open_storage(s3_server, prefix="/ent-%s/" % uuid.uuid4().hex[:8])
    client = s3_server.client()
    base = store.prefix
    for key in (base + "a.sql", base + "b.sql", base + "deeper/c.sql", base[:-1] + "other/d.sql", base,
                base[:-1] + "x"):
        client.put_object(Bucket=s3_server.bucket, Key=key, Body=b"1")
    entries, identities = store.entries()
    assert sorted(e.name for e in entries) == ["a.sql", "b.sql"] and sorted(identities) == ["a.sql", "b.sql"]
    assert all(e.kind == "file" and e.size == 1 and e.mtime.tzinfo is not None for e in entries)


def test_entries_follow_the_pages(s3_server):
    store = open_storage(s3_server)
    for number in range(7):
        store.write("f%d.sql" % number, b"x" * number)
    store.list_page_size = 2
    entries, identities = store.entries()
    assert sorted((e.name, e.size) for e in entries) == [("f%d.sql" % n, n) for n in range(7)] and len(identities) == 7


def test_what_s3_cannot_do_is_said(s3_server):
    store = open_storage(s3_server)
    assert store.free_bytes() is None
    with pytest.raises(StorageError) as info:
        store.promote("staged", "b.dump")
    assert "S3 has no rename" in str(info.value)
    with pytest.raises(StorageError) as info:
        store.open_read("missing.dump")
    assert info.value.errno == errno.ENOENT and "missing.dump" in str(info.value)
    assert not store.exists("missing.dump")
    store.close()


@pytest.mark.skipif(not os.path.exists(SYSTEM_PYTHON), reason="no system Python")
def test_a_roundtrip_with_the_system_pythons_boto3(s3_server):
    check = subprocess.run([SYSTEM_PYTHON, "-c", "import boto3"], stderr=subprocess.DEVNULL, check=False)
    if check.returncode != 0:
        pytest.skip("the system Python has no boto3 (python3-boto3)")
    store = open_storage(s3_server)
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    env.pop("AWS_PROFILE", None)
    done = subprocess.run([SYSTEM_PYTHON, ROUNDTRIP, "roundtrip", s3_server.endpoint, s3_server.bucket, store.prefix],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, check=False, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    summary = json.loads(done.stdout.decode().splitlines()[-1])
    print(summary)
    assert summary["checksum_setting"] is None  # botocore < 1.36: the TypeError branch
    assert summary["ensure"] is False and summary["listed_before_commit"] is False
    assert summary["metadata_sha256"] == summary["expected_sha256"] == summary["digest"]
    assert summary["size"] == 12 * MIB + 3
    assert summary["manifest_roundtrip"] and summary["replace_refused"]
    assert summary["after_abort"] == ["big.bin", "big.bin.manifest.json"] and summary["uploads_after_abort"] == []
    assert summary["after_remove"] == []


def test_the_venvs_botocore_sends_content_md5_and_no_checksums(s3_server):
    """boto3 >= 1.36 would add CRC checksums (aws-chunked trailers) that many S3-compatible servers
    refuse; the uploads carry Content-MD5 only."""
    store = open_storage(s3_server)
    config = store.client().meta.config
    assert config.request_checksum_calculation == "when_required"
    assert config.response_checksum_validation == "when_required"
    sent = []
    store.client().meta.events.register("before-send.s3", lambda request, **_: sent.append(dict(request.headers)))
    store.write("m.json", b"{}")
    with store.create("b.dump") as writer:
        writer.write(pattern(6 * MIB))
        writer.commit()
    uploads = [headers for headers in sent if "Content-MD5" in headers]
    assert len(uploads) == 3  # the manifest, two parts
    for headers in sent:
        assert not [h for h in headers if h.lower().startswith("x-amz-checksum") or h.lower() == "x-amz-trailer"], headers
