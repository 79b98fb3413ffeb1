# -*- coding: utf-8 -*-
"""The scheduled backup job (roles/scheduled_backup/files/lift_pg_backup.py) against the test cluster.

The command runs as the postgres OS user with the system Python (which has no Ansible), from an
installed layout built in a temporary directory exactly as the role builds it: the command, and
the module_utils listed in roles/scheduled_backup/vars/main.yml below
ansible_collections/lift_simulator/postgresql/plugins/module_utils with __init__.py files.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import fcntl
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest
import yaml

from ansible_collections.lift_simulator.postgresql.plugins.module_utils import checksums
from ansible_collections.lift_simulator.postgresql.plugins.module_utils import manifest as mf
from conftest import LIFT_ADMIN_PASSWORD, ROOT, SYSTEM_PYTHON, free_port

ROLE = os.path.join(ROOT, "roles", "scheduled_backup")
UTC = datetime.timezone.utc
PREFIX = "lift_simulator"
METRIC = "lift_simulator_backup_"


# --- the installed layout ---------------------------------------------------------------------

def role_vars():
    with open(os.path.join(ROLE, "vars", "main.yml")) as handle:
        return yaml.safe_load(handle)


def install_layout(base):
    """The command and its module_utils, laid out as the role installs them; returns the command."""
    variables = role_vars()
    lib = os.path.join(base, "lib")
    for directory in variables["__scheduled_backup_packages_dirs"]:
        os.makedirs(os.path.join(lib, directory), exist_ok=True)
        with open(os.path.join(lib, directory, "__init__.py"), "w"):
            pass
    target = os.path.join(lib, variables["__scheduled_backup_packages_dirs"][-1])
    for name in variables["__scheduled_backup_module_utils"]:
        shutil.copy(os.path.join(ROOT, "plugins", "module_utils", name), os.path.join(target, name))
    command = os.path.join(base, "lift-pg-backup")
    with open(os.path.join(ROLE, "files", "lift_pg_backup.py")) as source:
        with open(command, "w") as target:
            target.write("#!%s\n%s" % (variables["__scheduled_backup_interpreter"], source.read()))
    os.chmod(command, 0o755)
    return command, lib


@pytest.fixture(scope="module")
def layout():
    base = tempfile.mkdtemp(prefix="lift-it-job-", dir="/tmp")
    os.chmod(base, 0o755)  # root's, readable by postgres, as /usr/local is
    yield install_layout(base)
    shutil.rmtree(base, ignore_errors=True)


class Job(object):
    """One job set-up: directories owned by postgres, a configuration file, and runners."""

    def __init__(self, layout, workdir, cluster, **settings):
        self.command, self.lib = layout
        self.workdir = workdir
        self.dest = os.path.join(workdir, "backups")
        self.logs = os.path.join(self.dest, "logs")
        self.metrics_dir = os.path.join(workdir, "metrics")
        self.state_dir = os.path.join(workdir, "state")
        for path in (self.dest, self.metrics_dir, self.state_dir):
            os.mkdir(path, 0o700)
            chown_postgres(path)
        self.settings = dict(name="it_job", database="lift_simulator", dest_dir=self.dest,
                             metrics_dir=self.metrics_dir, state_dir=self.state_dir,
                             login_unix_socket=cluster.socket_dir, login_port=cluster.port, keep_last=2)
        self.settings.update(settings)
        self.config = os.path.join(workdir, "job.json")
        self.write_config()

    def write_config(self, **changes):
        self.settings.update(changes)
        with open(self.config, "w") as handle:
            json.dump(self.settings, handle)
        os.chmod(self.config, 0o644)

    def argv(self, *options):
        return ["runuser", "-u", "postgres", "--", "env", "LIFT_PG_BACKUP_LIB=%s" % self.lib,
                SYSTEM_PYTHON, "-I", self.command, "--config", self.config] + list(options)

    def run(self, *options, **kwargs):
        return subprocess.run(self.argv(*options), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, stdin=subprocess.DEVNULL, timeout=kwargs.get("timeout", 300),
                              check=False)

    def start(self, *options, **kwargs):
        return subprocess.Popen(self.argv(*options), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                universal_newlines=True, stdin=subprocess.DEVNULL, **kwargs)

    @property
    def metrics_file(self):
        return os.path.join(self.metrics_dir, "lift_pg_backup_%s.prom" % self.settings["name"])

    def metrics(self):
        values = {}
        with open(self.metrics_file) as handle:
            text = handle.read()
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            sample, value = line.rsplit(" ", 1)
            name, labels = sample.split("{", 1)
            assert labels == 'database="lift_simulator",backup_job="%s"}' % self.settings["name"], line
            values[name[len(METRIC):]] = float(value)
        assert "# TYPE %slast_run_success gauge" % METRIC in text and "# HELP %slast_size_bytes" % METRIC in text
        return values

    def status(self):
        with open(os.path.join(self.state_dir, "%s.last-run.json" % self.settings["name"])) as handle:
            return json.load(handle)

    def backups(self):
        return sorted(n for n in os.listdir(self.dest) if n.startswith(PREFIX + "_backup_"))

    def log_files(self):
        return sorted(os.listdir(self.logs)) if os.path.isdir(self.logs) else []

    def read_log(self, path):
        with open(path) as handle:
            return handle.read()


def chown_postgres(path):
    pw = pwd.getpwnam("postgres")
    os.chown(path, pw.pw_uid, pw.pw_gid)


def write_old_backup(directory, when):
    """A synthetic but valid backup of `lift_simulator`, named and with a manifest as the backup
    module writes them (so that retention counts it as a good backup)."""
    name = "%s_backup_%s.sql" % (PREFIX, when.strftime("%Y%m%d_%H%M%S"))
    path = os.path.join(directory, name)
    with open(path, "wb") as handle:
        handle.write(b"-- PostgreSQL database dump\n-- old\n" + os.urandom(256)
                     + b"\n-- PostgreSQL database dump complete\n")
    digest, size = checksums.sha256_file(path)
    document = mf.build_manifest(
        backup_name=name, database=PREFIX, host=socket.getfqdn(),
        server={"host": "local socket", "port": 5432, "version": "15.18", "version_num": 150018},
        pg_dump_version="15.18", format="plain", compression="none", compression_level=None,
        started_at=mf.utc_iso(when), finished_at=mf.utc_iso(when + datetime.timedelta(seconds=2)), duration_s=2.0,
        size_bytes=size, sha256=digest, sha256_scope="file", files=None,
        row_counts={"lift_simulator.lift_system": 1}, flyway_version="13", flyway=[], checklist=None,
        snapshot="00000003-0000001B-1", collection="lift_simulator.postgresql", collection_version="0.1.0")
    with open(path + ".manifest.json", "wb") as handle:
        handle.write(mf.dumps(document))
    for entry in (path, path + ".manifest.json"):
        os.chmod(entry, 0o600)
        chown_postgres(entry)
        os.utime(entry, (when.timestamp(), when.timestamp()))
    return name


def old_backups(job, ages_days=(30, 20, 10)):
    now = datetime.datetime.now(UTC).replace(microsecond=0)
    return [write_old_backup(job.dest, now - datetime.timedelta(days=d)) for d in ages_days]


def log_of(job, outcome_text):
    """The one log whose text contains ``outcome_text``."""
    found = [os.path.join(job.logs, n) for n in job.log_files() if outcome_text in job.read_log(os.path.join(job.logs, n))]
    assert len(found) == 1, (outcome_text, job.log_files())
    return found[0], job.read_log(found[0])


def new_backup(job, before):
    made = [n for n in job.backups() if n not in before and not n.endswith(".manifest.json")]
    assert len(made) == 1, made
    return made[0]


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
    assert sorted(job.backups()) == sorted([name, name + ".manifest.json", old[2], old[2] + ".manifest.json"])
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
    assert "after waiting" in out and len(job.backups()) == 2


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
