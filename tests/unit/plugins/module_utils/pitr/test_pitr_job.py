# -*- coding: utf-8 -*-
"""The scheduled pgBackRest job's settings and notification (job/pitr_job.py); the backups themselves
run against a real pgBackRest in tests/integration/test_pitr_info.py."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import json
import sys

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import pitr_job
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.settings import ConfigError


def write(tmp_path, settings):
    path = tmp_path / "job.json"
    path.write_text(json.dumps(settings))
    return str(path)


def test_settings_defaults_and_checks(tmp_path):
    settings = pitr_job.load_config(write(tmp_path, {"stanza": "s", "state_dir": str(tmp_path)}))
    assert settings["pgbackrest_config"] == "/etc/pgbackrest/pgbackrest.conf"
    assert settings["metrics_dir"] is None and settings["notify_command"] == []
    with pytest.raises(ConfigError, match="unknown settings bogus"):
        pitr_job.load_config(write(tmp_path, {"stanza": "s", "state_dir": "/x", "bogus": 1}))
    with pytest.raises(ConfigError, match="stanza is required"):
        pitr_job.load_config(write(tmp_path, {"state_dir": "/x"}))
    with pytest.raises(ConfigError, match="notify_command must be a list of strings"):
        pitr_job.load_config(write(tmp_path, {"stanza": "s", "state_dir": "/x", "notify_command": "rm -rf /"}))
    with pytest.raises(ConfigError, match="cannot read the configuration"):
        pitr_job.load_config(str(tmp_path / "missing.json"))


def test_backup_argv():
    settings = dict(pitr_job.DEFAULTS, stanza="lift_simulator", pgbackrest_config="/etc/pgbackrest/pgbackrest.conf")
    assert pitr_job.pgbackrest_backup_argv(settings, "diff") == [
        "pgbackrest", "--config=/etc/pgbackrest/pgbackrest.conf", "--stanza=lift_simulator", "backup", "--type=diff"]


def test_notification_gets_the_failed_runs_message(tmp_path):
    out = tmp_path / "sent.json"
    settings = pitr_job.load_config(write(tmp_path, {
        "stanza": "s", "state_dir": str(tmp_path),
        "notify_command": [sys.executable, "-c", "import json, sys; json.dump(sys.argv[1:], open(sys.argv[1], 'w'))",
                           str(out), "{unit}", "{name}", "{message}", "{other}"]}))
    pitr_job.record_run(settings, "diff", {"success": False, "finished": 1, "duration": 2, "message": "it broke"})
    err = io.StringIO()
    assert pitr_job.notify_failure(settings, "lift-pitr-backup-diff.service", err) == 0
    assert json.loads(out.read_text())[1:] == ["lift-pitr-backup-diff.service", "s", "it broke", "{other}"]
    # A unit that failed before it recorded a run (or a run recorded as a success) says so.
    assert pitr_job.notify_failure(settings, "lift-pitr-backup-full.service", err) == 0
    assert "failed before it recorded a run" in json.loads(out.read_text())[3]


def test_a_failing_notification_command_fails(tmp_path):
    settings = pitr_job.load_config(write(tmp_path, {"stanza": "s", "state_dir": str(tmp_path),
                                                     "notify_command": [sys.executable, "-c", "raise SystemExit(3)"]}))
    err = io.StringIO()
    assert pitr_job.notify_failure(settings, "u", err) == 1 and "exited with 3" in err.getvalue()
    quiet = pitr_job.load_config(write(tmp_path, {"stanza": "s", "state_dir": str(tmp_path)}))
    assert pitr_job.notify_failure(quiet, "u", err) == 0 and "no notify command configured" in err.getvalue()


def test_usage_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        pitr_job.main(["--type", "weekly"])
    err = io.StringIO()
    assert pitr_job.main(["--config", str(tmp_path / "none.json"), "--metrics-only"], err) == 2
    assert "cannot read the configuration" in err.getvalue()
