# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What pgBackRest's ``info --output=json`` (and ``repo-ls`` of the WAL archive) says about one
stanza, read as data: its status, the backups of its current database, the newest backup of each
type, the archive's range with the earliest and latest recoverable times, the repository's size,
and what looks wrong (times in the future, holes in the WAL). Pure Python (no I/O, no Ansible):
the pitr_info module, the scheduled pgBackRest job's metrics and the recovery read it.

Times: backup times are written by the clock of the host that ran the backup, WAL times are the
modification times the repository's storage gives (the file system's, or the S3 server's clock).
Neither clock is trusted: ages are counted from the ``now`` given, and a time after it is flagged.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import posixpath
import time

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import recovery_wal

BACKUP_TYPES = ("full", "diff", "incr")
# pgBackRest's stanza status codes (command/info/info.c).
STATUS_OK = 0
STATUS_MISSING_STANZA_PATH = 1
STATUS_NO_BACKUP = 2
STATUS_MISSING_STANZA_DATA = 3
STATUS_OTHER = 99
# The codes that mean "stanza-create has not run (or its files are gone)".
MISSING_STANZA = (STATUS_MISSING_STANZA_PATH, STATUS_MISSING_STANZA_DATA)
# A time more than this many seconds after `now` is dated in the future (a clock is wrong).
FUTURE_MARGIN = 600


class InfoError(ValueError):
    """pgBackRest's output cannot be read, or does not describe the stanza."""


def parse_info(text, stanza):
    """The entry of ``stanza`` in ``pgbackrest info --output=json``'s output, whatever its status."""
    try:
        entries = json.loads(text)
    except ValueError:
        raise InfoError("pgbackrest info printed no JSON: %r" % (text or "")[:200])
    if not isinstance(entries, list):
        raise InfoError("pgbackrest info printed %s instead of a list of stanzas" % type(entries).__name__)
    for entry in entries:
        if isinstance(entry, dict) and entry.get("name") == stanza:
            return entry
    raise InfoError("pgbackrest info does not list the stanza %s (it lists: %s)" % (
        stanza, ", ".join(sorted(str(e.get("name")) for e in entries if isinstance(e, dict))) or "none"))


def status_of(entry):
    """(code, message) of the stanza. For an error of the repository (code 99, "other") the message
    is the repository's own (e.g. a TLS or connection error), which says more than "other"."""
    status = entry.get("status") or {}
    code = status.get("code")
    message = status.get("message") or ""
    if code == STATUS_OTHER:
        details = [(repo.get("status") or {}).get("message") for repo in entry.get("repo") or []
                   if (repo.get("status") or {}).get("code") not in (None, STATUS_OK)]
        details = [d for d in details if d and d != message]
        if details:
            message = "; ".join(details)
    return code, message


def stanza_missing(entry):
    """Whether the stanza must be created (stanza-create): no stanza path or no stanza files."""
    return status_of(entry)[0] in MISSING_STANZA


def current_db_id(entry):
    """The id of the stanza's current database (the newest; older ones precede a stanza-upgrade)."""
    ids = [db.get("id") for db in entry.get("db") or [] if isinstance(db.get("id"), int)]
    return max(ids) if ids else None


def current_archive(entry):
    """{"id", "min", "max"} of the current database's WAL archive, or None."""
    archives = [a for a in entry.get("archive") or [] if isinstance(a, dict)]
    if not archives:
        return None
    newest = current_db_id(entry)
    matching = [a for a in archives if (a.get("database") or {}).get("id") == newest]
    archive = max(matching or archives, key=lambda a: (a.get("database") or {}).get("id", 0))
    return {"id": archive.get("id"), "min": archive.get("min"), "max": archive.get("max")}


def current_archive_id(entry):
    """The archive id (``15-1``) of the current database, or None."""
    archive = current_archive(entry)
    return archive["id"] if archive else None


def current_backups(entry):
    """The backups of the current database (raw entries), oldest first."""
    newest = current_db_id(entry)
    backups = [b for b in entry.get("backup") or [] if isinstance(b, dict)
               and (newest is None or (b.get("database") or {}).get("id", newest) == newest)]
    return sorted(backups, key=lambda b: ((b.get("timestamp") or {}).get("stop") or 0, b.get("label") or ""))


def iso(epoch):
    """A Unix time as ``YYYY-MM-DDTHH:MM:SSZ`` (None stays None)."""
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _age(epoch, now):
    return None if epoch is None else int(now - epoch)


def _future(epoch, now):
    return epoch is not None and epoch > now + FUTURE_MARGIN


def backup_summary(backup, now):
    """One backup as the module returns it."""
    stamps = backup.get("timestamp") or {}
    info = backup.get("info") or {}
    repository = info.get("repository") or {}
    archive = backup.get("archive") or {}
    lsn = backup.get("lsn") or {}
    stop = stamps.get("stop")
    return {
        "label": backup.get("label"),
        "type": backup.get("type"),
        "prior": backup.get("prior"),
        "references": list(backup.get("reference") or []),
        "start_time": iso(stamps.get("start")),
        "stop_time": iso(stop),
        "start_epoch": stamps.get("start"),
        "stop_epoch": stop,
        "age_seconds": _age(stop, now),
        "future": _future(stop, now),
        "archive_start": archive.get("start"),
        "archive_stop": archive.get("stop"),
        "lsn_start": lsn.get("start"),
        "lsn_stop": lsn.get("stop"),
        "size_bytes": info.get("size"),
        "delta_bytes": info.get("delta"),
        "repo_size_bytes": repository.get("size"),
        "repo_delta_bytes": repository.get("delta"),
        "error": bool(backup.get("error")),
    }


def _archive_files(listing, archive_id):
    """(relative path, entry) of the files of ``archive_id`` in a repo-ls listing of archive/<stanza>."""
    prefix = archive_id + "/"
    return [(path, item) for path, item in (listing or {}).items()
            if path.startswith(prefix) and isinstance(item, dict) and item.get("type") == "file"]


def _segment_time(files, segment):
    """The storage time of the repository file of WAL segment ``segment`` (<segment>-<sha1>...)."""
    times = [item.get("time") for path, item in files if posixpath.basename(path).startswith(segment + "-")]
    times = [t for t in times if isinstance(t, (int, float))]
    return max(times) if times else None


def archive_gaps(wal, since=None):
    """The holes in the newest timeline's WAL, after the segment ``since`` (the newest full backup's
    first segment) when it is on that timeline: [{"first": name, "last": name}] of missing segments."""
    timelines = [tl for tl, numbers in wal.segments.items() if numbers]
    if not timelines:
        return []
    timeline = max(timelines)
    numbers = set(wal.segments[timeline])
    if since:
        try:
            since_timeline, since_number = recovery_wal.parse_segment(since)
        except recovery_wal.WalError:
            since_timeline = since_number = None
        if since_timeline == timeline:
            numbers = set(n for n in numbers if n >= since_number)
    runs = recovery_wal.runs(numbers)
    return [{"first": recovery_wal.segment_name(timeline, previous[1] + 1),
             "last": recovery_wal.segment_name(timeline, following[0] - 1)}
            for previous, following in zip(runs, runs[1:])]


def archive_summary(entry, listing, backups, now):
    """The current WAL archive: range, newest segment and its time, size, holes (the last three
    only with a repo-ls ``listing`` of archive/<stanza>; null without one)."""
    archive = current_archive(entry)
    result = {"id": None, "min_wal": None, "max_wal": None, "listed": listing is not None,
              "newest_wal": None, "newest_wal_time": None, "newest_wal_epoch": None, "newest_wal_age_seconds": None,
              "newest_wal_future": False, "size_bytes": None, "file_count": None, "gaps": None}
    if archive is None:
        return result
    result.update(id=archive["id"], min_wal=archive["min"], max_wal=archive["max"])
    if listing is None or not archive["id"]:
        return result
    files = _archive_files(listing, archive["id"])
    wal = recovery_wal.parse_listing(listing, archive["id"])
    newest = wal.newest()
    newest_epoch = _segment_time(files, newest) if newest else None
    fulls = [b for b in backups if b["type"] == "full"]
    result.update(
        newest_wal=newest, newest_wal_epoch=newest_epoch, newest_wal_time=iso(newest_epoch),
        newest_wal_age_seconds=_age(newest_epoch, now), newest_wal_future=_future(newest_epoch, now),
        size_bytes=sum(int(item.get("size") or 0) for _path, item in files), file_count=len(files),
        gaps=archive_gaps(wal, fulls[-1]["archive_start"] if fulls else None))
    return result


def summarize(entry, listing=None, now=None):
    """The pitr_info module's result for a stanza's ``entry`` (parse_info) and an optional repo-ls
    ``listing`` of archive/<stanza> (a dict, as ``repo-ls --recurse --output=json`` prints it)."""
    now = time.time() if now is None else now
    code, message = status_of(entry)
    lock = ((entry.get("status") or {}).get("lock") or {}).get("backup") or {}
    backups = [backup_summary(b, now) for b in current_backups(entry)]
    usable = [b for b in backups if not b["future"]]
    newest = dict((kind, next((b for b in reversed(usable) if b["type"] == kind), None)) for kind in BACKUP_TYPES)
    newest_backup = usable[-1] if usable else None
    archive = archive_summary(entry, listing, backups, now)
    dbs = [db for db in entry.get("db") or [] if db.get("id") == current_db_id(entry)]

    earliest = usable[0]["stop_epoch"] if usable else None
    latest_candidates = [t for t in (newest_backup["stop_epoch"] if newest_backup else None,
                                     None if archive["newest_wal_future"] else archive["newest_wal_epoch"])
                         if t is not None]
    latest = max(latest_candidates) if latest_candidates and earliest is not None else None

    anomalies = ["backup %s is dated %s, after the time of this run: the clock of the host that made it was wrong "
                 "then, or the clock here is wrong now" % (b["label"], b["stop_time"]) for b in backups if b["future"]]
    if archive["newest_wal_future"]:
        anomalies.append("the newest WAL segment %s is dated %s, after the time of this run: the repository "
                         "storage's clock or this host's is wrong" % (archive["newest_wal"], archive["newest_wal_time"]))
    for gap in archive["gaps"] or []:
        anomalies.append("WAL segments %s to %s are missing from the archive: no recovery can cross them"
                         % (gap["first"], gap["last"]))
    backup_bytes = sum(int(b["repo_delta_bytes"] or 0) for b in backups)
    return {
        "stanza": entry.get("name"),
        "status": {"code": code, "message": message, "ok": code == STATUS_OK,
                   "backup_running": bool(lock.get("held"))},
        "exists": code not in MISSING_STANZA,
        "cipher": entry.get("cipher"),
        "pg_version": dbs[0].get("version") if dbs else None,
        "system_id": dbs[0].get("system-id") if dbs else None,
        "backup_count": len(backups),
        "backups": list(reversed(backups)),
        "newest_full": newest["full"],
        "newest_diff": newest["diff"],
        "newest_incr": newest["incr"],
        "newest_backup": newest_backup,
        "newest_backup_age_seconds": newest_backup["age_seconds"] if newest_backup else None,
        "archive": archive,
        "archive_lag_seconds": None if archive["newest_wal_future"] else archive["newest_wal_age_seconds"],
        "earliest_recoverable_time": iso(earliest),
        "earliest_recoverable_epoch": earliest,
        "latest_recoverable_time": iso(latest),
        "latest_recoverable_epoch": latest,
        "repo_backup_bytes": backup_bytes,
        "repo_archive_bytes": archive["size_bytes"],
        "repo_size_bytes": None if archive["size_bytes"] is None else backup_bytes + archive["size_bytes"],
        "anomalies": anomalies,
        "now": iso(now),
        "now_epoch": int(now),
    }
