# -*- coding: utf-8 -*-
"""The alert rules evaluated in Python (job/alerts.py, for the status page) on the textfiles the
job, the restore drill and the PITR job really render; and the promtool tests of tests/alerts/
fed with exactly those metric names and label sets. (promtool itself, and the agreement of both
evaluations: tests/integration/test_alert_rules.py.)"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import glob
import json
import os
import re

import pytest
import yaml

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import alerts
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import drill_record
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import metrics
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import pitr_metrics
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import info

from conftest import ROOT

UTC = datetime.timezone.utc
LABELS = [("database", "lift_simulator"), ("backup_job", "nightly")]
RUN = 1796000000.0  # a run's end (2026-11-30)
DAY = 86400
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "pgbackrest")
PITR_NOW = 1796124439 + 3600  # an hour after the fixture's newest WAL


class Copy(object):
    def __init__(self, name, success, newest):
        self.name, self.success = name, success
        self.newest_copy_time = datetime.datetime.fromtimestamp(newest, UTC) if newest else None


class Drill(object):
    def __init__(self, source, success, restore_s=30.5, age_s=3600):
        self.source, self.success, self.restore_s, self.age_s = source, success, restore_s, age_s


def pitr_summary(now):
    with open(os.path.join(FIXTURES, "info_full_diff_incr.json")) as handle:
        entry = info.parse_info(handle.read(), "demo")
    with open(os.path.join(FIXTURES, "repo_ls_archive.json")) as handle:
        listing = json.load(handle)
    return info.summarize(entry, listing, now)


def fired(texts, now, thresholds=None):
    return sorted((a["name"], a["labels"].get("target") or a["labels"].get("source") or a["labels"].get("type", ""))
                  for a in alerts.evaluate(alerts.parse_textfiles(texts), now, thresholds))


def good_run(offsite=()):
    return metrics.render_metrics(LABELS, True, RUN, 60.0, verified_size=4096, offsite=list(offsite))


def test_a_good_run_fires_nothing_until_it_is_older_than_the_threshold():
    text = good_run([Copy("nas", True, RUN)])
    assert fired([text], RUN + 60) == []
    assert fired([text], RUN + 8 * DAY) == []  # exactly the threshold: not above it
    assert fired([text], RUN + 8 * DAY + 1) == [("LiftBackupTooOld", ""), ("LiftOffsiteCopyLagging", "nas")]
    # A threshold of the job's settings (alert_*) replaces the default.
    thresholds = alerts.thresholds_from_settings({"alert_backup_max_age_seconds": 2 * DAY})
    assert fired([text], RUN + 2 * DAY + 1, thresholds) == [("LiftBackupTooOld", "")]


def test_a_failed_run_and_failed_copies():
    good = good_run([Copy("nas", True, RUN - 5), Copy("s3", True, RUN - 5)])
    failed = metrics.render_metrics(LABELS, False, RUN + DAY, 3.0, None, good, 0,
                                    [Copy("nas", False, None), Copy("s3", True, RUN + DAY - 5)])
    assert fired([failed], RUN + DAY + 60) == [("LiftBackupLastRunFailed", ""), ("LiftOffsiteCopyFailed", "nas")]
    # Never a good backup, never a copy: missing, not "lagging" (a timestamp of 0 is "none").
    first = metrics.render_metrics(LABELS, False, RUN, 3.0, None, "", 2, [Copy("nas", False, None)])
    found = alerts.evaluate(alerts.parse_textfiles([first]), RUN + 60)
    assert [(a["name"], a["severity"]) for a in found] == [
        ("LiftBackupTooOld", "critical"), ("LiftBackupLastRunFailed", "warning"), ("LiftBackupFutureDated", "warning"),
        ("LiftOffsiteCopyMissing", "critical"), ("LiftOffsiteCopyFailed", "warning")]
    assert found[0]["summary"] == "no good backup of database lift_simulator (job nightly) yet"
    assert found[2]["summary"] == "2 backups of database lift_simulator (job nightly) are dated in the future"
    assert found[3]["labels"] == dict(LABELS + [("target", "nas")])


def test_drills():
    text = drill_record.render_metrics(LABELS, RUN, [Drill("local", True), Drill("offsite:nas", False),
                                                     Drill("pitr", False, restore_s=None)])
    assert fired([text], RUN + 60) == [("LiftRestoreDrillFailed", "offsite:nas"), ("LiftRestoreDrillFailed", "pitr")]
    later = drill_record.render_metrics(LABELS, RUN + 30 * DAY, [Drill("offsite:nas", True)], text, carry_over=True)
    # local's last success (RUN) is 93 days old at RUN + 93 days: above it a second later. pitr never
    # succeeded: failed, not overdue.
    assert fired([later], RUN + 93 * DAY) == [("LiftRestoreDrillFailed", "pitr")]
    found = alerts.evaluate(alerts.parse_textfiles([later]), RUN + 93 * DAY + 1)
    expected = [("LiftRestoreDrillFailed", "pitr"), ("LiftRestoreDrillOverdue", "local")]
    assert [(a["name"], a["labels"]["source"]) for a in found] == expected
    assert found[1]["summary"] == ("no successful restore drill of database lift_simulator (job nightly) from local "
                                   "for 93d 0h 0m 1s")


def test_pitr():
    now = PITR_NOW
    runs = {"full": {"success": True, "finished": now - 60, "duration": 9}, "diff": {"success": False, "finished": now}}
    text = pitr_metrics.render("demo", runs, pitr_summary(now), True, now)
    assert fired([text], now) == [("LiftPitrBackupFailed", "diff")]
    # The newest WAL (1h old at the refresh) counts from its own time, not the refresh's.
    assert fired([text], now + 1) == [("LiftPitrArchiveLagging", ""), ("LiftPitrBackupFailed", "diff")]
    stale = fired([text], now + 2 * DAY)
    assert ("LiftPitrBackupTooOld", "any") in stale and ("LiftPitrMetricsStale", "") in stale
    unreadable = pitr_metrics.render("demo", {}, None, False, now)
    found = alerts.evaluate(alerts.parse_textfiles([unreadable]), now)
    assert [a["name"] for a in found] == ["LiftPitrRepositoryUnreadable"]
    assert found[0]["summary"] == "the pgBackRest repository of stanza demo cannot be read"


def test_the_files_of_one_job_together_and_the_instance_in_the_summary():
    texts = [good_run(), drill_record.render_metrics(LABELS, RUN, [Drill("local", False)])]
    samples = alerts.parse_textfiles(texts)
    assert len(samples) == len(metrics.METRICS) + len(drill_record.DRILL_METRICS)
    with_instance = dict(((name, labels | frozenset([("instance", "db1:9100")])), value)
                         for (name, labels), value in samples.items())
    found = alerts.evaluate(with_instance, RUN + 10 * DAY)
    assert [a["summary"] for a in found] == [
        "db1:9100: no good backup of database lift_simulator (job nightly) for 10d 0h 0m 0s",
        "db1:9100: the last restore drill of database lift_simulator (job nightly) from local failed"]


def test_parse_textfiles_reads_escaped_labels_and_skips_the_rest():
    text = ('# HELP x y\n# TYPE x gauge\nx{a="q\\"uo\\\\te",b="new\\nline"} 1.5\nbroken{a="1"} NaNx\n'
            'y 2\n\n')
    assert alerts.parse_textfiles([text, None]) == {
        ("x", frozenset([("a", 'q"uo\\te'), ("b", "new\nline")])): 1.5, ("y", frozenset()): 2.0}


@pytest.mark.parametrize("seconds, text", [
    (0.5, "0.5s"), (1, "1s"), (59.25, "59.25s"), (60, "1m 0s"), (3661.9, "1h 1m 1s"),
    (8 * DAY + 20 * 60, "8d 0h 20m 0s"), (-90, "-1m 30s")])
def test_humanize_duration_as_prometheus(seconds, text):
    assert alerts.humanize_duration(seconds) == text


def test_thresholds_from_settings():
    assert alerts.thresholds_from_settings({}) == alerts.DEFAULT_THRESHOLDS
    assert alerts.DEFAULT_THRESHOLDS["backup_max_age_seconds"] == 8 * DAY
    assert alerts.DEFAULT_THRESHOLDS["drill_max_age_seconds"] == 93 * DAY
    changed = alerts.thresholds_from_settings({"alert_pitr_archive_lag_seconds": 600, "alert_drill_max_age_seconds": None})
    assert changed["pitr_archive_lag_seconds"] == 600 and changed["drill_max_age_seconds"] == 93 * DAY


# --- the series of the promtool tests are the ones the job writes -------------------------------

def written_series():
    """{metric name: its label names} of everything the three textfiles can hold."""
    texts = [
        metrics.render_metrics(LABELS, True, RUN, 1.0, 10, offsite=[Copy("nas", True, RUN)]),
        drill_record.render_metrics(LABELS, RUN, [Drill("local", True)]),
        pitr_metrics.render("demo", dict((kind, {"success": True, "finished": RUN}) for kind in pitr_metrics.BACKUP_TYPES),
                            pitr_summary(PITR_NOW), True, PITR_NOW),
    ]
    found = {}
    for (name, labels) in alerts.parse_textfiles(texts):
        found.setdefault(name, set()).add(frozenset(key for key, _value in labels))
    return found


def test_every_alert_reads_a_series_that_is_written():
    written = written_series()
    for alert in alerts.ALERTS:
        assert alert["metric"] in written, alert["name"]
        for key, _value in alert.get("selector", ()):
            assert all(key in names for names in written[alert["metric"]])


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "tests", "alerts", "*.test.yml"))))
def test_the_promtool_tests_use_the_jobs_series(path):
    written = written_series()
    with open(path) as handle:
        doc = yaml.safe_load(handle)
    count = 0
    for group in doc["tests"]:
        for entry in group["input_series"]:
            match = re.match(r"^([a-z_]+)\{(.*)\}$", entry["series"])
            assert match, entry["series"]
            names = frozenset(re.findall(r'([a-z_]+)="', match.group(2))) - {"instance", "job"}
            assert match.group(1) in written, match.group(1)
            assert names in written[match.group(1)], (entry["series"], written[match.group(1)])
            count += 1
    assert count >= 10
