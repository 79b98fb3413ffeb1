# -*- coding: utf-8 -*-
"""pitr/info.py read from real `pgbackrest info --output=json` and `repo-ls --output=json` output
(pgBackRest 2.45, captured from runs against a real PostgreSQL 15: tests/fixtures/pgbackrest)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import os

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import info

from conftest import ROOT

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "pgbackrest")
# The three backups of info_full_diff_incr.json ended at these Unix times.
FULL_STOP, DIFF_STOP, INCR_STOP = 1796124433, 1796124437, 1796124439
NEWEST_WAL_TIME = 1796124439


def text(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def entry(name, stanza="demo"):
    return info.parse_info(text(name), stanza)


def listing():
    return json.loads(text("repo_ls_archive.json"))


def test_missing_stanza_is_reported_as_missing():
    found = entry("info_missing_stanza.json")
    assert info.status_of(found) == (1, "missing stanza path")
    assert info.stanza_missing(found)
    summary = info.summarize(found, None, now=FULL_STOP)
    assert summary["exists"] is False and summary["status"]["ok"] is False
    assert summary["backups"] == [] and summary["newest_backup"] is None
    assert summary["archive"]["id"] is None and summary["earliest_recoverable_time"] is None


def test_created_stanza_without_backups():
    found = entry("info_no_backups.json")
    assert info.status_of(found) == (2, "no valid backups")
    assert not info.stanza_missing(found)
    summary = info.summarize(found, {}, now=FULL_STOP)
    assert summary["exists"] is True
    assert summary["archive"]["id"] == "15-1" and summary["archive"]["max_wal"] is None
    assert summary["archive"]["newest_wal"] is None and summary["archive"]["size_bytes"] == 0
    assert summary["pg_version"] == "15" and summary["system_id"] == 7714295663484234502
    # Nothing to recover from without a backup, however much WAL there is.
    archived = info.summarize(entry("info_archive_no_backups.json"), None, now=FULL_STOP)
    assert archived["archive"]["max_wal"] == "000000010000000000000001"
    assert archived["latest_recoverable_time"] is None and archived["earliest_recoverable_time"] is None


def test_repository_error_gives_the_repository_message():
    found = info.parse_info(text("info_s3_unreachable.json"), "s3demo")
    code, message = info.status_of(found)
    assert code == info.STATUS_OTHER
    assert "HostConnectError" in message and "Connection refused" in message
    assert not info.stanza_missing(found)


def test_full_diff_incr():
    now = INCR_STOP + 3600
    summary = info.summarize(entry("info_full_diff_incr.json"), listing(), now=now)
    assert summary["status"] == {"code": 0, "message": "ok", "ok": True, "backup_running": False}
    assert [b["label"] for b in summary["backups"]] == [
        "20261201-112708F_20261201-112718I", "20261201-112708F_20261201-112716D", "20261201-112708F"]
    full, diff, incr = summary["newest_full"], summary["newest_diff"], summary["newest_incr"]
    assert (full["type"], diff["type"], incr["type"]) == ("full", "diff", "incr")
    assert full["stop_epoch"] == FULL_STOP and full["stop_time"] == "2026-12-01T11:27:13Z"
    assert full["archive_start"] == "000000010000000000000002" and full["archive_stop"] == "000000010000000000000003"
    assert full["size_bytes"] == 22992162 and full["repo_delta_bytes"] == 3043603
    assert incr["prior"] == diff["label"] and incr["references"] == [full["label"], diff["label"]]
    assert summary["newest_backup"] == incr
    assert summary["newest_backup_age_seconds"] == 3600
    assert incr["age_seconds"] == 3600 and full["age_seconds"] == now - FULL_STOP
    archive = summary["archive"]
    assert archive["id"] == "15-1"
    assert (archive["min_wal"], archive["max_wal"]) == ("000000010000000000000001", "000000010000000000000008")
    assert archive["newest_wal"] == "000000010000000000000008"
    assert archive["newest_wal_epoch"] == NEWEST_WAL_TIME and archive["newest_wal_age_seconds"] == now - NEWEST_WAL_TIME
    assert archive["file_count"] == 11 and archive["size_bytes"] == 1555310
    assert archive["gaps"] == []
    assert summary["archive_lag_seconds"] == now - NEWEST_WAL_TIME
    assert summary["earliest_recoverable_epoch"] == FULL_STOP
    assert summary["latest_recoverable_epoch"] == max(INCR_STOP, NEWEST_WAL_TIME)
    assert summary["repo_backup_bytes"] == 3043603 + 167087 + 429
    assert summary["repo_size_bytes"] == 3043603 + 167087 + 429 + 1555310
    assert summary["anomalies"] == []


def test_without_listing_the_archive_figures_are_null():
    summary = info.summarize(entry("info_full_diff_incr.json"), None, now=INCR_STOP)
    assert summary["archive"]["listed"] is False
    assert summary["archive"]["max_wal"] == "000000010000000000000008"
    assert summary["archive"]["newest_wal"] is None and summary["archive"]["gaps"] is None
    assert summary["repo_size_bytes"] is None and summary["repo_archive_bytes"] is None
    assert summary["latest_recoverable_epoch"] == INCR_STOP


def test_a_missing_segment_after_the_newest_full_is_a_gap():
    damaged = dict((k, v) for k, v in listing().items() if "/000000010000000000000005-" not in k
                   and "/000000010000000000000006-" not in k)
    summary = info.summarize(entry("info_full_diff_incr.json"), damaged, now=INCR_STOP)
    assert summary["archive"]["gaps"] == [{"first": "000000010000000000000005", "last": "000000010000000000000006"}]
    assert any("000000010000000000000005 to 000000010000000000000006" in a for a in summary["anomalies"])
    # Before the newest full backup a hole is not one: no recovery starts there.
    early = dict((k, v) for k, v in listing().items() if "/000000010000000000000001-" not in k)
    assert info.summarize(entry("info_full_diff_incr.json"), early, now=INCR_STOP)["archive"]["gaps"] == []


def test_times_after_now_are_flagged_and_never_the_newest():
    summary = info.summarize(entry("info_full_diff_incr.json"), listing(), now=FULL_STOP - info.FUTURE_MARGIN - 1)
    # All three backups (and the WAL) are "in the future" seen from a clock 10 minutes behind.
    assert all(b["future"] for b in summary["backups"]) and summary["newest_backup"] is None
    assert summary["newest_full"] is None and summary["archive"]["newest_wal_future"] is True
    assert summary["archive_lag_seconds"] is None
    assert len(summary["anomalies"]) == 4
    # Within the margin a clock difference is not an anomaly.
    assert info.summarize(entry("info_full_diff_incr.json"), listing(), now=INCR_STOP - 5)["anomalies"] == []


def test_only_the_current_database_counts():
    upgraded = entry("info_full_diff_incr.json")
    upgraded = copy.deepcopy(upgraded)
    upgraded["db"].append({"id": 2, "repo-key": 1, "system-id": 1, "version": "17"})
    upgraded["archive"].append({"database": {"id": 2, "repo-key": 1}, "id": "17-2", "max": None, "min": None})
    assert info.current_db_id(upgraded) == 2 and info.current_archive_id(upgraded) == "17-2"
    assert info.current_backups(upgraded) == []
    assert info.current_backups(entry("info_full_diff_incr.json"))[0]["label"] == "20261201-112708F"


@pytest.mark.parametrize("output, message", [
    ("not json", "no JSON"),
    ("{}", "instead of a list"),
    ('[{"name": "other"}]', r"does not list the stanza demo \(it lists: other\)"),
])
def test_bad_output(output, message):
    with pytest.raises(info.InfoError, match=message):
        info.parse_info(output, "demo")


def test_iso():
    assert info.iso(0) == "1970-01-01T00:00:00Z" and info.iso(None) is None


def test_pgbackrest_2_55_on_debian_13():
    """Debian 13's pgBackRest (2.55.1, PostgreSQL 17, zstd), captured from the role's lab run."""
    found = info.parse_info(text("info_2.55_debian13_full.json"), "lift_simulator")
    listed = json.loads(text("repo_ls_2.55_debian13.json"))
    stop = found["backup"][0]["timestamp"]["stop"]
    summary = info.summarize(found, listed, now=stop + 60)
    assert summary["status"]["ok"] and summary["pg_version"] == "17" and summary["archive"]["id"] == "17-1"
    assert summary["newest_full"]["label"] == "20261201-124100F" and summary["newest_full"]["age_seconds"] == 60
    assert summary["archive"]["newest_wal"] == summary["archive"]["max_wal"] == "000000010000000000000006"
    assert summary["archive"]["gaps"] == [] and summary["archive"]["file_count"] == len(
        [k for k, v in listed.items() if k.startswith("17-1/") and v["type"] == "file"])
    assert summary["repo_backup_bytes"] == 3689181
