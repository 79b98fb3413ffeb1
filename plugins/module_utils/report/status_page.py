# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scheduled job's status page: after every run and drill, the job gathers what it knows of its
database (the backups in its directory, its last run, its off-site targets' metrics, its drill
reports, the alerts its textfiles would fire now) and writes ``<status_page_dir>/index.html``
(html_page.py) atomically, 0644. A page that cannot be written never fails the run. Pure Python.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os
import re
import socket
import time

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import alerts
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import notify
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.metrics import METRIC_PREFIX
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.settings import metrics_path
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.report import html_page, listing
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import atomic_files

PAGE_NAME = "index.html"
MAX_READ = 1024 * 1024
DRILL_REPORTS = 10
UTC = datetime.timezone.utc
_DRILL_NAME_RE = r"^%s-(\d{8}T\d{6}Z)\.json$"


def _iso(timestamp):
    if not timestamp:
        return None
    return datetime.datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _read_text(path):
    """The first MiB of a file, None when it cannot be read; never follows a final symlink."""
    try:
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb") as handle:
            return handle.read(MAX_READ).decode("utf-8", "replace")
    except OSError:
        return None


def drill_metrics_path(settings):
    """The drill's textfile (issue 17 contract: lift_pg_backup_drill_<name>.prom beside the job's)."""
    if not settings.get("metrics_dir"):
        return None
    return os.path.join(settings["metrics_dir"], "lift_pg_backup_drill_%s.prom" % settings["name"])


def drill_reports(state_dir, name, count=DRILL_REPORTS):
    """The newest ``count`` drill JSON reports of the job ``name`` (``<state_dir>/drills/<name>-<UTC>.json``),
    newest first; a report that cannot be read or is not a JSON object is shown as a failed drill."""
    directory = os.path.join(state_dir, "drills")
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    pattern = re.compile(_DRILL_NAME_RE % re.escape(name))
    found = sorted((n for n in names if pattern.match(n)), key=lambda n: pattern.match(n).group(1), reverse=True)
    reports = []
    for file_name in found[:count]:
        text = _read_text(os.path.join(directory, file_name))
        try:
            report = json.loads(text) if text is not None else None
        except ValueError:
            report = None
        if not isinstance(report, dict):
            report = dict(started=pattern.match(file_name).group(1), success=False,
                          message="the drill report %s cannot be read" % file_name, sources=[])
        if not isinstance(report.get("sources"), list):
            report["sources"] = []
        report["sources"] = [s for s in report["sources"] if isinstance(s, dict)]
        reports.append(report)
    return reports


def offsite_targets(samples, settings):
    """The off-site targets the job's metrics know (label ``target``), with their locations from the
    targets file when the job can read it (job/offsite.py; descriptions carry no credentials)."""
    locations = {}
    if settings.get("offsite_targets_file"):
        try:
            from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import offsite as job_offsite
            from ansible_collections.lift_simulator.postgresql.plugins.module_utils.offsite import targets
            for name, target in job_offsite.read_targets(settings["offsite_targets_file"]):
                locations[name] = targets.describe(target)
        except Exception:  # the page shows what the metrics say; the run reports a bad targets file
            pass
    per_target = {}
    for (metric, labels), value in samples.items():
        labels = dict(labels)
        if not metric.startswith(METRIC_PREFIX + "offsite_") or labels.get("backup_job") != settings["name"]:
            continue
        target = labels.get("target")
        if target is not None:
            per_target.setdefault(target, {})[metric[len(METRIC_PREFIX + "offsite_"):]] = value
    for name in locations:
        per_target.setdefault(name, {})
    result = []
    for name in sorted(per_target):
        values = per_target[name]
        ok = values.get("last_run_success")
        result.append(dict(name=name, location=locations.get(name), error=None,
                           last_ok=None if ok is None else ok == 1,
                           last_success=_iso(values.get("last_success_timestamp_seconds")),
                           newest_copy=_iso(values.get("newest_copy_timestamp_seconds"))))
    return result


def mark_verified_by_run(backups, last_run):
    """The backup the last run made and verified (sha256 against its manifest, job/runner.py) is shown
    as verified, unless the listing found it changed since (its size no longer matches)."""
    if not isinstance(last_run, dict) or last_run.get("status") != "success" or not last_run.get("backup_path"):
        return
    made = os.path.basename("%s" % last_run["backup_path"])
    for backup in backups:
        if backup["name"] == made and backup["good"] and backup["checksum_ok"] is None:
            backup["checksum_ok"] = True
            backup["verified_by_run"] = True


def job_section(settings, now=None):
    """The page model's section of the job (html_page.py)."""
    now = now if now is not None else time.time()
    notes = []
    section = dict(host=socket.getfqdn(), database=settings["database"], job=settings["name"],
                   last_run=notify.read_status(settings), copies=[], notes=notes)
    try:
        section["backups"] = listing.local_backups(settings["dest_dir"], settings["database"],
                                                   include_legacy=settings.get("include_legacy", False),
                                                   now=datetime.datetime.fromtimestamp(now, UTC))
    except OSError as exc:
        section["backups"] = []
        notes.append("cannot list %s: %s" % (settings["dest_dir"], exc))
    mark_verified_by_run(section["backups"], section["last_run"])
    texts = [t for t in (_read_text(p) for p in (metrics_path(settings), drill_metrics_path(settings)) if p)
             if t is not None]
    samples = alerts.parse_textfiles(texts)
    section["offsite"] = offsite_targets(samples, settings)
    section["drills"] = drill_reports(settings["state_dir"], settings["name"])
    if texts:
        section["alerts"] = alerts.evaluate(samples, now, alerts.thresholds_from_settings(settings))
    else:
        section["alerts"] = None
    return section


def job_page(settings, now=None):
    now = now if now is not None else time.time()
    return dict(title="Backups of %s" % settings["database"], generated=_iso(now),
                sections=[job_section(settings, now)])


def write_page(directory, page):
    """Write the page model ``page`` as ``<directory>/index.html`` (atomic, 0644); returns the path.
    The directory is created (0755) when its parent exists. Raises OSError."""
    if not os.path.isdir(directory):
        os.mkdir(directory, 0o755)
        os.chmod(directory, 0o755)  # whatever the umask (the units run with UMask=0077)
    return atomic_files.write_file_atomic(directory, PAGE_NAME, html_page.render(page), mode=0o644, replace=True)


def write_for_job(settings, warn=None):
    """Write the job's status page when ``status_page_dir`` is set; returns its path, or None when
    there is none or it failed (``warn`` gets the reason). Never raises: the run's outcome is
    already recorded and a page must not change it."""
    directory = settings.get("status_page_dir")
    if not directory:
        return None
    try:
        return write_page(directory, job_page(settings))
    except Exception as exc:  # any failure, a bug included: the backup or drill stays as it was
        if warn is not None:
            try:
                warn("cannot write the status page in %s: %s: %s" % (directory, type(exc).__name__, exc))
            except Exception:
                pass
        return None
