# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sidecar manifest ``<backup>.manifest.json`` that describes one backup.

Format version 1 (documented in docs/manifest.md). Pure Python.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact.naming import MANIFEST_SUFFIX, manifest_name

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
    sha = manifest["sha256"]
    if len(sha) != 64 or any(ch not in "0123456789abcdef" for ch in sha):
        raise ManifestError("the manifest's sha256 is not 64 lowercase hex digits")
    if manifest["size_bytes"] < 0:
        raise ManifestError("the manifest's size_bytes is negative")
    for table, count in manifest["row_counts"].items():
        if not isinstance(table, str) or not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ManifestError("the manifest's row count for %r is not a non-negative integer" % (table,))
    return manifest


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
