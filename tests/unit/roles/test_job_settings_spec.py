# -*- coding: utf-8 -*-
"""One specification: the scheduled job's settings that are options of the backup and prune
modules (or of the shared connection and directory_checks options) have the same type, choices
and default as the modules' argument_spec; the job's own log is appended to, never rewritten."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils import ansible_common
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.backup import options as backup_options
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.log import JobLog, finish_log
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.settings import SETTINGS


@pytest.fixture()
def module_options(argument_spec_of):
    options = {}
    options.update(ansible_common.connection_argument_spec())
    options.update(ansible_common.directory_checks_argument_spec())
    options.update(argument_spec_of("prune"))
    options.update(argument_spec_of("backup"))
    return options


def test_every_shared_setting_agrees_with_the_modules_option(module_options):
    shared = [s for s in SETTINGS if s.option is not None]
    assert len(shared) >= 25
    for setting in shared:
        option = module_options[setting.option]
        assert option["type"] == setting.kind, setting.key
        assert option.get("default") == setting.default, setting.key
        assert sorted(option.get("choices") or []) == sorted(setting.choices or []), setting.key


def test_the_modules_options_that_the_job_shares_are_taken_from_one_table(module_options):
    for name, entry in backup_options.OPTIONS.items():
        option = module_options[name]
        assert option["type"] == entry.kind and option.get("default") == entry.default, name
        assert sorted(option.get("choices") or []) == sorted(entry.choices or []), name


def test_job_only_settings_are_not_module_options(module_options):
    for setting in SETTINGS:
        if setting.option is None and setting.key in module_options:
            # the same name but another meaning: the job's null is "libpq's default", the modules' ""
            assert setting.key in ("login_host", "login_user", "login_unix_socket", "ca_cert", "log_dir"), setting.key


def test_the_job_appends_to_the_log_the_backup_code_wrote(tmp_path):
    settings = dict(log_dir=str(tmp_path), name="j")
    log = JobLog()
    log.add("job started")
    path = log.write(str(tmp_path), "db_backup_20261124_080001")  # what run_backup does
    inode = os.stat(path).st_ino
    log.add("verification passed")
    log.add("RESULT: success")
    assert finish_log(settings, log) == path
    assert os.stat(path).st_ino == inode  # the same file, appended to
    with open(path) as handle:
        lines = handle.read().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["job started", "verification passed", "RESULT: success"]
    assert finish_log(settings, log) == path  # nothing new: nothing written twice
    with open(path) as handle:
        assert len(handle.read().splitlines()) == 3


def test_a_run_without_a_backup_log_writes_its_own(tmp_path):
    log = JobLog()
    log.add("REFUSED: another backup is running")
    path = finish_log(dict(log_dir=str(tmp_path), name="j"), log, "j_refused_20261124_080001")
    assert path == str(tmp_path / "j_refused_20261124_080001.log")
    assert "REFUSED" in (tmp_path / "j_refused_20261124_080001.log").read_text()
