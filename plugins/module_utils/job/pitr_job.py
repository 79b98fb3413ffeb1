# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""lift-pitr-backup, the scheduled pgBackRest job of the role lift_simulator.postgresql.pitr: one
backup of a type (full, diff, incr) with pgBackRest, then the Prometheus textfile refreshed from
``pgbackrest info`` (job/pitr_metrics.py); ``--metrics-only`` refreshes the textfile alone (its own
timer, so that the archive lag stays current); ``--notify-failure`` runs the operator's command
when a backup unit failed (systemd OnFailure=), with the placeholders of the backup job
(job/notify.py). Runs as the unit's user (postgres). Pure Python (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time

from ansible_collections.lift_simulator.postgresql.plugins.module_utils import process
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import notify
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import pitr_metrics
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.lock import JobLock, LockBusy
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.settings import ConfigError
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import info_query
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import info as pitr_info
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import recovery_repository
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import atomic_files

PROG = "lift-pitr-backup"
CONFIG_DIR = "/etc/lift-pitr"
DEFAULTS = {
    "stanza": None,
    "pgbackrest_config": info_query.DEFAULT_CONFIG,
    "state_dir": None,
    "metrics_dir": None,
    "list_archive": True,
    "info_timeout": info_query.DEFAULT_TIMEOUT,
    "notify_command": [],
    "notify_timeout": 300,
}
EXIT_FAILED, EXIT_USAGE = 1, 2
# How long a refresh of the textfile waits for another one.
METRICS_LOCK_WAIT = 120


def load_config(path):
    """The job's settings (JSON written by the role), checked."""
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ConfigError("cannot read the configuration %s: %s" % (path, getattr(exc, "strerror", None) or exc))
    if not isinstance(data, dict):
        raise ConfigError("%s: the configuration is not a JSON object" % path)
    unknown = sorted(set(data) - set(DEFAULTS))
    if unknown:
        raise ConfigError("%s: unknown settings %s" % (path, ", ".join(unknown)))
    settings = dict(DEFAULTS, **data)
    for key in ("stanza", "state_dir"):
        if not settings[key] or not isinstance(settings[key], str):
            raise ConfigError("%s: %s is required" % (path, key))
    if not isinstance(settings["notify_command"], list) or not all(
            isinstance(arg, str) for arg in settings["notify_command"]):
        raise ConfigError("%s: notify_command must be a list of strings" % path)
    return settings


def run_path(settings, kind):
    return os.path.join(settings["state_dir"], "last-%s.json" % kind)


def read_runs(settings):
    """{type: the last run's record} from the state directory."""
    runs = {}
    for kind in pitr_metrics.BACKUP_TYPES:
        try:
            with open(run_path(settings, kind)) as handle:
                runs[kind] = json.load(handle)
        except (OSError, ValueError):
            continue
    return runs


def record_run(settings, kind, record):
    atomic_files.write_file_atomic(settings["state_dir"], os.path.basename(run_path(settings, kind)),
                                   json.dumps(record, indent=2, sort_keys=True) + "\n", mode=0o640, replace=True)


def pgbackrest_backup_argv(settings, kind):
    return [recovery_repository.PROGRAM, "--config=%s" % settings["pgbackrest_config"], "--stanza=%s" % settings["stanza"],
            "backup", "--type=%s" % kind]


def refresh_metrics(settings, err=sys.stderr):
    """Read the repository and replace the textfile (when metrics are on). Returns (path or None,
    problem or None): a repository that cannot be read is a problem recorded in the file itself."""
    summary, problem = None, None
    try:
        summary, _entry = info_query.query(settings["stanza"], settings["pgbackrest_config"],
                                           settings["list_archive"], settings["info_timeout"])
        code, message = summary["status"]["code"], summary["status"]["message"]
        if code not in (pitr_info.STATUS_OK, pitr_info.STATUS_NO_BACKUP):
            problem = "pgBackRest reports the stanza %s as %r (status %s)" % (settings["stanza"], message, code)
    except info_query.QueryError as exc:
        problem = str(exc)
    if problem:
        err.write("%s: %s\n" % (PROG, problem))
    if not settings["metrics_dir"]:
        return None, problem
    lock = JobLock(os.path.join(settings["state_dir"], "metrics.lock"))
    lock.acquire(wait=True, timeout=METRICS_LOCK_WAIT)
    try:
        text = pitr_metrics.render(settings["stanza"], read_runs(settings), summary, problem is None, time.time())
        return pitr_metrics.write(settings["metrics_dir"], settings["stanza"], text), problem
    finally:
        lock.release()


def _forward(proc):
    def handler(signum, _frame):
        if proc.poll() is None:
            proc.send_signal(signum)
    return handler


def _pass_through(stream, err):
    """Copy pgBackRest's stderr to ours (the journal), line by line; its ERROR lines (pgBackRest
    shows secure options as <redacted>), for the run's message."""
    errors = []
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip("\n")
        err.write(line + "\n")
        err.flush()
        if "ERROR:" in line:
            errors.append(line.strip())
    stream.close()
    return errors


def run_backup(settings, kind, err=sys.stderr):
    """One pgBackRest backup (its output goes to ours: the journal), recorded, then the metrics."""
    lock = JobLock(os.path.join(settings["state_dir"], "backup.lock"))
    # Two schedules that meet (an incremental during a full) run one after the other.
    lock.acquire(wait=True, on_wait=lambda holder: err.write(
        "%s: waiting for the running backup (pid %s) to end\n" % (PROG, holder.get("pid") or "unknown")))
    started = time.time()
    try:
        argv = pgbackrest_backup_argv(settings, kind)
        try:
            proc = process.spawn(argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except OSError as exc:
            code, message = EXIT_FAILED, "cannot start pgbackrest: %s" % exc.strerror
        else:
            previous = [signal.signal(s, _forward(proc)) for s in (signal.SIGTERM, signal.SIGINT)]
            try:
                errors = _pass_through(proc.stderr, err)
                returned = proc.wait()
            finally:
                for s, handler in zip((signal.SIGTERM, signal.SIGINT), previous):
                    signal.signal(s, handler)
            code = EXIT_FAILED if returned else 0
            message = ("%s backup of stanza %s done" % (kind, settings["stanza"]) if returned == 0
                       else "the %s backup of stanza %s failed: %s%s (see journalctl or /var/log/pgbackrest)"
                       % (kind, settings["stanza"], process.describe_exit("pgbackrest", returned),
                          ": " + " ".join(errors[-2:]) if errors else ""))
        finished = time.time()
        record_run(settings, kind, {"success": code == 0, "finished": finished, "duration": finished - started,
                                    "message": message, "type": kind})
    finally:
        lock.release()
    err.write("%s: %s\n" % (PROG, message))
    try:
        refresh_metrics(settings, err)
    except (OSError, LockBusy, ConfigError) as exc:
        err.write("%s: cannot write the metrics: %s\n" % (PROG, exc))
        return EXIT_FAILED
    return code


def notify_failure(settings, unit, err=sys.stderr):
    """The OnFailure= hook: the operator's command with the failed run's message."""
    kind = next((k for k in pitr_metrics.BACKUP_TYPES if unit and ("-%s." % k in unit or unit.endswith("-" + k))),
                None)
    record = read_runs(settings).get(kind) if kind else None
    if record and not record.get("success"):
        message = record.get("message") or "the backup failed"
    else:
        message = "the unit %s failed before it recorded a run; see journalctl -u %s" % (unit, unit)
    values = dict(log="", unit=unit or "", name=settings["stanza"], database=settings["stanza"],
                  host=socket.getfqdn(), status="failure", message=message)
    if not settings["notify_command"]:
        err.write("%s: %s (no notify command configured)\n" % (PROG, message))
        return 0
    problem = notify.run_command(settings["notify_command"], values, settings["notify_timeout"])
    if problem:
        err.write("%s: %s\n" % (PROG, problem))
        return EXIT_FAILED
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROG, description="Run a scheduled pgBackRest backup and refresh its Prometheus textfile "
        "(role lift_simulator.postgresql.pitr).")
    parser.add_argument("-c", "--config", metavar="FILE", help="the job's settings (default: %s/<stanza>.json, "
                        "the only file there)" % CONFIG_DIR)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--type", choices=pitr_metrics.BACKUP_TYPES, help="take a backup of this type")
    what.add_argument("--metrics-only", action="store_true", help="only refresh the textfile")
    what.add_argument("--notify-failure", action="store_true", help="run the notification command (OnFailure=)")
    parser.add_argument("--unit", default="", help="with --notify-failure: the failed unit")
    return parser


def default_config():
    try:
        names = sorted(n for n in os.listdir(CONFIG_DIR) if n.endswith(".json"))
    except OSError:
        names = []
    if len(names) != 1:
        raise ConfigError("give --config: %s holds %d job configurations" % (CONFIG_DIR, len(names)))
    return os.path.join(CONFIG_DIR, names[0])


def main(argv=None, err=sys.stderr):
    args = build_parser().parse_args(argv)
    try:
        settings = load_config(args.config or default_config())
        if args.notify_failure:
            return notify_failure(settings, args.unit, err)
        if args.metrics_only:
            # A repository that cannot be read is recorded in the textfile (info_success 0), not a failure.
            refresh_metrics(settings, err)
            return 0
        return run_backup(settings, args.type, err)
    except (ConfigError, LockBusy, OSError) as exc:
        err.write("%s: %s\n" % (PROG, exc))
        return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILED
