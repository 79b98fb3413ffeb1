# -*- coding: utf-8 -*-
"""A PostgreSQL cluster that archives its WAL with pgBackRest (Debian's package) into a repository of the
test (a posix directory, or the settings given: an S3 bucket), with the role pitr's scheduled job
installed as the role installs it (files/lift_pitr_backup.py over the library archive of
roles/scheduled_backup/files/lift_pg_backup_library.py). Shared by tests/integration/test_pitr_info.py
and the EXAMPLES run of pitr_info."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import json
import os
import pwd
import shutil
import subprocess
import sys
import tarfile
import time

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import metrics as job_metrics
from helpers import run_module
from pglab import ROOT, SYSTEM_PYTHON, PgCluster, postgres_owned_dir

STANZA = "lift_it"
PGBACKREST = shutil.which("pgbackrest")
ROLE = os.path.join(ROOT, "roles", "pitr")
BUILDER = os.path.join(ROOT, "roles", "scheduled_backup", "files", "lift_pg_backup_library.py")
PACKAGE_DIRS = ["ansible_collections", "ansible_collections/lift_simulator", "ansible_collections/lift_simulator/postgresql",
                "ansible_collections/lift_simulator/postgresql/plugins",
                "ansible_collections/lift_simulator/postgresql/plugins/module_utils"]
POLL = 0.2
CIPHER_PASS = "pitr-it-Cipher-passphrase-0123456789"


def poll(what, check, timeout=90):
    deadline = time.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError("timed out after %ds waiting for %s" % (timeout, what))
        time.sleep(POLL)


def install_job(base):
    """The job's command and library as the role installs them: the library archive made by the same
    builder, unpacked; the command with the interpreter line. Returns (command, library)."""
    out = subprocess.run([sys.executable, BUILDER, "--source", os.path.join(ROOT, "plugins", "module_utils"),
                          "--exclude-lines", r"\s*(from|import)\s+ansible\b", "--tmpdir", base]
                         + ["--package-dir=%s" % d for d in PACKAGE_DIRS],
                         check=True, stdout=subprocess.PIPE, universal_newlines=True).stdout
    built = json.loads(out)
    lib = os.path.join(base, "lib")
    with tarfile.open(built["archive"]) as archive:
        archive.extractall(lib)
    shutil.rmtree(os.path.dirname(built["archive"]))
    command = os.path.join(base, "lift-pitr-backup")
    with open(os.path.join(ROLE, "files", "lift_pitr_backup.py")) as source, open(command, "w") as target:
        target.write("#!%s -I\n%s" % (SYSTEM_PYTHON, source.read()))
    os.chmod(command, 0o755)
    return command, lib


class PitrLab(object):
    """A cluster archiving with pgBackRest into a repository of the test, and the job around it."""

    def __init__(self, stanza=STANZA, repo_settings=None):
        # Never a silent skip: scripts/bootstrap_host.sh installs Debian's pgbackrest.
        assert PGBACKREST, "pgbackrest is not installed: run scripts/bootstrap_host.sh (apt-get install pgbackrest)"
        self.stanza = stanza
        self.base = postgres_owned_dir("lift-it-pitr-")
        for name in ("repo", "log", "lock", "spool", "state", "metrics"):
            self.dir(name)
        self.conf = os.path.join(self.base, "pgbackrest.conf")
        self.repo_settings = repo_settings or {"repo1-type": "posix", "repo1-path": self.dir("repo")}
        self.pg = PgCluster()
        # archive_timeout off: the test switches segments itself, so that nothing moves in between.
        self.pg.settings = {"archive_mode": "on", "wal_level": "replica", "archive_timeout": "0",
                            "archive_command": "'pgbackrest --config=%s --stanza=%s archive-push %%p'" % (self.conf, stanza)}
        self.write_conf()
        self.command, self.lib = install_job(self.base)
        self.job_config = os.path.join(self.base, "job.json")
        self.write_job()

    def dir(self, name):
        path = os.path.join(self.base, name)
        if not os.path.isdir(path):
            os.mkdir(path, 0o750)
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)
        return path

    def write_conf(self):
        lines = ["[global]"] + ["%s=%s" % item for item in sorted(self.repo_settings.items())] + [
            "log-path=%s" % self.dir("log"), "lock-path=%s" % self.dir("lock"), "spool-path=%s" % self.dir("spool"),
            "compress-type=zst", "start-fast=y", "repo1-retention-full=2",
            "", "[%s]" % self.stanza, "pg1-path=%s" % self.pg.data, "pg1-port=%d" % self.pg.port,
            "pg1-socket-path=%s" % self.pg.socket_dir]
        with open(self.conf, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        # As the role writes it: root:postgres 0640 (it may hold secrets).
        os.chown(self.conf, 0, pwd.getpwnam("postgres").pw_gid)
        os.chmod(self.conf, 0o640)

    def write_job(self, **changes):
        settings = {"stanza": self.stanza, "pgbackrest_config": self.conf, "state_dir": self.dir("state"),
                    "metrics_dir": self.dir("metrics")}
        settings.update(changes)
        with open(self.job_config, "w") as handle:
            json.dump(settings, handle)
        os.chmod(self.job_config, 0o644)

    def start(self):
        self.pg.start_fresh()
        return self

    def pgbackrest(self, *args, check=True):
        return subprocess.run(["runuser", "-u", "postgres", "--", "pgbackrest", "--config=%s" % self.conf,
                               "--stanza=%s" % self.stanza] + list(args), check=check, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True)

    def job(self, *args):
        return subprocess.run(["runuser", "-u", "postgres", "--", "env", "LIFT_PITR_LIB=%s" % self.lib, self.command,
                               "--config", self.job_config] + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, timeout=600, check=False)

    def info(self, expect_ok=True, **args):
        options = dict(stanza=self.stanza, config=self.conf)
        options.update(args)
        return run_module("pitr_info", options, expect_ok)

    def switch_wal(self, rows=100):
        """Some writes, then a WAL switch: the name of the segment that was closed."""
        self.pg.psql("CREATE TABLE IF NOT EXISTS t (i int); INSERT INTO t SELECT generate_series(1, %d)" % rows)
        return self.pg.psql("SELECT pg_walfile_name(pg_switch_wal())")

    def archive_dir(self):
        return os.path.join(self.dir("repo"), "archive", self.stanza)

    def archived_files(self, segment):
        return glob.glob(os.path.join(self.archive_dir(), "*", segment[:16], segment + "-*"))

    def metrics(self, labels):
        with open(os.path.join(self.dir("metrics"), "lift_pitr_%s.prom" % self.stanza)) as handle:
            return job_metrics.parse_metrics(handle.read(), labels)

    def destroy(self):
        self.pg.destroy()
        shutil.rmtree(self.base, ignore_errors=True)
