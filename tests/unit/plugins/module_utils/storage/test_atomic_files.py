# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import stat
import subprocess
import sys

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import atomic_files as af


@pytest.fixture(params=[True, False], ids=["O_TMPFILE", "named-temporary"])
def use_tmpfile(request):
    return request.param


def test_commit_publishes_complete_private_file(tmp_path, use_tmpfile):
    handle = af.AtomicFile(str(tmp_path), "b.sql", use_tmpfile=use_tmpfile)
    handle.write(b"hello ")
    assert os.listdir(str(tmp_path)) == ([] if use_tmpfile else [os.path.basename(handle.temp_path)])
    handle.write(b"world")
    handle.commit()
    assert sorted(os.listdir(str(tmp_path))) == ["b.sql"]
    assert (tmp_path / "b.sql").read_bytes() == b"hello world"
    assert stat.S_IMODE(os.stat(str(tmp_path / "b.sql")).st_mode) == 0o600


def test_writeback_starts_every_few_megabytes_and_covers_every_byte(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(af, "_START_WRITEBACK", lambda fd, offset, length: calls.append((offset, length)))
    monkeypatch.setattr(af, "WRITEBACK_EVERY", 100)
    handle = af.AtomicFile(str(tmp_path), "b.sql")
    for dummy in range(7):
        handle.write(b"x" * 40)
    assert calls == [(0, 120), (120, 120)]  # each range follows the last, none is skipped
    handle.commit()  # the tail is left to the fsync
    assert (tmp_path / "b.sql").read_bytes() == b"x" * 280


@pytest.mark.skipif(af._START_WRITEBACK is None, reason="no sync_file_range here")
def test_real_writeback_on_a_large_file(tmp_path):
    handle = af.AtomicFile(str(tmp_path), "b.sql")
    block = os.urandom(1024 * 1024)
    for dummy in range(af.WRITEBACK_EVERY // len(block) * 2 + 1):
        handle.write(block)
    assert handle._written_back == 2 * af.WRITEBACK_EVERY
    handle.commit()
    assert os.path.getsize(str(tmp_path / "b.sql")) == 2 * af.WRITEBACK_EVERY + len(block)


def test_abort_leaves_nothing(tmp_path, use_tmpfile):
    with pytest.raises(RuntimeError):
        with af.AtomicFile(str(tmp_path), "b.sql", use_tmpfile=use_tmpfile) as handle:
            handle.write(b"partial")
            raise RuntimeError("boom")
    assert os.listdir(str(tmp_path)) == []


def test_never_overwrites_an_existing_backup(tmp_path, use_tmpfile):
    (tmp_path / "b.sql").write_bytes(b"precious")
    with af.AtomicFile(str(tmp_path), "b.sql", use_tmpfile=use_tmpfile) as handle:
        handle.write(b"new")
        with pytest.raises(af.AtomicFileError) as info:
            handle.commit()
    assert info.value.errno == errno.EEXIST
    assert (tmp_path / "b.sql").read_bytes() == b"precious"
    assert os.listdir(str(tmp_path)) == ["b.sql"]


def test_a_planted_symlink_is_not_followed(tmp_path, use_tmpfile):
    victim = tmp_path / "victim"
    victim.write_bytes(b"do not touch")
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink(str(victim), str(dest / "b.sql"))
    with af.AtomicFile(str(dest), "b.sql", use_tmpfile=use_tmpfile) as handle:
        handle.write(b"evil")
        with pytest.raises(af.AtomicFileError):
            handle.commit()
    assert victim.read_bytes() == b"do not touch"


def test_replace_mode_swaps_atomically(tmp_path):
    af.write_file_atomic(str(tmp_path), "metrics.prom", "a 1\n", replace=True)
    af.write_file_atomic(str(tmp_path), "metrics.prom", "a 2\n", replace=True)
    assert (tmp_path / "metrics.prom").read_text() == "a 2\n"
    assert os.listdir(str(tmp_path)) == ["metrics.prom"]


@pytest.mark.parametrize("name", ["", ".", "..", "a/b"])
def test_only_plain_names(tmp_path, name):
    with pytest.raises(af.AtomicFileError):
        af.AtomicFile(str(tmp_path), name)


def test_a_killed_writer_leaves_nothing_with_o_tmpfile(tmp_path):
    # The child opens an O_TMPFILE backup, writes, and is SIGKILLed before commit.
    code = (
        "import os, sys, signal\n"
        "from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import atomic_files as af\n"
        "h = af.AtomicFile(sys.argv[1], 'b.sql')\n"
        "h.write(b'x' * 100000)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=env, check=False)
    assert proc.returncode == -9
    assert os.listdir(str(tmp_path)) == []


def test_stale_named_temporaries_of_dead_writers_are_removed(tmp_path):
    host = af.short_hostname()
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / (".b.sql.partial-%s-%d" % (host, dead.pid))
    stale.write_bytes(b"x")
    stale_dir = tmp_path / (".c.partial-%s-%d" % (host, dead.pid))
    stale_dir.mkdir()
    (stale_dir / "toc.dat").write_bytes(b"x")
    alive = tmp_path / (".d.sql.partial-%s-%d" % (host, os.getpid()))
    alive.write_bytes(b"x")
    other_host = tmp_path / (".e.sql.partial-otherhost-%d" % dead.pid)
    other_host.write_bytes(b"x")
    foreign = tmp_path / "b.sql"
    foreign.write_bytes(b"x")
    removed = af.remove_stale_partials(str(tmp_path))
    assert sorted(os.path.basename(p) for p in removed) == sorted([stale.name, stale_dir.name])
    assert sorted(os.listdir(str(tmp_path))) == sorted([alive.name, other_host.name, foreign.name])


def test_ensure_private_dir_creates_0700(tmp_path):
    path = str(tmp_path / "a" / "backups")
    assert af.ensure_private_dir(path) is True
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    assert af.ensure_private_dir(path) is False


def test_ensure_private_dir_refuses_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(af.AtomicFileError) as info:
        af.ensure_private_dir(str(tmp_path / "f"))
    assert "not a directory" in info.value.strerror


def test_publish_directory(tmp_path):
    temp = tmp_path / ".d.partial-h-1"
    temp.mkdir()
    (temp / "toc.dat").write_bytes(b"x")
    af.publish_directory(str(temp), str(tmp_path / "d"))
    assert os.listdir(str(tmp_path)) == ["d"]
    (tmp_path / "e").mkdir()
    with pytest.raises(af.AtomicFileError):
        af.publish_directory(str(tmp_path / "d"), str(tmp_path / "e"))


def test_finding_stale_partials_removes_nothing_and_removing_skips_vanished_ones(tmp_path):
    host = af.short_hostname()
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / (".b.sql.partial-%s-%d" % (host, dead.pid))
    stale.write_bytes(b"x")
    target = tmp_path / "outside"
    target.write_bytes(b"keep me")
    link = tmp_path / (".c.sql.partial-%s-%d" % (host, dead.pid))
    link.symlink_to(target)
    alive = tmp_path / (".d.sql.partial-%s-%d" % (host, os.getpid()))
    alive.write_bytes(b"x")
    found = af.find_stale_partials(str(tmp_path))
    assert found == sorted([str(stale), str(link)])
    assert stale.exists() and link.is_symlink()
    stale.unlink()  # gone before the removal: skipped
    assert af.remove_partials(found) == [str(link)]
    assert target.read_bytes() == b"keep me"  # the symlink went, never its target
    assert sorted(os.listdir(str(tmp_path))) == sorted([alive.name, target.name])
    assert af.find_stale_partials(str(tmp_path / "missing")) == []


@pytest.mark.parametrize("entry, target", [
    (".lift_simulator_backup_20261124_080001.sql.partial-db1-42", "lift_simulator_backup_20261124_080001.sql"),
    (".x.sql.manifest.json.partial-db_1-7", "x.sql.manifest.json"),
    (".a-b.partial-h-1", "a-b"),
    ("x.partial-h-1", None),
    (".x.partial-h-", None),
    (".x.sql", None),
])
def test_partial_target(entry, target):
    assert af.partial_target(entry) == target


def test_partial_target_inverts_partial_name():
    assert af.partial_target(af.partial_name("lift_simulator_backup_20261124_080001.dump")) == \
        "lift_simulator_backup_20261124_080001.dump"
