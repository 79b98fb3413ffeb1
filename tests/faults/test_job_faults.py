# -*- coding: utf-8 -*-
"""Faults injected into the scheduled job (/usr/local/sbin/lift-pg-backup, laid out as the role
installs it): killed with SIGKILL mid-dump and just before publishing, it leaves no file and no
temporary, pg_dump dies with it, its lock is released, and the next run works."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import signal
import tempfile
import time

import pytest

import processes
from lift_job import Job, make_layout
from pglab import load_fixture, postgres_owned_dir


@pytest.fixture(scope="module")
def layout():
    base = tempfile.mkdtemp(prefix="lift-fault-job-", dir="/tmp")
    yield make_layout(base)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def job_db(cluster):
    load_fixture(cluster, "job_src", size_mb=40, seed=31)
    yield "job_src"
    cluster.psql("DROP DATABASE job_src WITH (FORCE)")


def freeze_after(pid, wanted_bytes):
    os.kill(pid, signal.SIGSTOP)
    while processes.bytes_written(pid) < wanted_bytes and processes.alive(pid):
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.001)  # a step of a millisecond, not a wait for a condition
        os.kill(pid, signal.SIGSTOP)


def only_logs(job):
    return [e for e in os.listdir(job.dest) if e != "logs"] == []


def the_job_process(pid):
    """The job's python process: pg_dump's parent (runuser and env exec it)."""
    parent = processes.parent(pid)
    assert processes.comm(parent).startswith("python"), processes.comm(parent)
    return parent


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_job_killed_mid_dump(layout, workdir, cluster, job_db, compression):
    job = Job(layout, workdir, cluster, database=job_db, compression=compression)
    proc = job.start()
    pid = processes.wait_for(lambda: (processes.find("pg_dump", job_db) or [None])[0], what="pg_dump")
    freeze_after(pid, 1024 * 1024)
    os.kill(the_job_process(pid), signal.SIGKILL)
    proc.wait(60)
    processes.wait_for(lambda: not processes.alive(pid), timeout=10, what="pg_dump to die with the job")
    assert only_logs(job)
    # The lock died with the process: the next run takes a complete backup.
    rerun = job.run()
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    names = [n for n in os.listdir(job.dest) if n != "logs"]
    assert len(names) == 3 and any(n.endswith(".manifest.json") for n in names)
    assert any(n.endswith(".globals.sql") for n in names)


def test_job_killed_just_before_publishing(layout, workdir, cluster, job_db):
    job = Job(layout, workdir, cluster, database=job_db)
    marks = postgres_owned_dir("lift-fault-marks-")
    proc = job.start(environment={"LIFT_PG_FAILPOINTS": "backup-before-publish", "LIFT_PG_FAILPOINT_DIR": marks})
    module = processes.wait_for_marker(marks, "backup-before-publish")
    os.kill(module, signal.SIGKILL)
    proc.wait(60)
    assert only_logs(job)
    rerun = job.run()
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    shutil.rmtree(marks, ignore_errors=True)
