# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What retention judges: the backups of a directory listing, each a Candidate, good or not and why.

Pure Python: no I/O, no Ansible. The callers list the location and read manifests and hash
backups (through the callables they pass to ``inspect``); policy.py then decides. The rules are
documented in docs/retention.md.

1. ``scan`` sorts directory entries (storage.base.Entry) into backups (with their manifest entry),
   orphan manifests and skipped entries; names that are not backups of the prefix are not
   returned at all.
2. ``inspect`` turns each backup into a ``Candidate``: good or not (and the problem), legacy or
   not, its time.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact.manifest import file_versions
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact.naming import (
    GLOBALS_SUFFIX, MANIFEST_SUFFIX, globals_name, manifest_name, parse_backup_name, safe_component)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.base import DIRECTORY, FILE


# Problems of a backup that is not good.
ZERO_BYTES = "zero_bytes"
NO_MANIFEST = "no_manifest"
INVALID_MANIFEST = "invalid_manifest"
SIZE_MISMATCH = "size_mismatch"
CHECKSUM_MISMATCH = "checksum_mismatch"

UTC = datetime.timezone.utc


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
    if safe_component(manifest.get("database") or "") != parsed.prefix:
        # The name says whose backup it is (retention reads <database>_backup_... names only).
        error = "the manifest is of database %s, the name of %s" % (manifest.get("database"), parsed.prefix)
        return _bad(entry, when, INVALID_MANIFEST, error, common, manifest=manifest, manifest_error=error)
    started = parse_utc(manifest.get("started_at"))
    if started is None:
        error = "the manifest's started_at is not a UTC ISO 8601 time"
        return _bad(entry, when, INVALID_MANIFEST, error, common, manifest=manifest, manifest_error=error)
    extra = dict(manifest=manifest, manifest_valid=True)
    if entry.size == 0:
        return Candidate(entry.name, started, False, ZERO_BYTES, detail="empty", **dict(common, **extra))
    if entry.size not in [size for _sha, size in file_versions(manifest)]:
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
                candidate.mark_checksum(digest(candidate.name) in [sha for sha, _size in file_versions(candidate.manifest)])
            except (OSError, ValueError) as exc:
                candidate.mark_checksum(False, "it cannot be read: %s" % exc)
        candidates.append(candidate)
    return newest_first(candidates), left_out


def newest_first(candidates):
    return sorted(candidates, key=lambda c: (c.time, c.name), reverse=True)
