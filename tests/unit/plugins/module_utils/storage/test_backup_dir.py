# -*- coding: utf-8 -*-
"""The removal helpers that prune and the scheduled job share: by file descriptors, never through a symlink."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import backup_dir


@pytest.fixture
def dir_fd(tmp_path):
    (tmp_path / "backups").mkdir()
    fd = os.open(str(tmp_path / "backups"), os.O_RDONLY | os.O_DIRECTORY)
    yield fd
    os.close(fd)


def ident(path):
    st = os.lstat(str(path))
    return (st.st_dev, st.st_ino)


def test_remove_tree_unlinks_symlinks_inside_without_following_them(tmp_path, dir_fd):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_bytes(b"keep")
    archive = tmp_path / "backups" / "lift_simulator_backup_20261124_080001"
    (archive / "sub").mkdir(parents=True)
    (archive / "toc.dat").write_bytes(b"x")
    (archive / "sub" / "3001.dat.gz").write_bytes(b"y")
    (archive / "to_dir").symlink_to(outside)
    (archive / "sub" / "to_file").symlink_to(outside / "precious")
    backup_dir.remove_entry(dir_fd, archive.name, ident(archive))
    assert os.listdir(str(tmp_path / "backups")) == []
    assert (outside / "precious").read_bytes() == b"keep"


def test_remove_entry_refuses_an_entry_that_changed_or_is_a_symlink(tmp_path, dir_fd):
    backups = tmp_path / "backups"
    target = tmp_path / "target.sql"
    target.write_bytes(b"keep")
    name = "lift_simulator_backup_20261124_080001.sql"
    (backups / name).write_bytes(b"a")
    seen = ident(backups / name)
    (backups / "planted").symlink_to(target)
    os.rename(str(backups / "planted"), str(backups / name))  # swapped for a symlink after the scan
    with pytest.raises(OSError) as info:
        backup_dir.remove_entry(dir_fd, name, seen)
    assert "changed since it was examined" in str(info.value)
    with pytest.raises(OSError) as info:
        backup_dir.remove_entry(dir_fd, name, ident(backups / name))  # even when expected: never a symlink
    assert "no longer a file or folder" in str(info.value)
    assert (backups / name).is_symlink() and target.read_bytes() == b"keep"
    backup_dir.remove_entry(dir_fd, "vanished.sql", (0, 0))  # already gone: nothing to do


def test_tree_size_counts_regular_files_only(tmp_path):
    (tmp_path / "a").write_bytes(b"12345")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "b").write_bytes(b"123")
    (tmp_path / "l").symlink_to(tmp_path / "a")
    assert backup_dir.tree_size(str(tmp_path)) == 8
