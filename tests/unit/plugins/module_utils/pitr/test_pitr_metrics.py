# -*- coding: utf-8 -*-
"""The scheduled pgBackRest job's textfile (job/pitr_metrics.py) from the summary of real
`pgbackrest info` output (tests/fixtures/pgbackrest), read back with the backup job's parser."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import metrics as job_metrics
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import pitr_metrics
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import info

from conftest import ROOT

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "pgbackrest")
NOW = 1796124439 + 3600
BASE = [("stanza", "demo")]


def summary():
    with open(os.path.join(FIXTURES, "info_full_diff_incr.json")) as handle:
        entry = info.parse_info(handle.read(), "demo")
    with open(os.path.join(FIXTURES, "repo_ls_archive.json")) as handle:
        listing = json.load(handle)
    return info.summarize(entry, listing, NOW)


def values(text, labels):
    return job_metrics.parse_metrics(text, labels)


def test_repository_figures_come_from_the_summary():
    found = summary()
    text = pitr_metrics.render("demo", {}, found, True, NOW)
    repository = values(text, BASE)
    assert repository == {
        "lift_simulator_pitr_info_success": 1,
        "lift_simulator_pitr_info_timestamp_seconds": NOW,
        "lift_simulator_pitr_status_code": 0,
        "lift_simulator_pitr_backups": 3,
        "lift_simulator_pitr_newest_backup_age_seconds": 3600,
        "lift_simulator_pitr_archive_newest_wal_timestamp_seconds": 1796124439,
        "lift_simulator_pitr_archive_lag_seconds": 3600,
        "lift_simulator_pitr_archive_gaps": 0,
        "lift_simulator_pitr_earliest_recoverable_timestamp_seconds": 1796124433,
        "lift_simulator_pitr_latest_recoverable_timestamp_seconds": 1796124439,
        "lift_simulator_pitr_repo_backup_bytes": found["repo_backup_bytes"],
        "lift_simulator_pitr_repo_archive_bytes": 1555310,
        "lift_simulator_pitr_future_dated": 0,
    }
    assert values(text, BASE + [("type", "full")]) == {"lift_simulator_pitr_newest_backup_timestamp_seconds": 1796124433}
    assert values(text, BASE + [("type", "any")]) == {"lift_simulator_pitr_newest_backup_timestamp_seconds": 1796124439}


def test_every_family_has_help_and_type_once():
    text = pitr_metrics.render("demo", {"full": {"success": True, "finished": NOW, "duration": 12.5}}, summary(), True, NOW)
    names = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert len(names) == len(set(names))
    for name in names:
        assert "# HELP %s " % name in text and name.startswith(pitr_metrics.METRIC_PREFIX)
    samples = [line for line in text.splitlines() if not line.startswith("#")]
    assert all(line.split("{")[0] in names for line in samples)


def test_runs_per_type():
    runs = {"full": {"success": True, "finished": NOW - 100, "duration": 12.5},
            "incr": {"success": False, "finished": NOW, "duration": 0.25}}
    text = pitr_metrics.render("demo", runs, summary(), True, NOW)
    assert values(text, BASE + [("type", "full")])["lift_simulator_pitr_last_run_success"] == 1
    assert values(text, BASE + [("type", "full")])["lift_simulator_pitr_last_duration_seconds"] == 12.5
    assert values(text, BASE + [("type", "incr")])["lift_simulator_pitr_last_run_success"] == 0
    assert "lift_simulator_pitr_last_run_success" not in values(text, BASE + [("type", "diff")])


def test_a_repository_that_cannot_be_read():
    text = pitr_metrics.render("demo", {}, None, False, NOW)
    assert values(text, BASE) == {"lift_simulator_pitr_info_success": 0, "lift_simulator_pitr_status_code": -1,
                                  "lift_simulator_pitr_info_timestamp_seconds": NOW}
    assert "newest_backup_timestamp_seconds" not in text


def test_values_absent_when_unknown():
    found = summary()
    found.update(newest_backup_age_seconds=None, archive_lag_seconds=None, repo_archive_bytes=None)
    found["archive"] = dict(found["archive"], gaps=None)
    repository = values(pitr_metrics.render("demo", {}, found, True, NOW), BASE)
    for name in ("newest_backup_age_seconds", "archive_lag_seconds", "repo_archive_bytes", "archive_gaps"):
        assert pitr_metrics.METRIC_PREFIX + name not in repository


def test_labels_are_escaped_and_the_file_is_written_atomically(tmp_path):
    text = pitr_metrics.render('we"ird\\stanza', {}, None, False, NOW)
    assert values(text, [("stanza", 'we"ird\\stanza')])["lift_simulator_pitr_info_success"] == 0
    path = pitr_metrics.write(str(tmp_path), "demo", text)
    assert os.path.basename(path) == "lift_pitr_demo.prom" and os.listdir(str(tmp_path)) == ["lift_pitr_demo.prom"]
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o644)
