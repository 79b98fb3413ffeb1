# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Copies of a backup between two storages (the local directory and an off-site target, either
way), checked end to end, the manifest last; which backups a target holds, and which one
``latest`` is there.

A copy streams the backup, then its role definitions, hashing what passes; each file is published
by the destination's driver only complete (storage/), and only when what passed hashes to what the
manifest records, so a damaged source never becomes a copy. The manifest goes last: a copy without
its manifest never counts as a good backup (retention/candidates.py). A copy whose manifest already
records the same sha256, beside a file of that size, is left alone (idempotent); one that differs
(a key rotation re-encrypted the backup) has its manifest removed first, so that in between it
counts as incomplete, never as good. ``pull`` is the one way a copy comes back from a target: the
offsite module's pull and the restore and verify modules' remote source (offsite/source.py) use it.
Pure Python.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import hashlib

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import manifest as manifest_mod
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact.naming import manifest_name
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.process import CHUNK
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.retention import apply as retention_apply
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.retention import policy as retention_policy
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.base import FILE, StorageError

COPIED = "copied"          # the destination had no copy
REPLACED = "replaced"      # the destination had a different copy (a rotated key, say)
UNCHANGED = "unchanged"    # the destination has this copy already
LATEST = "latest"          # a name that means the newest good copy


class TransferError(Exception):
    pass


class MismatchError(TransferError):
    """A file of the source does not hash to (or is not the size of) what its manifest records."""


def listing(store, database):
    """The backups of ``database`` in ``store``, newest first, as dicts (name, time, good, problem,
    detail, size_bytes, sha256, encryption, future), judged as backup_info judges a directory; and
    the newest good one's name (never one dated in the future), or None."""
    _scanned, candidates, _left_out, _ids = retention_apply.examine(store, database, verify_checksums=False)
    now = datetime.datetime.now(datetime.timezone.utc)
    backups = []
    for c in candidates:
        manifest = c.manifest or {}
        backups.append(dict(name=c.name, time=c.time.isoformat() if c.time else None, good=c.good,
                            problem=c.problem, detail=c.detail, size_bytes=manifest.get("size_bytes"),
                            sha256=manifest.get("sha256"), encryption=manifest.get("encryption", "none"),
                            future=bool(c.time and retention_policy.is_future(c, now))))
    # A copy dated in the future (a wrong clock, or a planted one) is never the newest good one.
    newest = next((b["name"] for b in backups if b["good"] and not b["future"]), None)
    return backups, newest


def resolve(store, name, database, where=None):
    """``name``, or for ``latest`` the newest good copy of ``database`` in ``store`` (``where``
    names the store in the error when there is none)."""
    if name != LATEST:
        return name
    newest = listing(store, database)[1]
    if newest is None:
        raise TransferError("%s holds no good copy of %s" % (where or store.location, database))
    return newest


def _manifest_or_none(store, name):
    """The validated manifest of backup ``name`` in ``store``, or None when there is none; a
    manifest that is there but broken is an error."""
    entry = store.stat(manifest_name(name))
    if entry is None:
        return None
    if entry.kind != FILE:
        raise TransferError("%s in %s is a %s, not a manifest" % (manifest_name(name), store.location, entry.kind))
    try:
        return store.read_manifest(manifest_name(name))
    except ValueError as exc:
        raise TransferError("the manifest of %s in %s is not valid: %s" % (name, store.location, exc))


def files_of(manifest):
    """(name, sha256, size) of each file of a backup, in the order they are copied: the backup,
    its role definitions; the manifest is written after them."""
    files = [(manifest["backup_name"], manifest["sha256"], manifest["size_bytes"])]
    if manifest.get("globals"):
        files.append((manifest["globals"]["name"], manifest["globals"]["sha256"], manifest["globals"]["size_bytes"]))
    return files


def source_manifest(source, name):
    """The manifest of the backup ``name`` in ``source``: required, valid, and about that name."""
    manifest = _manifest_or_none(source, name)
    if manifest is None:
        raise TransferError("%s in %s has no manifest: only backups with a manifest are copied (it records the "
                            "sha256 the copy is checked against)" % (name, source.location))
    if manifest["backup_name"] != name:
        raise TransferError("the manifest of %s in %s describes %s" % (name, source.location, manifest["backup_name"]))
    if manifest["format"] == "directory":
        raise TransferError("%s is a directory-format backup: copies are made of single-file backups (plain or "
                            "custom format)" % name)
    return manifest


def plan(source, destination, name, level="checksum"):
    """(action, manifest) for copying ``name`` from ``source`` to ``destination``, writing nothing.
    The destination's copy counts as this one when its manifest is the source's (a manifest that
    records another size, role definitions or database is a different copy, even beside the same
    files) and each file has the size (``level`` ``manifest``) or also the sha256 (``checksum``:
    re-read) recorded."""
    manifest = source_manifest(source, name)
    there = _manifest_or_none(destination, name)
    if there is None:
        return COPIED, manifest
    if there == manifest and all(_same_file(destination, f, level) for f in files_of(manifest)):
        return UNCHANGED, manifest
    return REPLACED, manifest


def _same_file(store, wanted, level):
    name, sha256, size = wanted
    entry = store.stat(name)
    if entry is None or entry.kind != FILE or entry.size != size:
        return False
    return level != "checksum" or store.digest(name) == sha256


def copy(source, destination, name, check_mode=False, replace=True, level="checksum"):
    """Copy the backup ``name`` with its role definitions and manifest: (action, manifest). A
    different copy at the destination is replaced (``replace``) or refused."""
    action, manifest = plan(source, destination, name, level)
    if action == REPLACED and not replace:
        raise TransferError("%s in %s differs from the copy in %s (another manifest, or other files): left as it is"
                            % (name, destination.location, source.location))
    if action == UNCHANGED:
        return action, manifest
    _check_source(source, manifest)
    if check_mode:
        return action, manifest
    if action == REPLACED:
        _remove_copy(destination, name, manifest)
    published = []
    try:
        for wanted in files_of(manifest):
            if action == COPIED and _leftover(destination, wanted, replace):
                continue  # an interrupted copy published it already, whole
            _copy_file(source, destination, wanted)
            published.append(wanted[0])
    except MismatchError:
        # The source does not match its manifest: what this run published of it goes too (an
        # interruption, by contrast, leaves it for the next run to take up).
        _withdraw(destination, published)
        raise
    raw = manifest_mod.dumps(manifest)
    try:
        destination.write(manifest_name(name), raw, replace=True)
    except (OSError, StorageError) as exc:
        raise TransferError("cannot write the manifest of %s to %s: %s" % (name, destination.location, exc))
    return action, manifest


def pull(remote, destination, name, check_mode=False, level="checksum"):
    """Bring the backup ``name`` from ``remote`` into ``destination`` (a local directory's
    storage, made private when missing): each file published only when it hashes to the remote
    manifest, the manifest last. A local copy that passes ``level`` is left alone; a different
    local backup of that name is never replaced. Returns (action, manifest); in check mode nothing
    is written."""
    if not check_mode:
        destination.ensure()
    return copy(remote, destination, name, check_mode=check_mode, replace=False, level=level)


def _check_source(source, manifest):
    """Every file the manifest lists is in ``source``: a copy that lacks one is refused before
    anything is written (a size or content that differs is found while streaming)."""
    for name, _sha256, size in files_of(manifest):
        entry = source.stat(name)
        if entry is None or entry.kind != FILE:
            raise MismatchError("%s in %s is %s, its manifest records a file of %d bytes: the copy is incomplete; "
                                "nothing was copied" % (name, source.location, "missing" if entry is None
                                                        else "a %s" % entry.kind, size))


def _withdraw(store, names):
    """Best effort: remove ``names``, just published by this run, from ``store``."""
    try:
        with store:
            _entries, identities = store.entries()
            for name in names:
                if name in identities:
                    store.remove(name, identities[name])
    except (OSError, StorageError):
        pass


def _remove_copy(store, name, manifest):
    """The destination's different copy, manifest first: in between it is incomplete, never good."""
    with store:
        _entries, identities = store.entries()
        for target in [manifest_name(name)] + [f[0] for f in files_of(manifest)]:
            if target in identities:
                try:
                    store.remove(target, identities[target])
                except (OSError, StorageError) as exc:
                    raise TransferError("cannot remove the previous copy's %s from %s: %s"
                                        % (target, store.location, exc))


def _leftover(store, wanted, replace):
    """A file of a copy that was interrupted before its manifest (the manifest goes last): True when
    it is there and hashes to the manifest (nothing to copy); when it differs, it is removed
    (``replace``) or the copy is refused. False when it is not there."""
    name = wanted[0]
    entry = store.stat(name)
    if entry is None:
        return False
    if _same_file(store, wanted, "checksum"):
        return True
    if not replace:
        raise TransferError("%s is already in %s, without a manifest and with other content: left as it is (remove "
                            "it, or pull into another directory)" % (name, store.location))
    with store:
        _entries, identities = store.entries()
        if name in identities:
            store.remove(name, identities[name])
    return False


def _copy_file(source, destination, wanted):
    """Stream one file; the destination publishes it only when it hashes to the manifest's sha256."""
    name, sha256, size = wanted
    digest, copied = hashlib.sha256(), 0
    try:
        with source.open_read(name) as reader, destination.create(name, sha256=sha256) as writer:
            while True:
                # Never more than the manifest's size (and one byte to notice more): a source that
                # sends without end cannot fill the destination's disk.
                chunk = reader.read(min(CHUNK, size - copied + 1))
                if not chunk:
                    break
                digest.update(chunk)
                copied += len(chunk)
                if copied > size:
                    break
                writer.write(chunk)
            if (digest.hexdigest(), copied) != (sha256, size):
                raise MismatchError(
                    "%s in %s does not match its manifest (sha256 %s, %d bytes; the manifest records %s, %d bytes): "
                    "damaged or replaced; nothing of it was written to %s"
                    % (name, source.location, digest.hexdigest(), copied, sha256, size, destination.location))
            writer.commit()
    except (OSError, StorageError) as exc:
        raise TransferError("cannot copy %s from %s to %s: %s" % (name, source.location, destination.location, exc))


def check_copy(store, name, level="checksum"):
    """The checks of the copy ``name`` in ``store``: each a (name, passed, detail). ``level``
    ``manifest`` compares sizes with the manifest; ``checksum`` also re-reads and hashes every file."""
    checks = []
    try:
        manifest = source_manifest(store, name)
    except TransferError as exc:
        return [("manifest", False, str(exc))]
    checks.append(("manifest", True, "written %s" % manifest["finished_at"]))
    for wanted in files_of(manifest):
        file_name, sha256, size = wanted
        entry = store.stat(file_name)
        if entry is None or entry.kind != FILE:
            checks.append((file_name, False, "missing" if entry is None else "a %s, not a file" % entry.kind))
            continue
        if entry.size != size:
            checks.append((file_name, False, "%d bytes, the manifest records %d (truncated or replaced?)"
                           % (entry.size, size)))
            continue
        if level != "checksum":
            checks.append((file_name, True, "%d bytes as the manifest records" % size))
            continue
        found = store.digest(file_name)
        checks.append((file_name, found == sha256, "sha256 %s%s" % (
            found, " matches the manifest" if found == sha256 else ", the manifest records %s" % sha256)))
    return checks
