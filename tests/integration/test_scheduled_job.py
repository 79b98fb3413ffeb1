# -*- coding: utf-8 -*-
"""The scheduled backup job (roles/scheduled_backup/files/lift_pg_backup.py) against the test cluster.

The command runs as the postgres OS user with the system Python (which has no Ansible), from an
installed layout built in a temporary directory exactly as the role builds it: the command, and
the collection's module_utils as a whole (but those that import Ansible; tests/lib/lift_job.py)
below ansible_collections/lift_simulator/postgresql/plugins/module_utils with __init__.py files.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fcntl
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import checksums
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import manifest as mf
from pglab import LIFT_ADMIN_PASSWORD, SYSTEM_PYTHON, free_port
from lift_job import Job, chown_postgres, log_of, make_layout, new_backup, old_backups


@pytest.fixture(scope="module")
def layout():
    base = tempfile.mkdtemp(prefix="lift-it-job-", dir="/tmp")
    yield make_layout(base)
    shutil.rmtree(base, ignore_errors=True)


# --- tests ------------------------------------------------------------------------------------

def test_help_documents_the_command(layout):
    out = subprocess.run([layout[0], "--help"], stdout=subprocess.PIPE,  # through its interpreter line
                         universal_newlines=True, check=True, env=dict(os.environ, LIFT_PG_BACKUP_LIB=layout[1])).stdout
    for text in ("--config", "--wait", "--keep-last", "--password-file", "--no-retention", "exit status",
                 "75 another backup is running", "/etc/lift-pg-backup/<name>.json"):
        assert text in out, text


def test_success_backup_verification_log_metrics_retention(layout, workdir, cluster):
    job = Job(layout, workdir, cluster)
    old = old_backups(job)
    before = job.backups()
    started = time.time()
    run = job.run()
    assert run.returncode == 0, run.stdout + run.stderr
    name = new_backup(job, before)
    path = os.path.join(job.dest, name)
    manifest = mf.load_manifest(path + ".manifest.json")
    assert manifest["sha256"] == checksums.sha256_file(path)[0]
    assert os.stat(path).st_uid == pwd.getpwnam("postgres").pw_uid and os.stat(path).st_mode & 0o777 == 0o600
    # Retention with keep_last 2: the new backup and the newest old one stay, the two older go.
    assert sorted(job.backups()) == sorted([name, name + ".globals.sql", name + ".manifest.json", old[2],
                                            old[2] + ".manifest.json"])
    # One log for the run: the backup module's lines, then verification, retention, metrics, result.
    assert job.log_files() == [name[:-len(".sql")] + ".log"]
    text = job.read_log(os.path.join(job.logs, job.log_files()[0]))
    for expected in ("job it_job (database lift_simulator) started as postgres", "lock %s acquired" % os.path.join(
            job.state_dir, "it_job.lock"), "SUCCESS: %s" % path, "verification: sha256 passed",
            "verification: structure passed", "verification passed", "retention: kept %s (keep_last)" % name,
            "retention: removed %s (not_selected" % old[0], "retention: removed %s (not_selected" % old[1],
            "retention: 2 kept, 2 removed", "metrics written to %s" % job.metrics_file, "RESULT: success"):
        assert expected in text, expected
    # Not a terminal: the same lines went to stdout (the journal under systemd).
    assert "RESULT: success" in run.stdout and "verification passed" in run.stdout
    metrics = job.metrics()
    assert metrics["last_run_success"] == 1
    assert metrics["last_size_bytes"] == manifest["size_bytes"]
    assert started <= metrics["last_success_timestamp_seconds"] <= time.time()
    assert metrics["last_success_timestamp_seconds"] == metrics["last_run_timestamp_seconds"]
    assert 0 < metrics["last_duration_seconds"] < time.time() - started
    assert oct(os.stat(job.metrics_file).st_mode & 0o777) == "0o644"
    status = job.status()
    assert status["status"] == "success" and status["backup_path"] == path
    assert status["log_path"] == os.path.join(job.logs, job.log_files()[0])


def test_a_backup_dated_in_the_future_is_reported_and_displaces_nothing(layout, workdir, cluster):
    """A clock that once ran 400 days ahead: the job keeps today's backup, warns in its log and
    exports the future-dated backup in the metric an alert watches."""
    job = Job(layout, workdir, cluster)
    future = old_backups(job, (-400,))[0]
    old = old_backups(job, (30, 20))
    before = job.backups()
    run = job.run()
    assert run.returncode == 0, run.stdout + run.stderr
    name = new_backup(job, before)
    # keep_last 2 counts today's backup and the newest old one; the future-dated one counts for nothing.
    assert sorted(n for n in job.backups() if not n.endswith((".manifest.json", ".globals.sql"))) == sorted(
        [future, name, old[1]])
    assert job.metrics()["future_dated_backups"] == 1 and job.metrics()["last_run_success"] == 1
    _path, text = log_of(job, "RESULT: success")
    assert "%s is dated in the future" % future in text and "a clock is wrong" in text


def test_failure_server_unreachable_touches_no_backup(layout, workdir, cluster):
    job = Job(layout, workdir, cluster)
    marker = os.path.join(workdir, "notified")
    # The cron mode: the command itself runs the hook after a failure.
    job.write_config(notify_on_failure=True, notify_command=[
        "/bin/sh", "-c", 'printf "%s\\n" "$LIFT_BACKUP_STATUS" "$1" "$2" "$LIFT_BACKUP_MESSAGE" > "$0"', marker,
        "{log}", "{unit}"])
    first = job.run()
    assert first.returncode == 0, first.stdout + first.stderr
    good = job.metrics()
    old = old_backups(job, (40, 35, 30))
    before = job.backups()
    listing_before = dict((n, os.stat(os.path.join(job.dest, n)).st_mtime_ns) for n in before)
    job.write_config(login_port=free_port())  # nothing listens there: the server is not reachable
    started = time.time()
    run = job.run()
    assert run.returncode == 1, run.stdout + run.stderr
    assert "FAILED (backup): cannot connect to database \"lift_simulator\"" in run.stderr
    assert "the server is not running or not accepting connections there" in run.stderr
    # Every earlier backup is untouched, although retention (keep_last 2) would remove three.
    assert job.backups() == before and len(old) == 3
    assert dict((n, os.stat(os.path.join(job.dest, n)).st_mtime_ns) for n in before) == listing_before
    path, text = log_of(job, "RESULT: FAILED (backup)")
    assert "the server is not running or not accepting connections there" in text
    assert "no retention was applied: every earlier backup is left in place" in text
    assert "retention:" not in text and "verification" not in text
    metrics = job.metrics()
    assert metrics["last_run_success"] == 0
    assert metrics["last_run_timestamp_seconds"] >= started
    # The last success and its size are those of the earlier run.
    assert metrics["last_success_timestamp_seconds"] == good["last_success_timestamp_seconds"]
    assert metrics["last_size_bytes"] == good["last_size_bytes"] > 0
    status = job.status()
    assert status["status"] == "failed" and status["stage"] == "backup" and status["log_path"] == path
    with open(marker) as handle:
        lines = handle.read().splitlines()
    assert lines[0] == "failed" and lines[1] == path and lines[2] == "cron"
    assert "cannot connect" in lines[3]
    # A second failure still carries the last success over.
    assert job.run().returncode == 1
    assert job.metrics()["last_success_timestamp_seconds"] == good["last_success_timestamp_seconds"]


def test_a_run_refuses_or_waits_while_another_holds_the_lock(layout, workdir, cluster):
    job = Job(layout, workdir, cluster)
    lock_path = os.path.join(job.state_dir, "it_job.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    chown_postgres(lock_path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a running job does: flock, then its pid and start time
        os.write(fd, ("%d 2026-11-24T08:00:00Z\n" % os.getpid()).encode())
        refused = job.run()
        assert refused.returncode == 75, refused.stdout + refused.stderr
        assert ("another backup is running (pid %d) since 2026-11-24T08:00:00Z; this run did nothing"
                % os.getpid()) in refused.stderr
        assert job.backups() == [] and not os.path.exists(job.metrics_file)
        assert job.status()["status"] == "refused"  # what the OnFailure notification reports
        assert log_of(job, "REFUSED: another backup is running (pid %d" % os.getpid())[0].endswith(".log")

        timed_out = job.run("--wait", "--wait-timeout", "1")
        assert timed_out.returncode == 75 and "another backup is running" in timed_out.stderr

        waiting = job.start("--wait")
        deadline = time.monotonic() + 60
        seen = ""
        while "waiting for the lock" not in seen and time.monotonic() < deadline:
            seen += waiting.stdout.readline()
        assert "waiting for the lock" in seen and job.backups() == []
    finally:
        os.close(fd)  # the "running job" ends
    out, err = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, seen + out + err
    assert "after waiting" in out and len(job.backups()) == 3  # backup, role definitions, manifest


def test_two_runs_started_together_never_dump_at_once(layout, workdir, cluster):
    job = Job(layout, workdir, cluster, keep_last=10)

    def together(*options):
        procs = [job.start(*options), job.start(*options)]
        return [(p,) + p.communicate(timeout=300) for p in procs]

    # Both wait: both back up, one after the other (manifest times to the microsecond).
    results = together("--wait")
    assert [p.returncode for p, _o, _e in results] == [0, 0], results
    assert sum("after waiting" in out for _p, out, _e in results) == 1
    manifests = [mf.load_manifest(os.path.join(job.dest, n)) for n in job.backups() if n.endswith(".manifest.json")]
    assert len(manifests) == 2
    first, second = sorted((m["started_at"], m["finished_at"]) for m in manifests)
    assert first[1] <= second[0], (first, second)

    # Without --wait: the second refuses naming the first, unless the first was already done.
    results = together()
    codes = sorted(p.returncode for p, _o, _e in results)
    assert codes in ([0, 0], [0, 75]), results
    if codes == [0, 75]:
        winner_out = [o for p, o, _e in results if p.returncode == 0][0]
        loser_err = [e for p, _o, e in results if p.returncode == 75][0]
        winner_pid = re.search(r"started as postgres, pid (\d+),", winner_out).group(1)
        assert "another backup is running (pid %s) since " % winner_pid in loser_err, loser_err
    manifests = sorted((m["started_at"], m["finished_at"]) for m in (
        mf.load_manifest(os.path.join(job.dest, n)) for n in job.backups() if n.endswith(".manifest.json")))
    for earlier, later in zip(manifests, manifests[1:]):
        assert earlier[1] <= later[0], manifests


def test_no_password_in_argv_logs_or_output(layout, workdir, cluster):
    password_file = os.path.join(workdir, "password")
    with open(password_file, "w") as handle:
        handle.write(LIFT_ADMIN_PASSWORD + "\n")
    os.chmod(password_file, 0o600)
    chown_postgres(password_file)
    job = Job(layout, workdir, cluster, login_unix_socket=None, login_host="127.0.0.1", login_user="lift_admin",
              password_file=password_file)
    seen = []
    stop = threading.Event()

    def sample():  # every process's argv and environment while the job runs
        while not stop.is_set():
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    for part in ("cmdline", "environ"):
                        try:
                            with open("/proc/%s/%s" % (pid, part), "rb") as handle:
                                data = handle.read()
                        except OSError:
                            continue
                        if b"pg_dump" in data or b"lift-pg-backup" in data:
                            seen.append(data)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        run = job.run()
    finally:
        stop.set()
        sampler.join()
    assert run.returncode == 0, run.stdout + run.stderr
    assert any(b"pg_dump" in data for data in seen), "the sampler never saw pg_dump"
    secret = LIFT_ADMIN_PASSWORD.encode()
    assert not [data for data in seen if secret in data]
    texts = [run.stdout, run.stderr] + [job.read_log(os.path.join(job.logs, n)) for n in job.log_files()]
    texts.append(json.dumps(job.status()))
    with open(job.metrics_file) as handle:
        texts.append(handle.read())
    assert not [t for t in texts if LIFT_ADMIN_PASSWORD in t]

    # A password file others can read is refused, with a message that does not show it.
    os.chmod(password_file, 0o644)
    refused = job.run()
    assert refused.returncode == 1 and "can be read by others" in refused.stderr
    assert LIFT_ADMIN_PASSWORD not in refused.stderr + refused.stdout


def test_stopped_by_sigterm_records_the_failure(layout, workdir, cluster):
    """The time limit (systemd TimeoutStartSec, timeout 1h under cron) sends SIGTERM mid-run."""
    job = Job(layout, workdir, cluster)
    points = os.path.join(workdir, "points")
    os.mkdir(points)
    chown_postgres(points)
    proc = subprocess.Popen(["runuser", "-u", "postgres", "--", "env", "LIFT_PG_BACKUP_LIB=%s" % job.lib,
                             "LIFT_PG_FAILPOINTS=backup-before-publish", "LIFT_PG_FAILPOINT_DIR=%s" % points,
                             SYSTEM_PYTHON, "-I", job.command, "--config", job.config],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    deadline = time.monotonic() + 120
    while not os.listdir(points) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    arrived = os.listdir(points)
    assert arrived, "the job never reached the failpoint: %s" % (proc.communicate(timeout=60),)
    os.kill(int(arrived[0].rsplit(".", 1)[1]), signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, out + err
    assert "stopped by SIGTERM" in err
    assert job.backups() == []
    assert not [n for n in os.listdir(job.dest) if n.startswith(".")], os.listdir(job.dest)
    _path, text = log_of(job, "RESULT: FAILED (backup): stopped by SIGTERM")
    assert job.metrics()["last_run_success"] == 0


def test_archives_are_verified_with_pg_restore(layout, workdir, cluster):
    job = Job(layout, workdir, cluster, format="custom", retention=False)
    run = job.run()
    assert run.returncode == 0, run.stdout + run.stderr
    assert [n for n in job.backups() if n.endswith(".dump")]
    assert "verification: structure passed: table of contents with" in run.stdout
    assert "retention: disabled" in run.stdout and "retention: kept" not in run.stdout


def test_print_config_merges_file_and_options(layout, workdir, cluster):
    job = Job(layout, workdir, cluster)
    run = job.run("--print-config", "--keep-last", "7", "--format", "custom", "--no-retention")
    assert run.returncode == 0, run.stderr
    settings = json.loads(run.stdout)
    assert settings["keep_last"] == 7 and settings["format"] == "custom" and settings["retention"] is False
    assert settings["dest_dir"] == job.dest and settings["log_dir"] == job.logs
    assert settings["lock_file"] == os.path.join(job.state_dir, "it_job.lock")
    bad = job.run("--keep-last", "-1")
    assert bad.returncode == 2 and "keep_last must be 0 or more" in bad.stderr


def test_the_job_encrypts_in_the_stream(layout, workdir, cluster):
    """encryption: age in the job's settings: the backup is an .age file whose manifest lists the
    recipient, the job's verification checks the age header against it, and the key decrypts it."""
    keys = tempfile.mkdtemp(prefix="lift-it-jobkey-", dir="/tmp")
    try:
        identity = os.path.join(keys, "ops.key")
        subprocess.run(["age-keygen", "-o", identity], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        recipient = subprocess.run(["age-keygen", "-y", identity], check=True, stdout=subprocess.PIPE,
                                   universal_newlines=True).stdout.strip()
        job = Job(layout, workdir, cluster, compression="zstd", encryption="age", encryption_recipients=[recipient],
                  retention=False)
        before = job.backups()
        run = job.run()
        assert run.returncode == 0, run.stdout + run.stderr
        name = new_backup(job, before)
        assert name.endswith(".sql.zst.age")
        manifest = mf.load_manifest(os.path.join(job.dest, name) + ".manifest.json")
        assert manifest["encryption"] == "age" and manifest["recipients"][0]["recipient"] == recipient
        assert "verification: encryption passed" in run.stdout and "verification: structure skipped" in run.stdout
        compressed = subprocess.run(["age", "-d", "-i", identity, os.path.join(job.dest, name)], check=True,
                                    stdout=subprocess.PIPE).stdout
        plain = subprocess.run(["zstd", "-d", "-c"], input=compressed, check=True, stdout=subprocess.PIPE).stdout
        assert b"PostgreSQL database dump" in plain[:1024]
    finally:
        shutil.rmtree(keys, ignore_errors=True)
