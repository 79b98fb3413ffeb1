# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One restore drill of the scheduled job (``lift-pg-backup --drill``): the newest good backup in
the backup directory, and the newest good copy on each off-site target (pulled with
offsite/source.py into a private directory removed afterwards), each restored into a scratch
database and checked there by verify/by_restore.py, the verify module's ``level: restore`` (the
scratch database is dropped whatever happens; one left by a killed drill is dropped by the next
one, through the collection's records); with ``drill_pitr_stanza``, the pgBackRest repository's
latest recovered into a scratch data directory (job/drill_pitr.py). The drill holds a lock of its own (it never blocks a
backup) and records its outcome with job/drill_record.py. Pure Python (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os
import signal
import time
import traceback

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.app import lift_simulator as checklist
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import backup_files
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import drill_pitr
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import drill_record
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import notify
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import offsite as job_offsite
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import runner
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.lock import JobLock, LockBusy
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.log import JobLog, finish_log, other_stem
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.presentation import format_duration
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.privileges import current_user
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.settings import PROG, ConfigError
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.offsite import source as remote_source
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.offsite import targets, transfer
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.connection import DatabaseError, PgError
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.report import status_page
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.request import (
    RestoreError, RestoreRequest)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.secret_file import (
    SecretFileError, secret_or_file)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.base import StorageError
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.path_trust import UntrustedPathError
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.posix import PosixStorage
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.verify.by_restore import run_verify_restore
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.version import COLLECTION_VERSION

LOCAL = "local"
# What makes one source's drill fail (the drill goes on with the next source).
SOURCE_ERRORS = (RestoreError, PgError, DatabaseError, backup_files.BackupFileError, transfer.TransferError,
                 targets.TargetError, StorageError, UntrustedPathError, SecretFileError, ConfigError,
                 OSError) + drill_pitr.ERRORS


class SourceDrill(object):
    """The drill of one source: ``local`` or ``offsite:<target name>``."""

    def __init__(self, source):
        self.source = source
        self.backup = None        # the backup's file name
        self.backup_time = None   # when it was taken (its manifest's started_at), ISO UTC
        self.age_s = None         # its age when the drill restored it
        self.restore_s = None     # the restore and its checks (verify/by_restore.py's seconds)
        self.scratch = None
        self.checks = []
        self.message = None
        self.success = False

    def as_dict(self):
        return dict(source=self.source, backup=self.backup, backup_time=self.backup_time,
                    restored_backup_age_seconds=self.age_s, restore_seconds=self.restore_s,
                    scratch_database=self.scratch, success=self.success, message=self.message, checks=self.checks)


def _taken_at(manifest):
    """(ISO UTC text, age in seconds) of the manifest's started_at, or (None, None)."""
    text = (manifest or {}).get("started_at")
    try:
        taken = datetime.datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return None, None
    age = (datetime.datetime.now(datetime.timezone.utc) - taken).total_seconds()
    return taken.strftime("%Y-%m-%dT%H:%M:%SZ"), round(max(age, 0.0), 1)


def drill_settings(settings):
    """The settings the drill connects with: with drill_local_login, the local socket as the OS
    user (peer authentication), whatever login the backups use (often a read-only role over TCP:
    a restore needs a superuser)."""
    if not settings["drill_local_login"]:
        return settings
    return dict(settings, login_host=None, login_user=None, password_file=None, ssl_mode="prefer", ca_cert=None)


def restore_request(settings, path, identity):
    """The verify module's level restore request for the backup ``path``, from the job's settings."""
    return RestoreRequest(
        connection=runner.connection_params(drill_settings(settings)), backup_path=path, database=settings["database"],
        owner=settings["drill_owner"], bin_dir=settings["bin_dir"], app_schema=settings["app_schema"],
        directory_checks=settings["directory_checks"], stall_timeout=settings["stall_timeout"], identity=identity)


def _restore(settings, drill, path, identity, log):
    """Restore ``path`` into a scratch database and check it there (verify/by_restore.py)."""
    log.add("drill %s: restoring %s into a scratch database" % (drill.source, path))
    backup, checks, _counts, scratch, seconds = run_verify_restore(restore_request(settings, path, identity))
    drill.scratch, drill.restore_s, drill.checks = scratch, seconds, checks
    if drill.backup_time is None:
        drill.backup_time, drill.age_s = _taken_at(backup.manifest)
    for item in checks:
        log.add("drill %s: check %s %s: %s" % (drill.source, item["name"], "skipped" if item["skipped"] else
                                               "passed" if item["passed"] else "FAILED", item["detail"]))
    if checklist.failing(checks):
        raise RestoreError("%s restored into %s but failed its checks: %s"
                           % (backup.name, scratch, checklist.summary(checks)))
    drill.success = True
    drill.message = "%s restored into %s (dropped) and checked in %s: %s" % (
        backup.name, scratch, format_duration(seconds), checklist.summary(checks))


def _drill_local(settings, drill, identity, log):
    """The newest good backup in the backup directory (the offsite module's ``latest``)."""
    drill.backup = transfer.resolve(PosixStorage(settings["dest_dir"]), transfer.LATEST, settings["database"],
                                    settings["dest_dir"])
    log.add("drill local: the newest good backup in %s is %s" % (settings["dest_dir"], drill.backup))
    _restore(settings, drill, os.path.join(settings["dest_dir"], drill.backup), identity, log)


def _drill_offsite(settings, drill, target, identity, log):
    """The newest good copy on ``target``, pulled into a private directory that is removed afterwards."""
    info = {}
    log.add("drill %s: pulling the newest good copy of %s from %s"
            % (drill.source, settings["database"], targets.describe(target)))
    try:
        with remote_source.remote_copy(target, transfer.LATEST, settings["database"],
                                       pull_dir=settings["drill_pull_dir"],
                                       directory_checks=settings["directory_checks"], info=info) as copy:
            drill.backup = info.get("name")
            drill.backup_time, drill.age_s = _taken_at({"started_at": info.get("taken_at")})
            for warning in copy.warnings:
                log.add("drill %s: warning: %s" % (drill.source, warning))
            log.add("drill %s: pulled %s into %s in %.1f s"
                    % (drill.source, drill.backup, os.path.dirname(copy.path), info.get("pull_s") or 0.0))
            _restore(settings, drill, copy.path, identity, log)
    finally:
        drill.backup = drill.backup or info.get("name")
    log.add("drill %s: the pulled copy was removed" % drill.source)


def _one(drill, run, log):
    """Run one source's drill; a failure is recorded in ``drill`` (Terminated goes on up)."""
    try:
        run()
    except runner.Terminated:
        drill.message = "stopped (SIGTERM or SIGINT: the time limit was reached, or the unit was stopped)"
        raise
    except Exception as exc:  # pylint: disable=broad-except
        if not isinstance(exc, SOURCE_ERRORS):
            raise  # a bug or an unforeseen error: the drill records it with its traceback
        drill.success = False
        drill.message = str(exc)
        drill.checks = getattr(exc, "checks", None) or drill.checks
    if drill.success:
        log.add("drill %s: SUCCESS: %s" % (drill.source, drill.message))
    else:
        log.add("drill %s: FAILED: %s" % (drill.source, drill.message))


def run_drills(settings, log, reporter, drills):
    """Every source's drill, each appended to ``drills`` (a list of SourceDrill) as it starts;
    runner.Terminated (SIGTERM) stops the drill after the scratch database of the source in hand
    was dropped."""
    with secret_or_file(None, settings["drill_identity_file"], "lift-age-identity") as identity:
        reporter.step("restore drill of the newest local backup of %s" % settings["database"])
        drill = SourceDrill(LOCAL)
        drills.append(drill)
        _one(drill, lambda: _drill_local(settings, drill, identity, log), log)
        if settings["offsite_targets_file"] and settings["drill_offsite"]:
            _drill_offsite_targets(settings, log, reporter, drills, identity)
    if settings["drill_pitr_stanza"]:
        reporter.step("restore drill of the latest of pgBackRest stanza %s" % settings["drill_pitr_stanza"])
        drill = SourceDrill(drill_pitr.SOURCE)
        drills.append(drill)
        _one(drill, lambda: drill_pitr.drill(settings, drill, log), log)


def _drill_offsite_targets(settings, log, reporter, drills, identity):
    """The newest copy on each off-site target, in turn."""
    try:
        found = job_offsite.read_targets(settings["offsite_targets_file"])
    except ConfigError as exc:
        drill = SourceDrill("offsite")
        drill.message = str(exc)
        drills.append(drill)
        log.add("drill offsite: FAILED: %s" % exc)
        return
    for name, target in found:
        reporter.step("restore drill of the newest copy on off-site target %s" % name)
        drill = SourceDrill("offsite:%s" % name)
        drills.append(drill)
        _one(drill, lambda: _drill_offsite(settings, drill, target, identity, log), log)


def run(settings, config_path, reporter):
    """The whole drill under the drill's lock; returns the exit status."""
    started_wall = time.time()
    started = time.monotonic()
    log = JobLog(reporter=reporter)
    log.add("%s %s: restore drill of job %s (database %s) started as %s, pid %d, configuration %s"
            % (PROG, COLLECTION_VERSION, settings["name"], settings["database"], current_user(), os.getpid(),
               config_path or "none (defaults and options)"))
    lock = JobLock(drill_record.lock_path(settings))
    try:
        lock.acquire()
    except LockBusy as exc:
        message = "another restore drill is running (pid %s); this drill did nothing" % (
            (exc.holder or {}).get("pid") or "unknown")
        log.add("REFUSED: %s" % message)
        finish_log(settings, log, other_stem(settings, "drill_refused"))
        reporter.error(message)
        return runner.EXIT_LOCKED
    try:
        return _locked_drill(settings, log, reporter, started, started_wall)
    finally:
        lock.release()


def _locked_drill(settings, log, reporter, started, started_wall):
    drills, problem = [], None
    try:
        log.scrub = runner.connection_params(drill_settings(settings)).scrub
        run_drills(settings, log, reporter, drills)
    except runner.Terminated as exc:
        problem = str(exc)
        log.add("FAILED: %s; the scratch database of the drill was dropped (one the server could not drop is "
                "recorded: the next drill drops it)" % exc)
    except ConfigError as exc:
        problem = "configuration error: %s" % exc
        log.add("FAILED: %s" % problem)
    except Exception as exc:  # a bug or an unforeseen error: still record the failure
        problem = "unexpected error: %s: %s" % (type(exc).__name__, exc)
        log.add("FAILED: %s" % problem)
        log.add(traceback.format_exc())
    runner._ignore_signals()  # the outcome is known: record it whatever signal comes now
    failed = [d for d in drills if not d.success]
    if problem is None and failed:
        problem = "; ".join("%s: %s" % (d.source, d.message) for d in failed)
    success = problem is None and bool(drills)
    duration = time.monotonic() - started
    outcome = drill_record.DrillOutcome(settings, started_wall, time.time(), success, problem, drills)
    for line in drill_record.record(settings, outcome):
        log.add(line)
    if success:
        log.add("RESULT: success: %d source%s drilled in %s"
                % (len(drills), "" if len(drills) == 1 else "s", format_duration(duration)))
    else:
        log.add("RESULT: FAILED: %s" % log.scrub(problem))
    log_path = finish_log(settings, log, other_stem(settings, "drill"))
    status = dict(kind="drill", status="success" if success else "failed", stage=None if success else "drill",
                  message=None if success else "restore drill failed: %s" % log.scrub(problem), log_path=log_path,
                  report_path=outcome.report_path, backup_path=None,
                  started_at=drill_record.iso(started_wall), finished_at=notify.utc_now_text(), pid=os.getpid(),
                  duration_s=round(duration, 3))
    drill_record.write_status(settings, status)
    status_page.write_for_job(settings, warn=reporter.error)  # never raises: a page never fails the drill
    runner._ignore_signals(signal.SIG_DFL)
    if success:
        reporter.step("restore drill of %s succeeded" % settings["database"])
        return runner.EXIT_OK
    reporter.error("restore drill FAILED: %s" % log.scrub(problem))
    reporter.error("log: %s" % (log_path or "(none)"))
    if settings["notify_on_failure"]:
        notify.run_notify(settings, status, "cron", reporter)
    return runner.EXIT_FAILED
