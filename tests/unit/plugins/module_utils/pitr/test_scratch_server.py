# -*- coding: utf-8 -*-
"""The restore drill's scratch directory for the PITR source (pitr/scratch_server.py): its name, its
private directories, the settings on the temporary server's command line, which leftovers the next
drill removes, and that a pid in a postmaster.pid counts only when it is that data directory's
server. (The server itself runs in tests/integration/test_pitr_drill.py.)"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os
import shlex
import shutil
import stat
import tempfile

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import scratch_server

WHEN = datetime.datetime(2026, 12, 1, 16, 30, 5, tzinfo=datetime.timezone.utc)


def test_the_name_carries_the_job_and_the_utc_time(tmp_path):
    scratch = scratch_server.Scratch(str(tmp_path), "it_job", WHEN)
    assert scratch.path == os.path.join(str(tmp_path), "drill-pitr-it_job-20261201T163005Z")
    assert scratch.data == os.path.join(scratch.path, "data") and scratch.copy_data == scratch.data
    assert scratch.log_file("anything") == os.path.join(scratch.path, "server.log")
    pattern = scratch_server.name_pattern("it_job")
    assert pattern.match("drill-pitr-it_job-20261201T163005Z")
    for other in ("drill-pitr-it_job-20261201T163005Z.x", "drill-pitr-other-20261201T163005Z",
                  "drill-pitr-it_job-keep", "drill-pitr-it-job-20261201T163005Z"):
        assert not pattern.match(other), other


def test_make_gives_private_directories():
    root = tempfile.mkdtemp(prefix="lift-ut-", dir="/tmp")  # short: the socket's path has 107 bytes at most
    try:
        scratch = scratch_server.Scratch(root, "it_job", WHEN)
        scratch.make()
        for path in (scratch.path, scratch.data, scratch.socket_dir):
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o700, path
        with pytest.raises(OSError):
            scratch.make()  # never into an existing directory
        assert scratch.remove() is True and os.listdir(root) == [] and scratch.remove() is False
    finally:
        shutil.rmtree(root)


def test_root_is_refused(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    with pytest.raises(scratch_server.ScratchError, match="never as root"):
        scratch_server.refuse_root()


def test_paths_the_command_line_cannot_carry_are_refused(tmp_path):
    for root in (os.path.join(str(tmp_path), "with space"), os.path.join(str(tmp_path), "it's"),
                 "/" + "x" * 100):
        with pytest.raises(scratch_server.ScratchError):
            scratch_server.Scratch(root, "it_job", WHEN).make()
    assert not os.listdir(str(tmp_path))


def test_the_command_line_keeps_the_server_apart(tmp_path):
    scratch = scratch_server.Scratch(str(tmp_path), "it_job", WHEN)
    scratch.port = 54321
    words = shlex.split(scratch.command_line())
    settings = dict(word.split("=", 1) for word in words[1::2])
    assert words[0::2] == ["-c"] * len(settings)
    assert settings["listen_addresses"] == ""
    assert settings["port"] == "54321" and settings["unix_socket_directories"] == scratch.socket_dir
    assert settings["archive_mode"] == "off" and settings["recovery_target_action"] == "promote"
    assert settings["primary_conninfo"] == "" and settings["ssl"] == "off"
    assert settings["config_file"] == scratch.conf and settings["hba_file"].startswith(scratch.path + "/")
    assert settings["lc_messages"] == "C" and settings["TimeZone"] == "UTC"


def test_remove_stale_removes_only_this_jobs_leftovers(tmp_path):
    root = str(tmp_path)
    mine = os.path.join(root, "drill-pitr-it_job-20260101T000000Z")
    kept = [os.path.join(root, n) for n in ("drill-pitr-other-20260101T000000Z", "drill-pitr-it_job-keep",
                                            "unrelated")]
    for path in [mine] + kept:
        os.makedirs(os.path.join(path, "data"))
    link = os.path.join(root, "drill-pitr-it_job-20260102T000000Z")
    os.symlink(kept[-1], link)  # a symlink of the pattern is not a scratch directory: not followed
    assert scratch_server.remove_stale(root, "it_job") == [mine]
    assert not os.path.exists(mine)
    assert all(os.path.isdir(path) for path in kept) and os.path.islink(link)


def test_a_pid_counts_only_when_it_is_that_data_directorys_server(tmp_path):
    data = str(tmp_path)
    with open(os.path.join(data, "postmaster.pid"), "w") as handle:
        handle.write("%d\n%s\n" % (os.getpid(), data))
    assert os.getcwd() != data
    assert scratch_server.server_pid(data) is None  # a live process, but not this directory's server
    cwd = os.getcwd()
    os.chdir(data)
    try:
        assert scratch_server.server_pid(data) == os.getpid()
    finally:
        os.chdir(cwd)
    with open(os.path.join(data, "postmaster.pid"), "w") as handle:
        handle.write("junk\n")
    assert scratch_server.server_pid(data) is None
