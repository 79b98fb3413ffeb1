# -*- coding: utf-8 -*-
"""Key rotation killed with SIGKILL at each of its steps (failpoints in rekey/rotation.py): one
complete backup that verifies always remains, under the old keys or the new ones, and the next run
completes the rotation."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import signal
import threading

import pytest

import processes
from agekeys import keys  # noqa: F401 pylint: disable=unused-import
from helpers import backup, clone_database, drop_databases, listing, run_module, sha256_file, verify
from pglab import postgres_owned_dir, run_playbook

# (failpoint, the keys that open the backup after the kill)
POINTS = [("rekey-streaming", "ops"), ("rekey-staged", "ops"), ("rekey-pending", "ops"), ("rekey-promoted", "new")]


@pytest.fixture
def db(cluster):
    name = clone_database(cluster, "rekey_fault_src")
    yield name
    drop_databases(cluster, "rekey_fault_")


def structure(result):
    return [c for c in result["checks"] if c["name"] == "structure"][0]


def manifest_of(path):
    with open(path + ".manifest.json") as handle:
        return json.load(handle)


@pytest.mark.parametrize("point, opens_with", POINTS, ids=[p for p, _k in POINTS])
def test_rekey_killed_at_each_step_leaves_one_complete_backup(cluster, workdir, db, keys, point, opens_with):
    directory = os.path.join(workdir, "b")
    made = backup(cluster, directory, database=db, compression="zstd", encryption="age",
                  encryption_recipients=[keys["ops"]["recipient"]])
    path, name = made["path"], os.path.basename(made["path"])
    before_sha = sha256_file(path)
    args = dict(path=path, identity=keys["ops"]["identity"], encryption_recipients=[keys["new"]["recipient"]])
    marks = postgres_owned_dir("lift-fault-marks-")
    holder = {}
    extra = {"rekey_args": args, "module_env": {"LIFT_PG_FAILPOINTS": point, "LIFT_PG_FAILPOINT_DIR": marks}}
    thread = threading.Thread(target=lambda: holder.update(run=run_playbook("rekey_module.yml", extra)))
    thread.start()
    module = processes.wait_for_marker(marks, point)
    os.kill(module, signal.SIGKILL)
    thread.join(300)
    assert holder["run"].rc != 0
    ours = [path.encode(), keys["new"]["recipient"].encode()]  # age -d of the backup, age -e to the new key
    processes.wait_for(lambda: not processes.find_matching("age", lambda pid: set(ours) & set(processes.cmdline(pid))),
                       timeout=10, what="age to die with the module")

    # One complete backup: it verifies without a key (checksum and header against its manifest,
    # which may describe both files) and with the keys of whichever file is in place.
    quick = verify(cluster, path)
    assert all(c["passed"] for c in quick["checks"]), quick["checks"]
    other = "new" if opens_with == "ops" else "ops"
    assert structure(verify(cluster, path, identity=keys[opens_with]["identity"]))["passed"]
    assert not structure(verify(cluster, path, expect_ok=False, identity=keys[other]["identity"]))["passed"]
    assert (sha256_file(path) == before_sha) == (opens_with == "ops")
    pending = "rekey_pending" in manifest_of(path)
    assert pending == (point in ("rekey-pending", "rekey-promoted"))
    info = run_playbook("backup_info_module.yml", {"info_args": {"path": directory, "database": db,
                                                                 "verify_checksums": True}, "run_as": "postgres"})
    assert info.rc == 0, info.stderr
    assert info.task("Backup info")["newest_good"]["name"] == name

    # The next run completes it: the new keys only, one rotation record, no staged copy.
    again = run_module("rekey", args)
    assert again["changed"] is True
    assert (again["finished"] if point == "rekey-promoted" else again["rekeyed"]) == [name]
    assert structure(verify(cluster, path, identity=keys["new"]["identity"]))["passed"]
    assert not structure(verify(cluster, path, expect_ok=False, identity=keys["ops"]["identity"]))["passed"]
    manifest = manifest_of(path)
    assert "rekey_pending" not in manifest and len(manifest["rotations"]) == 1
    assert manifest["rotations"][0]["previous_sha256"] == before_sha and manifest["sha256"] == sha256_file(path)
    assert listing(directory) == sorted([name, name + ".globals.sql", name + ".manifest.json"])
