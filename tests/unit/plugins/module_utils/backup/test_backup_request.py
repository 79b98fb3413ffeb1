# -*- coding: utf-8 -*-
"""BackupRequest.from_options: the one mapping from the backup options (the module's parameters,
the scheduled job's settings) to a backup request."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import inspect

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.backup import options as backup_options
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.backup import run as backup_run
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.connection import ConnectionParams


def defaults():
    return dict((name, option.default) for name, option in backup_options.OPTIONS.items())


def test_every_mapped_option_is_a_shared_option_and_a_request_argument():
    arguments = inspect.signature(backup_run.BackupRequest.__init__).parameters
    for name, argument in backup_run.REQUEST_OPTIONS:
        assert name in backup_options.OPTIONS, name
        assert argument in arguments, argument


def test_options_reach_the_request(tmp_path):
    values = dict(defaults(), format="custom", compression="zstd", compression_level=5, jobs=2,
                  check_free_space=False, stall_timeout=7, role_passwords=True, directory_checks="warn")
    request = backup_run.BackupRequest.from_options(ConnectionParams(database="db"), values, str(tmp_path), "local",
                                                    reuse_max_age_s=60)
    assert (request.format, request.compression, request.compression_level, request.jobs) == ("custom", "zstd", 5, 2)
    assert (request.check_free_space, request.stall_timeout, request.role_passwords) == (False, 7, True)
    assert (request.directory_checks, request.timezone, request.dest_dir) == ("warn", "local", str(tmp_path))
    assert request.lock_wait_timeout == backup_options.DEFAULT_LOCK_WAIT_TIMEOUT


@pytest.mark.parametrize("value", ["", None])
def test_an_empty_lock_wait_timeout_waits_without_limit(tmp_path, value):
    values = dict(defaults(), lock_wait_timeout=value)
    request = backup_run.BackupRequest.from_options(ConnectionParams(database="db"), values, str(tmp_path), "utc")
    assert request.lock_wait_timeout is None


def test_a_missing_option_is_an_error_not_a_silent_default(tmp_path):
    values = defaults()
    del values["role_definitions"]
    with pytest.raises(KeyError):
        backup_run.BackupRequest.from_options(ConnectionParams(database="db"), values, str(tmp_path), "utc")
