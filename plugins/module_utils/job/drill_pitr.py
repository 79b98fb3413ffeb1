# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restore drill's ``pitr`` source (job/drill.py): the pgBackRest repository's latest
recovered into a private scratch data directory and checked there.

As the job's OS user (postgres, never root): a scratch directory left by a killed drill of the
job is removed first (pitr/scratch_server.py); the stanza must be usable (recovery_instance.
read_repository) and its WAL is listed (recovery_wal.py: a recovery that stops at a hole is
named); ``pgbackrest restore`` of the latest (recovery_target.restore_argv, recovery_repository.
restore) into the scratch data directory; the temporary server (scratch_server.py) replays the
archive to its end and promotes, watched by polling (recovery_watch.watch, check_reached_end);
the checks of a recovered copy (recovery_checks.server_checks and app_checks: the application's
checklist, app/lift_simulator.py) run there; the server is stopped (immediate) and the scratch
directory removed whatever happens (a failure, SIGTERM). Records in the SourceDrill the restore
time and the age of what was restored: the time of the last transaction replayed. No Ansible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import signal
import time

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.app import lift_simulator as checklist
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.presentation import format_duration
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import info as pitr_info
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import recovery_checks
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import recovery_instance as instance
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import recovery_repository as repo
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import recovery_target as targets
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import recovery_wal as wal
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import recovery_watch
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import scratch_server
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import atomic_files

SOURCE = "pitr"
# What makes the pitr source fail (job/drill.py adds them to its SOURCE_ERRORS).
ERRORS = (instance.RecoveryError, repo.RepositoryError, scratch_server.ScratchError, targets.TargetError,
          wal.WalError, atomic_files.AtomicFileError)
# The wait for the end of the archive; the drill's time limit (SIGTERM) usually ends it first.
WATCH_TIMEOUT = 24 * 3600


def _epoch_of(text):
    """PostgreSQL's timestamptz text (the server runs with TimeZone UTC) as (ISO UTC text, epoch)."""
    if not text:
        return None, None
    try:
        _value, epoch = targets.parse_time(text)
    except targets.TargetError:
        return None, None
    return targets.format_epoch(epoch).replace(" ", "T").replace("+00:00", "Z"), epoch


def _cleanup(scratch, log):
    """Stop the server (immediate) and remove the scratch directory; signals wait until it is done."""
    previous = [(sig, signal.getsignal(sig)) for sig in (signal.SIGTERM, signal.SIGINT)]
    for sig, _handler in previous:
        signal.signal(sig, signal.SIG_IGN)
    try:
        try:
            if scratch.stop():
                log.add("drill pitr: the temporary server was stopped (immediate)")
        except scratch_server.ScratchError as exc:
            log.add("drill pitr: warning: %s" % exc)
        try:
            if scratch.remove():
                log.add("drill pitr: the scratch directory %s was removed" % scratch.path)
        except OSError as exc:
            log.add("drill pitr: warning: cannot remove %s: %s (the next drill removes it)" % (scratch.path, exc))
    finally:
        for sig, handler in previous:
            signal.signal(sig, handler)


def drill(settings, result, log, now=time.time):
    """The pitr source's drill into ``result`` (a drill.SourceDrill); raises one of ERRORS."""
    stanza, config = settings["drill_pitr_stanza"], settings["drill_pitr_config"]
    root = settings["state_dir"]
    scratch_server.refuse_root()
    atomic_files.ensure_private_dir(root)
    for path in scratch_server.remove_stale(root, settings["name"]):
        log.add("drill pitr: removed %s, left by a drill that was killed" % path)
    entry = instance.read_repository(stanza, config)
    backups = pitr_info.current_backups(entry)
    target = targets.Target("latest")
    targets.check_in_range(target, backups)
    archive_id = pitr_info.current_archive_id(entry)
    archive = wal.parse_listing(repo.archive_listing(stanza, config), archive_id) if archive_id else wal.Archive(None)
    newest = max((b for b in backups if not b.get("error")), key=lambda b: b["timestamp"]["stop"])
    scratch = scratch_server.Scratch(root, settings["name"])
    result.scratch = scratch.path
    started = time.monotonic()
    try:
        scratch.make()
        log.add("drill pitr: restoring the latest of stanza %s (newest backup %s, newest WAL %s) into %s"
                % (stanza, newest.get("label"), archive.newest() or "none", scratch.data))
        argv = targets.restore_argv(stanza, scratch.data, target, scratch.tablespaces, None, config)
        used_set, _starts, restore_s, warnings = repo.restore(argv)
        result.backup = used_set or newest.get("label")
        for warning in warnings:
            log.add("drill pitr: pgBackRest: %s" % warning)
        log.add("drill pitr: backup set %s restored in %s; starting the temporary server" % (
            result.backup, format_duration(restore_s)))
        scratch.start()
        record = {"stanza": stanza, "config": config, "target": target.to_dict(), "archive": archive.to_dict(),
                  "newest_wal": archive.newest(), "log_offset": 0}
        state, parsed = recovery_watch.watch(scratch, scratch.params(), record, WATCH_TIMEOUT)
        if state["in_recovery"]:
            raise instance.RecoveryError("the temporary server paused in recovery instead of promoting at the end "
                                         "of the archive (see %s)" % scratch.log)
        recovery_watch.check_reached_end(record, parsed)
        last = state.get("last_transaction") or parsed.last_transaction
        result.backup_time, epoch = _epoch_of(last)
        if epoch is None:  # no transaction replayed: what was restored is the backup's end
            epoch = (([b for b in backups if b.get("label") == result.backup] or [newest])[0]["timestamp"]["stop"])
            result.backup_time = _epoch_of(targets.format_epoch(epoch))[0]
        result.age_s = round(max(now() - epoch, 0.0), 1)
        log.add("drill pitr: recovered to the end of the archive (last WAL %s, %d segment%s replayed, last "
                "transaction %s) and promoted" % (parsed.last_restored or "none", len(set(parsed.restored)),
                                                  "" if len(set(parsed.restored)) == 1 else "s", last or "none"))
        checks, _names = recovery_checks.server_checks(scratch.params())
        app, _figures = recovery_checks.app_checks(scratch.params(settings["database"]), settings["app_schema"])
        checks.extend(app)
        result.checks = checks
        result.restore_s = round(time.monotonic() - started, 3)
        for item in checks:
            log.add("drill pitr: check %s %s: %s" % (item["name"], "skipped" if item["skipped"] else
                                                     "passed" if item["passed"] else "FAILED", item["detail"]))
        if checklist.failing(checks):
            raise instance.RecoveryError("the latest of stanza %s recovered into %s but failed its checks: %s"
                                         % (stanza, scratch.path, checklist.summary(checks)))
        result.success = True
        result.message = "the latest of stanza %s (backup set %s, last transaction %s) recovered into %s " \
            "(removed) and checked in %s: %s" % (stanza, result.backup, result.backup_time, scratch.path,
                                                 format_duration(result.restore_s), checklist.summary(checks))
    finally:
        _cleanup(scratch, log)
