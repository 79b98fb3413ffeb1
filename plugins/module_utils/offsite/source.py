# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A backup taken from an off-site target as the source of one run of the restore or verify module
(their ``target`` and ``name`` options), and what the run says about where it came from.

``remote_copy`` pulls the copy with transfer.pull (the offsite module's pull: each file checked
against the target's manifest while it streams, the manifest last) into a private directory
(0700): a new one made for the run under ``pull_dir`` (default /var/tmp) and removed afterwards,
whatever happens, or ``pull_dir`` itself when the copy is to be kept. The copy is then hashed
again on the host; a copy that fails a check is removed (a kept directory loses only what this run
put there) and is never handed on. In check mode nothing is written: the copy on the target is
re-read and checked, and an identical copy kept earlier is handed on to be read. Pure Python.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import datetime
import os
import shutil
import tempfile
import time

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact.naming import manifest_name
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.offsite import targets, transfer
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import path_trust
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.base import StorageError
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.posix import PosixStorage

# Where the run's private directory is made when no pull_dir is given: on disk (unlike /tmp,
# often a small tmpfs), and kept by the system across reboots only until its cleaner runs.
DEFAULT_PULL_BASE = "/var/tmp"
PULL_PREFIX = "lift-pull-"


class RemoteCopy(object):
    """The copy one run works on: ``path`` (None in check mode when nothing local can be read),
    and ``info``, the run's ``source`` result (the target without secrets, the name, the
    manifest's sha256, size, time and host, the copy's age, the checks, where it went)."""

    def __init__(self, path, info, warnings):
        self.path = path
        self.info = info
        self.warnings = warnings


def _age_s(started_at, now=None):
    """Seconds since the manifest's ``started_at`` (as the host's clock tells it), or None."""
    try:
        taken = datetime.datetime.strptime(started_at[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return None
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return round((now - taken).total_seconds(), 1)


def _checks(found):
    """transfer's checks as the modules report checks (app/lift_simulator.check's shape)."""
    return [dict(name=name, passed=bool(passed), skipped=False, detail=detail) for name, passed, detail in found]


def _failed(found):
    return ["%s (%s)" % (name, detail) for name, passed, detail in found if not passed]


def describe(where, kind, requested, name, manifest):
    """The ``source`` result before the copy is made: the target and the copy as its manifest
    describes it."""
    return dict(target=where, type=kind, requested=requested, name=name, sha256=manifest.get("sha256"),
                size_bytes=manifest.get("size_bytes"), format=manifest.get("format"),
                compression=manifest.get("compression"), encryption=manifest.get("encryption", "none"),
                source_host=manifest.get("host"), taken_at=manifest.get("started_at"),
                age_s=_age_s(manifest.get("started_at")), path=None, kept=False, copy=None, checks=[],
                pull_s=0.0)


def _published_by_this_run(store, manifest, before):
    """The files of the copy that were not in ``store`` before the run (the manifest first)."""
    names = [manifest_name(manifest["backup_name"])] + [f[0] for f in transfer.files_of(manifest)]
    return [n for n in names if n not in before and store.exists(n)]


def _remove(store, names):
    """Remove ``names`` from a local directory's storage (what this run published)."""
    if not names:
        return
    with store:
        _entries, identities = store.entries()
        for name in names:
            if name in identities:
                store.remove(name, identities[name])
        store.sync()


@contextlib.contextmanager
def remote_copy(settings, name, database, pull_dir=None, keep=False, check_mode=False,
                directory_checks=path_trust.STRICT, info=None):
    """The backup ``name`` (or ``latest``: the newest good copy of ``database``) of the target
    ``settings`` (targets.settings_of), pulled and checked, as a RemoteCopy for the ``with`` block.
    Raises TransferError, TargetError, StorageError or UntrustedPathError before the block when
    the copy cannot be had whole; nothing of it is left then. ``info`` (a dict, the caller's
    ``source`` result) is filled in as the copy becomes known, also when it fails."""
    where = targets.describe(settings)
    remote = targets.open_target(settings)
    started = time.monotonic()
    warnings = []
    private = None
    info = {} if info is None else info
    try:
        resolved = transfer.resolve(remote, name, database, where)
        info.update(describe(where, settings["type"], name, resolved, transfer.source_manifest(remote, resolved)))
        directory = os.path.abspath(pull_dir) if pull_dir else None
        if check_mode:
            path = _check_only(remote, resolved, info, directory if keep else None, where)
            info["pull_s"] = round(time.monotonic() - started, 3)
            yield RemoteCopy(path, info, warnings)
            return
        if keep:
            warnings.extend(path_trust.check([directory], directory_checks, "the pull directory %s" % directory))
            local = PosixStorage(directory)
        else:
            base = directory or DEFAULT_PULL_BASE
            if directory:
                warnings.extend(path_trust.check([directory], directory_checks, "the pull directory %s" % directory))
                PosixStorage(directory).ensure()
            private = tempfile.mkdtemp(prefix=PULL_PREFIX, dir=base)  # 0700, a new name
            local = PosixStorage(private)
        info.update(path=local.path(resolved), kept=bool(keep))
        _pull(remote, local, resolved, info)
        info["pull_s"] = round(time.monotonic() - started, 3)
        remote.close()
        yield RemoteCopy(local.path(resolved), info, warnings)
    finally:
        remote.close()
        if private is not None:
            shutil.rmtree(private, ignore_errors=True)


def _check_only(remote, name, info, kept_dir, where):
    """Check mode: re-read the copy on the target; the local path of an identical copy kept
    earlier in ``kept_dir`` (to be read by the run), else None."""
    found = transfer.check_copy(remote, name, "checksum")
    info["checks"] = _checks(("on the target: %s" % n, ok, d) for n, ok, d in found)
    if _failed(found):
        raise transfer.TransferError("the copy of %s in %s is not good, nothing was pulled: %s"
                                     % (name, where, "; ".join(_failed(found))))
    info["copy"] = transfer.COPIED
    if kept_dir and os.path.isdir(kept_dir):
        local = PosixStorage(kept_dir)
        if transfer.plan(remote, local, name, "checksum")[0] == transfer.UNCHANGED:
            info.update(copy=transfer.UNCHANGED, path=local.path(name), kept=True)
            return local.path(name)
    return None


def _pull(remote, local, name, info):
    """Pull into ``local``, then hash the copy again there; on any failure what this run put
    there (the files of the copy) is removed."""
    before = set(os.listdir(local.location)) if os.path.isdir(local.location) else set()
    manifest = transfer.source_manifest(remote, name)
    try:
        action, manifest = transfer.pull(remote, local, name, level="checksum")
        info["copy"] = action
        found = transfer.check_copy(local, name, "checksum")
        info["checks"] = _checks(("on the host: %s" % n, ok, d) for n, ok, d in found)
        if _failed(found):
            raise transfer.TransferError("the copy pulled to %s does not hash to its manifest on the host: %s"
                                         % (local.location, "; ".join(_failed(found))))
    except (transfer.TransferError, StorageError, OSError):
        try:
            _remove(local, _published_by_this_run(local, manifest, before))
        except (StorageError, OSError):
            pass  # the error that matters is the one being raised
        raise
