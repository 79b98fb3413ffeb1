# -*- coding: utf-8 -*-
"""The retention planner: scan, inspect and plan, on hand-made directory listings."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import manifest as mf
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.retention import candidates as rc
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.retention import policy as rt
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import base as sb

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
OLD = NOW - datetime.timedelta(days=2)
P = "lift_simulator"


def name_at(when, suffix=".sql", prefix=P):
    return "%s_backup_%s%s" % (prefix, when.strftime("%Y%m%d_%H%M%S"), suffix)


def good(when, suffix=".sql"):
    return rc.Candidate(name_at(when, suffix), when, True, size=10, manifest_exists=True, manifest_valid=True,
                        manifest_name=name_at(when, suffix) + ".manifest.json")


def bad(when, problem, mtime=OLD):
    return rc.Candidate(name_at(when), when, False, problem, size=0 if problem == rc.ZERO_BYTES else 10,
                        mtime=mtime, detail=problem)


def daily(days, hour=2):
    """One good backup a day at ``hour`` UTC for the ``days`` days before NOW (newest first)."""
    base = NOW.replace(hour=hour, minute=0, second=0)
    return [good(base - datetime.timedelta(days=d)) for d in range(days)]


def decisions(plan):
    return dict([(d.name, (d.keep, d.rule)) for d in plan.kept + plan.removed])


def kept_names(plan):
    return [d.name for d in plan.kept]


# --- plan: good backups ---------------------------------------------------------------------

def test_keep_last_alone_keeps_the_newest_n():
    backups = daily(6)
    plan = rt.plan(backups, rt.Rules(keep_last=4), NOW)
    assert kept_names(plan) == [b.name for b in backups[:4]]
    assert [(d.name, d.rule) for d in plan.removed] == [(b.name, "not_selected") for b in backups[4:]]
    assert plan.kept[0].rules == ["keep_last", "newest_good"]
    assert plan.newest_good is backups[0]


def test_the_newest_good_backup_is_kept_even_with_keep_last_0_and_max_age_0():
    backups = daily(3)
    plan = rt.plan(backups, rt.Rules(keep_last=0, max_age_days=0), NOW)
    assert [(d.name, d.rule) for d in plan.kept] == [(backups[0].name, "newest_good")]
    assert [d.rule for d in plan.removed] == ["max_age_days", "max_age_days"]


def test_the_earlier_process_policy_90_days_never_fewer_than_3():
    backups = daily(120)
    plan = rt.plan(backups, rt.Rules(keep_last=3, max_age_days=90), NOW)
    # 02:00 backups of the last 90 days (day 90 is 90 days 10 hours old: removed).
    assert len(plan.kept) == 90
    assert set(d.rule for d in plan.kept[3:]) == {"within_max_age"}
    assert set(d.rule for d in plan.removed) == {"max_age_days"}
    assert len(plan.removed) == 30
    # All of them too old: the 3 newest stay.
    stale = [good(b.time - datetime.timedelta(days=200)) for b in backups[:10]]
    plan = rt.plan(stale, rt.Rules(keep_last=3, max_age_days=90), NOW)
    assert kept_names(plan) == [b.name for b in stale[:3]]
    assert [d.rule for d in plan.kept] == ["keep_last"] * 3


def test_grandfather_father_son():
    # Every 6 hours for 120 days.
    backups = [good(NOW - datetime.timedelta(hours=6 * i, minutes=30)) for i in range(4 * 120)]
    plan = rt.plan(backups, rt.Rules(keep_last=2, keep_daily=7, keep_weekly=4, keep_monthly=3), NOW)
    rules = [r for d in plan.kept for r in d.rules]
    assert sum(r.startswith("keep_daily ") for r in rules) == 7
    assert sum(r.startswith("keep_weekly ") for r in rules) == 4
    assert sum(r.startswith("keep_monthly ") for r in rules) == 3
    assert "keep_daily 2026-11-24" in rules and "keep_daily 2026-11-18" in rules
    assert "keep_daily 2026-11-17" not in rules
    assert "keep_weekly 2026-W48" in rules and "keep_weekly 2026-W45" in rules
    assert "keep_monthly 2026-11" in rules and "keep_monthly 2026-09" in rules
    # The newest of a day is the one kept for it.
    day = [d for d in plan.kept if "keep_daily 2026-11-20" in d.rules]
    assert len(day) == 1 and day[0].candidate.time == max(b.time for b in backups if b.time.day == 20
                                                          and b.time.month == 11)
    assert set(d.rule for d in plan.removed) == {"not_selected"}
    assert len(plan.kept) + len(plan.removed) == len(backups)
    # keep_last first, then the calendar rules.
    assert [d.rule for d in plan.kept[:2]] == ["keep_last", "keep_last"]
    assert plan.kept[2].rule.startswith("keep_daily ")


def test_calendar_rules_count_only_periods_that_have_backups():
    when = [NOW - datetime.timedelta(days=d) for d in (0, 1, 5, 9, 30)]
    backups = [good(w) for w in when]
    plan = rt.plan(backups, rt.Rules(keep_last=0, keep_daily=3), NOW)
    assert kept_names(plan) == [b.name for b in backups[:3]]


def test_max_age_limits_the_calendar_rules_but_not_keep_last():
    backups = daily(200)
    plan = rt.plan(backups, rt.Rules(keep_last=5, keep_monthly=12, max_age_days=60), NOW)
    assert all((NOW - d.candidate.time).days <= 60 for d in plan.kept)
    assert any(d.rule == "max_age_days" for d in plan.removed)
    assert len([d for d in plan.kept if d.rule.startswith("keep_monthly")]) == 2  # November and October


def test_iso_week_labels_at_the_turn_of_the_year():
    when = datetime.datetime(2027, 1, 1, 12, 0, tzinfo=UTC)  # a Friday: ISO week 2026-W53
    plan = rt.plan([good(when)], rt.Rules(keep_last=0, keep_weekly=1, keep_monthly=1), when)
    assert plan.kept[0].rules == ["newest_good", "keep_weekly 2026-W53", "keep_monthly 2027-01"]


def test_day_boundaries_follow_the_rules_time_zone():
    # 23:30 and 22:30 UTC on the 23rd are the 24th in UTC+2.
    late = [good(datetime.datetime(2026, 11, 23, h, 30, tzinfo=UTC)) for h in (23, 22, 10)]
    in_utc = rt.plan(late, rt.Rules(keep_last=0, keep_daily=2), NOW)
    assert sorted(r for d in in_utc.kept for r in d.rules if r.startswith("keep_daily")) == ["keep_daily 2026-11-23"]
    plus2 = rt.plan(late, rt.Rules(keep_last=0, keep_daily=2, tz=datetime.timezone(datetime.timedelta(hours=2))), NOW)
    labels = sorted(r for d in plus2.kept for r in d.rules if r.startswith("keep_daily"))
    assert labels == ["keep_daily 2026-11-23", "keep_daily 2026-11-24"]
    assert kept_names(plus2) == [late[0].name, late[2].name]


def test_ties_are_broken_by_name():
    when = NOW - datetime.timedelta(hours=1)
    a, b = good(when, ".dump"), good(when, ".sql")
    plan = rt.plan([a, b], rt.Rules(keep_last=1), NOW)
    assert kept_names(plan) == [b.name]
    assert kept_names(rt.plan([b, a], rt.Rules(keep_last=1), NOW)) == [b.name]


# --- plan: backups that are not good, and leftovers ---------------------------------------

def test_bad_backups_go_once_a_newer_good_backup_exists():
    newest = good(NOW - datetime.timedelta(days=1))
    older_bad = [bad(NOW - datetime.timedelta(days=d), p) for d, p in
                 ((2, rc.CHECKSUM_MISMATCH), (3, rc.NO_MANIFEST), (4, rc.INVALID_MANIFEST), (5, rc.SIZE_MISMATCH))]
    newer_bad = bad(NOW - datetime.timedelta(hours=1), rc.CHECKSUM_MISMATCH)
    plan = rt.plan([newest, newer_bad] + older_bad, rt.Rules(), NOW)
    assert decisions(plan) == dict(
        [(newest.name, (True, "keep_last")), (newer_bad.name, (True, "no_newer_good_backup"))]
        + [(c.name, (False, c.problem)) for c in older_bad])


def test_without_any_good_backup_nothing_but_empty_files_is_removed():
    backups = [bad(NOW - datetime.timedelta(days=d), rc.CHECKSUM_MISMATCH) for d in range(1, 5)]
    empty = bad(NOW - datetime.timedelta(days=9), rc.ZERO_BYTES)
    plan = rt.plan(backups + [empty], rt.Rules(keep_last=1, max_age_days=1), NOW)
    assert kept_names(plan) == [b.name for b in backups]
    assert [(d.name, d.rule) for d in plan.removed] == [(empty.name, "zero_bytes")]
    assert plan.newest_good is None


def test_empty_files_are_left_alone_for_an_hour():
    writing = bad(NOW - datetime.timedelta(minutes=5), rc.ZERO_BYTES, mtime=NOW - datetime.timedelta(minutes=1))
    plan = rt.plan([writing], rt.Rules(), NOW)
    assert decisions(plan) == {writing.name: (True, "zero_bytes_recent")}


def test_orphan_manifests_and_stale_partials_are_removed():
    plan = rt.plan(daily(1), rt.Rules(), NOW, orphan_manifests=["b.manifest.json"], stale_partials=[".x.partial-h-1"])
    assert [(d.name, d.rule, d.what) for d in plan.removed] == [
        ("b.manifest.json", "orphan_manifest", "manifest"), (".x.partial-h-1", "stale_partial", "partial")]


@pytest.mark.parametrize("field, value", [("keep_last", -1), ("keep_daily", -3), ("max_age_days", True),
                                          ("keep_weekly", 1.5)])
def test_rules_are_validated(field, value):
    with pytest.raises(rt.RetentionError) as info:
        rt.Rules(**{field: value})
    assert field in str(info.value)


def test_now_must_be_aware():
    with pytest.raises(rt.RetentionError):
        rt.plan([], rt.Rules(), datetime.datetime(2026, 11, 24))


# --- scan and inspect -------------------------------------------------------------------------

def entry(name, kind=sb.FILE, size=10, mtime=OLD):
    return sb.Entry(name, kind, size, mtime)


def manifest_for(name, size=10, sha="a" * 64, started="2026-11-24T08:00:01.000000Z", **extra):
    fields = dict(backup_name=name, database=P, format="plain", compression="none", size_bytes=size, sha256=sha,
                  started_at=started, finished_at=started, row_counts={"s.t": 3})
    fields.update(extra)
    return mf.build_manifest(**fields)


def reader(manifests):
    def read(name):
        value = manifests[name]
        if isinstance(value, Exception):
            raise value
        return value
    return read


OURS = "lift_simulator_backup_20261124_080001.sql"


def test_scan_sorts_out_foreign_entries_symlinks_and_orphans():
    entries = [entry(OURS), entry(OURS + ".manifest.json"), entry("logs", sb.DIRECTORY),
               entry("notes.txt"), entry("other_backup_20261124_080001.sql"),
               entry("lift_simulator_backup_20261124_090000.dump", sb.SYMLINK),
               entry("lift_simulator_backup_20261124_100000.sql.manifest.json"),
               entry("lift_simulator_backup_20261124_110000.sql.manifest.json", sb.SYMLINK),
               entry("lift_simulator_backup_20261124_120000.sql", sb.OTHER),
               entry("lift_simulator_backup_20261124_130000", sb.DIRECTORY),
               entry("lift_simulator_backup_2026-11-24_14-00-00.backup")]
    result = rc.scan(entries, P)
    assert [s.entry.name for s in result.backups] == [
        "lift_simulator_backup_2026-11-24_14-00-00.backup", OURS, "lift_simulator_backup_20261124_130000"]
    assert result.backups[1].manifest_entry.name == OURS + ".manifest.json"
    assert [e.name for e in result.orphan_manifests] == ["lift_simulator_backup_20261124_100000.sql.manifest.json"]
    assert sorted(e.name for e, _reason in result.skipped) == [
        "lift_simulator_backup_20261124_090000.dump", "lift_simulator_backup_20261124_110000.sql.manifest.json",
        "lift_simulator_backup_20261124_120000.sql"]


def test_inspect_good_and_bad_backups_of_this_collection():
    names = dict(good=OURS, other="lift_simulator_backup_20261124_070000.sql",
                 size="lift_simulator_backup_20261124_060000.dump",
                 sha="lift_simulator_backup_20261124_050000.sql.gz",
                 nomf="lift_simulator_backup_20261124_040000.sql.zst",
                 garbage="lift_simulator_backup_20261124_030000.dump",
                 empty="lift_simulator_backup_20261124_020000.dump",
                 link="lift_simulator_backup_20261124_010000.dump",
                 time="lift_simulator_backup_20261124_000000.dump")
    entries = [entry(n) for n in names.values()] + [entry(names["empty"], size=0)]
    entries = [e for e in entries if not (e.name == names["empty"] and e.size)]
    manifests = {
        names["good"]: manifest_for(names["good"]),
        names["other"]: manifest_for(names["good"]),
        names["size"]: manifest_for(names["size"], size=11),
        names["sha"]: manifest_for(names["sha"], sha="b" * 64),
        names["garbage"]: mf.ManifestError("manifest x is not valid JSON"),
        names["empty"]: manifest_for(names["empty"]),
        names["time"]: manifest_for(names["time"], started="yesterday"),
    }
    for name in list(manifests) + [names["link"]]:
        entries.append(entry(name + ".manifest.json", sb.SYMLINK if name == names["link"] else sb.FILE))
    candidates, left_out = rc.inspect(
        rc.scan(entries, P), False, reader(dict((k + ".manifest.json", v) for k, v in manifests.items())),
        digest=lambda name: "a" * 64)
    assert left_out == []
    found = dict((c.name, c) for c in candidates)
    assert found[names["good"]].good and found[names["good"]].checksum_ok is True
    assert found[names["good"]].time == datetime.datetime(2026, 11, 24, 8, 0, 1, tzinfo=UTC)
    assert dict((c.name, c.problem) for c in candidates if not c.good) == {
        names["other"]: rc.INVALID_MANIFEST, names["size"]: rc.SIZE_MISMATCH, names["sha"]: rc.CHECKSUM_MISMATCH,
        names["nomf"]: rc.NO_MANIFEST, names["garbage"]: rc.INVALID_MANIFEST, names["empty"]: rc.ZERO_BYTES,
        names["link"]: rc.INVALID_MANIFEST, names["time"]: rc.INVALID_MANIFEST}
    assert "names another backup" in found[names["other"]].manifest_error
    assert found[names["link"]].manifest_error == "the manifest is a symlink"
    assert found[names["link"]].manifest_name is None  # a symlinked manifest is never removed
    assert found[names["nomf"]].manifest_exists is False
    # Without a usable manifest the time comes from the name, in UTC.
    assert found[names["garbage"]].time == datetime.datetime(2026, 11, 24, 3, 0, 0, tzinfo=UTC)
    times = [c.time for c in candidates]
    assert times == sorted(times, reverse=True)  # newest first


def test_inspect_hashes_only_good_backups_and_unreadable_ones_are_not_good():
    hashed = []

    def digest(name):
        hashed.append(name)
        raise OSError(13, "Permission denied")

    entries = [entry(OURS), entry(OURS + ".manifest.json"), entry("lift_simulator_backup_20261124_070000.dump")]
    read = reader({OURS + ".manifest.json": manifest_for(OURS)})
    candidates = rc.inspect(rc.scan(entries, P), True, read, digest=digest)[0]
    assert hashed == [OURS]
    assert candidates[0].problem == rc.CHECKSUM_MISMATCH and "cannot be read" in candidates[0].detail
    candidates = rc.inspect(rc.scan(entries, P), True, read)[0]
    assert candidates[0].good and candidates[0].checksum_ok is None


def test_legacy_backups_only_with_include_legacy():
    plain = "lift_simulator_backup_20261101_020000.sql"
    custom = "lift_simulator_backup_2026-11-02_02-00-00.backup"
    empty = "lift_simulator_backup_2026-11-03_02-00-00.backup"
    entries = [entry(plain), entry(custom), entry(empty, size=0)]
    candidates, left_out = rc.inspect(rc.scan(entries, P), False, reader({}))
    assert candidates == [] and sorted(s.entry.name for s in left_out) == sorted([plain, custom, empty])
    plus2 = datetime.timezone(datetime.timedelta(hours=2))
    candidates, left_out = rc.inspect(rc.scan(entries, P), True, reader({}), digest=lambda n: 1 / 0, legacy_tz=plus2)
    assert left_out == []
    found = dict((c.name, c) for c in candidates)
    assert all(c.legacy for c in candidates)
    assert found[plain].good and found[custom].good and found[empty].problem == rc.ZERO_BYTES
    assert found[plain].time == datetime.datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
    assert found[custom].time == datetime.datetime(2026, 11, 2, 0, 0, tzinfo=UTC)


def test_legacy_names_default_to_local_time():
    plain = "lift_simulator_backup_20261101_020000.sql"
    candidates = rc.inspect(rc.scan([entry(plain)], P), True, reader({}))[0]
    assert candidates[0].time == datetime.datetime(2026, 11, 1, 2, 0).astimezone(UTC)


def test_a_sql_file_with_a_manifest_is_ours():
    candidates, left_out = rc.inspect(rc.scan([entry(OURS), entry(OURS + ".manifest.json")], P), False,
                                      reader({OURS + ".manifest.json": manifest_for(OURS)}))
    assert left_out == [] and candidates[0].good and not candidates[0].legacy


def test_directory_archives():
    name = "lift_simulator_backup_20261124_080001"
    entries = [entry(name, sb.DIRECTORY, size=10), entry(name + ".manifest.json")]
    read = reader({name + ".manifest.json": manifest_for(name, format="directory")})
    candidates = rc.inspect(rc.scan(entries, P), False, read)[0]
    assert candidates[0].good and candidates[0].kind == sb.DIRECTORY


@pytest.mark.parametrize("name, expected", [
    (OURS, True), (OURS + ".manifest.json", True), ("lift_simulator_backup_20261124_080001", True),
    ("other_backup_20261124_080001.sql", False), ("notes.txt", False), (".hidden", False),
    ("lift_simulator_backup_2026-11-24_08-00-01.backup", True)])
def test_belongs_to(name, expected):
    assert rc.belongs_to(name, P) is expected


def test_parse_utc():
    assert rc.parse_utc("2026-11-24T08:00:01Z") == datetime.datetime(2026, 11, 24, 8, 0, 1, tzinfo=UTC)
    assert rc.parse_utc("2026-11-24T08:00:01.5Z").microsecond == 500000
    assert rc.parse_utc("2026-11-24 08:00:01") is None and rc.parse_utc(None) is None
