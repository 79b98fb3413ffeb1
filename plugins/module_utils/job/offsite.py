# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scheduled job's off-site copies: after every verified backup, the backup (with its role
definitions and manifest) is copied to each target of the job's targets file by the offsite
module's code (offsite/transfer.py), and what the target holds afterwards is read back.

The targets file (JSON: a list of targets, each the offsite module's ``target`` settings plus a
``name``) holds credentials: it must be the job user's own and readable by nobody else (the role
writes it 0600); it is never part of the configuration, a unit file or argv. Pure Python.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.settings import ConfigError
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.offsite import targets, transfer
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.retention import apply as retention_apply
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.retention import policy as retention_policy
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.base import StorageError
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.posix import PosixStorage

MAX_TARGETS_FILE = 1024 * 1024


class TargetCopy(object):
    """One target's part of a run: its name, where it is, whether the copy succeeded (``action``
    copied/replaced/unchanged, or ``error``), and the time of its newest good copy afterwards."""

    def __init__(self, name, location):
        self.name = name
        self.location = location
        self.action = None
        self.error = None
        self.newest_copy_time = None

    @property
    def success(self):
        return self.error is None


def read_targets(path):
    """[(name, settings)] of the targets file; ConfigError naming what is wrong (never a secret)."""
    try:
        # The file that is checked is the file that is read: opened without following a symlink.
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb") as handle:
            st = os.fstat(handle.fileno())
            if st.st_mode & 0o077:
                raise ConfigError("the off-site targets file %s can be read by others (mode %04o): it holds "
                                  "credentials; chmod 0600 it" % (path, st.st_mode & 0o7777))
            if st.st_uid != os.geteuid():
                raise ConfigError("the off-site targets file %s belongs to uid %d, not to the job's user (uid %d)"
                                  % (path, st.st_uid, os.geteuid()))
            raw = handle.read(MAX_TARGETS_FILE + 1)
    except OSError as exc:
        raise ConfigError("cannot read the off-site targets file %s: %s" % (path, exc.strerror))
    if len(raw) > MAX_TARGETS_FILE:
        raise ConfigError("the off-site targets file %s is larger than 1 MiB" % path)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError("the off-site targets file %s is not valid JSON (%s)" % (path, type(exc).__name__))
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ConfigError("the off-site targets file %s must hold a list of targets" % path)
    found, names = [], set()
    for index, item in enumerate(data):
        item = dict(item)
        name = item.pop("name", None) or "target%d" % (index + 1)
        if name in names:
            raise ConfigError("two off-site targets are called %s in %s" % (name, path))
        names.add(name)
        try:
            targets.settings_of(item)
        except targets.TargetError as exc:
            raise ConfigError("off-site target %s in %s: %s" % (name, path, exc))
        found.append((name, item))
    return found


def copy_to_targets(settings, result, log):
    """Copy the backup ``result`` (run_backup's) to every target: a list of TargetCopy."""
    copies = []
    local = PosixStorage(settings["dest_dir"])
    for name, target in read_targets(settings["offsite_targets_file"]):
        copy = TargetCopy(name, targets.describe(target))
        copies.append(copy)
        store = None
        try:
            store = targets.open_target(target)
            store.ensure()
            copy.action, _manifest = transfer.copy(local, store, result["name"], level="manifest")
            log.add("offsite %s: %s %s to %s" % (name, copy.action, result["name"], copy.location))
            _scan, candidates, _left_out, _ids = retention_apply.examine(store, settings["database"],
                                                                         verify_checksums=False)
            now = datetime.datetime.now(datetime.timezone.utc)
            newest = next((c for c in candidates if c.good and not retention_policy.is_future(c, now)), None)
            copy.newest_copy_time = newest.time if newest is not None else None
        except (transfer.TransferError, targets.TargetError, StorageError, OSError, ValueError) as exc:
            copy.error = str(exc)
            log.add("offsite %s FAILED: %s" % (name, copy.error))
        finally:
            if store is not None:
                store.close()
    return copies
