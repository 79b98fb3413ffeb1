# -*- coding: utf-8 -*-
"""pgBackRest (Debian's package) on the bench's cluster, beside the collection's logical dumps: what
a physical full backup of the same cluster costs (time, repository size) and what restoring it
costs (restore into a new empty data directory, then start that cluster until it has finished
recovery and answers queries). Not like with like: pgBackRest copies the whole cluster's files
(every database, the indexes as built, and the WAL needed for consistency); a dump holds one
database's rows and DDL and rebuilds indexes on restore.

The setup follows what an operator would write: a private configuration file (--config) in the
bench's work directory, a posix repository there, stanza ``bench``, WAL archiving through
``pgbackrest archive-push`` (archive_mode needs a restart: turned on through ALTER SYSTEM for the
pgBackRest measurements only, and off again afterwards, so the logical contenders never pay for
archiving). Backups are ``--type=full`` with start-fast (immediate checkpoint), compressed with
--compress-type (zst by default: pgBackRest 2.45 offers gz, bz2, lz4, zst), --process-max processes.
The restore is ``--type=immediate`` (recovery stops as soon as the backup is consistent, then
promotes), delta off (an empty target directory), and the restored cluster starts on another port
with archiving off so it never writes into the repository.
"""
from __future__ import absolute_import, division, print_function

import json
import os
import pwd
import shutil
import subprocess
import time

STANZA = "bench"


def _chown(path):
    pw = pwd.getpwnam("postgres")
    os.chown(path, pw.pw_uid, pw.pw_gid)


def du(path):
    total = 0
    for base, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(base, name)).st_size
            except OSError:
                pass
    return total


class PgBackRestSide(object):
    def __init__(self, cluster, work, compress_type="zst", process_max=2, log=None):
        if not shutil.which("pgbackrest"):
            raise RuntimeError("pgbackrest is not installed: apt-get install pgbackrest (scripts/bootstrap_host.sh)")
        self.pg = cluster
        self.base = os.path.join(work, "pgbackrest")
        self.compress_type = compress_type
        self.process_max = process_max
        self.log = log or (lambda message: None)
        self.conf = os.path.join(self.base, "pgbackrest.conf")
        self.repo = os.path.join(self.base, "repo")
        self.version = subprocess.run(["pgbackrest", "version"], check=True, stdout=subprocess.PIPE,
                                      universal_newlines=True).stdout.strip()

    def _dir(self, path, mode=0o750):
        os.makedirs(path, mode, exist_ok=True)
        os.chmod(path, mode)
        _chown(path)
        return path

    def setup(self):
        """A fresh repository and configuration; archiving on (restart); stanza-create."""
        shutil.rmtree(self.base, ignore_errors=True)
        self._dir(self.base, 0o755)
        for name in ("repo", "log", "lock", "spool"):
            self._dir(os.path.join(self.base, name))
        lines = ["[global]", "repo1-type=posix", "repo1-path=%s" % self.repo,
                 "log-path=%s" % os.path.join(self.base, "log"), "lock-path=%s" % os.path.join(self.base, "lock"),
                 "spool-path=%s" % os.path.join(self.base, "spool"), "compress-type=%s" % self.compress_type,
                 "process-max=%d" % self.process_max, "start-fast=y", "repo1-retention-full=1",
                 "log-level-console=warn", "log-level-file=info", "",
                 "[%s]" % STANZA, "pg1-path=%s" % self.pg.data, "pg1-port=%d" % self.pg.port,
                 "pg1-socket-path=%s" % self.pg.socket_dir]
        with open(self.conf, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        os.chmod(self.conf, 0o644)
        command = "pgbackrest --config=%s --stanza=%s archive-push %%p" % (self.conf, STANZA)
        self.pg.psql("ALTER SYSTEM SET archive_mode = 'on'")
        self.pg.psql("ALTER SYSTEM SET archive_command = '%s'" % command.replace("'", "''"))
        self._restart()
        self.pgbackrest("stanza-create")

    def teardown(self):
        """Archiving off again (restart); the repository removed."""
        try:
            self.pg.psql("ALTER SYSTEM RESET archive_mode")
            self.pg.psql("ALTER SYSTEM RESET archive_command")
            self._restart()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def _restart(self):
        self.pg.stop()
        self.pg.start()

    def pgbackrest(self, *args):
        proc = subprocess.run(["runuser", "-u", "postgres", "--", "pgbackrest", "--config=%s" % self.conf,
                               "--stanza=%s" % STANZA] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError("pgbackrest %s failed (rc %d): %s%s" % (" ".join(args), proc.returncode, proc.stdout,
                                                                       proc.stderr))
        return proc.stdout

    def backup(self):
        """One full backup: (seconds, its info from ``pgbackrest info``)."""
        started = time.monotonic()
        self.pgbackrest("backup", "--type=full")
        seconds = time.monotonic() - started
        info = json.loads(self.pgbackrest("info", "--output=json"))
        last = info[0]["backup"][-1]
        return seconds, {"label": last["label"], "repo_bytes": last["info"]["repository"]["size"],
                         "cluster_bytes": last["info"]["size"], "repo_dir_bytes": du(self.repo)}

    def restore(self, label, settings):
        """Restore ``label`` into a new empty directory, start it on another port and wait until it has
        left recovery and answers a query. Returns {restore_s, start_s, total_s}; removes the copy."""
        target = os.path.join(self.base, "restored")
        sockets = os.path.join(self.base, "restored-sock")
        shutil.rmtree(target, ignore_errors=True)
        shutil.rmtree(sockets, ignore_errors=True)
        self._dir(target, 0o700)
        self._dir(sockets, 0o755)
        port = self.pg.port + 1 if self.pg.port < 65000 else self.pg.port - 1
        started = time.monotonic()
        self.pgbackrest("restore", "--set=%s" % label, "--pg1-path=%s" % target, "--type=immediate",
                        "--target-action=promote", "--delta=n")
        restored = time.monotonic()
        options = "-p %d -k %s -c listen_addresses='' -c archive_mode=off" % (port, sockets)
        for key, value in sorted(settings.items()):
            options += " -c %s=%s" % (key, value)
        log = os.path.join(self.base, "restored.log")
        try:
            subprocess.run(["runuser", "-u", "postgres", "--", self.pg.bin_path("pg_ctl"), "-D", target, "-l", log,
                            "-o", options, "-W", "start"], check=True, stdout=subprocess.DEVNULL)
            env = dict(os.environ, PGHOST=sockets, PGPORT=str(port), PGUSER="postgres", PGDATABASE="postgres",
                       PGCONNECT_TIMEOUT="5")
            deadline = time.monotonic() + 600
            while True:
                # Ready: accepts connections and recovery is over (promoted).
                probe = subprocess.run(["runuser", "-u", "postgres", "--", self.pg.bin_path("psql"), "-X", "-A",
                                        "-t", "-c", "SELECT pg_catalog.pg_is_in_recovery()"], env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True,
                                       check=False)
                if probe.returncode == 0 and probe.stdout.strip() == "f":
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("the restored cluster did not finish recovery in 600 s (see %s)" % log)
                time.sleep(0.05)
            ready = time.monotonic()
        finally:
            subprocess.run(["runuser", "-u", "postgres", "--", self.pg.bin_path("pg_ctl"), "-D", target, "-m",
                            "immediate", "-w", "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           check=False)
            shutil.rmtree(target, ignore_errors=True)
            shutil.rmtree(sockets, ignore_errors=True)
        return {"restore_s": restored - started, "start_s": ready - restored, "total_s": ready - started}

    def measure(self, repeat, settings):
        """``repeat`` full backups, each followed by a restore of it: times and sizes (lists)."""
        self.setup()
        try:
            out = {"backup_s": [], "restore_s": [], "start_s": [], "restore_total_s": [], "repo_bytes": [],
                   "cluster_bytes": [], "repo_dir_bytes": []}
            for _i in range(repeat):
                seconds, info = self.backup()
                out["backup_s"].append(seconds)
                for key in ("repo_bytes", "cluster_bytes", "repo_dir_bytes"):
                    out[key].append(info[key])
                self.log("  %-22s %.3f s (%d MB in the repository)" % ("pgbackrest_full", seconds,
                                                                       info["repo_bytes"] // 1000000))
                restored = self.restore(info["label"], settings)
                out["restore_s"].append(restored["restore_s"])
                out["start_s"].append(restored["start_s"])
                out["restore_total_s"].append(restored["total_s"])
                self.log("  %-22s %.3f s (restore %.3f s, start and recovery %.3f s)" % (
                    "pgbackrest_restore", restored["total_s"], restored["restore_s"], restored["start_s"]))
            return out
        finally:
            self.teardown()
