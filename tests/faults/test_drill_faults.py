# -*- coding: utf-8 -*-
"""Restore drills (``lift-pg-backup --drill``) stopped mid-restore: SIGTERM (the time limit) drops the
scratch database before the drill exits and records the failure; SIGKILL leaves it, and the next
drill drops it (it is recorded by the collection, its run's lock is free) before it restores. The
drill is frozen at the failpoint restore-staging-loaded (the backup loaded into the scratch
database, before its checks) of the real command, against the test cluster."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import signal
import tempfile
import time

import pytest

from lift_job import Job, chown_postgres, make_layout
from pgcompare import fingerprint

POINT = "restore-staging-loaded"


@pytest.fixture(scope="module")
def layout():
    base = tempfile.mkdtemp(prefix="lift-fault-drill-", dir="/tmp")
    yield make_layout(base)
    shutil.rmtree(base, ignore_errors=True)


def scratch_databases(cluster):
    return [n for n in cluster.psql("SELECT datname FROM pg_database").splitlines() if "_verify_" in n]


def frozen_drill(job, workdir):
    """A drill started and frozen at POINT: (process, pid of the command)."""
    points = os.path.join(workdir, "points")
    os.mkdir(points)
    chown_postgres(points)
    proc = job.start("--drill", environment=dict(LIFT_PG_FAILPOINTS=POINT, LIFT_PG_FAILPOINT_DIR=points))
    deadline = time.monotonic() + 120
    while not os.listdir(points) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    arrived = os.listdir(points)
    assert arrived, "the drill never reached %s: %s" % (POINT, proc.communicate(timeout=60))
    return proc, int(arrived[0].rsplit(".", 1)[1])


def prepared(layout, workdir, cluster):
    job = Job(layout, workdir, cluster)
    run = job.run()
    assert run.returncode == 0, run.stdout + run.stderr
    assert scratch_databases(cluster) == []
    return job


def test_sigterm_mid_restore_drops_the_scratch_database(layout, workdir, cluster):
    job = prepared(layout, workdir, cluster)
    live = fingerprint(cluster, "lift_simulator")
    proc, pid = frozen_drill(job, workdir)
    [scratch] = scratch_databases(cluster)
    os.kill(pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, out + err
    assert "stopped by SIGTERM" in err
    assert scratch_databases(cluster) == [], scratch
    assert fingerprint(cluster, "lift_simulator") == live
    logs = [n for n in job.log_files() if n.startswith("it_job_drill_")]
    assert len(logs) == 1
    text = job.read_log(os.path.join(job.logs, logs[0]))
    assert "FAILED: stopped by SIGTERM" in text and "the scratch database of the drill was dropped" in text
    with open(os.path.join(job.metrics_dir, "lift_pg_backup_drill_it_job.prom")) as handle:
        assert 'lift_simulator_backup_restore_drill_success{database="lift_simulator",backup_job="it_job",' \
               'source="local"} 0' in handle.read()


def test_sigkill_mid_restore_leaves_a_scratch_database_that_the_next_drill_drops(layout, workdir, cluster):
    job = prepared(layout, workdir, cluster)
    live = fingerprint(cluster, "lift_simulator")
    proc, pid = frozen_drill(job, workdir)
    [scratch] = scratch_databases(cluster)
    os.kill(pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert scratch_databases(cluster) == [scratch]  # nothing could drop it
    # A database of the same shape that no drill made (not in the collection's records) stays.
    decoy = "lift_simulator_verify_19990101000000"
    cluster.psql("CREATE DATABASE %s" % decoy)
    try:
        run = job.run("--drill")
        assert run.returncode == 0, run.stdout + run.stderr
        assert scratch_databases(cluster) == [decoy]
    finally:
        cluster.psql("DROP DATABASE IF EXISTS %s" % decoy)
    assert fingerprint(cluster, "lift_simulator") == live
