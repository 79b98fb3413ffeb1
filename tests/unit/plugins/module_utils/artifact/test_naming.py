# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import naming

WHEN = datetime.datetime(2026, 11, 24, 8, 0, 1)


@pytest.mark.parametrize("fmt, compression, expected", [
    ("plain", "none", "lift_simulator_backup_20261124_080001.sql"),
    ("plain", "gzip", "lift_simulator_backup_20261124_080001.sql.gz"),
    ("plain", "zstd", "lift_simulator_backup_20261124_080001.sql.zst"),
    ("plain", "lz4", "lift_simulator_backup_20261124_080001.sql.lz4"),
    ("custom", "gzip", "lift_simulator_backup_20261124_080001.dump"),
    ("custom", "none", "lift_simulator_backup_20261124_080001.dump"),
    ("directory", "gzip", "lift_simulator_backup_20261124_080001"),
])
def test_default_name_matches_the_strategy(fmt, compression, expected):
    suffix = naming.backup_suffix(fmt, compression)
    assert naming.render_name(naming.DEFAULT_NAME_TEMPLATE, "lift_simulator", WHEN, suffix=suffix) == expected


@pytest.mark.parametrize("database, expected_prefix", [
    ("x'; DROP DATABASE y; --", "x___DROP_DATABASE_y__--"),
    ("../../etc", "_.._etc"),
    ("line\nbreak", "line_break"),
    ("Aufzug_Größe", "Aufzug_Größe"),
    ("100%", "100_"),
    ("...", "_"),
])
def test_hostile_database_names_give_one_safe_component(database, expected_prefix):
    name = naming.render_name(naming.DEFAULT_NAME_TEMPLATE, database, WHEN, suffix=".sql")
    assert name == expected_prefix + "_backup_20261124_080001.sql"
    assert "/" not in name and "\n" not in name and not name.startswith(".")


def test_host_placeholder_and_strftime_codes():
    name = naming.render_name("{database}_{host}_%Y-%m", "db", WHEN, host="db-1.example.org")
    assert name == "db_db-1.example.org_2026-11"


@pytest.mark.parametrize("template", ["", "a/b_%Y", ".hidden_%Y", "..", "x" * 300])
def test_unsafe_templates_are_refused(template):
    with pytest.raises(naming.NamingError):
        naming.render_name(template, "db", WHEN, suffix=".sql")


def test_manifest_name():
    assert naming.manifest_name("a_backup_20261124_080001.sql") == "a_backup_20261124_080001.sql.manifest.json"


@pytest.mark.parametrize("name, fmt, compression, legacy", [
    ("lift_simulator_backup_20261124_080001.sql", "plain", "none", False),
    ("lift_simulator_backup_20261124_080001.sql.gz", "plain", "gzip", False),
    ("lift_simulator_backup_20261124_080001.sql.zst", "plain", "zstd", False),
    ("lift_simulator_backup_20261124_080001.dump", "custom", None, False),
    ("lift_simulator_backup_20261124_080001", "directory", None, False),
    ("lift_simulator_backup_2026-11-24_08-00-01.backup", "custom", None, True),
])
def test_parse_backup_names(name, fmt, compression, legacy):
    parsed = naming.parse_backup_name(name)
    assert parsed is not None
    assert parsed.format == fmt
    assert parsed.compression == compression
    assert parsed.legacy is legacy
    assert parsed.prefix == "lift_simulator"
    assert parsed.timestamp == WHEN


@pytest.mark.parametrize("name", [
    "notes.txt", "lift_simulator_backup_20261124_080001.sql.manifest.json",
    "lift_simulator_backup_20261399_080001.sql", "lift_simulator_backup_2026112_080001.sql",
    "lift_simulator_backup_20261124_080001.sql.bak", "logs",
])
def test_foreign_names_are_not_backups(name):
    assert naming.parse_backup_name(name) is None


def test_now_is_utc_by_default():
    assert naming.now().tzinfo is datetime.timezone.utc
    assert naming.now("local").tzinfo is None
