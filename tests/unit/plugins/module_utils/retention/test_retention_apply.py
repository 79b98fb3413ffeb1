# -*- coding: utf-8 -*-
"""retention_apply: the scan -> plan -> remove sequence that the prune module and the scheduled
job share, on synthetic backup directories."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import checksums
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import manifest as mf
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.retention import policy as retention
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.retention.apply import (
    PruneError, apply_retention)

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)


def backup(directory, days_ago, database="lift_simulator"):
    when = NOW - datetime.timedelta(days=days_ago)
    name = "%s_backup_%s.sql" % (database, when.strftime("%Y%m%d_%H%M%S"))
    path = os.path.join(str(directory), name)
    with open(path, "wb") as handle:
        handle.write(b"-- PostgreSQL database dump\n" + name.encode())
    digest, size = checksums.sha256_file(path)
    server = {"host": "local socket", "port": 5432, "version": "15.18", "version_num": 150018}
    document = mf.build_manifest(
        backup_name=name, database=database, host="db1", server=server,
        pg_dump_version="15.18", format="plain", compression="none", compression_level=None,
        started_at=mf.utc_iso(when), finished_at=mf.utc_iso(when), duration_s=1.0, size_bytes=size, sha256=digest,
        sha256_scope="file", files=None, row_counts={}, flyway_version=None, flyway=[], checklist=None,
        snapshot="1", collection="lift_simulator.postgresql", collection_version="0.1.0")
    with open(path + ".manifest.json", "wb") as handle:
        handle.write(mf.dumps(document))
    return name


def test_removes_what_the_plan_says_backup_and_manifest(tmp_path):
    names = [backup(tmp_path, d) for d in (1, 2, 3, 4)]
    (tmp_path / "logs").mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    other = backup(tmp_path, 9, database="other_db")
    outcome = apply_retention(str(tmp_path), retention.Rules(keep_last=2), now=NOW)
    assert [d.name for d in outcome.plan.kept] == names[:2]
    assert [d.name for d in outcome.removed] == names[2:]
    assert outcome.errors == []
    assert sorted(os.listdir(str(tmp_path))) == sorted(
        names[:2] + [n + ".manifest.json" for n in names[:2]]
        + ["logs", "notes.txt", other, other + ".manifest.json"])
    results = outcome.removed_results()
    assert results[0]["rule"] == "not_selected" and results[0]["manifest_path"].endswith(".manifest.json")
    # Nothing left to do: a second run removes nothing.
    assert apply_retention(str(tmp_path), retention.Rules(keep_last=2), now=NOW).removed == []


def test_check_mode_lists_and_removes_nothing(tmp_path):
    names = [backup(tmp_path, d) for d in (1, 2, 3)]
    before = sorted(os.listdir(str(tmp_path)))
    outcome = apply_retention(str(tmp_path), retention.Rules(keep_last=1), now=NOW, check_mode=True)
    assert [d.name for d in outcome.removed] == names[1:]
    assert sorted(os.listdir(str(tmp_path))) == before
    diff = outcome.diff()
    assert names[1] in diff["before"] and names[1] not in diff["after"] and names[0] in diff["after"]


def test_protected_names_stop_everything_before_any_removal(tmp_path):
    # A backup dated a few minutes ahead (within the clock tolerance) makes the one just written
    # look older than it is.
    future = backup(tmp_path, -5.0 / 1440)
    current = backup(tmp_path, 0)
    older = backup(tmp_path, 5)
    before = sorted(os.listdir(str(tmp_path)))
    with pytest.raises(PruneError) as info:
        apply_retention(str(tmp_path), retention.Rules(keep_last=0), now=NOW, protect=[current])
    assert current in str(info.value) and "nothing was removed" in str(info.value)
    assert sorted(os.listdir(str(tmp_path))) == before
    assert future in before and older in before


def test_a_backup_dated_days_in_the_future_never_displaces_the_current_one(tmp_path):
    future = backup(tmp_path, -3)
    current = backup(tmp_path, 0)
    older = backup(tmp_path, 5)
    outcome = apply_retention(str(tmp_path), retention.Rules(keep_last=1), now=NOW, protect=[current])
    kept = dict((d.name, d.rule) for d in outcome.plan.kept)
    assert kept[future] == retention.FUTURE_DATED and current in kept
    assert outcome.plan.newest_good.name == current
    assert [d.name for d in outcome.removed] == [older]
    assert [c.name for c in outcome.plan.future_dated] == [future]


def test_missing_directory_and_not_a_directory(tmp_path):
    outcome = apply_retention(str(tmp_path / "missing"), retention.Rules(), now=NOW)
    assert outcome.exists is False and outcome.removed == [] and outcome.left_alone() == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(PruneError) as info:
        apply_retention(str(tmp_path / "file"), retention.Rules(), now=NOW)
    assert "is not a directory" in str(info.value)


def test_symlinks_are_left_alone_and_reported(tmp_path):
    name = backup(tmp_path, 1)
    target = tmp_path / "elsewhere.sql"
    target.write_text("precious")
    link = "lift_simulator_backup_20261101_000000.sql"
    os.symlink(str(target), str(tmp_path / link))
    outcome = apply_retention(str(tmp_path), retention.Rules(keep_last=0), now=NOW)
    assert [d.name for d in outcome.plan.kept] == [name]
    assert [os.path.basename(e["path"]) for e in outcome.left_alone()] == [link]
    assert (tmp_path / link).is_symlink() and target.read_text() == "precious"
