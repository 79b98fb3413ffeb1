# -*- coding: utf-8 -*-
"""Properties of the retention planner, checked with hypothesis on random backup sets and rules."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import manifest as mf
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import naming
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.retention import candidates as rc
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.retention import policy as rt
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import base as sb

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
PREFIX = "lift_simulator"
PROBLEMS = [rc.ZERO_BYTES, rc.NO_MANIFEST, rc.INVALID_MANIFEST, rc.SIZE_MISMATCH, rc.CHECKSUM_MISMATCH]
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

counts = st.one_of(st.none(), st.integers(min_value=0, max_value=8))
rules_strategy = st.builds(
    rt.Rules,
    keep_last=st.integers(min_value=0, max_value=8),
    keep_daily=counts, keep_weekly=counts, keep_monthly=counts,
    max_age_days=st.one_of(st.none(), st.integers(min_value=0, max_value=400)),
    tz=st.sampled_from([UTC, datetime.timezone(datetime.timedelta(hours=-7)),
                        datetime.timezone(datetime.timedelta(hours=5, minutes=30))]))


@st.composite
def candidate_sets(draw):
    """Backups at random minutes over ~500 days (some in the future: clock skew), good or not."""
    minutes = draw(st.lists(st.integers(min_value=-600, max_value=500 * 1440), max_size=40, unique=True))
    result = []
    for minute in minutes:
        when = NOW - datetime.timedelta(minutes=minute)
        is_good = draw(st.booleans()) or draw(st.booleans())
        problem = None if is_good else draw(st.sampled_from(PROBLEMS))
        mtime = when + datetime.timedelta(minutes=draw(st.integers(min_value=0, max_value=90)))
        result.append(rc.Candidate("%s_backup_%s.sql" % (PREFIX, when.strftime("%Y%m%d_%H%M%S")), when, is_good,
                                   problem, legacy=draw(st.booleans()), size=0 if problem == rc.ZERO_BYTES else 1,
                                   mtime=mtime, detail=problem))
    return result


def good_newest_first(candidates):
    """The good backups that count: those not dated in the future (a wrong clock)."""
    return [c for c in rc.newest_first(candidates) if c.good and not rt.is_future(c, NOW)]


@SETTINGS
@given(candidate_sets(), rules_strategy)
def test_every_candidate_is_decided_exactly_once(candidates, rules):
    plan = rt.plan(candidates, rules, NOW)
    names = [d.name for d in plan.kept + plan.removed]
    assert sorted(names) == sorted(c.name for c in candidates)
    assert all(d.keep for d in plan.kept) and not any(d.keep for d in plan.removed)


@SETTINGS
@given(candidate_sets(), rules_strategy)
def test_the_newest_good_backup_and_keep_last_are_always_kept(candidates, rules):
    plan = rt.plan(candidates, rules, NOW)
    kept = set(d.name for d in plan.kept)
    good = good_newest_first(candidates)
    if good:
        assert good[0].name in kept
        assert plan.newest_good is good[0]
    for candidate in good[:rules.keep_last]:
        assert candidate.name in kept


@SETTINGS
@given(candidate_sets(), rules_strategy)
def test_backups_dated_in_the_future_are_kept_and_displace_nothing(candidates, rules):
    plan = rt.plan(candidates, rules, NOW)
    future = set(c.name for c in candidates if rt.is_future(c, NOW))
    assert future <= set(d.name for d in plan.kept if d.rule == rt.FUTURE_DATED)
    without = rt.plan([c for c in candidates if c.name not in future], rules, NOW)

    def decided(result):
        return sorted((d.name, d.keep, d.rule) for d in result.kept + result.removed if d.name not in future)
    assert decided(plan) == decided(without)


@SETTINGS
@given(candidate_sets(), rules_strategy)
def test_max_age_never_leaves_fewer_than_keep_last_good_backups(candidates, rules):
    plan = rt.plan(candidates, rules, NOW)
    good_kept = [d for d in plan.kept if d.candidate.good]
    assert len(good_kept) >= min(max(rules.keep_last, 1), len(good_newest_first(candidates)))
    for decision in plan.removed:
        if decision.rule == "max_age_days":
            assert NOW - decision.candidate.time > datetime.timedelta(days=rules.max_age_days)


@SETTINGS
@given(candidate_sets(), rules_strategy)
def test_a_second_prune_removes_nothing(candidates, rules):
    first = rt.plan(candidates, rules, NOW)
    kept = set(d.name for d in first.kept)
    second = rt.plan([c for c in candidates if c.name in kept], rules, NOW)
    assert second.removed == []
    assert [d.name for d in second.kept] == [d.name for d in first.kept]


@SETTINGS
@given(candidate_sets(), rules_strategy)
def test_bad_backups_are_removed_only_when_superseded(candidates, rules):
    plan = rt.plan(candidates, rules, NOW)
    good = good_newest_first(candidates)
    for decision in plan.removed:
        candidate = decision.candidate
        if candidate.good:
            continue
        if candidate.problem == rc.ZERO_BYTES:
            assert NOW - candidate.mtime >= rt.ZERO_BYTE_GRACE
        else:
            assert good and good[0].time >= candidate.time


# --- whole directories: foreign entries are never selected ----------------------------------

FOREIGN_NAMES = st.sampled_from([
    "logs", "notes.txt", "lift_simulator.sql", "lift_simulator_backup_latest.sql", "other_backup_20261101_020000.sql",
    "other_backup_20261101_020000.sql.manifest.json", "lift_simulator_backup_20261301_020000.sql",
    "lift_simulator_backup_20261101_020000.sql.bak", "lift_simulator_backup_20261101_020000.tar",
    ".lift_simulator_backup_20261101_020000.sql", "lift_simulator_backup_2026-11-01_02-00-00.sql",
    "Lift_Simulator_backup_20261101_020000.sql", "lift_simulator_backup_20261101_020000.SQL",
    "lift_simulator_backup_20261101_020000.sql~", "manifest.json", "lift_simulator_backup_.sql",
])
SUFFIXES = ["", ".sql", ".sql.gz", ".sql.zst", ".sql.lz4", ".dump"]


@st.composite
def directories(draw):
    """A listing of backups (ours, legacy), manifests, orphans, symlinks and foreign entries."""
    entries, manifests = {}, {}
    for minute in draw(st.lists(st.integers(min_value=0, max_value=400 * 1440), max_size=25, unique=True)):
        when = NOW - datetime.timedelta(minutes=minute)
        legacy_custom = draw(st.integers(min_value=0, max_value=5)) == 0
        if legacy_custom:
            name = "%s_backup_%s.backup" % (PREFIX, when.strftime("%Y-%m-%d_%H-%M-%S"))
        else:
            name = "%s_backup_%s%s" % (PREFIX, when.strftime("%Y%m%d_%H%M%S"), draw(st.sampled_from(SUFFIXES)))
        kind = draw(st.sampled_from([sb.FILE, sb.FILE, sb.FILE, sb.DIRECTORY, sb.SYMLINK, sb.OTHER, None]))
        size = draw(st.sampled_from([0, 10, 10, 10]))
        if kind is not None:  # None: only the manifest exists (an orphan)
            entries[name] = sb.Entry(name, kind, size, when)
        manifest_kind = draw(st.sampled_from([sb.FILE, sb.FILE, sb.SYMLINK, None]))
        if manifest_kind is not None:
            mname = naming.manifest_name(name)
            entries[mname] = sb.Entry(mname, manifest_kind, 100, when)
            started = mf.utc_iso(when.replace(tzinfo=None))
            manifests[mname] = mf.build_manifest(
                backup_name=draw(st.sampled_from([name, name, "other.sql"])), database=PREFIX, format="plain",
                compression="none", size_bytes=draw(st.sampled_from([size, size, 11])), sha256="a" * 64,
                started_at=started, finished_at=started, row_counts={})
    for name in draw(st.lists(FOREIGN_NAMES, max_size=8, unique=True)):
        entries.setdefault(name, sb.Entry(name, draw(st.sampled_from([sb.FILE, sb.DIRECTORY, sb.SYMLINK])), 0,
                                          NOW - datetime.timedelta(days=500)))
    return list(entries.values()), manifests


@SETTINGS
@given(directories(), rules_strategy, st.booleans(), st.booleans())
def test_foreign_entries_symlinks_and_excluded_legacy_backups_are_never_removed(
        directory, rules, include_legacy, verify):
    entries, manifests = directory
    scanned = rc.scan(entries, PREFIX)
    candidates, left_out = rc.inspect(scanned, include_legacy, manifests.__getitem__,
                                      digest=(lambda name: "a" * 64) if verify else None)
    plan = rt.plan(candidates, rules, NOW, orphan_manifests=[e.name for e in scanned.orphan_manifests])
    by_name = dict((e.name, e) for e in entries)
    touched = []
    for decision in plan.removed:
        touched.append(decision.name)
        if decision.candidate is not None and decision.candidate.manifest_name:
            touched.append(decision.candidate.manifest_name)
    excluded = set(s.entry.name for s in left_out)
    for name in touched:
        assert rc.belongs_to(name, PREFIX), name
        assert by_name[name].kind in (sb.FILE, sb.DIRECTORY), name
        assert name not in excluded
        if name.endswith(naming.MANIFEST_SUFFIX):
            assert by_name[name].kind == sb.FILE  # never a symlinked manifest
            continue
        if not include_legacy:
            assert not name.endswith(".backup"), "a legacy backup was removed without include_legacy"
            assert not (name.endswith(".sql") and naming.manifest_name(name) not in by_name), \
                "a manifest-less .sql was removed without include_legacy"
