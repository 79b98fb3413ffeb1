# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sidecar manifest ``<backup>.manifest.json`` that describes one backup.

Format version 1 (documented in docs/manifest.md). While a key rotation (rekey/) is between its
two manifest writes, the manifest also describes the re-encrypted file (``rekey_pending``); a
reader takes the file for whichever of the two it is (``file_versions``, ``settled``). Pure Python.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact.naming import (
    GLOBALS_SUFFIX, MANIFEST_SUFFIX, manifest_name)

MANIFEST_VERSION = 1
MAX_MANIFEST_BYTES = 16 * 1024 * 1024

REQUIRED_FIELDS = {
    "manifest_version": int,
    "backup_name": str,
    "database": str,
    "format": str,
    "compression": str,
    "size_bytes": int,
    "sha256": str,
    "started_at": str,
    "finished_at": str,
    "row_counts": dict,
}


# A key rotation's re-encrypted file, recorded before it replaces the backup's file.
REKEY_PENDING = "rekey_pending"


class ManifestError(ValueError):
    pass


def utc_iso(dt):
    """ISO 8601 UTC with a Z, e.g. 2026-11-24T08:00:01.123456Z."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build_manifest(**fields):
    """A manifest dict with the format version first; callers pass the documented fields."""
    manifest = {"manifest_version": MANIFEST_VERSION}
    manifest.update(fields)
    validate_manifest(manifest)
    return manifest


def dumps(manifest):
    return (json.dumps(manifest, indent=2, sort_keys=False, ensure_ascii=False) + "\n").encode("utf-8")


def validate_manifest(manifest):
    """Raise ManifestError naming the first problem; return the manifest when it is sound."""
    if not isinstance(manifest, dict):
        raise ManifestError("the manifest is not a JSON object")
    for field, kind in REQUIRED_FIELDS.items():
        if field not in manifest:
            raise ManifestError("the manifest has no %r field" % field)
        if not isinstance(manifest[field], kind) or (kind is int and isinstance(manifest[field], bool)):
            raise ManifestError("the manifest field %r is not a %s" % (field, kind.__name__))
    if manifest["manifest_version"] > MANIFEST_VERSION:
        raise ManifestError("manifest version %s is newer than this collection understands (%s)"
                            % (manifest["manifest_version"], MANIFEST_VERSION))
    _validate_file_version(manifest, "")
    entry = manifest.get("globals")
    if entry is not None:
        # A plain role-definitions file name beside the backup (a copy renamed by hand keeps the
        # original's), never a path, a hidden name or another kind of file.
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or "/" in name or name.startswith(".") or not name.endswith(GLOBALS_SUFFIX):
            raise ManifestError("the manifest's globals entry does not name a role definitions file (*%s) beside "
                                "the backup" % GLOBALS_SUFFIX)
        _validate_file_version(entry, "globals.")
    pending = manifest.get(REKEY_PENDING)
    if pending is not None:
        if not isinstance(pending, dict) or not isinstance(pending.get("recipients"), list):
            raise ManifestError("the manifest's %s is not an object with recipients" % REKEY_PENDING)
        _validate_file_version(pending, REKEY_PENDING + ".")
    for table, count in manifest["row_counts"].items():
        if not isinstance(table, str) or not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ManifestError("the manifest's row count for %r is not a non-negative integer" % (table,))
    return manifest


def _validate_file_version(fields, where):
    sha, size = fields.get("sha256"), fields.get("size_bytes")
    if not isinstance(sha, str) or len(sha) != 64 or any(ch not in "0123456789abcdef" for ch in sha):
        raise ManifestError("the manifest's %ssha256 is not 64 lowercase hex digits" % where)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError("the manifest's %ssize_bytes is not a non-negative integer" % where)


def file_versions(manifest):
    """The (sha256, size_bytes) the backup's file may have: the manifest's own, and the re-encrypted
    file's while a key rotation is between its two manifest writes."""
    versions = [(manifest["sha256"], manifest["size_bytes"])]
    pending = manifest.get(REKEY_PENDING)
    if pending:
        versions.append((pending["sha256"], pending["size_bytes"]))
    return versions


def settled(manifest, sha256):
    """The manifest as it describes the file whose sha256 is ``sha256``: the re-encrypted file's
    sha256, size and recipients when a pending rotation's file is in place, else the manifest's
    own; the pending record is left out either way."""
    if not manifest or REKEY_PENDING not in manifest:
        return manifest
    described = dict((k, v) for k, v in manifest.items() if k != REKEY_PENDING)
    pending = manifest[REKEY_PENDING]
    if sha256 == pending["sha256"]:
        described.update(sha256=pending["sha256"], size_bytes=pending["size_bytes"],
                         recipients=pending["recipients"])
    return described


def manifest_path_of(path):
    """The manifest of ``path``: ``path`` itself when it names a manifest, else the backup's."""
    return path if path.endswith(MANIFEST_SUFFIX) else manifest_path_for(path)


def manifest_path_for(backup_path):
    backup_path = backup_path.rstrip("/")
    return os.path.join(os.path.dirname(backup_path), manifest_name(os.path.basename(backup_path)))


def load_manifest(path):
    """Read and validate a manifest file."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise ManifestError("cannot read manifest %s: %s" % (path, exc.strerror))
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError("manifest %s is larger than %d bytes" % (path, MAX_MANIFEST_BYTES))
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError("manifest %s is not valid JSON: %s" % (path, exc))
    return validate_manifest(manifest)
