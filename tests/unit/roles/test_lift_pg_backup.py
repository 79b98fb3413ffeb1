# -*- coding: utf-8 -*-
"""The pure parts of the scheduled job (plugins/module_utils/job/, behind the command
roles/scheduled_backup/files/lift_pg_backup.py): settings from the configuration file and the
options, progress and summary formatting, the Prometheus textfile (and the last success carried
across failures), the lock and its message, the notification's placeholders; the command itself."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib.machinery
import importlib.util
import io
import json
import os
import subprocess
import sys

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.cli import build_parser, parse_args
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.lock import JobLock, LockBusy, lock_message
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.log import JobLog
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.metrics import (
    parse_metrics, render_metrics)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.notify import (
    notify_values, run_notify, substitute)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.presentation import (
    Reporter, format_duration, format_progress)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.settings import (
    OPTION_NAMES, SETTING_TYPES, ConfigError, job_name_for, load_settings, metrics_path, read_password)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.units import human_bytes

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
COMMAND = os.path.join(ROOT, "roles", "scheduled_backup", "files", "lift_pg_backup.py")


def load_command():
    loader = importlib.machinery.SourceFileLoader("lift_pg_backup", COMMAND)
    spec = importlib.util.spec_from_loader("lift_pg_backup", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


LABELS = [("database", "lift_simulator"), ("backup_job", "lift_simulator")]


def settings_for(argv, config=None, exists=False):
    args = parse_args(argv)
    return load_settings(args, read=lambda path: dict(config or {}), exists=lambda path: exists)


# --- settings ---------------------------------------------------------------------------------

def test_defaults_without_a_configuration_file():
    settings, path = settings_for([])
    assert path is None
    assert settings["database"] == "lift_simulator" and settings["name"] == "lift_simulator"
    assert settings["dest_dir"] == "/var/backups/lift_simulator"
    assert settings["log_dir"] == "/var/backups/lift_simulator/logs"
    assert settings["lock_file"] == "/var/lib/lift-pg-backup/lift_simulator.lock"
    assert settings["metrics_dir"] == "/var/lib/prometheus/node-exporter"
    assert settings["keep_last"] == 4 and settings["retention"] is True and settings["wait"] is False
    assert settings["format"] == "plain" and settings["compression"] is None and settings["jobs"] is None
    assert settings["notify_command"] == [] and settings["password_file"] is None


def test_the_default_configuration_file_is_read_when_it_exists():
    seen = []
    args = parse_args(["--name", "other"])
    settings, path = load_settings(args, read=lambda p: seen.append(p) or {"database": "db2"},
                                   exists=lambda p: True)
    assert path == seen[0] == "/etc/lift-pg-backup/other.json"
    assert settings["name"] == "other" and settings["database"] == "db2"


def test_options_override_the_file_and_derived_paths_follow():
    config = {"_comment": "written by the role", "database": "lift_simulator", "dest_dir": "/srv/b",
              "keep_last": 3, "max_age_days": 90, "format": "custom", "retention": True,
              "notify_command": ["/usr/bin/logger", "{message}"], "metrics_dir": "/m", "state_dir": "/s"}
    settings, path = settings_for(["--config", "/etc/x.json", "--keep-last", "5", "--no-retention",
                                   "--dest-dir", "/srv/c", "--level", "9", "--no-metrics", "--wait-timeout", "30"],
                                  config)
    assert path == "/etc/x.json"
    assert settings["keep_last"] == 5 and settings["max_age_days"] == 90 and settings["retention"] is False
    assert settings["dest_dir"] == "/srv/c" and settings["log_dir"] == "/srv/c/logs"
    assert settings["compression_level"] == 9 and settings["format"] == "custom"
    assert settings["metrics_dir"] is None and metrics_path(settings) is None
    assert settings["lock_file"] == "/s/lift_simulator.lock"
    assert settings["wait"] is True and settings["wait_timeout"] == 30  # a timeout implies waiting
    assert settings["notify_command"] == ["/usr/bin/logger", "{message}"]


@pytest.mark.parametrize("config, argv, message", [
    ({"keep_lst": 3}, [], "unknown setting in /c.json: keep_lst"),
    ({}, ["--keep-last", "-1"], "keep_last must be 0 or more"),
    ({"keep_last": "many"}, [], "keep_last must be a whole number"),
    ({"keep_last": True}, [], "keep_last must be a whole number"),
    ({"jobs": 0}, [], "jobs must be 1 or more"),
    ({"format": "tar"}, [], "format must be one of plain, custom, directory"),
    ({"dest_dir": "relative/dir"}, [], "dest_dir must be an absolute path"),
    ({"notify_command": "mail root"}, [], "notify_command must be a list of strings"),
    ({"retention": "maybe"}, [], "retention must be true or false"),
    ({"login_host": "127.0.0.1", "login_unix_socket": "/run/postgresql"}, [], "mutually exclusive"),
    ({"jobs": 2}, [], "jobs > 1 needs format directory"),
    ({"name": "has space"}, [], "name must be letters, digits"),
    ({"database": None}, [], "database must be set"),
])
def test_bad_settings_are_refused_with_the_reason(config, argv, message):
    with pytest.raises(ConfigError) as info:
        settings_for(["--config", "/c.json"] + argv, config)
    assert message in str(info.value)


def test_bad_options_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as info:
        parse_args(["--format", "tar"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_job_name_from_an_unusual_database_name():
    assert settings_for(["--database", "my.db/x"])[0]["name"] == "my_db_x"
    assert job_name_for("__") == "database"


def test_booleans_from_the_file_may_be_strings():
    settings = settings_for(["--config", "/c.json"], {"retention": "false", "verify_checksums": "yes"})[0]
    assert settings["retention"] is False and settings["verify_checksums"] is True


def test_help_lists_every_setting():
    text = build_parser().format_help()
    for key in SETTING_TYPES:
        assert OPTION_NAMES[key] in text, key
    assert "exit status" in text and "75 another backup is running" in text


def test_password_file_must_be_private(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("s3cr:et\\\nsecond line\n")
    os.chmod(str(secret), 0o600)
    assert read_password(str(secret)) == "s3cr:et\\"
    os.chmod(str(secret), 0o640)
    with pytest.raises(ConfigError) as info:
        read_password(str(secret))
    assert "can be read by others (mode 0640)" in str(info.value) and "s3cr" not in str(info.value)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    os.chmod(str(empty), 0o600)
    with pytest.raises(ConfigError):
        read_password(str(empty))


# --- presentation -----------------------------------------------------------------------------

def test_progress_line_bytes_rate_elapsed():
    assert format_progress(0, 0) == "dumping: 0 B written, 0 B/s, 0.0 s elapsed"
    assert format_progress(50 * 1024 * 1024, 4.0) == "dumping: 50.0 MiB written, 12.5 MiB/s, 4.0 s elapsed"
    assert format_progress(3 * 1024 ** 3, 125) == "dumping: 3.0 GiB written, 24.6 MiB/s, 2:05 elapsed"
    assert format_duration(3725) == "1:02:05"
    assert human_bytes(1023) == "1023 B" and human_bytes(1536) == "1.5 KiB"


def test_reporter_terminal_versus_log_lines():
    out, err = io.StringIO(), io.StringIO()
    terminal = Reporter(True, out, err)
    terminal.log_line("2026-11-24T08:00:00Z a log line")
    terminal.progress(1024 * 1024, 1.0)
    terminal.step("verifying")
    terminal.summary([("backup", "/b/x.sql"), ("log", "/b/logs/x.log")])
    assert out.getvalue() == ""
    assert "\r\x1b[K  dumping: 1.0 MiB written, 1.0 MiB/s, 1.0 s elapsed\n" in err.getvalue()
    assert "lift-pg-backup: verifying\n" in err.getvalue() and "  backup  /b/x.sql\n" in err.getvalue()

    out, err = io.StringIO(), io.StringIO()
    plain = Reporter(False, out, err)
    plain.log_line("2026-11-24T08:00:00Z a log line")
    plain.progress(1024, 1.0)
    plain.step("verifying")
    plain.summary([("backup", "/b/x.sql")])
    assert out.getvalue() == "2026-11-24T08:00:00Z a log line\n" and err.getvalue() == ""


def test_job_log_echoes_scrubbed_lines():
    out = io.StringIO()
    log = JobLog(scrub=lambda text: text.replace("s3cret", "********"), reporter=Reporter(False, out))
    log.add("password s3cret\nsecond line")
    assert "s3cret" not in out.getvalue() and out.getvalue().count("\n") == 2
    assert log.lines[0].endswith("password ********")


# --- metrics ----------------------------------------------------------------------------------

def test_metrics_after_a_success():
    text = render_metrics(LABELS, True, 1795492012.5, 9.25, verified_size=861235)
    lines = text.splitlines()
    for name in ("last_success_timestamp_seconds", "last_duration_seconds", "last_size_bytes", "last_run_success"):
        full = "lift_simulator_backup_" + name
        assert "# HELP %s " % full in text and "# TYPE %s gauge" % full in lines
    assert 'lift_simulator_backup_last_run_success{database="lift_simulator",backup_job="lift_simulator"} 1' in lines
    assert 'lift_simulator_backup_last_size_bytes{database="lift_simulator",backup_job="lift_simulator"} 861235' in lines
    assert ('lift_simulator_backup_last_success_timestamp_seconds{database="lift_simulator",'
            'backup_job="lift_simulator"} 1795492012.5') in lines
    assert 'lift_simulator_backup_last_duration_seconds{database="lift_simulator",backup_job="lift_simulator"} 9.25' in lines
    assert text.endswith("\n")


def test_a_failure_keeps_the_last_success_and_its_size():
    success = render_metrics(LABELS, True, 1000.0, 5.0, verified_size=4096)
    failure = render_metrics(LABELS, False, 2000.0, 1.5, verified_size=None, previous_text=success)
    values = parse_metrics(failure, LABELS)
    assert values["lift_simulator_backup_last_run_success"] == 0
    assert values["lift_simulator_backup_last_run_timestamp_seconds"] == 2000
    assert values["lift_simulator_backup_last_duration_seconds"] == 1.5
    assert values["lift_simulator_backup_last_success_timestamp_seconds"] == 1000
    assert values["lift_simulator_backup_last_size_bytes"] == 4096
    # ... across any number of failures, until the next success.
    again = render_metrics(LABELS, False, 3000.0, 1.0, previous_text=failure)
    assert parse_metrics(again, LABELS)["lift_simulator_backup_last_success_timestamp_seconds"] == 1000
    later = render_metrics(LABELS, True, 4000.0, 1.0, verified_size=10, previous_text=again)
    assert parse_metrics(later, LABELS)["lift_simulator_backup_last_size_bytes"] == 10


def test_a_failure_with_no_earlier_success_or_a_damaged_file_reports_zero():
    for previous in ("", "garbage\n{{{\nlift_simulator_backup_last_size_bytes{database=\"x\"} 5\n"):
        values = parse_metrics(render_metrics(LABELS, False, 10.0, 1.0, previous_text=previous), LABELS)
        assert values["lift_simulator_backup_last_success_timestamp_seconds"] == 0
        assert values["lift_simulator_backup_last_size_bytes"] == 0


def test_label_values_are_escaped_and_read_back():
    labels = [("database", 'we"ird\\db\nx'), ("backup_job", "j")]
    text = render_metrics(labels, True, 1.0, 1.0, verified_size=7)
    assert 'database="we\\"ird\\\\db\\nx"' in text
    assert parse_metrics(text, labels)["lift_simulator_backup_last_size_bytes"] == 7
    assert parse_metrics(text, LABELS) == {}


# --- the lock ---------------------------------------------------------------------------------

def test_lock_message_names_the_running_pid():
    message = lock_message("/var/lib/lift-pg-backup/x.lock", {"pid": "4242", "started": "2026-11-24T08:00:00Z"})
    assert message == ("another backup is running (pid 4242) since 2026-11-24T08:00:00Z; this run did nothing "
                       "(lock /var/lib/lift-pg-backup/x.lock). Use --wait to wait for it.")
    assert "another backup is running (pid unknown); this run" in lock_message("/l", None)


def test_the_lock_refuses_a_second_holder_and_says_who_holds_it(tmp_path):
    path = str(tmp_path / "state" / "j.lock")
    first = JobLock(path)
    assert first.acquire() < 1
    holder = first.holder(patience=0)
    assert holder["pid"] == str(os.getpid()) and holder["started"].endswith("Z")
    second = JobLock(path)
    with pytest.raises(LockBusy) as info:
        second.acquire()
    assert "another backup is running (pid %d) since " % os.getpid() in str(info.value)
    waits = []
    with pytest.raises(LockBusy):
        second.acquire(wait=True, timeout=0.3, on_wait=waits.append)
    assert waits and waits[0]["pid"] == str(os.getpid())
    first.release()
    assert open(path).read() == ""  # no stale pid for the next reader
    assert second.acquire(wait=True, timeout=5) < 5
    second.release()


# --- the notification -------------------------------------------------------------------------

def test_placeholders_are_replaced_in_each_argument_only():
    settings = settings_for([])[0]
    values = notify_values(settings, {"status": "failed", "log_path": "/b/logs/x.log", "message": "boom"},
                           "lift-pg-backup-lift_simulator.service")
    argv = substitute(["/usr/bin/curl", "-d", '{"text": "{message} on {host}", "log": "{log}"}', "{unit}", "{x}"],
                      values)
    assert argv[2] == '{"text": "boom on %s", "log": "/b/logs/x.log"}' % values["host"]
    assert argv[3] == "lift-pg-backup-lift_simulator.service" and argv[4] == "{x}"
    for status in (None, {"status": "success", "log_path": "/b/logs/earlier.log", "message": None}):
        unknown = notify_values(settings, status, "u.service")
        assert unknown["status"] == "unknown" and unknown["log"] == ""
        assert "failed before it recorded the run" in unknown["message"] and "journalctl -u u.service" in unknown["message"]


def test_the_notification_command_gets_the_values_in_its_environment(tmp_path):
    out = tmp_path / "seen"
    settings = settings_for(["--notify-command", json.dumps(
        ["/bin/sh", "-c", 'printf "%s|%s|%s" "$LIFT_BACKUP_LOG" "$LIFT_BACKUP_UNIT" "$1" > "$0"', str(out),
         "{status}"])])[0]
    code = run_notify(settings, {"status": "failed", "log_path": "/l.log", "message": "m"}, "u.service",
                      Reporter(False, io.StringIO(), io.StringIO()))
    assert code == 0 and out.read_text() == "/l.log|u.service|failed"
    settings["notify_command"] = ["/bin/false"]
    err = io.StringIO()
    assert run_notify(settings, None, "u", Reporter(False, io.StringIO(), err)) == 1
    assert "exited with 1" in err.getvalue()


# --- the command ------------------------------------------------------------------------------

def test_the_command_reports_a_missing_library(monkeypatch, capsys, tmp_path):
    command = load_command()
    assert command.LIBRARY_ERROR is None and command.cli is not None
    monkeypatch.setattr(command, "LIB_DIR", str(tmp_path))
    monkeypatch.setattr(command, "LIBRARY_ERROR", ImportError("No module named 'ansible_collections'"))
    assert command.main() == 2
    err = capsys.readouterr().err
    assert "the collection's module_utils are missing or broken in %s" % tmp_path in err
    assert "No module named 'ansible_collections'" in err and "LIFT_PG_BACKUP_LIB" in err


def test_the_command_without_its_library_says_so(tmp_path):
    run = subprocess.run([sys.executable, "-I", COMMAND, "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, env=dict(os.environ, LIFT_PG_BACKUP_LIB=str(tmp_path)), check=False)
    assert run.returncode == 2 and run.stdout == ""
    assert "the collection's module_utils are missing or broken in %s" % tmp_path in run.stderr


def test_a_run_that_copied_nothing_keeps_the_targets_samples():
    """A run that failed before its copies (the database down) keeps each target's samples, so the
    stale-copy alert still sees them; a run with no targets configured drops them."""
    import datetime
    from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.offsite import TargetCopy
    copy = TargetCopy("nas", "sftp://x")
    copy.action = "copied"
    copy.newest_copy_time = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    first = render_metrics(LABELS, True, 1000.0, 1.0, verified_size=5, offsite=[copy])
    later = render_metrics(LABELS, False, 2000.0, 1.0, previous_text=first, offsite=None)
    target = LABELS + [("target", "nas")]
    assert parse_metrics(later, target) == parse_metrics(first, target) != {}
    assert 'target="nas"' not in render_metrics(LABELS, False, 3000.0, 1.0, previous_text=first, offsite=())
