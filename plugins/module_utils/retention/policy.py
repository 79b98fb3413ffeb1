# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retention: which backups of a directory to keep, which to remove, and why.

Pure Python: no I/O, no Ansible. candidates.py judges each backup; ``plan`` applies the rules
(``Rules``) to those candidates at a given ``now`` and returns the decisions. The rules are
documented in docs/retention.md; apply.py carries a plan out through a storage driver.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.retention.candidates import (
    ZERO_BYTES, newest_first)

# A 0-byte file modified this recently may be a dump another process is still writing
# (the earlier processes wrote with a shell redirect): it is left alone until it is older.
ZERO_BYTE_GRACE = datetime.timedelta(hours=1)
# A backup dated more than this after "now" was made (or is judged) by a wrong clock. It is kept,
# and counts for nothing (not as the newest, not for keep_last or a calendar rule) until its time
# has come, so that a clock that ran ahead once never makes retention remove today's backups.
FUTURE_TOLERANCE = datetime.timedelta(minutes=10)
FUTURE_DATED = "future_dated"
# The rule of a removal the storage refuses for now (S3 Object Lock): the backup is kept, whole.
OBJECT_LOCK = "object_lock"

UTC = datetime.timezone.utc
_PERIODS = (
    ("keep_daily", lambda t: t.strftime("%Y-%m-%d"), "day"),
    ("keep_weekly", lambda t: "%04d-W%02d" % t.isocalendar()[:2], "ISO week"),
    ("keep_monthly", lambda t: t.strftime("%Y-%m"), "month"),
)


class RetentionError(ValueError):
    pass


class Rules(object):
    """The retention rules. ``tz`` is the time zone of the day/week/month boundaries (None: the
    host's local time)."""

    @classmethod
    def from_options(cls, options, calendar_timezone):
        """The rules as the prune module's parameters and the scheduled job's settings name them
        (backup/options.py); ``calendar_timezone`` is ``utc`` or ``local``."""
        return cls(keep_last=options["keep_last"], keep_daily=options["keep_daily"],
                   keep_weekly=options["keep_weekly"], keep_monthly=options["keep_monthly"],
                   max_age_days=options["max_age_days"], tz=UTC if calendar_timezone == "utc" else None)

    def __init__(self, keep_last=4, keep_daily=None, keep_weekly=None, keep_monthly=None, max_age_days=None,
                 tz=UTC):
        self.keep_last = keep_last
        self.keep_daily = keep_daily
        self.keep_weekly = keep_weekly
        self.keep_monthly = keep_monthly
        self.max_age_days = max_age_days
        self.tz = tz
        for field in ("keep_last", "keep_daily", "keep_weekly", "keep_monthly", "max_age_days"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise RetentionError("%s must be a whole number, 0 or more (got %r)" % (field, value))
        if self.keep_last is None:
            self.keep_last = 0

    @property
    def calendar(self):
        """True when a keep_daily/keep_weekly/keep_monthly rule is set."""
        return any(getattr(self, field) for field, _key, _unit in _PERIODS)


class Decision(object):
    def __init__(self, name, keep, rule, reason, candidate=None, what="backup", rules=None):
        self.name = name
        self.keep = keep
        self.rule = rule
        self.rules = rules or [rule]
        self.reason = reason
        self.candidate = candidate
        self.what = what


class Plan(object):
    def __init__(self, kept, removed):
        self.kept = kept
        self.removed = removed

    @property
    def newest_good(self):
        for decision in self.kept:
            if decision.candidate is not None and decision.candidate.good and decision.rule != FUTURE_DATED:
                return decision.candidate
        return None

    @property
    def future_dated(self):
        return [d.candidate for d in self.kept if d.rule == FUTURE_DATED]


def _selections(good, rules):
    """{name: [(rule, reason)]} of the keep rules that select each good backup (newest first)."""
    selected = dict((c.name, []) for c in good)
    for index, candidate in enumerate(good):
        if index < rules.keep_last:
            selected[candidate.name].append(("keep_last", "one of the %d newest good backups" % rules.keep_last))
        if index == 0:
            selected[candidate.name].append(("newest_good", "the newest good backup is never removed"))
    for field, key, unit in _PERIODS:
        count = getattr(rules, field)
        if not count:
            continue
        seen = set()
        for candidate in good:  # newest first: the first of each period is its newest
            period = key(candidate.time.astimezone(rules.tz))
            if period in seen:
                continue
            seen.add(period)
            if len(seen) > count:
                break
            selected[candidate.name].append((
                "%s %s" % (field, period),
                "the newest good backup of %s %s, one of the last %d %ss with backups" % (unit, period, count, unit)))
    return selected


def is_future(candidate, now):
    """Whether the candidate is dated after ``now`` (beyond FUTURE_TOLERANCE): a clock was wrong."""
    return candidate.time - now > FUTURE_TOLERANCE


def plan(candidates, rules, now, orphan_manifests=(), stale_partials=(), orphan_globals=()):
    """Decide every candidate: keep or remove, with the rule that decided and why.

    ``now`` is an aware datetime. Orphan manifests and stale partial temporaries (names) are
    always removed. Good backups: the newest and the ``keep_last`` newest are always kept; then
    ``max_age_days`` removes older ones; then, with calendar rules, what no rule selects is
    removed, and without them what is younger than ``max_age_days`` is kept (everything beyond
    ``keep_last`` is removed when neither is set). Bad backups are removed once a newer good
    backup exists (0-byte ones at once, after ZERO_BYTE_GRACE). Backups dated in the future
    (is_future) are kept and count for nothing: a wrong clock never displaces a good backup.
    """
    if now.tzinfo is None:
        raise RetentionError("now must be an aware datetime")
    ordered = newest_first(candidates)
    good = [c for c in ordered if c.good and not is_future(c, now)]
    newest_good = good[0] if good else None
    selected = _selections(good, rules)
    max_age = datetime.timedelta(days=rules.max_age_days) if rules.max_age_days is not None else None
    kept, removed = [], []
    for candidate in ordered:
        if is_future(candidate, now):
            decision = Decision(candidate.name, True, FUTURE_DATED, "dated %s, %s after now: a clock was wrong when "
                                "it was made or is wrong now; kept, and it counts for retention only once its time "
                                "has come" % (candidate.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                              _duration(candidate.time - now)), candidate)
        elif candidate.good:
            decision = _decide_good(candidate, selected[candidate.name], rules, max_age, now)
        else:
            decision = _decide_bad(candidate, newest_good, now)
        (kept if decision.keep else removed).append(decision)
    for name in sorted(orphan_manifests):
        removed.append(Decision(name, False, "orphan_manifest", "a manifest whose backup is gone", what="manifest"))
    for name in sorted(orphan_globals):
        removed.append(Decision(name, False, "orphan_globals", "role definitions whose backup is gone",
                                what="globals"))
    for name in sorted(stale_partials):
        removed.append(Decision(name, False, "stale_partial", "a temporary of an interrupted writer that no longer "
                                "runs", what="partial"))
    return Plan(kept, removed)


def hold_back(plan, holds):
    """``plan`` with the removals the storage still refuses kept instead, whole.

    ``holds`` maps the name of a removed decision to the locks of its objects the storage still
    retains, a list of (object name, lock), each lock a dict with ``mode``, ``retain_until`` (an
    aware datetime or None) and ``legal_hold``. A decision with any such object is kept with the
    rule ``object_lock`` (its ``rules`` name the rule that would have removed it): none of its
    objects is removed, so a copy is never left in part. Other decisions are unchanged.
    """
    held = [d for d in plan.removed if holds.get(d.name)]
    if not held:
        return plan
    kept = list(plan.kept)
    for decision in held:
        kept.append(Decision(decision.name, True, OBJECT_LOCK, "%s - but the storage retains %s: kept until then"
                             % (decision.reason, describe_holds(holds[decision.name])), decision.candidate,
                             what=decision.what, rules=[OBJECT_LOCK, decision.rule]))
    # Backups newest first (as plan orders them), then the leftovers by name.
    backups = sorted([d for d in kept if d.candidate is not None], key=lambda d: (d.candidate.time, d.name), reverse=True)
    others = sorted([d for d in kept if d.candidate is None], key=lambda d: d.name)
    return Plan(backups + others, [d for d in plan.removed if not holds.get(d.name)])


def utc_text(moment):
    """An aware datetime as results show times, ``2026-11-24T08:00:01Z``; None stays None."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else None


def held_until(locks):
    """The last retain-until date among ``locks`` (what holds_back takes), or None when none has one."""
    dates = [lock["retain_until"] for _name, lock in locks if lock.get("retain_until") is not None]
    return max(dates) if dates else None


def describe_holds(locks):
    """The locks of a backup's objects in words: until when, in which mode, and legal holds."""
    until = held_until(locks)
    modes = sorted(set(lock["mode"] for _name, lock in locks if lock.get("mode")))
    parts = []
    if until is not None:
        parts.append("%s under Object Lock (%s) until %s" % (
            ", ".join(name for name, lock in locks if lock.get("retain_until") is not None),
            "/".join(modes) or "retention", utc_text(until)))
    held = [name for name, lock in locks if lock.get("legal_hold")]
    if held:
        parts.append("a legal hold on %s" % ", ".join(held))
    return " and ".join(parts)


def _duration(delta):
    seconds = int(delta.total_seconds())
    if seconds >= 2 * 86400:
        return "%d days" % (seconds // 86400)
    if seconds >= 2 * 3600:
        return "%d hours" % (seconds // 3600)
    return "%d minutes" % (seconds // 60)


def _decide_good(candidate, selections, rules, max_age, now):
    names = [rule for rule, _reason in selections]
    if "keep_last" in names or "newest_good" in names:
        return Decision(candidate.name, True, names[0], selections[0][1], candidate, rules=names)
    age = now - candidate.time
    if max_age is not None and age > max_age:
        return Decision(candidate.name, False, "max_age_days", "older than %d days" % rules.max_age_days, candidate)
    if rules.calendar:
        if selections:
            return Decision(candidate.name, True, names[0], selections[0][1], candidate, rules=names)
        return Decision(candidate.name, False, "not_selected", "no keep rule selects it", candidate)
    if max_age is not None:
        return Decision(candidate.name, True, "within_max_age", "younger than %d days" % rules.max_age_days,
                        candidate)
    return Decision(candidate.name, False, "not_selected", "beyond the %d newest good backups" % rules.keep_last,
                    candidate)


def _decide_bad(candidate, newest_good, now):
    if candidate.problem == ZERO_BYTES:
        if candidate.mtime is not None and now - candidate.mtime < ZERO_BYTE_GRACE:
            return Decision(candidate.name, True, "zero_bytes_recent", "empty but modified in the last hour: another "
                            "process may still be writing it", candidate)
        return Decision(candidate.name, False, ZERO_BYTES, "an empty backup file", candidate)
    if newest_good is not None and (newest_good.time, newest_good.name) > (candidate.time, candidate.name):
        return Decision(candidate.name, False, candidate.problem, "%s; a newer good backup exists" % candidate.detail,
                        candidate)
    return Decision(candidate.name, True, "no_newer_good_backup", "%s; kept while no newer good backup exists"
                    % candidate.detail, candidate)
