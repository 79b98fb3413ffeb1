# -*- coding: utf-8 -*-
"""The posix storage driver: atomic writes, listing with identities, removal of only what was
listed (never through a symlink), leftovers of interrupted writers, free space."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import hashlib
import os
import stat

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import atomic_files
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.base import Storage, StorageError
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.posix import PosixStorage


def test_ensure_makes_a_private_directory_once(tmp_path):
    store = PosixStorage(str(tmp_path / "backups"))
    assert store.ensure() is True and store.ensure() is False
    assert stat.S_IMODE(os.stat(store.location).st_mode) == 0o700


def test_ensure_refuses_a_file_in_the_way(tmp_path):
    (tmp_path / "backups").write_text("x")
    with pytest.raises(StorageError) as info:
        PosixStorage(str(tmp_path / "backups")).ensure()
    assert "exists and is not a directory" in str(info.value)


def test_a_written_name_appears_only_complete(tmp_path):
    store = PosixStorage(str(tmp_path))
    writer = store.create("b.sql")
    writer.write(b"-- PostgreSQL database dump\n")
    assert os.listdir(str(tmp_path)) == [] or all(n.startswith(".") for n in os.listdir(str(tmp_path)))
    writer.commit()
    assert (tmp_path / "b.sql").read_bytes() == b"-- PostgreSQL database dump\n"
    assert stat.S_IMODE(os.stat(str(tmp_path / "b.sql")).st_mode) == 0o600


def test_an_aborted_write_leaves_nothing(tmp_path):
    store = PosixStorage(str(tmp_path))
    with pytest.raises(RuntimeError):
        with store.create("b.sql") as writer:
            writer.write(b"half")
            raise RuntimeError("the dump failed")
    assert os.listdir(str(tmp_path)) == []


def test_write_never_replaces_unless_asked(tmp_path):
    store = PosixStorage(str(tmp_path))
    store.write("m.json", "{}")
    with pytest.raises(OSError):
        store.write("m.json", "{\"x\": 1}")
    store.write("m.json", "{\"x\": 1}", replace=True)
    assert (tmp_path / "m.json").read_text() == "{\"x\": 1}"


def test_remove_takes_only_what_was_listed(tmp_path):
    (tmp_path / "a.sql").write_bytes(b"a")
    (tmp_path / "b.sql").write_bytes(b"b")
    with PosixStorage(str(tmp_path)) as store:
        _entries, idents = store.entries()
        # Replaced after the listing (the old one kept aside, so its inode is not reused): the
        # other file under the same name is left alone.
        os.rename(str(tmp_path / "b.sql"), str(tmp_path / "old"))
        (tmp_path / "b.sql").write_bytes(b"someone else's")
        with pytest.raises(OSError) as info:
            store.remove("b.sql", idents["b.sql"])
        assert info.value.errno == errno.EAGAIN
        store.remove("a.sql", idents["a.sql"])
        store.sync()
    assert sorted(os.listdir(str(tmp_path))) == ["b.sql", "old"]


def test_remove_never_follows_a_symlink(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_bytes(b"precious")
    os.mkdir(str(tmp_path / "d"))
    os.symlink(str(target), str(tmp_path / "d" / "x.sql"))
    with PosixStorage(str(tmp_path / "d")) as store:
        _entries, idents = store.entries()
        with pytest.raises(OSError):
            store.remove("x.sql", idents["x.sql"])
    assert target.read_bytes() == b"precious"


def test_remove_needs_the_directory_held_open(tmp_path):
    (tmp_path / "a.sql").write_bytes(b"a")
    store = PosixStorage(str(tmp_path))
    _entries, idents = store.entries()
    with pytest.raises(StorageError):
        store.remove("a.sql", idents["a.sql"])


def test_a_dead_writers_leftover_is_stale_a_live_ones_is_not(tmp_path):
    store = PosixStorage(str(tmp_path))
    dead = ".b.sql%s%s-999999999" % (atomic_files.PARTIAL_MARK, atomic_files.short_hostname())
    live = atomic_files.partial_name("c.sql")  # this process: still writing
    (tmp_path / dead).write_bytes(b"x")
    (tmp_path / live).write_bytes(b"x")
    assert store.stale_partials() == [dead]
    assert store.remove_partials([dead]) == [str(tmp_path / dead)]
    assert sorted(os.listdir(str(tmp_path))) == [live]


def test_a_directory_archive_is_published_whole_and_never_over_another(tmp_path):
    store = PosixStorage(str(tmp_path))
    temp = store.partial_tree("b")
    os.mkdir(temp)
    (tmp_path / os.path.basename(temp) / "toc.dat").write_bytes(b"PGDMP")
    store.publish_tree(temp, "b")
    assert (tmp_path / "b" / "toc.dat").read_bytes() == b"PGDMP"
    other = store.partial_tree("b")
    os.mkdir(other)
    with pytest.raises(OSError):
        store.publish_tree(other, "b")


def test_digest_and_free_space(tmp_path):
    (tmp_path / "a.sql").write_bytes(b"rows")
    store = PosixStorage(str(tmp_path))
    assert store.digest("a.sql") == hashlib.sha256(b"rows").hexdigest()
    assert store.free_bytes() > 0
    assert store.exists("a.sql") and not store.exists("b.sql")


def test_the_driver_implements_the_whole_interface():
    wanted = [name for name in vars(Storage) if not name.startswith("_") and callable(getattr(Storage, name))]
    for name in wanted:
        assert getattr(PosixStorage, name) is not getattr(Storage, name), name


def test_open_read_streams_a_file_and_stat_describes_it(tmp_path):
    store = PosixStorage(str(tmp_path))
    store.write("b.sql", b"x" * 5000)
    with store.open_read("b.sql") as stream:
        assert stream.read(10) == b"x" * 10 and len(stream.read()) == 4990
    entry = store.stat("b.sql")
    assert (entry.name, entry.kind, entry.size) == ("b.sql", "file", 5000) and entry.mtime.tzinfo is not None
    assert store.stat("missing.sql") is None
    os.symlink("b.sql", str(tmp_path / "link.sql"))
    assert store.stat("link.sql").kind == "symlink"
    with pytest.raises(StorageError) as info:
        store.open_read("missing.sql")
    assert "missing.sql" in str(info.value)


def test_a_writer_given_a_sha256_publishes_only_that_content(tmp_path):
    store = PosixStorage(str(tmp_path))
    with store.create("good.sql", sha256=hashlib.sha256(b"abc").hexdigest()) as writer:
        writer.write(b"abc")
        writer.commit()
    assert (tmp_path / "good.sql").read_bytes() == b"abc"
    with pytest.raises(StorageError) as info:
        with store.create("bad.sql", sha256=hashlib.sha256(b"abc").hexdigest()) as writer:
            writer.write(b"abd")
            writer.commit()
    assert "not published" in str(info.value)
    assert sorted(os.listdir(str(tmp_path))) == ["good.sql"]
