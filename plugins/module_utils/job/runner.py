# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One run of the scheduled job: the lock, the backup (backup/run.py, the backup module's code), the
quick verification of what it wrote (verify/quick.py, the verify module's quick level), the
off-site copies (job/offsite.py, the offsite module's code), the retention (retention/apply.py,
the prune module's code; only after a verified backup), and the record of the outcome: metrics,
the log, the status file, the notification under cron.
Pure Python (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os
import signal
import time
import traceback

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import backup_files
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.backup import run as backup_run
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import metrics
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import notify
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import offsite as job_offsite
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.lock import JobLock, LockBusy, lock_message
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.log import JobLog, finish_log, other_stem
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.presentation import (
    format_duration, summary_rows)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.privileges import current_user
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.settings import (
    PROG, ConfigError, metrics_path, read_password)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import clients
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import connection as pg_connection
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.retention import apply as retention_apply
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.retention import policy as retention
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.report import status_page
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.verify.quick import verify_quickly
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.version import COLLECTION_VERSION

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 75  # EX_TEMPFAIL: another run holds the lock


class Terminated(backup_run.BackupError):
    """The job got SIGTERM or SIGINT (time limit reached, unit stopped, Ctrl-C). A BackupError, so
    that run_backup records it in the run's log like any other failure."""

    def __init__(self, message):
        backup_run.BackupError.__init__(self, message)


def on_signal(signum, _frame):
    """The SIGTERM and SIGINT handler of a run."""
    # Later signals are ignored while the run records its failure; systemd or timeout(1) send
    # SIGKILL if that takes too long.
    _ignore_signals()
    name = signal.Signals(signum).name
    raise Terminated("stopped by %s (the time limit was reached, the unit was stopped, or Ctrl-C)" % name)


def _ignore_signals(handler=signal.SIG_IGN):
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def connection_params(settings):
    password = read_password(settings["password_file"]) if settings["password_file"] else None
    return pg_connection.ConnectionParams(
        database=settings["database"], login_host=settings["login_host"], login_port=settings["login_port"],
        login_user=settings["login_user"], login_password=password,
        login_unix_socket=settings["login_unix_socket"], ssl_mode=settings["ssl_mode"],
        ca_cert=settings["ca_cert"], connect_timeout=settings["connect_timeout"])


def backup_request(settings, params):
    return backup_run.BackupRequest.from_options(params, settings, dest_dir=settings["dest_dir"],
                                                 timezone=settings["timezone"])


def retention_rules(settings):
    return retention.Rules.from_options(settings, settings["retention_timezone"])


class Outcome(object):
    def __init__(self):
        self.stage = None      # where it failed: settings, backup, verification, retention, metrics
        self.message = None
        self.result = None     # run_backup's result
        self.checks = []
        self.verified = False
        self.pruned = None     # retention_apply.PruneOutcome
        self.offsite = []      # job_offsite.TargetCopy, one per off-site target
        self.log_path = None
        self.metrics_path = None

    @property
    def success(self):
        return self.stage is None

    def fail(self, stage, message):
        if self.stage is None:
            self.stage, self.message = stage, message
        else:
            self.message += "; then %s: %s" % (stage, message)


def wait_for_a_free_name(request):
    """Two runs in the same second would want the same name: wait for the next second."""
    for _attempt in range(3):
        name = backup_run.plan_name(request)[0]
        if not os.path.lexists(os.path.join(request.dest_dir, name)):
            return
        time.sleep(1.0 - (time.time() % 1.0) + 0.01)


def verify(result, settings, log):
    """The quick verification of the backup just written; returns (checks, problem or None)."""
    backup = backup_files.inspect(result["path"], settings["directory_checks"])
    bin_dir = settings["bin_dir"] or os.path.dirname(result["pg_dump_path"])
    checks = verify_quickly(backup, lambda: clients.find_client_binary("pg_restore", bin_dir)[0])
    for item in checks:
        log.add("verification: %s %s: %s" % (item["name"], "skipped" if item["skipped"] else
                                             "passed" if item["passed"] else "FAILED", item["detail"]))
    failed = ["%s: %s" % (c["name"], c["detail"]) for c in checks if not c["passed"]]
    if backup.manifest is None:
        failed.append("manifest: the backup has no manifest")
    return checks, ("; ".join(failed) if failed else None)


def apply_retention(settings, result, log):
    outcome = retention_apply.apply_retention(
        settings["dest_dir"], retention_rules(settings), database=settings["database"],
        include_legacy=settings["include_legacy"], verify_checksums=settings["verify_checksums"],
        legacy_tz=None if settings["legacy_timezone"] == "local" else datetime.timezone.utc,
        protect=[result["name"], os.path.basename(result["manifest_path"])],
        directory_checks=settings["directory_checks"])
    for warning in outcome.warnings:
        log.add("warning: %s" % warning)
    for candidate in outcome.plan.future_dated:
        log.add("retention: WARNING: %s is dated in the future (%s): a clock is wrong; it is kept and counts for "
                "nothing until its time has come" % (candidate.name, candidate.time.strftime("%Y-%m-%dT%H:%M:%SZ")))
    for decision in outcome.plan.kept:
        log.add("retention: kept %s (%s)" % (decision.name, decision.rule))
    for decision in outcome.removed:
        log.add("retention: removed %s (%s: %s)" % (decision.name, decision.rule, decision.reason))
    for item in outcome.left_alone():
        log.add("retention: left alone %s (%s)" % (item["path"], item["reason"]))
    if result["name"] not in [d.name for d in outcome.plan.kept]:
        log.add("retention: note: %s does not have a standard backup name (%s_backup_YYYYMMDD_HHMMSS): retention "
                "does not handle the backups of this name_template" % (result["name"], settings["database"]))
    return outcome


def run_job(settings, log, reporter):
    """Backup, verification, retention. Returns an Outcome (never raises for a failed run)."""
    outcome = Outcome()
    try:
        params = connection_params(settings)
    except ConfigError as exc:
        outcome.fail("settings", str(exc))
        return outcome
    log.scrub = params.scrub
    request = backup_request(settings, params)
    try:
        wait_for_a_free_name(request)
    except backup_run.BackupError:
        pass  # run_backup reports a bad name template itself
    reporter.step("backing up database %s to %s" % (settings["database"], settings["dest_dir"]))
    try:
        outcome.result = backup_run.run_backup(request, progress=reporter.progress, log=log)
        outcome.log_path = outcome.result.get("log_path")
    except backup_run.BackupError as exc:
        outcome.log_path = exc.log_path
        outcome.fail("backup", params.scrub(exc))
        return outcome
    if outcome.result.get("log_error"):
        log.add("warning: %s" % outcome.result["log_error"])
    try:
        _verify_and_prune(settings, log, reporter, outcome)
    except Terminated as exc:
        log.add("FAILED: %s" % exc)
        outcome.fail("terminated", str(exc))
    return outcome


def _verify_and_prune(settings, log, reporter, outcome):
    reporter.step("verifying %s" % outcome.result["path"])
    try:
        outcome.checks, problem = verify(outcome.result, settings, log)
    except (backup_files.BackupFileError, pg_connection.PgError) as exc:
        problem = str(exc)
    if problem:
        log.add("verification FAILED: %s; retention skipped" % problem)
        outcome.fail("verification", "the backup %s failed its verification: %s" % (outcome.result["path"], problem))
        return
    outcome.verified = True
    log.add("verification passed (%d checks)" % len(outcome.checks))
    if settings["offsite_targets_file"]:
        _copy_off_site(settings, log, reporter, outcome)

    if not settings["retention"]:
        log.add("retention: disabled")
        return
    reporter.step("applying the retention rules in %s" % settings["dest_dir"])
    try:
        outcome.pruned = apply_retention(settings, outcome.result, log)
    except (retention_apply.PruneError, retention.RetentionError) as exc:
        log.add("retention FAILED: %s" % exc)
        outcome.fail("retention", str(exc))
        return
    if outcome.pruned.errors:
        detail = "; ".join("%s: %s" % (e["path"], e["msg"]) for e in outcome.pruned.errors)
        log.add("retention FAILED: could not remove %s" % detail)
        outcome.fail("retention", "could not remove %d entries: %s" % (len(outcome.pruned.errors), detail))
    else:
        log.add("retention: %d kept, %d removed" % (len(outcome.pruned.plan.kept), len(outcome.pruned.removed)))


def _copy_off_site(settings, log, reporter, outcome):
    """The verified backup to every off-site target; a failed copy fails the run (the local backup
    stays, and retention still runs: it never removes the backup just made)."""
    reporter.step("copying %s off-site" % outcome.result["name"])
    if outcome.result.get("encryption", "none") == "none":
        log.add("offsite: WARNING: the backup is not encrypted: whoever holds a target can read it "
                "(set encryption: age; docs/encryption.md)")
    try:
        outcome.offsite = job_offsite.copy_to_targets(settings, outcome.result, log)
    except ConfigError as exc:
        log.add("offsite FAILED: %s" % exc)
        outcome.fail("offsite", str(exc))
        return
    failed = [c for c in outcome.offsite if not c.success]
    if failed:
        outcome.fail("offsite", "the copy to %s failed: %s" % (
            ", ".join(c.name for c in failed), "; ".join("%s: %s" % (c.name, c.error) for c in failed)))


def run(settings, config_path, reporter):
    """The whole run under the job's lock; returns the exit status."""
    started_wall = time.time()
    started = time.monotonic()
    log = JobLog(reporter=reporter)
    log.add("%s %s: job %s (database %s) started as %s, pid %d, configuration %s"
            % (PROG, COLLECTION_VERSION, settings["name"], settings["database"],
               current_user(), os.getpid(), config_path or "none (defaults and options)"))
    lock = JobLock(settings["lock_file"])

    def on_wait(holder):
        running = lock_message(settings["lock_file"], holder).split(";")[0]
        log.add("waiting for the lock %s: %s" % (settings["lock_file"], running))
        reporter.step("another backup is running (pid %s): waiting for it" % (holder.get("pid") or "unknown"))

    try:
        waited = lock.acquire(settings["wait"], settings["wait_timeout"], on_wait)
    except (LockBusy, Terminated) as exc:
        message = str(exc)
        locked = isinstance(exc, LockBusy)
        log.add("%s: %s" % ("REFUSED" if locked else "FAILED while waiting for the lock", message))
        path = finish_log(settings, log, other_stem(settings, "refused" if locked else "failed"))
        reporter.error(message)
        # For the notification of this failed start (the running job overwrites it when it ends).
        status = dict(status="refused" if locked else "failed", stage="lock", message=message, log_path=path,
                      backup_path=None, started_at=notify.utc_now_text(), finished_at=notify.utc_now_text(),
                      pid=os.getpid())
        notify.write_status(settings, status)
        if settings["notify_on_failure"]:
            notify.run_notify(settings, status, "cron", reporter)
        return EXIT_LOCKED if locked else EXIT_FAILED
    try:
        log.add("lock %s acquired%s"
                % (settings["lock_file"], " after waiting %.1f s" % waited if waited >= 0.2 else ""))
        return _locked_run(settings, log, reporter, started, started_wall)
    finally:
        lock.release()


def _locked_run(settings, log, reporter, started, started_wall):
    try:
        outcome = run_job(settings, log, reporter)
    except Terminated as exc:  # after the backup (during it, run_backup reports it as a failed backup)
        outcome = Outcome()
        outcome.fail("terminated", str(exc))
        log.add("FAILED: %s" % exc)
    except Exception as exc:  # a bug or an unforeseen error: still record the failure
        outcome = Outcome()
        outcome.fail("internal", "unexpected error: %s: %s" % (type(exc).__name__, exc))
        log.add("FAILED: %s" % outcome.message)
        log.add(traceback.format_exc())
    # The outcome is known: record it whatever signal comes now (this takes a moment).
    _ignore_signals()
    if outcome.stage == "settings":
        log.add("FAILED: %s" % outcome.message)
    duration = time.monotonic() - started
    _record_metrics(settings, log, outcome, duration)
    if outcome.success:
        log.add("RESULT: success: %s verified%s, in %s" % (
            outcome.result["path"], "" if settings["retention"] else " (retention disabled)",
            format_duration(duration)))
    else:
        log.add("RESULT: FAILED (%s): %s" % (outcome.stage, outcome.message))
        if not outcome.verified:
            log.add("no retention was applied: every earlier backup is left in place")
    outcome.log_path = finish_log(settings, log)
    status = dict(status="success" if outcome.success else "failed", stage=outcome.stage,
                  message=log.scrub(outcome.message) if outcome.message else None,
                  log_path=outcome.log_path, backup_path=(outcome.result or {}).get("path"),
                  started_at=datetime.datetime.fromtimestamp(started_wall, datetime.timezone.utc)
                  .strftime("%Y-%m-%dT%H:%M:%SZ"), finished_at=notify.utc_now_text(), pid=os.getpid(),
                  duration_s=round(duration, 3))
    notify.write_status(settings, status)
    status_page.write_for_job(settings, warn=reporter.error)  # never raises: a page never fails the run
    _ignore_signals(signal.SIG_DFL)  # not inherited as ignored by the notification command
    if outcome.success:
        reporter.step("backup of %s succeeded" % settings["database"])
        reporter.summary(summary_rows(outcome, duration))
        return EXIT_OK
    reporter.error("FAILED (%s): %s" % (outcome.stage, log.scrub(outcome.message)))
    if reporter.interactive:
        reporter.summary(summary_rows(outcome, duration))
    else:
        reporter.error("log: %s" % (outcome.log_path or "(none)"))
    if settings["notify_on_failure"]:
        notify.run_notify(settings, status, "cron", reporter)
    return EXIT_FAILED


def _record_metrics(settings, log, outcome, duration):
    finished = time.time()
    verified_size = outcome.result["size_bytes"] if outcome.verified else None
    try:
        future_dated = len(outcome.pruned.plan.future_dated) if outcome.pruned is not None else 0
        # A run that copied nothing off-site (it failed before) leaves each target's samples as they were.
        offsite = outcome.offsite if outcome.offsite or not settings["offsite_targets_file"] else None
        outcome.metrics_path = metrics.write_metrics(settings, outcome.success, finished, duration, verified_size,
                                                     future_dated, offsite)
        if outcome.metrics_path:
            log.add("metrics written to %s" % outcome.metrics_path)
    except OSError as exc:
        log.add("metrics FAILED: cannot write %s: %s" % (metrics_path(settings), exc))
        outcome.fail("metrics", "cannot write the metrics %s: %s" % (metrics_path(settings), exc))
