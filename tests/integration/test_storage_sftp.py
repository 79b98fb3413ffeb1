# -*- coding: utf-8 -*-
"""The SFTP storage driver (storage/sftp.py) against a real OpenSSH sshd started by the test run
(tests/lib/sftpserver.py): atomic publication, leftovers of killed writers, replacement, removal
only of what was listed and never through a symlink, host keys checked, key logins only, a
server that goes away mid-upload; and a roundtrip with Debian's paramiko (/usr/bin/python3)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys

import pytest

from sftpserver import TEST_USER, SFTPServer, listening_sockets, sftp_server_fixture, usable  # noqa: F401 pylint: disable=unused-import

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import checksums
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import manifest as manifest_mod
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import atomic_files
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.base import StorageError
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.sftp import SFTPStorage

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "sftp_roundtrip.py")
SYSTEM_PYTHON = "/usr/bin/python3"
MIB = 1024 * 1024


@pytest.fixture(name="store")
def store_fixture(sftp_server, request):
    """A fresh, ensured directory on the server for each test (and its local path)."""
    store = sftp_server.storage(directory=request.node.name)
    store.ensure()
    yield store
    store.close()


def local(store):
    return store.directory


def listing(store):
    return sorted(os.listdir(local(store)))


def settings_file(server, tmp_path, directory, **extra):
    settings = dict(host=server.host, port=server.port, user=TEST_USER, directory=os.path.join(server.root, directory),
                    private_key_file=server.client_key, known_hosts=server.known_hosts, connect_timeout=5)
    settings.update(extra)
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(settings))
    return str(path)


def test_sshd_listens_on_127_0_0_1_only(sftp_server):
    addresses, lines = sftp_server.listening()
    print("\n".join(lines))
    assert addresses == ["127.0.0.1:%d" % sftp_server.port], lines


def test_ensure_creates_a_private_directory_once_and_refuses_a_file(sftp_server):
    store = sftp_server.storage(directory="made/below")
    assert store.ensure() is True and store.ensure() is False
    assert stat.S_IMODE(os.stat(store.directory).st_mode) == 0o700
    with open(os.path.join(sftp_server.root, "a-file"), "w") as handle:
        handle.write("x")
    with pytest.raises(StorageError) as info:
        sftp_server.storage(directory="a-file").ensure()
    assert "is not a directory" in str(info.value) and "sftp://%s@127.0.0.1:%d" % (TEST_USER, sftp_server.port) in str(info.value)
    store.close()


def test_a_20_mb_stream_roundtrips(store):
    written = hashlib.sha256()
    with store.create("big.sql") as writer:
        for _block in range(20):
            block = os.urandom(MIB)
            written.update(block)
            writer.write(block)
        writer.commit()
    assert writer.size == 20 * MIB
    assert listing(store) == ["big.sql"]
    assert stat.S_IMODE(os.stat(os.path.join(local(store), "big.sql")).st_mode) == 0o600
    read = hashlib.sha256()
    with store.open_read("big.sql") as stream:
        first = stream.read(1000)
        read.update(first)
        while True:
            chunk = stream.read(1024 * 1024 + 7)
            if not chunk:
                break
            read.update(chunk)
    assert len(first) == 1000
    assert read.hexdigest() == written.hexdigest() == store.digest("big.sql")
    entry = store.stat("big.sql")
    assert (entry.kind, entry.size) == ("file", 20 * MIB) and entry.mtime.tzinfo is not None


def test_nothing_under_the_final_name_before_commit_nor_after_abort(store):
    writer = store.create("b.sql")
    writer.write(b"-- PostgreSQL database dump\n")
    assert listing(store) == [writer.temp_name] and writer.temp_name.startswith(".b.sql.partial-")
    assert stat.S_IMODE(os.stat(os.path.join(local(store), writer.temp_name)).st_mode) == 0o600
    assert store.stat("b.sql") is None
    writer.abort()
    assert listing(store) == []
    with pytest.raises(RuntimeError):
        with store.create("c.sql") as writer:
            writer.write(b"half")
            raise RuntimeError("the dump failed")
    assert listing(store) == []


def test_a_killed_writer_leaves_only_its_temporary_which_is_then_stale(sftp_server, store, tmp_path):
    settings = settings_file(sftp_server, tmp_path, os.path.basename(store.directory))
    writer = subprocess.Popen([sys.executable, SCRIPT, "hold", settings, "killed.sql", str(3 * MIB)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        temp_name = writer.stdout.readline().decode().strip()  # written, still uploading
        assert temp_name == ".killed.sql%s%s-%d" % (atomic_files.PARTIAL_MARK, atomic_files.short_hostname(), writer.pid)
        live = store.create("live.sql")  # this process's own writer: never stale
        assert store.stale_partials() == []
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert listing(store) == sorted([temp_name, live.temp_name])
    assert store.stat("killed.sql") is None
    assert store.stale_partials() == [temp_name]
    assert store.remove_partials([temp_name]) == [temp_name]
    assert listing(store) == [live.temp_name]
    with pytest.raises(StorageError):
        store.remove_partials(["live.sql"])  # not a temporary: never removed this way
    live.abort()
    assert listing(store) == []


def test_replace_false_refuses_an_existing_name_replace_true_replaces_it(store):
    store.write("m.json", "{}")
    with pytest.raises(StorageError) as info:
        store.write("m.json", b"{\"x\": 1}")
    assert "refusing to overwrite m.json: it already exists" in str(info.value)
    assert listing(store) == ["m.json"]  # the refused write's temporary is gone too
    before = os.stat(os.path.join(local(store), "m.json")).st_ino
    store.write("m.json", "{\"x\": 1}", replace=True)
    path = os.path.join(local(store), "m.json")
    with open(path) as handle:
        assert handle.read() == "{\"x\": 1}"
    # posix-rename: a new inode took the name in one step (rename(2)), no copy into the old file.
    assert os.stat(path).st_ino != before and listing(store) == ["m.json"]


def test_promote_replaces_atomically(store):
    store.write("b.sql", b"old")
    store.write(".b.sql.rekey", b"new")
    store.promote(".b.sql.rekey", "b.sql")
    assert listing(store) == ["b.sql"]
    with store.open_read("b.sql") as stream:
        assert stream.read() == b"new"


def test_remove_takes_only_what_was_listed(store):
    store.write("a.sql", b"a")
    store.write("b.sql", b"b")
    _entries, identities = store.entries()
    with open(os.path.join(local(store), "b.sql"), "ab") as handle:
        handle.write(b" and someone else's rows")
    with pytest.raises(StorageError) as info:
        store.remove("b.sql", identities["b.sql"])
    assert "changed since it was examined; left alone" in str(info.value)
    store.remove("a.sql", identities["a.sql"])
    store.remove("a.sql", identities["a.sql"])  # already gone: nothing to do
    assert listing(store) == ["b.sql"]


def test_a_symlink_is_listed_as_one_and_remove_takes_the_link_not_its_target(sftp_server, store):
    target_dir = os.path.join(sftp_server.root, "elsewhere")
    os.makedirs(target_dir, exist_ok=True)
    with open(os.path.join(target_dir, "precious.sql"), "wb") as handle:
        handle.write(b"precious")
    os.symlink(os.path.join(target_dir, "precious.sql"), os.path.join(local(store), "x.sql"))
    os.symlink(target_dir, os.path.join(local(store), "lift_backup_20260101_000000"))  # a "directory backup" link
    entries, identities = store.entries()
    assert sorted((e.name, e.kind) for e in entries) == [("lift_backup_20260101_000000", "symlink"), ("x.sql", "symlink")]
    assert store.stat("x.sql").kind == "symlink"
    store.remove("x.sql", identities["x.sql"])
    store.remove("lift_backup_20260101_000000", identities["lift_backup_20260101_000000"])
    assert listing(store) == []
    with open(os.path.join(target_dir, "precious.sql"), "rb") as handle:
        assert handle.read() == b"precious"
    with pytest.raises(StorageError):
        store.open_read("x.sql")


def test_a_directory_archive_is_sized_hashed_and_removed_like_posix(store):
    top = os.path.join(local(store), "lift_backup_20260101_000000")
    os.makedirs(os.path.join(top, "sub"))
    for rel, data in (("toc.dat", b"PGDMP"), ("3001.dat.gz", b"rows" * 1000), ("sub/x", b"x")):
        with open(os.path.join(top, rel), "wb") as handle:
            handle.write(data)
    owner = os.stat(local(store)).st_uid  # made by root here: the test user's, as an upload would be
    for root, dirs, files in os.walk(top):
        for name in [root] + [os.path.join(root, entry) for entry in dirs + files]:
            os.chown(name, owner, -1)
    entries, identities = store.entries()
    assert [(e.kind, e.size) for e in entries] == [("directory", 4006)]
    assert store.digest("lift_backup_20260101_000000") == checksums.hash_directory(top)[2]
    store.remove("lift_backup_20260101_000000", identities["lift_backup_20260101_000000"])
    assert listing(store) == []


def test_read_manifest_validates(store):
    manifest = manifest_mod.build_manifest(
        backup_name="lift_backup_20260101_000000.dump", database="lift", format="custom", compression="none",
        size_bytes=3, sha256="0" * 64, started_at="2026-01-01T00:00:00.000000Z",
        finished_at="2026-01-01T00:00:01.000000Z", row_counts={"public.t": 1})
    store.write("good.manifest.json", manifest_mod.dumps(manifest))
    assert store.read_manifest("good.manifest.json") == manifest
    store.write("bad.manifest.json", b"{\"manifest_version\": 1}")
    with pytest.raises(manifest_mod.ManifestError):
        store.read_manifest("bad.manifest.json")
    store.write("junk.manifest.json", b"\xff not json")
    with pytest.raises(manifest_mod.ManifestError) as info:
        store.read_manifest("junk.manifest.json")
    assert "not valid JSON" in str(info.value) and store.location in str(info.value)


def test_free_space_comes_from_statvfs(store):
    free = store.free_bytes()
    st = os.statvfs(local(store))
    assert abs(free - st.f_bavail * st.f_frsize) < 256 * MIB


def test_an_unknown_host_key_is_refused_with_its_fingerprint_and_nothing_is_written(sftp_server):
    fingerprint = sftp_server.host_fingerprint()
    another_host = "[127.0.0.2]:%d %s\n" % (sftp_server.port, sftp_server.public(sftp_server.host_key))
    for known_hosts in (None, another_host):
        store = sftp_server.storage(directory="never-made", known_hosts=known_hosts)
        with pytest.raises(StorageError) as info:
            store.ensure()
        message = str(info.value)
        assert "not in the known_hosts given" in message and fingerprint in message, message
        assert "sftp://%s@127.0.0.1:%d" % (TEST_USER, sftp_server.port) in message
    assert not os.path.exists(os.path.join(sftp_server.root, "never-made"))


def test_a_changed_host_key_is_refused_clearly(sftp_server, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("[127.0.0.1]:%d %s\n" % (sftp_server.port, sftp_server.public(sftp_server.other_key)))
    store = sftp_server.storage(directory="never-made", known_hosts=None, known_hosts_file=str(known_hosts))
    with pytest.raises(StorageError) as info:
        store.create("b.sql")
    assert "host key changed" in str(info.value) and sftp_server.host_fingerprint() in str(info.value)
    assert not os.path.exists(os.path.join(sftp_server.root, "never-made"))


def test_a_wrong_private_key_is_refused_without_showing_it(sftp_server):
    other = sftp_server.private(sftp_server.other_key)
    store = sftp_server.storage(private_key=other)
    with pytest.raises(StorageError) as info:
        store.entries()
    message = str(info.value)
    assert "authentication refused" in message and TEST_USER in message
    body = "".join(other.splitlines()[1:-1])
    assert body[:40] not in message and body[-40:] not in message and body[:40] not in repr(store)


def test_a_refused_connection_is_named(sftp_server):
    from sftpserver import free_port
    store = sftp_server.storage(port=free_port())
    with pytest.raises(StorageError) as info:
        store.entries()
    assert "connection refused" in str(info.value) and store.location in str(info.value)


def test_permission_denied_is_said_in_plain_words(sftp_server):
    locked = os.path.join(sftp_server.root, "root-only")
    os.makedirs(locked, exist_ok=True)
    os.chmod(locked, 0o755)  # owned by root: the test user may look, not write
    store = sftp_server.storage(directory="root-only")
    with pytest.raises(StorageError) as info:
        store.write("b.sql", b"x")
    assert "permission denied" in str(info.value) and "b.sql" in str(info.value)


def test_sshd_stopped_mid_upload_is_a_clear_error_and_leaves_no_final_name():
    reason = usable()
    if reason:
        pytest.skip(reason)
    server = SFTPServer().start()
    try:
        store = server.storage(directory="cut")
        store.ensure()
        writer = store.create("cut.sql")
        writer.write(os.urandom(MIB))
        server.stop()
        with pytest.raises(StorageError) as info:
            for _block in range(64):  # the first write after the drop, or the commit, fails
                writer.write(os.urandom(MIB))
            writer.commit()
        message = str(info.value)
        assert "the connection to the server was lost" in message and store.location in message, message
        writer.abort()  # best effort: the connection is gone
        assert not os.path.exists(os.path.join(store.directory, "cut.sql"))
        server.start(port=server.port)
        assert store.stat("cut.sql") is None  # reconnects
        assert store.stale_partials() == []  # this process still runs: its temporary is not stale yet
        store.close()
    finally:
        server.cleanup()


def test_a_roundtrip_with_debians_paramiko(sftp_server, tmp_path):
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip("no %s" % SYSTEM_PYTHON)
    settings = settings_file(sftp_server, tmp_path, "system-python", size_mb=5, known_hosts=None)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(sftp_server.known_hosts)
    with open(settings) as handle:
        values = json.load(handle)
    values["known_hosts_file"] = str(known_hosts)
    with open(settings, "w") as handle:
        json.dump(values, handle)
    run = subprocess.run([SYSTEM_PYTHON, SCRIPT, "roundtrip", settings], capture_output=True, text=True, timeout=120,
                         check=False)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["paramiko"].startswith("2.")
    assert result["written"] == result["read"] == result["digest"]
    assert (result["kind"], result["size"]) == ("file", 5 * MIB) and result["free_bytes"] > 0
    path = os.path.join(sftp_server.root, "system-python", "roundtrip.sql")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_location_and_repr_name_the_server_not_the_key(sftp_server):
    store = sftp_server.storage(directory="x")
    assert store.location == "sftp://%s@127.0.0.1:%d%s/x" % (TEST_USER, sftp_server.port, sftp_server.root)
    assert "PRIVATE" not in repr(store) and isinstance(store, SFTPStorage)
    assert listening_sockets(os.getpid())[0] == []  # the tests' own process listens on nothing
