# -*- coding: utf-8 -*-
"""The alert rules of the role scheduled_backup, proved with Prometheus's own promtool (Debian's
prometheus package; scripts/bootstrap_host.sh installs it and keeps its server from running).

The rules file is rendered by the role's own tasks (tasks_from prometheus_rules, through
ansible-playbook: the template and promtool's validate), with the job's configuration from the same
variables. Then: `promtool check rules`; the unit tests of tests/alerts/ (`promtool test rules`,
completed with each alert's constant description annotation from the rendered file); the Python
evaluation of the same rules (module_utils/job/alerts.py, the status page's) against promtool on
the same series; and the real job's textfile, written by a run against the test cluster, through
`promtool check metrics`.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import copy
import datetime
import glob
import json
import os
import random
import re
import shutil
import subprocess
import tempfile

import pytest
import yaml

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import alerts
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import drill_record
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import metrics
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import pitr_metrics
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.settings import SETTING_DEFAULTS
from lift_job import Job, make_layout
from pglab import ROOT, run_playbook

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
ALERT_TESTS = os.path.join(ROOT, "tests", "alerts")
NAME = "lift_simulator"
RULES = "lift-pg-backup-%s.rules.yml" % NAME
TEMPLATES = os.path.join(ROOT, "roles", "scheduled_backup", "templates")
SCRAPE = (("instance", "db1.example.net:9100"), ("job", "node"))

pytestmark = pytest.mark.skipif(not os.access(PROMTOOL, os.X_OK),
                                reason="promtool missing: run scripts/bootstrap_host.sh (Debian's prometheus package)")


def promtool(*argv, **kwargs):
    return subprocess.run([PROMTOOL] + list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=300, check=False, **kwargs)


def render(directory, **variables):
    """The role's rules file and job configuration for ``variables``: (rules document, configuration)."""
    extra = dict(scheduled_backup_name=NAME, scheduled_backup_prometheus_rules_dir=directory,
                 scheduled_backup_prometheus_rules_pitr_stanza=NAME, role_templates=TEMPLATES,
                 config_file=os.path.join(directory, "job.json"))
    extra.update(variables)
    run = run_playbook("alert_rules.yml", extra_vars=extra)
    assert run.rc == 0, run.stdout + run.stderr
    path = os.path.join(directory, "lift-pg-backup-%s.rules.yml" % extra["scheduled_backup_name"])
    assert os.stat(path).st_mode & 0o777 == 0o644
    with open(path) as handle:
        rules = yaml.safe_load(handle)
    with open(extra["config_file"]) as handle:
        return rules, json.load(handle)


@pytest.fixture(scope="module")
def rendered():
    directory = tempfile.mkdtemp(prefix="lift-it-alerts-")
    try:
        rules, config = render(directory)
        yield directory, rules, config
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def rule_list(rules):
    return [rule for group in rules["groups"] for rule in group["rules"]]


def constant_annotations(rules):
    """{alert: its annotations but the summary} (they have no template: the same for every alert)."""
    found = {}
    for rule in rule_list(rules):
        annotations = dict(rule["annotations"])
        annotations.pop("summary")
        assert "{{" not in json.dumps(annotations), rule["alert"]
        found[rule["alert"]] = annotations
    return found


def complete(test_doc, rules):
    """A tests/alerts file with every expected alert's constant annotations added (its summary stays)."""
    doc = copy.deepcopy(test_doc)
    constant = constant_annotations(rules)
    for group in doc["tests"]:
        for case in group.get("alert_rule_test", []):
            for alert in case.get("exp_alerts") or []:
                assert "summary" in alert.get("exp_annotations", {}), case
                alert["exp_annotations"] = dict(constant[case["alertname"]], **alert["exp_annotations"])
    return doc


def run_unit_tests(directory, name, doc):
    path = os.path.join(directory, name)
    with open(path, "w") as handle:
        yaml.safe_dump(doc, handle, sort_keys=False)
    return promtool("test", "rules", path, cwd=directory)


def test_rules_pass_promtool_check_and_name_every_alert(rendered):
    directory, rules, _config = rendered
    check = promtool("check", "rules", os.path.join(directory, RULES))
    assert check.returncode == 0 and "SUCCESS: %d rules found" % len(alerts.ALERTS) in check.stdout, check.stdout
    by_name = dict((rule["alert"], rule) for rule in rule_list(rules))
    assert sorted(by_name) == sorted(alert["name"] for alert in alerts.ALERTS)
    for alert in alerts.ALERTS:
        rule = by_name[alert["name"]]
        assert rule["labels"] == {"severity": alert["severity"]}, alert["name"]
        assert rule["for"] and set(rule["annotations"]) == {"summary", "description"}
        assert alert["metric"] in rule["expr"]
        # Each rule reads this job's series (or this stanza's) only.
        selector = 'stanza="%s"' % NAME if alert["metric"].startswith(alerts.PITR) else 'backup_job="%s"' % NAME
        assert rule["expr"].count(alert["metric"]) == rule["expr"].count(selector) >= 1, rule["expr"]
        if "$labels.database" not in rule["annotations"]["summary"]:
            assert "$labels.stanza" in rule["annotations"]["summary"]
        assert rule["annotations"]["summary"].startswith("{{ $labels.instance }}: ")


def test_without_a_stanza_there_are_no_pitr_rules(tmp_path):
    os.chmod(str(tmp_path), 0o755)
    rules, _config = render(str(tmp_path), scheduled_backup_prometheus_rules_pitr_stanza="")
    assert [group["name"] for group in rules["groups"]] == ["lift-pg-backup-%s" % NAME]
    assert not [rule for rule in rule_list(rules) if "pitr" in rule["expr"]]


def thresholds_in_rules(rules):
    """{threshold key: the number in the rule's expression} of the rules with a threshold."""
    found = {}
    for alert in alerts.ALERTS:
        if alert.get("threshold"):
            rule = [r for r in rule_list(rules) if r["alert"] == alert["name"]][0]
            found[alert["threshold"]] = int(re.search(r"> (\d+)\)?\s*(and|$)", rule["expr"].strip()).group(1))
    return found


def test_the_configuration_carries_the_thresholds_of_the_rules(rendered):
    _directory, rules, config = rendered
    in_rules = thresholds_in_rules(rules)
    assert sorted(in_rules) == sorted(alerts.THRESHOLD_KEYS)
    assert dict(("alert_" + key, value) for key, value in in_rules.items()) == \
        dict((key, value) for key, value in config.items() if key.startswith("alert_"))
    # The role's defaults are the job's: 8 days for the weekly default, a quarter and a day for drills.
    assert alerts.thresholds_from_settings(config) == alerts.DEFAULT_THRESHOLDS == \
        dict(backup_max_age_seconds=8 * 86400, offsite_max_age_seconds=8 * 86400, drill_max_age_seconds=93 * 86400,
             pitr_archive_lag_seconds=3600, pitr_backup_max_age_seconds=2 * 86400)
    assert dict((k, SETTING_DEFAULTS["alert_" + k]) for k in alerts.THRESHOLD_KEYS) == alerts.DEFAULT_THRESHOLDS


@pytest.mark.parametrize("variables, backup_max_age", [
    (dict(scheduled_backup_on_calendar="*-*-* 02:30:00"), 2 * 86400),
    (dict(scheduled_backup_on_calendar="Mon..Fri *-*-* 08:00:00"), 8 * 86400),
    (dict(scheduled_backup_scheduler="cron", scheduled_backup_cron_schedule="15 3 * * *"), 2 * 86400),
    (dict(scheduled_backup_scheduler="cron", scheduled_backup_cron_schedule="0 4 1 * *"), 32 * 86400),
    (dict(scheduled_backup_on_calendar="daily", scheduled_backup_prometheus_rules_margin_seconds=7200), 86400 + 7200),
])
def test_the_thresholds_follow_the_schedule(tmp_path, variables, backup_max_age):
    os.chmod(str(tmp_path), 0o755)
    rules, config = render(str(tmp_path), **variables)
    assert thresholds_in_rules(rules)["backup_max_age_seconds"] == config["alert_backup_max_age_seconds"] == backup_max_age
    assert config["alert_offsite_max_age_seconds"] == backup_max_age


def test_the_unit_tests_cover_every_alert_firing_and_not(rendered):
    cases = collections.defaultdict(set)
    for path in glob.glob(os.path.join(ALERT_TESTS, "*.test.yml")):
        with open(path) as handle:
            for group in yaml.safe_load(handle)["tests"]:
                for case in group["alert_rule_test"]:
                    cases[case["alertname"]].add(bool(case.get("exp_alerts")))
    for alert in alerts.ALERTS:
        assert cases[alert["name"]] == {True, False}, alert["name"]


@pytest.mark.parametrize("name", sorted(os.path.basename(p) for p in glob.glob(os.path.join(ALERT_TESTS, "*.test.yml"))))
def test_promtool_unit_tests(rendered, name):
    directory, rules, _config = rendered
    with open(os.path.join(ALERT_TESTS, name)) as handle:
        doc = yaml.safe_load(handle)
    run = run_unit_tests(directory, name, complete(doc, rules))
    assert run.returncode == 0 and "SUCCESS" in run.stdout, run.stdout


def test_a_wrong_expectation_fails(rendered):
    directory, rules, _config = rendered
    with open(os.path.join(ALERT_TESTS, "backup.test.yml")) as handle:
        doc = complete(yaml.safe_load(handle), rules)
    firing = [case for case in doc["tests"][0]["alert_rule_test"] if case["exp_alerts"]]
    wrong = copy.deepcopy(doc)
    wrong["tests"][0]["alert_rule_test"] = [dict(firing[0], exp_alerts=[])]
    run = run_unit_tests(directory, "wrong.test.yml", wrong)
    assert run.returncode != 0 and "FAILED" in run.stdout, run.stdout


# --- the Python evaluation against promtool -----------------------------------------------------

HOUR = 3600
DAY = 86400


def _age_value(rng, now, threshold):
    """A timestamp clear of the threshold by more than the rules' for: and promtool's step (a day,
    promtool_test_of), or 0 ("none")."""
    kind = rng.choice(["none", "old", "recent", "recent"])
    if kind == "none":
        return 0
    if kind == "old":
        return round(now - threshold - rng.uniform(DAY + 2 * HOUR, min(now - threshold, 20 * DAY)), 3)
    return round(now - rng.uniform(0, threshold - 300), 3)


def scenario(seed, now):
    """Textfile samples of a few hosts, as the job, the drill and the PITR job write them."""
    rng = random.Random(seed)
    limits = alerts.DEFAULT_THRESHOLDS
    samples = {}

    def add(name, labels, value):
        samples[(name, frozenset(labels))] = float(value)

    for host in range(1, 4):
        scrape = [("instance", "db%d:9100" % host), ("job", "node")]
        job = scrape + [("database", NAME), ("backup_job", NAME)]
        B = alerts.BACKUP
        add(B + "last_run_success", job, rng.choice([0, 1]))
        add(B + "last_run_timestamp_seconds", job, now - HOUR)
        add(B + "last_duration_seconds", job, 42.5)
        add(B + "last_success_timestamp_seconds", job, _age_value(rng, now, limits["backup_max_age_seconds"]))
        add(B + "last_size_bytes", job, 123456)
        add(B + "future_dated_backups", job, rng.choice([0, 0, 2]))
        for target in rng.sample(["nas", "s3", "cold"], rng.randint(0, 2)):
            labels = job + [("target", target)]
            add(B + "offsite_last_run_success", labels, rng.choice([0, 1]))
            add(B + "offsite_last_success_timestamp_seconds", labels, now - HOUR)
            add(B + "offsite_newest_copy_timestamp_seconds", labels, _age_value(rng, now, limits["offsite_max_age_seconds"]))
        for source in rng.sample(["local", "offsite:nas", "pitr"], rng.randint(0, 3)):
            labels = job + [("source", source)]
            add(B + "restore_drill_last_run_timestamp_seconds", labels, now - 2 * HOUR)
            add(B + "restore_drill_last_success_timestamp_seconds", labels,
                _age_value(rng, now, limits["drill_max_age_seconds"]))
            add(B + "restore_drill_duration_seconds", labels, 12.25)
            add(B + "restore_drill_success", labels, rng.choice([0, 1, 1]))
            add(B + "restore_drill_restored_backup_age_seconds", labels, 7200)
        stanza = scrape + [("stanza", NAME)]
        P = alerts.PITR
        for kind in rng.sample(list(pitr_metrics.BACKUP_TYPES), rng.randint(0, 3)):
            add(P + "last_run_success", stanza + [("type", kind)], rng.choice([0, 1]))
            add(P + "last_run_timestamp_seconds", stanza + [("type", kind)], now - HOUR)
        readable = rng.choice([True, True, False])
        add(P + "info_success", stanza, 1 if readable else 0)
        add(P + "info_timestamp_seconds", stanza, rng.choice([now - 300, now - 2 * DAY]))
        add(P + "status_code", stanza, 0 if readable else -1)
        if readable:
            for kind in list(pitr_metrics.BACKUP_TYPES) + ["any"]:
                add(P + "newest_backup_timestamp_seconds", stanza + [("type", kind)],
                    _age_value(rng, now, limits["pitr_backup_max_age_seconds"]))
            add(P + "archive_newest_wal_timestamp_seconds", stanza, _age_value(rng, now, limits["pitr_archive_lag_seconds"]))
            add(P + "archive_gaps", stanza, rng.choice([0, 0, 1]))
            add(P + "future_dated", stanza, rng.choice([0, 0, 1]))
    return samples


def promtool_test_of(samples, eval_hours, expected, rules, step_hours=1):
    """A promtool test: the samples as constant series (``step_hours`` apart, also the rules'
    evaluation interval) from 0 on, and ``expected`` (alerts.evaluate's list) as every alert's
    expectation at ``eval_hours``. An alert fires there when its condition held at the step before."""
    series = []
    for (name, labels), value in sorted(samples.items(), key=lambda item: (item[0][0], sorted(item[0][1]))):
        selector = ",".join('%s="%s"' % (k, metrics.escape_label(v)) for k, v in sorted(labels))
        series.append({"series": "%s{%s}" % (name, selector), "values": "%r+0x%d" % (value, eval_hours // step_hours + 1)})
    cases = []
    for alert in alerts.ALERTS:
        exp = [{"exp_labels": dict(item["labels"], severity=item["severity"]),
                "exp_annotations": {"summary": item["summary"]}}
               for item in expected if item["name"] == alert["name"]]
        cases.append({"eval_time": "%dh" % eval_hours, "alertname": alert["name"], "exp_alerts": exp})
    step = "%dh" % step_hours
    doc = {"rule_files": [RULES], "evaluation_interval": step,
           "tests": [{"interval": step, "input_series": series, "alert_rule_test": cases}]}
    return complete(doc, rules)


SEEDS = range(6)


def test_the_scenarios_make_every_alert_fire_somewhere():
    fired = set()
    for seed in SEEDS:
        fired.update(item["name"] for item in alerts.evaluate(scenario(seed, 2400 * HOUR), 2400 * HOUR))
    assert fired == set(alert["name"] for alert in alerts.ALERTS)


@pytest.mark.parametrize("seed", SEEDS)
def test_python_evaluation_fires_what_promtool_fires(rendered, seed):
    directory, rules, config = rendered
    eval_hours = 100 * 24
    samples = scenario(seed, eval_hours * HOUR)
    expected = alerts.evaluate(samples, eval_hours * HOUR, alerts.thresholds_from_settings(config))
    doc = promtool_test_of(samples, eval_hours, expected, rules, step_hours=24)
    run = run_unit_tests(directory, "cross-%d.test.yml" % seed, doc)
    assert run.returncode == 0 and "SUCCESS" in run.stdout, run.stdout


# --- the job's real textfiles -----------------------------------------------------------------

@pytest.fixture(scope="module")
def layout():
    base = tempfile.mkdtemp(prefix="lift-it-alerts-job-", dir="/tmp")
    yield make_layout(base)
    shutil.rmtree(base, ignore_errors=True)


def check_metrics(text):
    run = promtool("check", "metrics", input=text)
    assert run.returncode == 0 and run.stdout.strip() == "", (run.stdout, text)


def test_the_jobs_textfile_passes_promtool_and_both_evaluations(rendered, layout, workdir, cluster):
    directory, rules, config = rendered
    job = Job(layout, workdir, cluster, name=NAME)
    run = job.run()
    assert run.returncode == 0, run.stdout + run.stderr
    with open(job.metrics_file) as handle:
        good = handle.read()
    check_metrics(good)
    # A failed run (no such database) keeps the last success: still a valid textfile.
    job.write_config(database="no_such_database")
    failed_run = job.run()
    assert failed_run.returncode != 0
    with open(os.path.join(job.metrics_dir, "lift_pg_backup_%s.prom" % NAME)) as handle:
        failed = handle.read()
    check_metrics(failed)
    for text, names in ((good, []), (failed, ["LiftBackupLastRunFailed"])):
        # As Prometheus sees the file 9 days after the run: its times moved to the first hour of
        # promtool's clock (which starts at 0), both evaluations 9 days later.
        samples = alerts.parse_textfiles([text])
        base = max(v for (n, _l), v in samples.items() if n.endswith("last_run_timestamp_seconds")) // HOUR * HOUR
        shifted = dict(((name, frozenset(set(labels) | set(SCRAPE))),
                        value - base if name.endswith("_timestamp_seconds") and value else value)
                       for (name, labels), value in samples.items())
        eval_hours = 9 * 24
        expected = alerts.evaluate(shifted, eval_hours * HOUR, alerts.thresholds_from_settings(config))
        assert sorted(set(item["name"] for item in expected)) == sorted(names + ["LiftBackupTooOld"]), expected
        result = run_unit_tests(directory, "real-job.test.yml", promtool_test_of(shifted, eval_hours, expected, rules))
        assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout


class _Copy(object):
    def __init__(self, name, success, newest_copy_time):
        self.name, self.success, self.newest_copy_time = name, success, newest_copy_time


class _Drill(object):
    def __init__(self, source, success, restore_s, age_s):
        self.source, self.success, self.restore_s, self.age_s = source, success, restore_s, age_s


def test_offsite_drill_and_pitr_textfiles_pass_promtool_check_metrics():
    copies = [_Copy("nas", True, datetime.datetime(2026, 11, 24, 8, tzinfo=datetime.timezone.utc)),
              _Copy('s3 "eu"', False, None)]
    check_metrics(metrics.render_metrics([("database", NAME), ("backup_job", NAME)], False, 1764000000.5, 12.0,
                                         None, "", 1, copies))
    runs = {"full": {"success": True, "finished": 1764000000, "duration": 60},
            "diff": {"success": False, "finished": 1764086400, "duration": 5}}
    check_metrics(pitr_metrics.render(NAME, runs, None, False, 1764090000))
    check_metrics(drill_record.render_metrics([("database", NAME), ("backup_job", NAME)], 1764090000.25,
                                              [_Drill("local", True, 12.5, 3600), _Drill("offsite:nas", False, None, None)]))
