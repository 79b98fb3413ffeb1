# -*- coding: utf-8 -*-
"""Retention and S3 Object Lock, the pure part (retention/policy.py hold_back): a backup the
storage still retains is kept whole, with the rule object_lock and the rule that would have removed
it, and nothing else in the plan changes."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.retention import policy
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.retention.candidates import Candidate

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def candidate(day):
    name = "lift_simulator_backup_202611%02d_080000.sql.gz" % day
    return Candidate(name, datetime.datetime(2026, 11, day, 8, 0, 0, tzinfo=UTC), True, size=10,
                     manifest_name=name + ".manifest.json", globals_name=name + ".globals.sql")


def lock(days, mode="COMPLIANCE", legal_hold=False):
    return dict(mode=mode, retain_until=NOW + datetime.timedelta(days=days) if days is not None else None,
                legal_hold=legal_hold)


def planned():
    candidates = [candidate(day) for day in (1, 5, 10, 20, 28)]
    plan = policy.plan(candidates, policy.Rules(keep_last=0, max_age_days=0), NOW,
                       orphan_manifests=["lift_simulator_backup_20261102_080000.sql.gz.manifest.json"])
    return candidates, plan


def test_without_holds_the_plan_is_the_same_object():
    _candidates, plan = planned()
    assert policy.hold_back(plan, {}) is plan
    assert policy.hold_back(plan, {"unrelated": []}) is plan


def test_a_retained_backup_is_kept_whole_with_the_rule_that_would_have_removed_it():
    candidates, plan = planned()
    c1, c5, c10, c20, c28 = candidates
    assert [d.name for d in plan.kept] == [c28.name]
    orphan = "lift_simulator_backup_20261102_080000.sql.gz.manifest.json"
    holds = {
        c5.name: [(c5.manifest_name, lock(3))],                                  # only its manifest is locked
        c20.name: [(c20.name, lock(9, "GOVERNANCE")), (c20.manifest_name, lock(10, "GOVERNANCE"))],
        orphan: [(orphan, lock(None, legal_hold=True))],
    }
    held = policy.hold_back(plan, holds)
    assert [d.name for d in held.kept] == [c28.name, c20.name, c5.name, orphan]
    assert [d.name for d in held.removed] == [c10.name, c1.name]
    by_name = dict((d.name, d) for d in held.kept)
    assert by_name[c20.name].rule == policy.OBJECT_LOCK and by_name[c20.name].rules == [policy.OBJECT_LOCK, "max_age_days"]
    assert by_name[c20.name].candidate is c20 and by_name[c20.name].keep is True
    assert "under Object Lock (GOVERNANCE) until 2026-12-11T12:00:00Z" in by_name[c20.name].reason
    assert by_name[c20.name].reason.startswith("older than 0 days - but the storage retains")
    assert c5.manifest_name + " under Object Lock (COMPLIANCE) until 2026-12-04T12:00:00Z" in by_name[c5.name].reason
    assert by_name[orphan].what == "manifest" and "a legal hold on " + orphan in by_name[orphan].reason
    assert by_name[orphan].rules == [policy.OBJECT_LOCK, "orphan_manifest"]
    # The newest good backup is still the newest one, never a held-back older one.
    assert held.newest_good is c28


def test_held_until_is_the_last_date_and_none_for_a_legal_hold_only():
    assert policy.held_until([("a", lock(2)), ("b", lock(5)), ("c", lock(None, legal_hold=True))]) == \
        NOW + datetime.timedelta(days=5)
    assert policy.held_until([("a", lock(None, legal_hold=True))]) is None
