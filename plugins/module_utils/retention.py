# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retention: which backups of a directory to keep, which to remove, and why.

Pure Python: no I/O, no Ansible. The ``prune`` and ``backup_info`` modules list the directory,
read manifests and hash backups (through the callables they pass to ``inspect``); this file only
decides. The rules are documented in docs/retention.md.

1. ``scan`` sorts directory entries into backups (with their manifest entry), orphan manifests and
   skipped entries; names that are not backups of the prefix are not returned at all.
2. ``inspect`` turns each backup into a ``Candidate``: good or not (and the problem), legacy or
   not, its time.
3. ``plan`` applies the rules at a given ``now`` and returns the decisions.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.naming import (
    GLOBALS_SUFFIX, MANIFEST_SUFFIX, globals_name, manifest_name, parse_backup_name)

FILE = "file"
DIRECTORY = "directory"
SYMLINK = "symlink"
OTHER = "other"

# Problems of a backup that is not good.
ZERO_BYTES = "zero_bytes"
NO_MANIFEST = "no_manifest"
INVALID_MANIFEST = "invalid_manifest"
SIZE_MISMATCH = "size_mismatch"
CHECKSUM_MISMATCH = "checksum_mismatch"

# A 0-byte file modified this recently may be a dump another process is still writing
# (the earlier processes wrote with a shell redirect): it is left alone until it is older.
ZERO_BYTE_GRACE = datetime.timedelta(hours=1)
# A backup dated more than this after "now" was made (or is judged) by a wrong clock. It is kept,
# and counts for nothing (not as the newest, not for keep_last or a calendar rule) until its time
# has come, so that a clock that ran ahead once never makes retention remove today's backups.
FUTURE_TOLERANCE = datetime.timedelta(minutes=10)
FUTURE_DATED = "future_dated"

UTC = datetime.timezone.utc
_PERIODS = (
    ("keep_daily", lambda t: t.strftime("%Y-%m-%d"), "day"),
    ("keep_weekly", lambda t: "%04d-W%02d" % t.isocalendar()[:2], "ISO week"),
    ("keep_monthly", lambda t: t.strftime("%Y-%m"), "month"),
)


class RetentionError(ValueError):
    pass


class Entry(object):
    """One directory entry as the caller saw it (lstat, never following symlinks).

    ``size`` is the file's size, or the sum of the regular files below a directory; ``mtime`` an
    aware datetime.
    """

    def __init__(self, name, kind, size=0, mtime=None):
        self.name = name
        self.kind = kind
        self.size = size
        self.mtime = mtime


class Scanned(object):
    """A backup-named file or folder of the prefix, its manifest entry and its globals entry (the
    role definitions taken with it), each or None."""

    def __init__(self, entry, parsed, manifest_entry, globals_entry=None):
        self.entry = entry
        self.parsed = parsed
        self.manifest_entry = manifest_entry
        self.globals_entry = globals_entry

    @property
    def legacy_name(self):
        """Names the earlier processes wrote: ``.backup``, and ``.sql`` when it has no manifest."""
        return self.parsed.legacy or (self.parsed.suffix == ".sql" and self.manifest_entry is None)


class Scan(object):
    def __init__(self):
        self.backups = []
        self.orphan_manifests = []
        self.orphan_globals = []
        self.skipped = []


def scan(entries, prefix):
    """Sort ``entries`` (a list of Entry) for the backups named ``<prefix>_backup_...``.

    Symlinks and entries that are neither files nor folders are skipped (never followed, never
    removed); manifests and globals files whose backup does not exist are orphans. Anything else
    is foreign and left out of the result.
    """
    by_name = dict((e.name, e) for e in entries)
    result = Scan()
    for entry in sorted(entries, key=lambda e: e.name):
        companion = _companion(entry.name)
        if companion is not None:
            base, what, orphans = companion[0], companion[1], getattr(result, companion[2])
            parsed = parse_backup_name(base)
            if parsed is None or parsed.prefix != prefix or base in by_name:
                continue  # foreign, or read with its backup
            if entry.kind != FILE:
                result.skipped.append((entry, "a %s name on a %s: never followed or removed" % (what, entry.kind)))
            else:
                orphans.append(entry)
            continue
        parsed = parse_backup_name(entry.name)
        if parsed is None or parsed.prefix != prefix:
            continue
        if entry.kind not in (FILE, DIRECTORY):
            result.skipped.append((entry, "a backup name on a %s: never followed or removed" % entry.kind))
            continue
        result.backups.append(Scanned(entry, parsed, by_name.get(manifest_name(entry.name)),
                                      by_name.get(globals_name(entry.name))))
    return result


def _companion(name):
    """(backup name, what, orphan list) for a manifest or globals name, else None."""
    if name.endswith(MANIFEST_SUFFIX):
        return name[:-len(MANIFEST_SUFFIX)], "manifest", "orphan_manifests"
    if name.endswith(GLOBALS_SUFFIX):
        return name[:-len(GLOBALS_SUFFIX)], "globals", "orphan_globals"
    return None


def belongs_to(name, prefix):
    """True when ``name`` is a backup name of ``prefix``, or the manifest name of one (used for
    the final names of partial temporaries)."""
    if not name:
        return False
    companion = _companion(name)
    if companion is not None:
        name = companion[0]
    parsed = parse_backup_name(name)
    return parsed is not None and parsed.prefix == prefix


class Candidate(object):
    """A backup as retention sees it."""

    def __init__(self, name, time, good, problem=None, legacy=False, size=0, mtime=None, manifest=None,
                 manifest_name=None, manifest_exists=False, manifest_valid=False, manifest_error=None,
                 checksum_ok=None, kind=FILE, detail=None, globals_name=None):
        self.name = name
        self.time = time
        self.good = good
        self.problem = problem
        self.legacy = legacy
        self.size = size
        self.mtime = mtime
        self.manifest = manifest
        self.manifest_name = manifest_name
        self.globals_name = globals_name
        self.manifest_exists = manifest_exists
        self.manifest_valid = manifest_valid
        self.manifest_error = manifest_error
        self.checksum_ok = checksum_ok
        self.kind = kind
        self.detail = detail

    def mark_checksum(self, ok, detail="the sha256 no longer matches the manifest"):
        """Record the result of hashing a good backup against its manifest."""
        self.checksum_ok = ok
        if not ok:
            self.good = False
            self.problem = CHECKSUM_MISMATCH
            self.detail = detail


def parse_utc(text):
    """A manifest time (``2026-11-24T08:00:01.123456Z``) as an aware datetime, or None."""
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except (TypeError, ValueError):
            continue
    return None


def describe(scanned, include_legacy, manifest=None, manifest_error=None, legacy_tz=None):
    """The Candidate for a scanned backup, or None for an earlier process's backup while
    ``include_legacy`` is false.

    ``manifest`` is the loaded, validated manifest; ``manifest_error`` why it could not be used
    (both None when there is no manifest entry).
    """
    entry, parsed = scanned.entry, scanned.parsed
    mentry = scanned.manifest_entry
    # A manifest goes with its backup, unless it is a symlink or a folder: those are never removed.
    mname = mentry.name if mentry is not None and mentry.kind == FILE else None
    gentry = scanned.globals_entry
    common = dict(size=entry.size, mtime=entry.mtime, kind=entry.kind, manifest_name=mname,
                  globals_name=gentry.name if gentry is not None and gentry.kind == FILE else None,
                  manifest_exists=mentry is not None)
    if scanned.legacy_name:
        if not include_legacy:
            return None
        when = _legacy_name_time(parsed, legacy_tz)
        if entry.size == 0:
            return Candidate(entry.name, when, False, ZERO_BYTES, legacy=True, detail="empty", **common)
        return Candidate(entry.name, when, True, legacy=True, **common)
    when = parsed.timestamp.replace(tzinfo=UTC)  # this collection names backups in UTC
    if mentry is None:
        return _bad(entry, when, NO_MANIFEST, "no manifest", common)
    if manifest is None or manifest_error:
        error = manifest_error or "the manifest is unreadable"
        return _bad(entry, when, INVALID_MANIFEST, error, common, manifest_error=error)
    if manifest.get("backup_name") != entry.name:
        error = "the manifest names another backup (%s)" % manifest.get("backup_name")
        return _bad(entry, when, INVALID_MANIFEST, error, common, manifest=manifest, manifest_error=error)
    started = parse_utc(manifest.get("started_at"))
    if started is None:
        error = "the manifest's started_at is not a UTC ISO 8601 time"
        return _bad(entry, when, INVALID_MANIFEST, error, common, manifest=manifest, manifest_error=error)
    extra = dict(manifest=manifest, manifest_valid=True)
    if entry.size == 0:
        return Candidate(entry.name, started, False, ZERO_BYTES, detail="empty", **dict(common, **extra))
    if entry.size != manifest["size_bytes"]:
        return Candidate(entry.name, started, False, SIZE_MISMATCH,
                         detail="%d bytes on disk, %d in the manifest" % (entry.size, manifest["size_bytes"]),
                         **dict(common, **extra))
    return Candidate(entry.name, started, True, **dict(common, **extra))


def _legacy_name_time(parsed, legacy_tz):
    """The time in an earlier process's backup name, in UTC: the name is in ``legacy_tz``
    (None: the host's local time)."""
    if legacy_tz is None:
        return parsed.timestamp.astimezone(UTC)  # a naive datetime is taken as local time
    return parsed.timestamp.replace(tzinfo=legacy_tz).astimezone(UTC)


def _bad(entry, when, problem, detail, common, **extra):
    if entry.size == 0:
        problem, detail = ZERO_BYTES, "empty"
    return Candidate(entry.name, when, False, problem, detail=detail, **dict(common, **extra))


def inspect(scan_result, include_legacy, read_manifest, digest=None, legacy_tz=None):
    """Candidates for the backups of a Scan, newest first, and the legacy ones left out.

    ``read_manifest(name)`` returns the validated manifest of the manifest entry ``name`` or
    raises ValueError (ManifestError) saying why not; ``digest(name)`` returns the backup's
    sha256 as its manifest records it. Without ``digest`` checksums are not verified.
    Only good backups of this collection are hashed.
    """
    candidates, left_out = [], []
    for scanned in scan_result.backups:
        manifest = error = None
        if scanned.manifest_entry is not None and not scanned.legacy_name:
            if scanned.manifest_entry.kind != FILE:
                error = "the manifest is a %s" % scanned.manifest_entry.kind
            else:
                try:
                    manifest = read_manifest(scanned.manifest_entry.name)
                except ValueError as exc:
                    error = str(exc)
        candidate = describe(scanned, include_legacy, manifest, error, legacy_tz)
        if candidate is None:
            left_out.append(scanned)
            continue
        if digest is not None and candidate.good and not candidate.legacy:
            try:
                candidate.mark_checksum(digest(candidate.name) == candidate.manifest["sha256"])
            except (OSError, ValueError) as exc:
                candidate.mark_checksum(False, "it cannot be read: %s" % exc)
        candidates.append(candidate)
    return newest_first(candidates), left_out


def newest_first(candidates):
    return sorted(candidates, key=lambda c: (c.time, c.name), reverse=True)


class Rules(object):
    """The retention rules. ``tz`` is the time zone of the day/week/month boundaries (None: the
    host's local time)."""

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
