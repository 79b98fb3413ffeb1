# -*- coding: utf-8 -*-
"""Copies between storages, checked end to end, the manifest last: exercised between two local
directories (any driver implements the same interface; the SFTP and S3 drivers are tested against
real servers in tests/integration)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import manifest as mf
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.offsite import transfer
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.posix import PosixStorage

NAME = "db_backup_20261201_080000.sql.zst.age"


def make_backup(store, data=b"age-encryption.org/v1\n" + b"x" * 300000, roles=b"CREATE ROLE lift_admin;\n"):
    store.ensure()
    store.write(NAME, data, replace=True)
    store.write(NAME + ".globals.sql", roles, replace=True)
    manifest = mf.build_manifest(
        backup_name=NAME, database="db", format="plain", compression="zstd", size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(), started_at="2026-12-01T08:00:00.000000Z",
        finished_at="2026-12-01T08:00:01.000000Z", row_counts={"s.t": 1}, encryption="age",
        globals={"name": NAME + ".globals.sql", "sha256": hashlib.sha256(roles).hexdigest(), "size_bytes": len(roles)})
    store.write(NAME + ".manifest.json", mf.dumps(manifest), replace=True)
    return manifest


@pytest.fixture
def stores(tmp_path):
    return PosixStorage(str(tmp_path / "local")), PosixStorage(str(tmp_path / "remote"))


def names(store):
    return sorted(os.listdir(store.location)) if os.path.isdir(store.location) else []


def test_a_copy_is_made_once_and_then_left_alone(stores):
    local, remote = stores
    remote.ensure()
    manifest = make_backup(local)
    assert transfer.copy(local, remote, NAME, check_mode=True) == (transfer.COPIED, manifest)
    assert names(remote) == []
    assert transfer.copy(local, remote, NAME) == (transfer.COPIED, manifest)
    assert names(remote) == names(local)
    for name in names(local):
        with open(os.path.join(local.location, name), "rb") as a, open(os.path.join(remote.location, name), "rb") as b:
            assert a.read() == b.read()
    assert transfer.copy(local, remote, NAME)[0] == transfer.UNCHANGED
    assert [passed for _n, passed, _d in transfer.check_copy(remote, NAME)] == [True, True, True]


def test_a_different_copy_is_replaced_manifest_first_or_refused(stores):
    local, remote = stores
    remote.ensure()
    make_backup(local)
    transfer.copy(local, remote, NAME)
    rotated = make_backup(local, data=b"age-encryption.org/v1\n" + b"y" * 300001)  # a key rotation, say
    with pytest.raises(transfer.TransferError) as info:
        transfer.copy(local, remote, NAME, replace=False)
    assert "differs" in str(info.value)
    assert transfer.copy(local, remote, NAME) == (transfer.REPLACED, rotated)
    assert remote.read_manifest(NAME + ".manifest.json")["sha256"] == rotated["sha256"]
    assert all(passed for _n, passed, _d in transfer.check_copy(remote, NAME))


def test_a_damaged_source_never_becomes_a_copy(stores):
    local, remote = stores
    remote.ensure()
    make_backup(local)
    with open(os.path.join(local.location, NAME), "r+b") as handle:
        handle.seek(1000)
        handle.write(b"!")
    with pytest.raises(transfer.TransferError) as info:
        transfer.copy(local, remote, NAME)
    assert "does not match its manifest" in str(info.value) and "nothing of it was written" in str(info.value)
    assert [n for n in names(remote) if not n.startswith(".")] == []


def test_without_its_manifest_nothing_is_copied(stores):
    local, remote = stores
    remote.ensure()
    make_backup(local)
    os.unlink(os.path.join(local.location, NAME + ".manifest.json"))
    with pytest.raises(transfer.TransferError) as info:
        transfer.copy(local, remote, NAME)
    assert "has no manifest" in str(info.value) and names(remote) == []


def test_the_manifest_is_written_last(stores, monkeypatch):
    """A copy interrupted before its last file has no manifest: it never counts as good."""
    local, remote = stores
    remote.ensure()
    make_backup(local)
    real_create = remote.create

    def failing_create(name, *args, **kwargs):
        if name.endswith(".globals.sql"):
            raise OSError(28, "No space left on device")
        return real_create(name, *args, **kwargs)
    monkeypatch.setattr(remote, "create", failing_create)
    with pytest.raises(transfer.TransferError) as info:
        transfer.copy(local, remote, NAME)
    assert "No space left" in str(info.value)
    assert names(remote) == [NAME]
    assert transfer.check_copy(remote, NAME)[0][1] is False


@pytest.mark.parametrize("damage, words", [("truncate", "bytes, the manifest records"), ("flip", "the manifest records")])
def test_check_copy_finds_a_truncated_or_changed_file(stores, damage, words):
    local, remote = stores
    remote.ensure()
    make_backup(local)
    transfer.copy(local, remote, NAME)
    path = os.path.join(remote.location, NAME)
    with open(path, "r+b") as handle:
        if damage == "truncate":
            handle.truncate(1000)
        else:
            handle.seek(5000)
            handle.write(b"!")
    checks = transfer.check_copy(remote, NAME)
    assert checks[1][0] == NAME and checks[1][1] is False and words in checks[1][2]
    if damage == "flip":  # the sizes agree: only the re-read finds it
        assert transfer.check_copy(remote, NAME, level="manifest")[1][1] is True


def test_an_interrupted_copy_is_taken_up_again(stores, monkeypatch):
    """Killed before its manifest: the next push keeps the file that is already whole and goes on;
    a pull refuses a leftover with other content (a local backup is never replaced)."""
    local, remote = stores
    remote.ensure()
    make_backup(local)
    real_write = remote.write

    def manifest_fails(name, *args, **kwargs):
        if name.endswith(".manifest.json"):
            raise OSError(104, "Connection reset by peer")
        return real_write(name, *args, **kwargs)
    monkeypatch.setattr(remote, "write", manifest_fails)
    with pytest.raises(transfer.TransferError):
        transfer.copy(local, remote, NAME)
    monkeypatch.setattr(remote, "write", real_write)
    assert names(remote) == [NAME, NAME + ".globals.sql"]
    assert transfer.copy(local, remote, NAME)[0] == transfer.COPIED
    assert all(passed for _n, passed, _d in transfer.check_copy(remote, NAME))
    # A pull into a directory that holds a different file of that name, without a manifest.
    os.unlink(os.path.join(local.location, NAME + ".manifest.json"))
    with open(os.path.join(local.location, NAME), "wb") as handle:
        handle.write(b"something else")
    with pytest.raises(transfer.TransferError) as info:
        transfer.copy(remote, local, NAME, replace=False)
    assert "without a manifest and with other content" in str(info.value)
    with open(os.path.join(local.location, NAME), "rb") as handle:
        assert handle.read() == b"something else"


def test_a_source_that_sends_more_than_the_manifest_says_is_cut_short(stores):
    local, remote = stores
    remote.ensure()
    make_backup(local)
    with open(os.path.join(local.location, NAME), "ab") as handle:
        handle.write(b"z" * (5 * 1024 * 1024))  # far more than the manifest's size
    reads = []
    real_open = local.open_read

    def counting_open(name):
        stream = real_open(name)
        real_read = stream.read

        def read(size=-1):
            data = real_read(size)
            reads.append(len(data))
            return data
        stream.read = read
        return stream
    local.open_read = counting_open
    with pytest.raises(transfer.TransferError) as info:
        transfer.copy(local, remote, NAME)
    assert "does not match its manifest" in str(info.value)
    assert sum(reads) <= 300022 + 1 and names(remote) == []
