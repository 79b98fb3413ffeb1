# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet's status page: one section per host and database, built on the controller from the
backup_info results of every host (playbooks/report.yml, filter status_page_html), optionally with
each host's job textfiles (the alerts that would fire now) and drill reports. Rendered by
html_page.py, the job's own page's renderer. Pure Python (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import time

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import alerts

UTC = datetime.timezone.utc


def _iso(timestamp):
    return datetime.datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _list(value):
    return value if isinstance(value, list) else []


def _dicts(value):
    return [item for item in _list(value) if isinstance(item, dict)]


def section_of(entry, now):
    """A page section (html_page.py) of one fleet entry: a dict with ``host``, ``info`` (a backup_info
    result), and optionally ``database``, ``job``, ``metrics`` (texts of the job's .prom textfiles),
    ``drills`` (drill JSON reports, any order), ``thresholds`` (alerts.py's)."""
    info = entry.get("info") if isinstance(entry.get("info"), dict) else {}
    backups = _dicts(info.get("backups"))
    notes = []
    if info.get("failed") or info.get("msg") and not backups:
        notes.append("backup_info: %s" % (info.get("msg") or "failed"))
    notes.extend("%s" % a for a in _list(info.get("anomalies")))
    offsite = []
    for target in _dicts(info.get("targets")):
        newest = target.get("newest_good") if isinstance(target.get("newest_good"), dict) else {}
        offsite.append(dict(name=target.get("name"), location=target.get("target") or target.get("path"),
                            error=target.get("error"), last_ok=target.get("error") is None,
                            last_success=None, newest_copy=newest.get("time")))
    database = entry.get("database") or (backups[0].get("database") if backups else None) or ""
    metrics = [t for t in _list(entry.get("metrics")) if isinstance(t, str)]
    drills = sorted([dict(d) for d in _dicts(entry.get("drills"))], key=lambda d: "%s" % d.get("started"),
                    reverse=True)
    for drill in drills:
        drill["sources"] = _dicts(drill.get("sources"))
    return dict(host=entry.get("host") or "", database=database, job=entry.get("job"),
                last_run=entry.get("last_run") if isinstance(entry.get("last_run"), dict) else None,
                backups=backups, copies=_dicts(info.get("copies")), offsite=offsite, drills=drills,
                alerts=(alerts.evaluate(alerts.parse_textfiles(metrics), now, entry.get("thresholds") or None)
                        if metrics else None),
                notes=notes)


def fleet_page(entries, title="Backups of the fleet", now=None):
    """The page model of ``entries`` (section_of's), sorted by host and database."""
    now = now if now is not None else time.time()
    sections = [section_of(e, now) for e in entries if isinstance(e, dict)]
    sections.sort(key=lambda s: ("%s" % s["host"], "%s" % s["database"]))
    return dict(title=title, generated=_iso(now), sections=sections)
