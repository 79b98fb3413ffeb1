# -*- coding: utf-8 -*-
"""Restore drills of the scheduled job (``lift-pg-backup --drill``, plugins/module_utils/job/drill.py)
against the test cluster, as the postgres OS user with the system Python, from the layout the role
installs (tests/lib/lift_job.py): the newest good backup is restored into a scratch database,
checked and dropped, the live database is left as it was, and the drill leaves a log, a JSON
report, metrics and a status; a corrupt newest backup fails the drill; with an off-site target
(a real sshd on 127.0.0.1) the newest copy there is drilled too."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fcntl
import glob
import json
import os
import re
import shutil
import tempfile
import time

import pytest

from lift_job import Job, chown_postgres, make_layout, new_backup
from pgcompare import fingerprint
from sftpserver import TEST_USER, sftp_server_fixture  # noqa: F401 pylint: disable=unused-import

DRILL = "lift_simulator_backup_restore_drill_"


@pytest.fixture(scope="module")
def layout():
    base = tempfile.mkdtemp(prefix="lift-it-drill-", dir="/tmp")
    yield make_layout(base)
    shutil.rmtree(base, ignore_errors=True)


def drill_metrics(job):
    """{(metric, source): value} of the drill's textfile (every sample has the job's labels)."""
    found = {}
    path = os.path.join(job.metrics_dir, "lift_pg_backup_drill_%s.prom" % job.settings["name"])
    with open(path) as handle:
        text = handle.read()
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.match(r'^%s(\w+)\{database="lift_simulator",backup_job="%s",source="([^"]+)"\} (\S+)$'
                         % (DRILL, job.settings["name"]), line)
        assert match, line
        found[(match.group(1), match.group(2))] = float(match.group(3))
    assert "# TYPE %ssuccess gauge" % DRILL in text
    return found


def reports(job):
    """The drill reports, oldest first (by mtime: a second report of the same second has a suffix)."""
    return sorted(glob.glob(os.path.join(job.state_dir, "drills", "%s-*.json" % job.settings["name"])),
                  key=lambda path: os.stat(path).st_mtime_ns)


def last_report(job):
    with open(reports(job)[-1]) as handle:
        return json.load(handle)


def drill_log(job):
    """The newest drill log (two drills in one second: the second log has a suffix, by mtime then)."""
    found = sorted((os.stat(os.path.join(job.logs, n)).st_mtime_ns, n) for n in job.log_files()
                   if n.startswith("%s_drill_" % job.settings["name"]))
    assert found, job.log_files()
    return job.read_log(os.path.join(job.logs, found[-1][1]))


def scratch_databases(cluster):
    return [n for n in cluster.psql("SELECT datname FROM pg_database").splitlines() if "_verify_" in n]


def backup_now(job):
    before = job.backups()
    run = job.run()
    assert run.returncode == 0, run.stdout + run.stderr
    return new_backup(job, before)


def test_a_drill_restores_the_newest_backup_checks_it_and_drops_it(layout, workdir, cluster):
    job = Job(layout, workdir, cluster)
    backup_now(job)
    time.sleep(1.1)  # the next backup's name has a later second
    newest = backup_now(job)
    live = fingerprint(cluster, "lift_simulator")
    databases = sorted(cluster.psql("SELECT datname FROM pg_database").splitlines())
    started = time.time()
    run = job.run("--drill")
    assert run.returncode == 0, run.stdout + run.stderr
    # The live database is as it was; the scratch database is gone; nothing else was created.
    assert fingerprint(cluster, "lift_simulator") == live
    assert sorted(cluster.psql("SELECT datname FROM pg_database").splitlines()) == databases
    text = drill_log(job)
    for expected in ("restore drill of job it_job (database lift_simulator) started as postgres",
                     "drill local: the newest good backup in %s is %s" % (job.dest, newest),
                     "drill local: check sha256 passed", "drill local: SUCCESS: %s restored into lift_simulator_verify_"
                     % newest, "report written to", "metrics written to", "RESULT: success: 1 source drilled"):
        assert expected in text, expected
    report = last_report(job)
    assert report["success"] is True and report["name"] == "it_job" and report["database"] == "lift_simulator"
    [source] = report["sources"]
    assert source["source"] == "local" and source["backup"] == newest and source["success"] is True
    assert source["restore_seconds"] > 0 and source["backup_time"].endswith("Z")
    assert any(c["name"].startswith("rows lift_simulator.") for c in source["checks"]), source["checks"]
    assert all(c["passed"] for c in source["checks"])
    assert source["scratch_database"].startswith("lift_simulator_verify_")
    metrics = drill_metrics(job)
    assert metrics[("success", "local")] == 1
    assert started <= metrics[("last_success_timestamp_seconds", "local")] <= time.time()
    assert metrics[("last_run_timestamp_seconds", "local")] == metrics[("last_success_timestamp_seconds", "local")]
    assert metrics[("duration_seconds", "local")] == source["restore_seconds"]
    assert 0 < metrics[("restored_backup_age_seconds", "local")] < 600
    with open(os.path.join(job.state_dir, "it_job.last-drill.json")) as handle:
        status = json.load(handle)
    assert status["status"] == "success" and status["kind"] == "drill"
    # The backup's own status and metrics are the backup's: the drill did not touch them.
    assert job.status()["status"] == "success" and job.metrics()["last_run_success"] == 1


def test_a_corrupt_newest_backup_fails_the_drill(layout, workdir, cluster):
    job = Job(layout, workdir, cluster)
    name = backup_now(job)
    assert job.run("--drill").returncode == 0
    first = drill_metrics(job)
    path = os.path.join(job.dest, name)
    with open(path, "r+b") as handle:  # same size, other bytes: only its checksum tells
        handle.seek(os.path.getsize(path) // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    run = job.run("--drill")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "restore drill FAILED: local: the backup failed verification, nothing was changed" in run.stderr
    assert "sha256" in run.stderr
    text = drill_log(job)
    assert "drill local: FAILED" in text and "RESULT: FAILED" in text
    report = last_report(job)
    assert report["success"] is False and report["sources"][0]["success"] is False
    assert "sha256" in report["message"]
    metrics = drill_metrics(job)
    assert metrics[("success", "local")] == 0
    assert metrics[("last_success_timestamp_seconds", "local")] == first[("last_success_timestamp_seconds", "local")]
    assert metrics[("last_run_timestamp_seconds", "local")] > first[("last_run_timestamp_seconds", "local")]
    assert scratch_databases(cluster) == []
    with open(os.path.join(job.state_dir, "it_job.last-drill.json")) as handle:
        status = json.load(handle)
    assert status["status"] == "failed" and status["message"].startswith("restore drill failed: local:")


def test_a_drill_without_a_backup_fails_and_says_so(layout, workdir, cluster):
    job = Job(layout, workdir, cluster)
    run = job.run("--drill")
    assert run.returncode == 1
    assert "holds no good copy of lift_simulator" in run.stderr
    assert drill_metrics(job)[("success", "local")] == 0
    assert drill_metrics(job)[("last_success_timestamp_seconds", "local")] == 0


def test_a_drill_also_restores_the_newest_off_site_copy(layout, workdir, cluster, sftp_server):
    job = Job(layout, workdir, cluster)
    target = dict(name="nas", type="sftp", host=sftp_server.host, port=sftp_server.port, user=TEST_USER,
                  directory=os.path.join(sftp_server.root, "drill-copies"), private_key=sftp_server.private(),
                  known_hosts=sftp_server.known_hosts)
    targets_file = os.path.join(workdir, "offsite.json")
    with open(targets_file, "w") as handle:
        json.dump([target], handle)
    chown_postgres(targets_file)
    os.chmod(targets_file, 0o600)
    pull_dir = os.path.join(workdir, "pulls")
    os.mkdir(pull_dir, 0o700)
    chown_postgres(pull_dir)
    job.write_config(offsite_targets_file=targets_file, drill_pull_dir=pull_dir)
    name = backup_now(job)
    live = fingerprint(cluster, "lift_simulator")
    run = job.run("--drill")
    assert run.returncode == 0, run.stdout + run.stderr
    text = drill_log(job)
    assert "drill offsite:nas: pulled %s into %s/lift-pull-" % (name, pull_dir) in text, text
    assert "drill offsite:nas: SUCCESS: %s restored into lift_simulator_verify_" % name in text
    assert "the pulled copy was removed" in text and os.listdir(pull_dir) == []
    assert sftp_server.private().splitlines()[1] not in text
    report = last_report(job)
    assert [s["source"] for s in report["sources"]] == ["local", "offsite:nas"]
    assert all(s["success"] and s["backup"] == name for s in report["sources"])
    metrics = drill_metrics(job)
    assert metrics[("success", "offsite:nas")] == 1 and metrics[("success", "local")] == 1
    assert fingerprint(cluster, "lift_simulator") == live and scratch_databases(cluster) == []

    # The target goes away: its drill fails, the local drill still succeeds, the drill fails.
    sftp_server.stop()
    try:
        run = job.run("--drill")
        assert run.returncode == 1, run.stdout + run.stderr
        assert "offsite:nas:" in run.stderr
        metrics_after = drill_metrics(job)
        assert metrics_after[("success", "offsite:nas")] == 0 and metrics_after[("success", "local")] == 1
        assert metrics_after[("last_success_timestamp_seconds", "offsite:nas")] == \
            metrics[("last_success_timestamp_seconds", "offsite:nas")]
        assert os.listdir(pull_dir) == []
    finally:
        sftp_server.start(port=sftp_server.port)


def test_a_second_drill_refuses_while_one_runs_and_backups_are_not_held_up(layout, workdir, cluster):
    job = Job(layout, workdir, cluster)
    backup_now(job)
    lock = os.path.join(job.state_dir, "it_job.drill.lock")
    with open(lock, "w") as handle:
        chown_postgres(lock)
        os.chmod(lock, 0o600)
        handle.write("4242 2026-12-01T00:00:00Z\n")
        handle.flush()
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running drill holds
        refused = job.run("--drill")
        assert refused.returncode == 75, refused.stdout + refused.stderr
        assert "another restore drill is running (pid 4242)" in refused.stderr
        backup_now(job)  # the backup's own lock is another one
