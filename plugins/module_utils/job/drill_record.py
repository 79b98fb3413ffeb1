# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a restore drill (job/drill.py) leaves behind: its JSON report
(``<state_dir>/drills/<name>-<UTC time>.json``), its Prometheus textfile
(``<metrics_dir>/lift_pg_backup_drill_<name>.prom``, one series per source: ``local``,
``offsite:<target>``), its status file for the failure notification
(``<state_dir>/<name>.last-drill.json``) and its lock. Pure Python (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import metrics
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import notify
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import atomic_files

DRILL_PREFIX = metrics.METRIC_PREFIX + "restore_drill_"
DRILL_METRICS = (
    ("last_run_timestamp_seconds", "Unix time at which the last restore drill of this source ended."),
    ("last_success_timestamp_seconds", "Unix time of the last restore drill of this source that succeeded "
                                       "(0: none yet): alert on time() minus it."),
    ("duration_seconds", "Seconds the last restore drill of this source took to restore and check the backup."),
    ("success", "1 if the last restore drill of this source succeeded, 0 if it failed."),
    ("restored_backup_age_seconds", "Age in seconds of the backup the last drill of this source restored "
                                    "(0: none was restored)."),
)
REPORTS_KEPT = 50


def iso(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def lock_path(settings):
    """The drill's lock (another drill refuses to start; backups are not held up)."""
    return os.path.join(settings["state_dir"], "%s.drill.lock" % settings["name"])


def status_path(settings):
    return os.path.join(settings["state_dir"], "%s.last-drill.json" % settings["name"])


def metrics_path(settings):
    if not settings["metrics_dir"]:
        return None
    return os.path.join(settings["metrics_dir"], "lift_pg_backup_drill_%s.prom" % settings["name"])


def reports_dir(settings):
    return os.path.join(settings["state_dir"], "drills")


class DrillOutcome(object):
    """A drill's outcome: times (Unix), success, the problem, the SourceDrill list."""

    def __init__(self, settings, started, finished, success, message, drills):
        self.settings = settings
        self.started = started
        self.finished = finished
        self.success = success
        self.message = message
        self.drills = drills
        self.report_path = None
        self.metrics_path = None

    def report(self):
        return dict(name=self.settings["name"], database=self.settings["database"], started=iso(self.started),
                    finished=iso(self.finished), success=self.success, message=self.message,
                    sources=[d.as_dict() for d in self.drills])


def _number(value):
    value = float(value or 0)
    return "%d" % value if value.is_integer() else repr(round(value, 3))


def _previous_sources(previous_text, labels):
    """{source: {metric: value}} of the samples of ``previous_text`` with ``labels`` and a source."""
    wanted, found = dict(labels), {}
    for line in (previous_text or "").splitlines():
        match = metrics._SAMPLE_RE.match(line.strip())
        if not match or line.lstrip().startswith("#"):
            continue
        sample = dict((k, metrics._unescape_label(v)) for k, v in metrics._LABEL_RE.findall(match.group(3) or ""))
        source = sample.pop("source", None)
        if source is None or sample != wanted or not match.group(1).startswith(DRILL_PREFIX):
            continue
        try:
            found.setdefault(source, {})[match.group(1)[len(DRILL_PREFIX):]] = float(match.group(4))
        except ValueError:
            continue
    return found


def render_metrics(labels, finished, drills, previous_text="", carry_over=False):
    """The drill's textfile: one series per source drilled. A failed source keeps its last success
    from ``previous_text``; with ``carry_over`` (a drill stopped before every source), the sources
    it did not reach keep their samples."""
    previous = _previous_sources(previous_text, labels)
    series = []
    for drill in drills:
        before = previous.get(drill.source, {})
        series.append((drill.source, {
            "last_run_timestamp_seconds": finished,
            "last_success_timestamp_seconds": finished if drill.success else before.get(
                "last_success_timestamp_seconds", 0),
            "duration_seconds": drill.restore_s or 0,
            "success": 1 if drill.success else 0,
            "restored_backup_age_seconds": (drill.age_s or 0) if drill.restore_s is not None else 0,
        }))
    if carry_over:
        done = set(d.source for d in drills)
        series.extend((source, values) for source, values in sorted(previous.items()) if source not in done)
    lines = []
    for name, text in DRILL_METRICS:
        full = DRILL_PREFIX + name
        lines.append("# HELP %s %s" % (full, text))
        lines.append("# TYPE %s gauge" % full)
        for source, values in series:
            lines.append("%s{%s} %s" % (full, metrics._labels_text(list(labels) + [("source", source)]),
                                        _number(values.get(name, 0))))
    return "\n".join(lines) + "\n"


def write_metrics(settings, outcome, carry_over):
    path = metrics_path(settings)
    if path is None:
        return None
    previous = metrics.read_previous(path)
    text = render_metrics(metrics.metric_labels(settings), outcome.finished, outcome.drills, previous, carry_over)
    return atomic_files.write_file_atomic(settings["metrics_dir"], os.path.basename(path), text, mode=0o644,
                                          replace=True)


def write_report(settings, outcome):
    """The drill's JSON report, complete under its final name; the oldest beyond REPORTS_KEPT go."""
    directory = reports_dir(settings)
    atomic_files.ensure_private_dir(directory)
    stamp = datetime.datetime.fromtimestamp(outcome.started, datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(outcome.report(), indent=2, sort_keys=True) + "\n"
    path = None
    for attempt in range(1, 10):  # two drills started in one second: the second report gets a suffix
        name = "%s-%s%s.json" % (settings["name"], stamp, "" if attempt == 1 else "-%d" % attempt)
        if not os.path.lexists(os.path.join(directory, name)):
            path = atomic_files.write_file_atomic(directory, name, text, mode=0o640)
            break
    if path is None:
        raise OSError("too many drill reports of %s in %s" % (stamp, directory))
    mine = sorted(n for n in os.listdir(directory) if n.startswith(settings["name"] + "-") and n.endswith(".json"))
    for old in mine[:-REPORTS_KEPT]:
        try:
            os.unlink(os.path.join(directory, old))
        except OSError:
            pass
    return path


def record(settings, outcome):
    """Write the report and the metrics; returns the log lines saying where (or what failed)."""
    lines = []
    try:
        outcome.report_path = write_report(settings, outcome)
        lines.append("report written to %s" % outcome.report_path)
    except OSError as exc:
        lines.append("report FAILED: cannot write it in %s: %s" % (reports_dir(settings), exc))
    stopped = any((d.message or "").startswith("stopped") for d in outcome.drills)
    try:
        outcome.metrics_path = write_metrics(settings, outcome, carry_over=stopped or not outcome.drills)
        if outcome.metrics_path:
            lines.append("metrics written to %s" % outcome.metrics_path)
    except OSError as exc:
        lines.append("metrics FAILED: cannot write %s: %s" % (metrics_path(settings), exc))
    return lines


def write_status(settings, status):
    """The drill's outcome for the failure notification (cli.py --notify-failure)."""
    notify.write_status(settings, status, status_path(settings))


def read_status(settings):
    return notify.read_status(settings, status_path(settings))
