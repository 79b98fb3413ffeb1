# -*- coding: utf-8 -*-
"""The restore drill's textfile (job/drill_record.py): one series per source, the last success kept
over a failure, the sources a stopped drill did not reach carried over; and the status the failure
notification reports (cli.last_status: the backup's or the drill's, whichever finished last)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import cli, drill_record
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.drill import SourceDrill
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.metrics import parse_metrics

LABELS = [("database", "lift_simulator"), ("backup_job", "job")]
P = drill_record.DRILL_PREFIX


def drill(source, success, restore_s=12.5, age_s=3600.0):
    found = SourceDrill(source)
    found.success, found.restore_s, found.age_s = success, restore_s, age_s
    found.message = None if success else "failed"
    return found


def values(text, source):
    return parse_metrics(text, LABELS + [("source", source)])


def test_one_series_per_source_with_help_and_type():
    text = drill_record.render_metrics(LABELS, 1000.0, [drill("local", True), drill("offsite:nas", True, 30, 7200)])
    for name, _help in drill_record.DRILL_METRICS:
        assert "# TYPE %s%s gauge" % (P, name) in text
    local, nas = values(text, "local"), values(text, "offsite:nas")
    assert local[P + "success"] == 1 and local[P + "last_success_timestamp_seconds"] == 1000
    assert local[P + "duration_seconds"] == 12.5 and local[P + "restored_backup_age_seconds"] == 3600
    assert nas[P + "restored_backup_age_seconds"] == 7200 and nas[P + "last_run_timestamp_seconds"] == 1000


def test_a_failure_keeps_the_last_success_and_a_stopped_drill_carries_the_rest_over():
    first = drill_record.render_metrics(LABELS, 1000.0, [drill("local", True), drill("offsite:nas", True)])
    failed = drill_record.render_metrics(LABELS, 2000.0, [drill("local", False, None, None)], first)
    assert values(failed, "local")[P + "success"] == 0
    assert values(failed, "local")[P + "last_success_timestamp_seconds"] == 1000
    assert values(failed, "local")[P + "restored_backup_age_seconds"] == 0
    assert values(failed, "offsite:nas") == {}  # a complete drill writes only what it drilled
    stopped = drill_record.render_metrics(LABELS, 2000.0, [drill("local", False, None, None)], first,
                                          carry_over=True)
    assert values(stopped, "offsite:nas") == values(first, "offsite:nas")
    never = drill_record.render_metrics(LABELS, 2000.0, [drill("local", False, None, None)], "garbage {")
    assert values(never, "local")[P + "last_success_timestamp_seconds"] == 0


def test_the_notification_reports_whichever_finished_last(tmp_path):
    settings = dict(state_dir=str(tmp_path), name="job")
    assert cli.last_status(settings) is None
    (tmp_path / "job.last-run.json").write_text(json.dumps(dict(status="success", finished_at="2026-12-01T08:00:05Z")))
    drill_record.write_status(settings, dict(kind="drill", status="failed", finished_at="2026-12-01T09:00:00Z"))
    assert cli.last_status(settings)["kind"] == "drill"
    (tmp_path / "job.last-run.json").write_text(json.dumps(dict(status="failed", finished_at="2026-12-02T08:00:05Z")))
    assert cli.last_status(settings)["status"] == "failed" and "kind" not in cli.last_status(settings)


def test_two_reports_of_one_second_are_both_kept(tmp_path):
    settings = dict(state_dir=str(tmp_path), name="job", database="lift_simulator")
    first = drill_record.DrillOutcome(settings, 1764576000.2, 1764576000.9, False, "no backup", [drill("local", False)])
    second = drill_record.DrillOutcome(settings, 1764576000.95, 1764576001.0, True, None, [drill("local", True)])
    paths = [drill_record.write_report(settings, first), drill_record.write_report(settings, second)]
    assert [p.rsplit("/", 1)[1] for p in paths] == ["job-20251201T080000Z.json", "job-20251201T080000Z-2.json"]
    found = []
    for path in paths:
        with open(path) as handle:
            found.append(json.load(handle)["success"])
    assert found == [False, True]
