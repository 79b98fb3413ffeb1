# -*- coding: utf-8 -*-
"""The pure parts of a point-in-time recovery: WAL names and holes, PostgreSQL's recovery log read
as data, targets and the restore command, the temporary cluster's layout and configuration, what
the switch gives back to archiving, and the messages of a recovery that stops short. The log
excerpts are PostgreSQL 15's and pgBackRest 2.45's own lines, as a lab run wrote them."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import recovery_archive as ra
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import recovery_layout as rl
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import recovery_log as rlog
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import recovery_repository as rr
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import recovery_switch as rs
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import recovery_target as rt
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import recovery_wal as wal
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import recovery_watch as rw

SHA = "e096d0e9ae0d7ca0d60162c67b987b60233d27e0"


# --- WAL -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("000000010000000000000001", (1, 1)),
    ("0000000200000001000000FF", (2, 511)),
    ("0000000A0000000000000000", (10, 0)),
])
def test_segment_names_round_trip(name, expected):
    assert wal.parse_segment(name) == expected
    assert wal.segment_name(*expected) == name


@pytest.mark.parametrize("name", ["00000001000000000000001", "00000001000000000000000g", "000000010000000000000100",
                                  "00000002.history", "", None])
def test_not_segment_names(name):
    with pytest.raises(wal.WalError):
        wal.parse_segment(name)


def test_segment_size_changes_the_numbering():
    # 64 MiB segments: 64 per "log", so ...0001 00000001 is number 65.
    size = 64 * 1024 * 1024
    assert wal.parse_segment("000000010000000100000001", size) == (1, 65)
    with pytest.raises(wal.WalError):
        wal.parse_segment("000000010000000000000040", size)


def test_lsn_to_segment():
    assert wal.parse_lsn("0/40296A8") == 0x40296A8
    assert wal.segment_of_lsn("0/40296A8", 1) == "000000010000000000000004"
    assert wal.segment_of_lsn("1/FF000000", 3) == "0000000300000001000000FF"
    with pytest.raises(wal.WalError):
        wal.parse_lsn("40296A8")


LISTING = {
    ".": {"type": "path"},
    "15-1": {"type": "path"},
    "15-1/0000000100000000": {"type": "path"},
    "15-1/0000000100000000/000000010000000000000001-%s.gz" % SHA: {"type": "file", "size": 1},
    "15-1/0000000100000000/000000010000000000000002-%s.gz" % SHA: {"type": "file"},
    "15-1/0000000100000000/000000010000000000000002.00000028.backup": {"type": "file"},
    "15-1/0000000100000000/000000010000000000000003-%s.zst" % SHA: {"type": "file"},
    "15-1/0000000100000000/000000010000000000000004-%s" % SHA: {"type": "file"},
    "15-1/0000000100000000/000000010000000000000006-%s.gz" % SHA: {"type": "file"},
    "15-1/0000000100000000/000000010000000000000007-%s.gz" % SHA: {"type": "file"},
    "15-1/0000000100000000/000000010000000000000008.partial-%s.gz" % SHA: {"type": "file"},
    "15-1/00000002.history": {"type": "file"},
    "15-1/0000000200000000/000000020000000000000007-%s.gz" % SHA: {"type": "file"},
    "14-2/0000000100000000/000000010000000000000009-%s.gz" % SHA: {"type": "file"},
}


def test_listing_read_per_archive_id():
    archive = wal.parse_listing(LISTING, "15-1")
    assert archive.segments == {1: {1, 2, 3, 4, 6, 7}, 2: {7}}
    assert archive.histories == {2}
    assert archive.newest() == "000000020000000000000007"
    assert archive.ranges(1) == [("000000010000000000000001", "000000010000000000000004"),
                                 ("000000010000000000000006", "000000010000000000000007")]
    assert archive.has("000000010000000000000003") and not archive.has("000000010000000000000005")
    assert wal.later_timelines(archive, 1) == [2]
    assert wal.parse_listing(LISTING, "14-2").segments == {1: {9}}
    assert wal.parse_listing({}, "15-1").newest() is None


def test_archive_survives_the_record():
    archive = wal.parse_listing(LISTING, "15-1")
    again = wal.Archive.from_dict(archive.to_dict())
    assert again.segments == archive.segments and again.histories == archive.histories
    assert archive.to_dict()["timelines"]["1"] == [[1, 4], [6, 7]]


def test_runs():
    assert wal.runs([5, 1, 2, 3, 9, 10]) == [(1, 3), (5, 5), (9, 10)]
    assert wal.runs([]) == []


def test_stopped_short_names_the_missing_or_unreadable_segment():
    archive = wal.parse_listing(LISTING, "15-1")
    # Stopped after 4 while 6 and 7 are there: 5 is missing.
    assert wal.stopped_short(archive, "000000010000000000000004") == ("000000010000000000000005", False)
    # Stopped after 2 while 3 is listed: 3 is there but could not be read.
    assert wal.stopped_short(archive, "000000010000000000000002") == ("000000010000000000000003", True)
    # The end of the timeline's WAL: nothing short.
    assert wal.stopped_short(archive, "000000010000000000000007") is None
    assert wal.stopped_short(archive, "000000020000000000000007") is None


# --- PostgreSQL's log ----------------------------------------------------------------------

TIME_TARGET_LOG = """\
2026-12-01 11:29:27.302 UTC [3203] LOG:  database system was interrupted; last known up at 2026-12-01 11:28:48 UTC
2026-12-01 11:29:27.448 UTC [3203] LOG:  starting point-in-time recovery to 2026-12-01 11:29:03.173139+00
2026-12-01 11:29:27.578 UTC [3203] LOG:  restored log file "000000010000000000000002" from archive
2026-12-01 11:29:27.588 UTC [3203] LOG:  redo starts at 0/2000028
2026-12-01 11:29:27.703 UTC [3203] LOG:  restored log file "000000010000000000000003" from archive
2026-12-01 11:29:27.793 UTC [3203] LOG:  restored log file "000000010000000000000004" from archive
2026-12-01 11:29:27.803 UTC [3203] LOG:  consistent recovery state reached at 0/3000050
2026-12-01 11:29:27.808 UTC [3200] LOG:  database system is ready to accept read-only connections
2026-12-01 11:29:27.819 UTC [3203] LOG:  recovery stopping before commit of transaction 796, time 2026-12-01 11:29:03.428689+00
2026-12-01 11:29:27.819 UTC [3203] LOG:  pausing at the end of recovery
2026-12-01 11:29:27.819 UTC [3203] HINT:  Execute pg_wal_replay_resume() to promote.
"""

GAP_LOG = """\
2026-12-01 11:30:08.790 UTC [3335] LOG:  starting point-in-time recovery to 2026-12-01 11:29:47.723216+00
2026-12-01 11:30:08.837 UTC [3335] LOG:  restored log file "000000010000000000000002" from archive
2026-12-01 11:30:09.145 UTC [3335] LOG:  restored log file "000000010000000000000004" from archive
ERROR: [042]: unable to get 000000010000000000000005:
       repo1: 15-1/0000000100000000/000000010000000000000005-5eded39989e4497671193f68f6010de9904f8bc8.gz [FormatError] zlib threw error: [-3] data error
ERROR: [042]: unable to get 000000010000000000000005:
       repo1: 15-1/0000000100000000/000000010000000000000005-5eded39989e4497671193f68f6010de9904f8bc8.gz [FormatError] zlib threw error: [-3] data error
2026-12-01 11:30:09.246 UTC [3335] LOG:  redo done at 0/40296A8 system usage: CPU: user: 0.00 s, system: 0.00 s, elapsed: 0.39 s
2026-12-01 11:30:09.246 UTC [3335] LOG:  last completed transaction was at log time 2026-12-01 11:29:03.940174+00
2026-12-01 11:30:09.246 UTC [3335] FATAL:  recovery ended before configured recovery target was reached
2026-12-01 11:30:09.249 UTC [3332] LOG:  startup process (PID 3335) exited with exit code 1
2026-12-01 11:30:09.259 UTC [3332] LOG:  database system is shut down
"""

LATEST_LOG = """\
2026-12-01 11:30:24.657 UTC [3386] LOG:  starting archive recovery
2026-12-01 11:30:24.727 UTC [3386] LOG:  restored log file "000000010000000000000002" from archive
2026-12-01 11:30:24.947 UTC [3386] LOG:  restored log file "000000010000000000000004" from archive
2026-12-01 11:30:25.051 UTC [3386] LOG:  redo done at 0/40296A8 system usage: CPU: user: 0.00 s, system: 0.00 s, elapsed: 0.30 s
2026-12-01 11:30:25.051 UTC [3386] LOG:  last completed transaction was at log time 2026-12-01 11:29:03.940174+00
2026-12-01 11:30:25.353 UTC [3386] LOG:  restored log file "000000010000000000000004" from archive
2026-12-01 11:30:25.385 UTC [3386] LOG:  selected new timeline ID: 2
2026-12-01 11:30:25.471 UTC [3386] LOG:  archive recovery complete
2026-12-01 11:30:25.559 UTC [3383] LOG:  database system is ready to accept connections
"""


def test_log_of_a_time_target_paused():
    found = rlog.parse(TIME_TARGET_LOG)
    assert found.restored == ["000000010000000000000002", "000000010000000000000003", "000000010000000000000004"]
    assert found.stop == {"kind": "before commit", "detail": "transaction 796", "time": "2026-12-01 11:29:03.428689+00"}
    assert found.paused and not found.ready and found.fatal == []
    assert found.consistent_at == "0/3000050"
    assert not found.ended_before_target


def test_log_of_a_recovery_that_ended_before_its_target():
    found = rlog.parse(GAP_LOG)
    assert found.last_restored == "000000010000000000000004"
    assert found.ended_before_target
    assert found.fatal == ["FATAL: recovery ended before configured recovery target was reached"]
    assert found.redo_done == "0/40296A8"
    assert found.last_transaction == "2026-12-01 11:29:03.940174+00"
    # pgBackRest's error, its continuation joined, once.
    assert found.pgbackrest == [
        "ERROR: [042]: unable to get 000000010000000000000005: repo1: 15-1/0000000100000000/"
        "000000010000000000000005-5eded39989e4497671193f68f6010de9904f8bc8.gz [FormatError] zlib threw error: [-3] data error"]


def test_log_of_a_latest_recovery():
    found = rlog.parse(LATEST_LOG)
    assert found.new_timeline == 2 and found.ready and found.stop is None
    assert found.last_restored == "000000010000000000000004"


def test_log_restore_point_and_details():
    found = rlog.parse(
        'x LOG:  recovery stopping at restore point "before upgrade", time 2026-11-24 14:03:00.5+00\n'
        "x FATAL:  could not open file \"pg_wal/x\": No such file\n"
        "x DETAIL:  more\n"
        "x HINT:  do this\n"
        "x LOG:  something else\n"
        "x DETAIL:  not attached\n")
    assert found.stop == {"kind": "restore point", "detail": "before upgrade", "time": "2026-11-24 14:03:00.5+00"}
    assert found.fatal == ['FATAL: could not open file "pg_wal/x": No such file | DETAIL: more | HINT: do this']


def test_log_postgresql_errors_are_not_pgbackrest_ones():
    found = rlog.parse("ERROR:  relation \"x\" does not exist\nWARNING:  y\nWARN: archive-get z\n")
    assert found.pgbackrest == ["WARN: archive-get z"]


# --- targets -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, normalised, epoch", [
    ("2026-11-24 14:03:00+00", "2026-11-24 14:03:00+00:00", 1795528980.0),
    ("2026-11-24T15:03:00+01:00", "2026-11-24 15:03:00+01:00", 1795528980.0),
    ("2026-11-24 14:03:00.25Z", "2026-11-24 14:03:00.25+00:00", 1795528980.25),
    ("2026-11-24 09:03:00.123456-0500", "2026-11-24 09:03:00.123456-05:00", 1795528980.123456),
    (" 2026-11-24 14:03:00 UTC ", "2026-11-24 14:03:00+00:00", 1795528980.0),
])
def test_times(text, normalised, epoch):
    value, seconds = rt.parse_time(text)
    assert value == normalised
    assert seconds == pytest.approx(epoch)


@pytest.mark.parametrize("text", ["2026-11-24 14:03:00", "24.11.2026 14:03", "2026-11-24 14:03+00",
                                  "2026-02-30 14:03:00+00", "2026-11-24 14:03:00+15", "", None])
def test_times_refused(text):
    with pytest.raises(rt.TargetError):
        rt.parse_time(text)


def test_a_time_without_offset_says_why():
    with pytest.raises(rt.TargetError, match="UTC offset is required"):
        rt.parse_time("2026-11-24 14:03:00")


def test_targets():
    assert rt.parse_target("latest").to_dict()["action"] is None
    target = rt.parse_target("time", time="2026-11-24 14:03:00+00", action="pause")
    assert (target.kind, target.value, target.action) == ("time", "2026-11-24 14:03:00+00:00", "pause")
    assert rt.parse_target("name", name="before upgrade").describe() == "the restore point 'before upgrade'"
    for bad in [dict(kind="time"), dict(kind="name"), dict(kind="latest", time="2026-11-24 14:03:00+00"),
                dict(kind="name", name="x'y"), dict(kind="name", name="x" * 64), dict(kind="xid"),
                dict(kind="time", time="2026-11-24 14:03:00+00", name="n"), dict(kind="latest", action="shutdown")]:
        with pytest.raises(rt.TargetError):
            rt.parse_target(bad.pop("kind"), **bad)


def _backup(label, stop, error=False):
    return {"label": label, "timestamp": {"start": stop - 10, "stop": stop}, "error": error}


def test_range_check_before_anything_is_restored():
    backups = [_backup("20261117-010002F", 1794877220), _backup("20261124-010003F", 1795482020)]
    early = rt.parse_target("time", time="2026-11-10 00:00:00+00")
    with pytest.raises(rt.TargetError, match="before the earliest time the repository can recover to, "
                                             "2026-11-17 01:00:20\\+00:00 .*20261117-010002F"):
        rt.check_in_range(early, backups)
    ok = rt.parse_target("time", time="2026-11-20 00:00:00+00")
    assert rt.check_in_range(ok, backups) == (1794877220, "20261117-010002F")
    # A named set: its own end is the limit.
    with pytest.raises(rt.TargetError):
        rt.check_in_range(ok, backups, "20261124-010003F")
    with pytest.raises(rt.TargetError, match="no backup set 20261201-010003F"):
        rt.check_in_range(ok, backups, "20261201-010003F")
    with pytest.raises(rt.TargetError, match="holds no backup"):
        rt.check_in_range(rt.parse_target("latest"), [_backup("20261117-010002F", 1794877220, error=True)])
    assert rt.check_in_range(rt.parse_target("latest"), backups)[1] == "20261117-010002F"


def test_backup_labels():
    assert rt.check_backup_set("20261124-010003F") == "20261124-010003F"
    assert rt.check_backup_set("20261124-010003F_20261125-010002D") == "20261124-010003F_20261125-010002D"
    assert rt.check_backup_set("") is None
    with pytest.raises(rt.TargetError):
        rt.check_backup_set("--delta")


def test_restore_command():
    time_argv = rt.restore_argv("lift_simulator", "/var/lib/postgresql/15/main_pitr",
                                rt.parse_target("time", time="2026-11-24 14:03:00+00"),
                                "/var/lib/postgresql/15/main_pitr_tablespaces", config="/etc/pgbackrest/x.conf")
    assert time_argv[0] == "pgbackrest" and time_argv[-1] == "restore"
    assert "--config=/etc/pgbackrest/x.conf" in time_argv
    assert "--archive-mode=off" in time_argv and "--pg1-path=/var/lib/postgresql/15/main_pitr" in time_argv
    assert "--tablespace-map-all=/var/lib/postgresql/15/main_pitr_tablespaces" in time_argv
    assert ["--type=time", "--target=2026-11-24 14:03:00+00:00", "--target-action=promote"] == time_argv[-4:-1]
    latest = rt.restore_argv("s", "/d", rt.parse_target("latest"), "/t", backup_set="20261124-010003F")
    assert "--type=default" in latest and "--set=20261124-010003F" in latest
    assert not [a for a in latest if a.startswith("--target")]


# --- the temporary cluster ------------------------------------------------------------------

def test_layout():
    layout = rl.Layout("15", "main")
    assert layout.copy == "main_pitr"
    assert layout.main_data == "/var/lib/postgresql/15/main"
    assert layout.copy_data == "/var/lib/postgresql/15/main_pitr"
    assert layout.copy_conf == "/etc/postgresql/15/main_pitr"
    assert layout.unit(layout.copy) == "postgresql@15-main_pitr.service"
    assert layout.log_file(layout.copy) == "/var/log/postgresql/postgresql-15-main_pitr.log"
    assert layout.replaced_data(1795528980) == "/var/lib/postgresql/15/main.replaced-20261124T140300Z"
    for version, cluster in [("15a", "main"), ("15", "ma-in"), ("15", "main_pitr"), ("15", "../x"), ("15", "")]:
        with pytest.raises(rl.LayoutError):
            rl.Layout(version, cluster)


def test_copy_configuration():
    text = rl.copy_config(rl.Layout("15", "main"), 5433)
    lines = text.splitlines()
    include = lines.index("include '/etc/postgresql/15/main/postgresql.conf'")
    # Every override comes after the include: later settings win.
    for setting in ("data_directory = '/var/lib/postgresql/15/main_pitr'", "port = 5433",
                    "external_pid_file = '/var/run/postgresql/15-main_pitr.pid'", "cluster_name = '15/main_pitr'",
                    "archive_mode = off", "lc_messages = 'C'", "logging_collector = off", "listen_addresses = 'localhost'"):
        assert lines.index(setting) > include
    assert rl.quote_setting("it's") == "'it''s'"
    assert rl.start_conf().splitlines()[-1] == "manual"


def test_overlaps():
    assert rl.overlaps("/var/lib/postgresql/15/main", "/var/lib/postgresql/15/main/")
    assert rl.overlaps("/var/lib/postgresql/15", "/var/lib/postgresql/15/main")
    assert not rl.overlaps("/var/lib/postgresql/15/main_pitr", "/var/lib/postgresql/15/main")


# --- the switch gives archiving back ---------------------------------------------------------

def test_archive_mode_of_the_backup():
    auto = ("# Do not edit this file manually!\n"
            "archive_mode = 'on'\n"
            "archive_timeout = '60'\n"
            "archive_command = 'pgbackrest --stanza=lift archive-push %p'\n\n"
            "# Recovery settings generated by pgBackRest restore on 2026-12-01 11:39:37\n"
            "archive_mode = 'off'\n"
            "restore_command = 'pgbackrest --stanza=lift archive-get %f \"%p\"'\n")
    assert rs.archive_mode_in_backup(auto) == "on"
    assert rs.archive_mode_in_backup("# Recovery settings generated by pgBackRest restore\narchive_mode = 'off'\n") is None
    assert rs.archive_mode_in_backup("archive_mode=always # a comment\n") == "always"
    assert rs.archive_mode_in_backup("") is None


# --- pgBackRest's words ----------------------------------------------------------------------

def test_said_drops_timestamps_and_option_lines():
    out = ("2026-12-01 11:30:16.485 P00   INFO: archive-get command begin 2.45: [x] --repo1-s3-key=<redacted>\n"
           "2026-12-01 11:30:16.486 P00   INFO: unable to find 000000010000000000000005 in the archive\n"
           "2026-12-01 11:30:16.486 P00   INFO: archive-get command end: completed successfully (2ms)\n")
    assert rr.said(out) == ["INFO: unable to find 000000010000000000000005 in the archive"]


# --- a recovery that stops short --------------------------------------------------------------

RECORD = {"stanza": "lift", "config": None, "newest_wal": "000000010000000000000007",
          "target": {"kind": "time", "value": "2026-12-01 11:29:47.723216+00:00",
                     "description": "the time 2026-12-01 11:29:47.723216+00:00"},
          "archive": wal.parse_listing(LISTING, "15-1").to_dict()}


def test_a_missing_segment_is_named_with_pgbackrests_words(monkeypatch):
    asked = []

    def probe(stanza, segment, config):
        asked.append(segment)
        return 1, "INFO: unable to find %s in the archive" % segment
    monkeypatch.setattr(rw.repo, "probe_segment", probe)
    message = rw.explain_stop(rl.Layout("15", "main"), RECORD, rlog.parse(GAP_LOG), GAP_LOG)
    assert asked == ["000000010000000000000005"]
    assert "the next one, 000000010000000000000005, is missing from the repository" in message
    assert "it holds 000000010000000000000001-000000010000000000000004, 000000010000000000000006-" in message
    assert "pgBackRest: INFO: unable to find 000000010000000000000005 in the archive" in message
    assert "FATAL: recovery ended before configured recovery target was reached" in message
    assert "The running cluster was not touched" in message


def test_an_unreadable_segment_is_named(monkeypatch):
    monkeypatch.setattr(rw.repo, "probe_segment", lambda *a: (42, "ERROR: [042]: unable to get it [CryptoError]"))
    log = GAP_LOG.replace("000000010000000000000004\" from", "000000010000000000000002\" from")
    message = rw.explain_stop(rl.Layout("15", "main"), RECORD, rlog.parse(log), log)
    assert "000000010000000000000003, is in the repository but cannot be read" in message
    assert "ERROR: [042]: unable to get it [CryptoError]" in message


def test_a_target_past_the_end_of_the_wal():
    log = GAP_LOG.replace("000000010000000000000004\" from", "000000010000000000000007\" from")
    message = rw.explain_stop(rl.Layout("15", "main"), RECORD, rlog.parse(log), log)
    assert "the repository's WAL ends before it" in message
    assert "last transaction in the archived WAL is at 2026-12-01 11:29:03.940174+00" in message


def test_other_stops_and_silence():
    layout = rl.Layout("15", "main")
    other = "x FATAL:  requested recovery stop point is before consistent recovery point\n"
    assert "requested recovery stop point" in rw.explain_stop(layout, RECORD, rlog.parse(other), other)
    assert "did not start" in rw.explain_stop(layout, RECORD, rlog.parse(""), "")


def test_a_latest_recovery_promoted_at_a_hole_is_refused(monkeypatch):
    monkeypatch.setattr(rw.repo, "probe_segment", lambda *a: (1, "INFO: unable to find it"))
    record = dict(RECORD, target={"kind": "latest"})
    with pytest.raises(rw.RecoveryError, match="took the hole for the end of the WAL"):
        rw.check_reached_end(record, rlog.parse(LATEST_LOG))
    # A time target that was reached is not checked; nor a latest one that reached the end.
    rw.check_reached_end(RECORD, rlog.parse(LATEST_LOG))
    rw.check_reached_end(record, rlog.parse(LATEST_LOG.replace("000000010000000000000004", "000000010000000000000007")))


def test_facts():
    state = {"in_recovery": True, "pause_state": "paused", "last_transaction": "2026-12-01 11:29:03.032046+00",
             "replay_lsn": "0/4028A40", "timeline": 1, "server_version": "15.20"}
    found = rw.facts(RECORD, state, rlog.parse(TIME_TARGET_LOG), 1.23456)
    assert found["state"] == "paused"
    assert found["recovered_to"] == "2026-12-01 11:29:47.723216+00:00"
    assert found["first_not_replayed"] == "2026-12-01 11:29:03.428689+00"
    assert found["last_transaction"] == "2026-12-01 11:29:03.032046+00"
    assert found["waited_s"] == 1.235 and found["wal_segments_restored"] == 3
    latest = rw.facts(dict(RECORD, target={"kind": "latest"}), dict(state, in_recovery=False), rlog.parse(LATEST_LOG), 0)
    assert latest["state"] == "promoted" and latest["recovered_to"] == "2026-12-01 11:29:03.032046+00"


# --- the running cluster's WAL archived before a recovery beside it ---------------------------

@pytest.mark.parametrize("last, archived", [
    ("000000010000000000000005", True),
    ("000000010000000000000006", True),
    ("000000010000000000000005.00000028.backup", True),
    ("000000020000000000000003", True),    # a later timeline
    ("000000010000000000000004", False),
    ("00000002.history", False),
    ("", False),
])
def test_archived_since(last, archived):
    assert ra.archived_since(last, "000000010000000000000005") is archived


def _data_dirs(base, monkeypatch):
    """A Debian-like data directory layout below ``base`` (the postgres OS user's part of it)."""
    monkeypatch.setattr(rl, "BASE_DATA", str(base))
    layout = rl.Layout("15", "main")
    os.makedirs(layout.main_data)
    os.makedirs(layout.copy_data)
    monkeypatch.setattr(rs, "clusters", lambda: {})
    return layout


def test_the_switch_refuses_a_symlinked_version_directory(tmp_path, monkeypatch):
    # The postgres OS user owns /var/lib/postgresql and could replace the version directory with
    # a symlink to a directory of root's: the switch renames as root, so it must refuse.
    elsewhere = tmp_path / "elsewhere"
    layout = _data_dirs(elsewhere, monkeypatch)
    real = tmp_path / "real"
    real.mkdir()
    (real / "15").symlink_to(elsewhere / "15")
    monkeypatch.setattr(rl, "BASE_DATA", str(real))
    with pytest.raises(rs.RecoveryError, match="reached through a symlink"):
        rs.switch_checks(layout)
    fd = None
    with pytest.raises(rs.RecoveryError, match="symlink"):
        fd = rs.open_parent(os.path.join(str(real), "15"))
    assert fd is None


def test_the_switch_refuses_a_symlinked_data_directory(tmp_path, monkeypatch):
    layout = _data_dirs(tmp_path, monkeypatch)
    os.rmdir(layout.copy_data)
    os.symlink(layout.main_data, layout.copy_data)
    with pytest.raises(rs.RecoveryError, match="not a directory"):
        rs.switch_checks(layout)


def test_the_switch_checks_pass_on_real_directories(tmp_path, monkeypatch):
    layout = _data_dirs(tmp_path, monkeypatch)
    rs.switch_checks(layout)
    open(os.path.join(layout.copy_data, "recovery.signal"), "w").close()
    with pytest.raises(rs.RecoveryError, match="still in recovery"):
        rs.switch_checks(layout)
