# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scheduled job's Prometheus textfile: rendered after every run and replaced atomically;
a failed run carries the last success and its size over from the file the last run wrote.
Pure Python (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.settings import metrics_path
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import atomic_files

METRIC_PREFIX = "lift_simulator_backup_"
METRICS = (
    ("last_run_success", "1 if the last backup run succeeded (backup, verification, retention), 0 if it failed."),
    ("last_run_timestamp_seconds", "Unix time at which the last backup run ended, success or failure."),
    ("last_duration_seconds", "Duration in seconds of the last backup run, success or failure."),
    ("last_success_timestamp_seconds", "Unix time at which the last verified backup was completed (0: none yet)."),
    ("last_size_bytes", "Size in bytes of the last verified backup (0: none yet)."),
    ("future_dated_backups", "Backups dated after the time of the last run (a clock was wrong): alert when above 0."),
)

# Per off-site target (label ``target``, the target's name in the targets file).
OFFSITE_METRICS = (
    ("offsite_last_run_success", "1 if the last run copied its backup to this off-site target, 0 if that failed."),
    ("offsite_last_success_timestamp_seconds", "Unix time of the last run whose copy to this target succeeded "
                                               "(0: none yet)."),
    ("offsite_newest_copy_timestamp_seconds", "Time of the newest good copy on this target, as its backup is named "
                                              "(Unix time; 0: none known): alert on time() minus it."),
)

_SAMPLE_RE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s+(\S+)")
_LABEL_RE = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def escape_label(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _unescape_label(value):
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def _labels_text(labels):
    return ",".join('%s="%s"' % (key, escape_label(value)) for key, value in labels)


def parse_metrics(text, labels):
    """{metric name: value} of the samples in ``text`` whose labels are exactly ``labels``."""
    wanted = dict(labels)
    values = {}
    for line in (text or "").splitlines():
        match = _SAMPLE_RE.match(line.strip())
        if not match or line.lstrip().startswith("#"):
            continue
        found = dict((k, _unescape_label(v)) for k, v in _LABEL_RE.findall(match.group(3) or ""))
        if found != wanted:
            continue
        try:
            values[match.group(1)] = float(match.group(4))
        except ValueError:
            continue
    return values


def _number(value):
    if float(value).is_integer():
        return "%d" % value
    return repr(float(value))


def render_metrics(labels, success, finished, duration, verified_size=None, previous_text="", future_dated=0,
                   offsite=()):
    """The textfile of a run.

    ``labels`` is a list of (name, value); ``finished`` a Unix time; ``verified_size`` the size of
    the verified backup this run made (None when it made none: the last success and its size are
    carried over from ``previous_text``, the file the last run wrote). ``offsite``: the run's
    job/offsite.py TargetCopy list (a failed copy carries its target's last success and newest
    copy over), or None when the job has off-site targets but this run copied to none of them (it
    failed before): every target's samples of ``previous_text`` are then carried over as they are.
    """
    previous = parse_metrics(previous_text, labels)
    if verified_size is not None:
        last_success, last_size = finished, verified_size
    else:
        last_success = previous.get(METRIC_PREFIX + "last_success_timestamp_seconds", 0)
        last_size = previous.get(METRIC_PREFIX + "last_size_bytes", 0)
    values = {
        "last_run_success": 1 if success else 0,
        "last_run_timestamp_seconds": round(finished, 3),
        "last_duration_seconds": round(duration, 3),
        "last_success_timestamp_seconds": round(last_success, 3),
        "last_size_bytes": int(last_size),
        "future_dated_backups": int(future_dated),
    }
    lines = []
    for name, text in METRICS:
        full = METRIC_PREFIX + name
        lines.append("# HELP %s %s" % (full, text))
        lines.append("# TYPE %s gauge" % full)
        lines.append("%s{%s} %s" % (full, _labels_text(labels), _number(values[name])))
    if offsite is None:
        per_target = [(target_labels, _carried_offsite_values(previous_text, target_labels))
                      for target_labels in _previous_target_labels(previous_text, labels)]
    else:
        per_target = [(list(labels) + [("target", copy.name)], _offsite_values(copy, finished, previous_text, labels))
                      for copy in offsite]
    for name, text in OFFSITE_METRICS if per_target else ():
        full = METRIC_PREFIX + name
        lines.append("# HELP %s %s" % (full, text))
        lines.append("# TYPE %s gauge" % full)
        for target_labels, target_values in per_target:
            lines.append("%s{%s} %s" % (full, _labels_text(target_labels), _number(target_values[name])))
    return "\n".join(lines) + "\n"


def _offsite_values(copy, finished, previous_text, labels):
    previous = parse_metrics(previous_text, list(labels) + [("target", copy.name)])
    last_success = finished if copy.success else previous.get(METRIC_PREFIX + "offsite_last_success_timestamp_seconds", 0)
    newest = copy.newest_copy_time.timestamp() if copy.newest_copy_time is not None else \
        previous.get(METRIC_PREFIX + "offsite_newest_copy_timestamp_seconds", 0)
    return {"offsite_last_run_success": 1 if copy.success else 0,
            "offsite_last_success_timestamp_seconds": round(last_success, 3),
            "offsite_newest_copy_timestamp_seconds": round(newest, 3)}


def _previous_target_labels(previous_text, labels):
    """The labels (``labels`` and a ``target``) of each off-site target ``previous_text`` has samples of."""
    wanted, found = dict(labels), []
    for line in (previous_text or "").splitlines():
        match = _SAMPLE_RE.match(line.strip())
        if not match or line.lstrip().startswith("#") or not match.group(1).startswith(METRIC_PREFIX + "offsite_"):
            continue
        sample = dict((k, _unescape_label(v)) for k, v in _LABEL_RE.findall(match.group(3) or ""))
        target = sample.pop("target", None)
        target_labels = list(labels) + [("target", target)]
        if target is not None and sample == wanted and target_labels not in found:
            found.append(target_labels)
    return found


def _carried_offsite_values(previous_text, target_labels):
    previous = parse_metrics(previous_text, target_labels)
    return dict((name, previous.get(METRIC_PREFIX + name, 0)) for name, _text in OFFSITE_METRICS)


def metric_labels(settings):
    return [("database", settings["database"]), ("backup_job", settings["name"])]


def read_previous(path):
    """The textfile the last run wrote (its values carry over), or "" when there is none."""
    try:
        with open(path) as handle:
            return handle.read(1024 * 1024)
    except OSError:
        return ""


def write_metrics(settings, success, finished, duration, verified_size, future_dated=0, offsite=()):
    """Replace the job's textfile; returns its path (None when metrics are off). Raises OSError.
    ``offsite`` as render_metrics takes it."""
    path = metrics_path(settings)
    if path is None:
        return None
    previous = read_previous(path)
    text = render_metrics(metric_labels(settings), success, finished, duration, verified_size, previous,
                          future_dated, offsite)
    # Readable by node_exporter; replaced atomically (a hidden temporary node_exporter ignores).
    return atomic_files.write_file_atomic(settings["metrics_dir"], os.path.basename(path), text, mode=0o644,
                                          replace=True)
