# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Prometheus textfile of the scheduled pgBackRest backups (role lift_simulator.postgresql.pitr):
the last run of each backup type, and what the repository holds (pitr/info.py's summary): the
newest backup and the newest archived WAL segment (the archive lag), the recoverable range, the
repository's size. Same format, label escaping, number formatting and atomic replacement as the
scheduled backup job's file (job/metrics.py). Pure Python (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import metrics
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import atomic_files

METRIC_PREFIX = "lift_simulator_pitr_"
BACKUP_TYPES = ("full", "diff", "incr")

# Per backup type (label ``type``): the last scheduled run.
RUN_METRICS = (
    ("last_run_success", "1 if the last scheduled pgBackRest backup of this type succeeded, 0 if it failed."),
    ("last_run_timestamp_seconds", "Unix time at which the last scheduled backup of this type ended (0: none yet)."),
    ("last_duration_seconds", "Duration in seconds of the last scheduled backup of this type."),
)
# Per backup type and "any": the newest backup in the repository.
NEWEST_METRIC = ("newest_backup_timestamp_seconds",
                 "End of the newest backup of this type in the repository, Unix time by the clock of the host that "
                 "made it (0: none): alert on time() minus it.")
# The repository (labels: stanza only). A value of None leaves its sample out.
REPOSITORY_METRICS = (
    ("info_success", "1 if pgBackRest answered about the repository at the last refresh (status ok or no backup "
                     "yet), 0 if it could not be read."),
    ("info_timestamp_seconds", "Unix time of the last refresh of this file."),
    ("status_code", "pgBackRest's stanza status code (0 ok, 1 or 3 no stanza, 2 no valid backup, 99 error; "
                    "-1: not read)."),
    ("backups", "Backups of the current database in the repository."),
    ("newest_backup_age_seconds", "Age in seconds of the newest backup at the last refresh (absent: none)."),
    ("archive_newest_wal_timestamp_seconds", "Time the repository stored the newest WAL segment, Unix time by the "
                                             "storage's clock (0: none): alert on time() minus it."),
    ("archive_lag_seconds", "Age in seconds of the newest archived WAL segment at the last refresh (absent: none "
                            "or dated in the future). Grows on an idle server without anything being wrong."),
    ("archive_gaps", "Ranges of missing WAL segments after the newest full backup: no recovery crosses one."),
    ("earliest_recoverable_timestamp_seconds", "The earliest time a recovery can reach, Unix time (0: none)."),
    ("latest_recoverable_timestamp_seconds", "About the latest time a recovery can reach, Unix time (0: none)."),
    ("repo_backup_bytes", "Bytes the backups take in the repository."),
    ("repo_archive_bytes", "Bytes the WAL archive takes in the repository (absent when it was not listed)."),
    ("future_dated", "Backups or WAL dated after the time of the last refresh (a clock was wrong): alert above 0."),
)


def metrics_name(stanza):
    """The textfile's name (also its name in node_exporter's directory)."""
    return "lift_pitr_%s.prom" % stanza


def _family(lines, name, text, samples):
    full = METRIC_PREFIX + name
    lines.append("# HELP %s %s" % (full, text))
    lines.append("# TYPE %s gauge" % full)
    for labels, value in samples:
        lines.append("%s{%s} %s" % (full, metrics._labels_text(labels), metrics._number(value)))


def repository_values(summary, success):
    """The repository metrics from pitr/info.py's summary (None: pgBackRest could not be read)."""
    if summary is None:
        return dict(info_success=0, status_code=-1)
    archive = summary["archive"]
    return dict(
        info_success=1 if success else 0,
        status_code=summary["status"]["code"] if summary["status"]["code"] is not None else -1,
        backups=summary["backup_count"],
        newest_backup_age_seconds=summary["newest_backup_age_seconds"],
        archive_newest_wal_timestamp_seconds=archive["newest_wal_epoch"] or 0,
        archive_lag_seconds=summary["archive_lag_seconds"],
        archive_gaps=len(archive["gaps"]) if archive["gaps"] is not None else None,
        earliest_recoverable_timestamp_seconds=summary["earliest_recoverable_epoch"] or 0,
        latest_recoverable_timestamp_seconds=summary["latest_recoverable_epoch"] or 0,
        repo_backup_bytes=summary["repo_backup_bytes"],
        repo_archive_bytes=summary["repo_archive_bytes"],
        future_dated=len([b for b in summary["backups"] if b["future"]]) + (1 if archive["newest_wal_future"] else 0),
    )


def render(stanza, runs, summary, success, now):
    """The textfile. ``runs``: {type: {"success", "finished", "duration"}} of the last scheduled runs
    (job state); ``summary``: pitr/info.py's summary, or None when pgBackRest could not be read;
    ``success``: whether it could; ``now``: the Unix time of this refresh."""
    base = [("stanza", stanza)]
    lines = []
    for name, text in RUN_METRICS:
        samples = []
        for kind in BACKUP_TYPES:
            run = runs.get(kind)
            if run is None:
                continue
            value = {"last_run_success": 1 if run.get("success") else 0,
                     "last_run_timestamp_seconds": round(float(run.get("finished") or 0), 3),
                     "last_duration_seconds": round(float(run.get("duration") or 0), 3)}[name]
            samples.append((base + [("type", kind)], value))
        if samples:
            _family(lines, name, text, samples)
    if summary is not None:
        newest = [(kind, summary["newest_" + kind]) for kind in BACKUP_TYPES] + [("any", summary["newest_backup"])]
        _family(lines, NEWEST_METRIC[0], NEWEST_METRIC[1],
                [(base + [("type", kind)], backup["stop_epoch"] if backup else 0) for kind, backup in newest])
    values = repository_values(summary, success)
    values["info_timestamp_seconds"] = round(now, 3)
    for name, text in REPOSITORY_METRICS:
        if values.get(name) is not None:
            _family(lines, name, text, [(base, values[name])])
    return "\n".join(lines) + "\n"


def write(metrics_dir, stanza, text):
    """Replace the textfile in ``metrics_dir`` atomically (0644: node_exporter reads it); its path."""
    return atomic_files.write_file_atomic(metrics_dir, metrics_name(stanza), text, mode=0o644, replace=True)
