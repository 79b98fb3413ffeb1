# -*- coding: utf-8 -*-
"""The restore drill's ``pitr`` source (``lift-pg-backup --drill`` with drill_pitr_stanza;
plugins/module_utils/job/drill_pitr.py), for real: a PostgreSQL cluster started by the test archives its
WAL with pgBackRest (Debian's package) into a posix repository (tests/lib/pitrlab.py); the job, run as
the postgres OS user from the layout the role installs (tests/lib/lift_job.py), recovers the
repository's latest into a scratch data directory under its state directory, starts a temporary server
there (no TCP, a private socket), checks the recovered database and removes it all; the live cluster,
its databases and the repository's archive are left as they were. A repository with a missing WAL
segment, or a stanza that is not there, fails the drill with a message that names it, and leaves no
scratch directory either; one left by a killed drill is removed by the next drill.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import glob
import json
import os
import re
import shutil
import signal
import tempfile
import time

import pytest

from lift_job import Job, chown_postgres, make_layout
from pgcompare import fingerprint
from pglab import LIFT_ADMIN_PASSWORD, load_fixture
from pitrlab import PitrLab, poll

DRILL = "lift_simulator_backup_restore_drill_"


@pytest.fixture(scope="module")
def layout():
    base = tempfile.mkdtemp(prefix="lift-it-pitrdrill-", dir="/tmp")
    yield make_layout(base)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def lab():
    """The cluster with the application's database, archiving; the stanza with one full backup."""
    lab = PitrLab().start()
    try:
        lab.pg.psql("CREATE ROLE lift_admin LOGIN PASSWORD '%s'" % LIFT_ADMIN_PASSWORD.replace("'", "''"))
        load_fixture(lab.pg, "lift_simulator")
        assert lab.pgbackrest("stanza-create").returncode == 0
        full = lab.job("--type", "full")
        assert full.returncode == 0, full.stderr
        yield lab
    finally:
        lab.destroy()


@pytest.fixture
def job(layout, lab, workdir):
    job = Job(layout, workdir, lab.pg, drill_pitr_stanza=lab.stanza, drill_pitr_config=lab.conf)
    made = job.run()  # the local source needs a backup of its own
    assert made.returncode == 0, made.stdout + made.stderr
    return job


def drill_metrics(job):
    """{(metric, source): value} of the drill's textfile."""
    found = {}
    with open(os.path.join(job.metrics_dir, "lift_pg_backup_drill_%s.prom" % job.settings["name"])) as handle:
        for line in handle.read().splitlines():
            match = re.match(r'^%s(\w+)\{database="lift_simulator",backup_job="%s",source="([^"]+)"\} (\S+)$'
                             % (DRILL, job.settings["name"]), line)
            if match:
                found[(match.group(1), match.group(2))] = float(match.group(3))
    return found


def last_report(job):
    paths = sorted(glob.glob(os.path.join(job.state_dir, "drills", "%s-*.json" % job.settings["name"])),
                   key=lambda path: os.stat(path).st_mtime_ns)
    with open(paths[-1]) as handle:
        return json.load(handle)


def drill_log(job):
    found = sorted((os.stat(os.path.join(job.logs, n)).st_mtime_ns, n) for n in job.log_files()
                   if n.startswith("%s_drill_" % job.settings["name"]))
    return job.read_log(os.path.join(job.logs, found[-1][1]))


def scratch_dirs(job):
    return sorted(n for n in os.listdir(job.state_dir) if n.startswith("drill-pitr-"))


def archive_files(lab):
    return sorted(os.path.relpath(os.path.join(d, f), lab.archive_dir())
                  for d, _dirs, files in os.walk(lab.archive_dir()) for f in files)


def marked_write(lab):
    """A transaction in the application's database, its WAL switched out and archived: its commit time."""
    lab.pg.psql("CREATE TABLE IF NOT EXISTS drill_marker (at timestamptz); INSERT INTO drill_marker VALUES (now())",
                database="lift_simulator")
    committed = float(lab.pg.psql("SELECT extract(epoch FROM max(at)) FROM drill_marker", database="lift_simulator"))
    segment = lab.pg.psql("SELECT pg_walfile_name(pg_switch_wal())")
    poll("segment %s in the repository" % segment, lambda: lab.archived_files(segment))
    return committed, segment


def running(pid):
    """Whether the process runs (a zombie does not: this machine's pid 1 may not reap the orphans)."""
    try:
        with open("/proc/%d/status" % pid) as handle:
            return "State:\tZ" not in handle.read()
    except OSError:
        return False


def iso_epoch(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()


def test_a_drill_recovers_the_latest_into_a_scratch_directory_and_removes_it(lab, job):
    committed, segment = marked_write(lab)
    live = fingerprint(lab.pg, "lift_simulator")
    databases = sorted(lab.pg.psql("SELECT datname FROM pg_database").splitlines())
    archived = archive_files(lab)
    started = time.time()
    run = job.run("--drill")
    assert run.returncode == 0, run.stdout + run.stderr
    text = drill_log(job)
    for expected in ("drill pitr: restoring the latest of stanza %s" % lab.stanza,
                     "drill pitr: recovered to the end of the archive (last WAL %s" % segment,
                     "drill pitr: check database lift_simulator opens passed",
                     "drill pitr: the temporary server was stopped (immediate)",
                     "drill pitr: SUCCESS: the latest of stanza %s" % lab.stanza,
                     "RESULT: success: 2 sources drilled"):
        assert expected in text, (expected, text)
    report = last_report(job)
    assert report["success"] is True
    assert [s["source"] for s in report["sources"]] == ["local", "pitr"]
    pitr = report["sources"][1]
    assert pitr["success"] is True and re.match(r"^\d{8}-\d{6}F$", pitr["backup"]), pitr
    assert pitr["scratch_database"].startswith(os.path.join(job.state_dir, "drill-pitr-it_job-"))
    # What it restored is as new as the last transaction archived (the marker), to the second.
    assert int(committed) - 1 <= iso_epoch(pitr["backup_time"]) <= time.time()
    assert 0 <= pitr["restored_backup_age_seconds"] <= time.time() - committed + 2
    names = [c["name"] for c in pitr["checks"]]
    assert "database lift_simulator opens" in names and "database postgres opens" in names
    assert "lift_system count" in names, names
    assert all(c["passed"] for c in pitr["checks"]), pitr["checks"]
    metrics = drill_metrics(job)
    assert metrics[("success", "pitr")] == 1 and metrics[("success", "local")] == 1
    assert started <= metrics[("last_success_timestamp_seconds", "pitr")] <= time.time()
    assert metrics[("duration_seconds", "pitr")] == pitr["restore_seconds"] > 0
    assert metrics[("restored_backup_age_seconds", "pitr")] == pitr["restored_backup_age_seconds"]
    # Nothing is left, and nothing of the live side moved: its database, its databases, the archive
    # (the promoted copy archived nothing: no history file of a new timeline reached the repository).
    assert scratch_dirs(job) == []
    assert fingerprint(lab.pg, "lift_simulator") == live
    assert sorted(lab.pg.psql("SELECT datname FROM pg_database").splitlines()) == databases
    assert archive_files(lab) == archived
    assert not any(name.endswith(".history") for name in archive_files(lab))


def test_a_missing_wal_segment_fails_the_drill_and_names_it(lab, job):
    segments = [marked_write(lab)[1] for _round in range(3)]
    aside = tempfile.mkdtemp(prefix="lift-it-aside-")
    moved = lab.archived_files(segments[1])
    assert moved
    for path in moved:
        shutil.move(path, aside)
    try:
        run = job.run("--drill")
    finally:
        for name in os.listdir(aside):
            shutil.move(os.path.join(aside, name), os.path.dirname(moved[0]))
        shutil.rmtree(aside, ignore_errors=True)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "restore drill FAILED: pitr: the recovery stopped at WAL segment %s: the next one, %s, is missing from " \
           "the repository" % (segments[0], segments[1]) in run.stderr, run.stderr
    report = last_report(job)
    assert report["success"] is False
    local, pitr = report["sources"]
    assert local["success"] is True and pitr["success"] is False and segments[1] in pitr["message"]
    metrics = drill_metrics(job)
    assert metrics[("success", "pitr")] == 0 and metrics[("success", "local")] == 1
    assert scratch_dirs(job) == []
    assert "drill pitr: the scratch directory" in drill_log(job)


def test_a_stanza_that_is_not_there_fails_the_drill(lab, job):
    job.write_config(drill_pitr_stanza="not_there")
    run = job.run("--drill")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "pitr: the repository's stanza not_there cannot be recovered from: pgBackRest says 'missing stanza " \
           "path'" in run.stderr, run.stderr
    assert drill_metrics(job)[("success", "pitr")] == 0
    assert last_report(job)["sources"][1]["success"] is False
    assert scratch_dirs(job) == []


def test_a_scratch_directory_left_by_a_killed_drill_is_removed_by_the_next(lab, job):
    stale = os.path.join(job.state_dir, "drill-pitr-it_job-20260101T000000Z")
    others = [os.path.join(job.state_dir, name)
              for name in ("drill-pitr-other_job-20260101T000000Z", "drill-pitr-it_job-keep")]
    for path in [stale] + others:
        os.makedirs(os.path.join(path, "data"))
        with open(os.path.join(path, "data", "PG_VERSION"), "w") as handle:
            handle.write("15\n")
        for entry in (path, os.path.join(path, "data"), os.path.join(path, "data", "PG_VERSION")):
            chown_postgres(entry)
    run = job.run("--drill")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "drill pitr: removed %s, left by a drill that was killed" % stale in drill_log(job)
    assert not os.path.exists(stale)
    assert all(os.path.isdir(path) for path in others)  # not this job's, not its name pattern
    for path in others:
        shutil.rmtree(path)


def test_sigterm_stops_the_temporary_server_and_removes_the_scratch_directory(lab, job):
    proc = job.start("--drill")
    try:
        found = poll("the drill's temporary server", lambda: glob.glob(os.path.join(
            job.state_dir, "drill-pitr-it_job-*", "data", "postmaster.pid")), timeout=240)
        with open(found[0]) as handle:
            server = int(handle.readline())
        # To the job's own process (runuser's child): runuser would SIGKILL it 2 s after forwarding.
        with open("/proc/%d/task/%d/children" % (proc.pid, proc.pid)) as handle:
            [child] = [int(pid) for pid in handle.read().split()]
        os.kill(child, signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out + err
    assert "stopped by SIGTERM" in err, err
    assert scratch_dirs(job) == []
    assert not running(server)
    metrics = drill_metrics(job)
    assert metrics[("success", "pitr")] == 0


def test_a_drill_killed_with_sigkill_leaves_its_server_and_the_next_drill_removes_both(lab, job):
    proc = job.start("--drill")
    try:
        found = poll("the drill's temporary server", lambda: glob.glob(os.path.join(
            job.state_dir, "drill-pitr-it_job-*", "data", "postmaster.pid")), timeout=240)
        with open(found[0]) as handle:
            server = int(handle.readline())
        with open("/proc/%d/task/%d/children" % (proc.pid, proc.pid)) as handle:
            [child] = [int(pid) for pid in handle.read().split()]
        os.kill(child, signal.SIGKILL)
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    left = scratch_dirs(job)
    assert len(left) == 1 and running(server)  # what a SIGKILL leaves (outside systemd's cgroup kill)
    run = job.run("--drill")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "drill pitr: removed %s, left by a drill that was killed" % os.path.join(job.state_dir, left[0]) \
        in drill_log(job)
    assert not running(server) and scratch_dirs(job) == []


def test_what_alter_system_left_in_the_backup_does_not_reach_the_temporary_server(lab, job):
    # In the restored postgresql.auto.conf: the live cluster's TCP address and port (already taken),
    # SSL without a certificate; none of it may reach the temporary server (the live cluster is not
    # reloaded: its own command line wins anyway).
    lab.pg.psql("ALTER SYSTEM SET listen_addresses = '127.0.0.1'")
    lab.pg.psql("ALTER SYSTEM SET port = %d" % lab.pg.port)
    lab.pg.psql("ALTER SYSTEM SET ssl = on")
    try:
        full = lab.job("--type", "full")
        assert full.returncode == 0, full.stderr
    finally:
        lab.pg.psql("ALTER SYSTEM RESET ALL")
    run = job.run("--drill")
    assert run.returncode == 0, run.stdout + run.stderr
    assert last_report(job)["sources"][1]["success"] is True
    assert scratch_dirs(job) == []
