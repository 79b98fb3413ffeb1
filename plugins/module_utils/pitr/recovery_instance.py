# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The recovered copy beside the running cluster: restored, configured, recorded, discarded.

``restore`` (as the postgres OS user) checks the target against the repository, restores the
backup into the copy's own data directory with pgBackRest, writes the temporary cluster's
configuration (recovery_layout.py) and a record of the recovery (target, backup set, the
repository's WAL as it was, where this run's log starts) that the later steps read. It never
touches the running cluster's data directory: the copy's paths are refused when they overlap it.
``discard`` removes a copy that is not running. No Ansible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shutil
import subprocess
import time

from ansible_collections.lift_simulator.postgresql.plugins.module_utils import process
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import info as pitr_info
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import info_query
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import recovery_layout as layouts
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import recovery_repository as repo
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import recovery_target as targets
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import recovery_wal as wal
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.atomic_files import (
    fsync_dir, write_file_atomic)


class RecoveryError(Exception):
    """A recovery step refused or failed; the message says why and what to do."""


def clusters():
    """Debian's clusters as pg_lsclusters lists them: {(version, name): {port, status, owner,
    data_dir}}; {} when postgresql-common is not installed."""
    try:
        proc = process.spawn(["pg_lsclusters", "--no-header"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    except OSError:
        return {}
    out, _err = proc.communicate(timeout=60)
    found = {}
    for line in out.decode("utf-8", "replace").splitlines():
        parts = line.split()
        if len(parts) >= 6:
            found[(parts[0], parts[1])] = {"port": parts[2], "status": parts[3], "owner": parts[4],
                                           "data_dir": parts[5]}
    return found


def running_cluster_checks(layout):
    """The running cluster must be Debian's (<version>, <cluster>) with its data directory where
    Debian puts it, which the copy's paths stay clear of."""
    if not os.path.isfile(os.path.join(layout.main_conf, "postgresql.conf")):
        raise RecoveryError(
            "there is no PostgreSQL %s cluster %s on this host (%s/postgresql.conf is missing): install "
            "PostgreSQL %s first (role lift_simulator.postgresql.server; on a new machine the playbook does it with "
            "pitr_restore_mode=new_machine)" % (layout.version, layout.cluster, layout.main_conf, layout.version))
    found = clusters().get((layout.version, layout.cluster))
    if found and os.path.normpath(found["data_dir"]) != layout.main_data:
        raise RecoveryError(
            "the data directory of %s/%s is %s, not Debian's %s: this recovery works in Debian's layout only"
            % (layout.version, layout.cluster, found["data_dir"], layout.main_data))
    for path in (layout.copy_data, layout.copy_tablespaces, layout.copy_conf):
        for other in (layout.main_data, layout.main_conf):
            if layouts.overlaps(path, other):
                raise RecoveryError("%s overlaps the running cluster's %s: refused" % (path, other))
    return found


def read_repository(stanza, config=None):
    """The stanza's entry of ``pgbackrest info``; RecoveryError, in pgBackRest's words, when the
    repository cannot be read or the stanza is not usable."""
    try:
        entry = info_query.read_entry(stanza, config)
    except info_query.QueryError as exc:
        raise RecoveryError("cannot read the repository: %s" % exc)
    code, message = pitr_info.status_of(entry)
    if code not in (pitr_info.STATUS_OK, pitr_info.STATUS_NO_BACKUP):
        raise RecoveryError("the repository's stanza %s cannot be recovered from: pgBackRest says %r (status %s)" % (
            stanza, message, code))
    return entry


def copy_exists(layout):
    """Whether anything of a copy is there (a data directory with content, or its configuration)."""
    data = os.path.isdir(layout.copy_data) and bool(os.listdir(layout.copy_data))
    return data or os.path.lexists(layout.copy_conf) or os.path.lexists(layout.copy_tablespaces)


def copy_running(layout):
    """The copy's postmaster pid when it runs (its postmaster.pid names a live process), else None."""
    try:
        with open(os.path.join(layout.copy_data, "postmaster.pid")) as handle:
            pid = int(handle.readline().strip() or "0")
    except (OSError, ValueError):
        return None
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def read_record(layout):
    """The record the restore step wrote, or None."""
    try:
        with open(layout.record) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def log_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _copy_from_main(layout, name):
    """Debian's per-cluster files that the copy takes over from the running cluster as they are."""
    source = os.path.join(layout.main_conf, name)
    if os.path.isfile(source) and not os.path.islink(source):
        with open(source, "rb") as handle:
            write_file_atomic(layout.copy_conf, name, handle.read(), mode=0o644, replace=True)


def restore(layout, stanza, target, port, config=None, backup_set=None, listen_addresses="localhost",
            timeout=None, now=None):
    """Restore the copy. Returns the record (also written to the copy's configuration directory)."""
    running_cluster_checks(layout)
    if copy_exists(layout):
        raise RecoveryError(
            "a recovery is already waiting beside %s/%s (%s, %s): put it in service (pitr_restore_switch_only=true) "
            "or discard it first (pitr_restore_discard=true)" % (
                layout.version, layout.cluster, layout.copy_data, layout.copy_conf))
    entry = read_repository(stanza, config)
    backups = pitr_info.current_backups(entry)
    try:
        earliest, earliest_label = targets.check_in_range(target, backups, backup_set)
    except targets.TargetError as exc:
        raise RecoveryError(str(exc))
    archive_id = pitr_info.current_archive_id(entry)
    archive = wal.parse_listing(repo.archive_listing(stanza, config), archive_id) if archive_id else wal.Archive(None)
    newest_backup = max(backups, key=lambda b: b["timestamp"]["stop"]) if backups else None

    os.makedirs(layout.copy_data, 0o700, exist_ok=True)
    os.chmod(layout.copy_data, 0o700)
    started = time.time() if now is None else now
    argv = targets.restore_argv(stanza, layout.copy_data, target, layout.copy_tablespaces, backup_set, config)
    try:
        used_set, starts_at, restore_s, warnings = repo.restore(argv, timeout)
    except repo.RepositoryError as exc:
        _remove_tree(layout.copy_data)
        _remove_tree(layout.copy_tablespaces)
        raise RecoveryError("%s; nothing of it is left beside, the running cluster was not touched" % exc)

    os.makedirs(layout.copy_conf, 0o755, exist_ok=True)
    write_file_atomic(layout.copy_conf, "postgresql.conf", layouts.copy_config(layout, port, listen_addresses),
                      mode=0o644, replace=True)
    write_file_atomic(layout.copy_conf, "start.conf", layouts.start_conf(), mode=0o644, replace=True)
    for name in ("pg_ctl.conf", "environment"):
        _copy_from_main(layout, name)
    record = {
        "stanza": stanza,
        "config": config,
        "layout": layout.to_dict(),
        "port": int(port),
        "target": target.to_dict(),
        "backup_set": used_set,
        "backup_set_requested": backup_set,
        "recovery_starts_at": starts_at,
        "restored_at": targets.format_epoch(started),
        "restored_epoch": started,
        "restore_s": round(restore_s, 3),
        "earliest_recoverable": targets.format_epoch(earliest),
        "earliest_backup": earliest_label,
        "newest_backup": newest_backup.get("label") if newest_backup else None,
        "archive": archive.to_dict(),
        "newest_wal": archive.newest(),
        "log": layout.log_file(layout.copy),
        "log_offset": log_size(layout.log_file(layout.copy)),
        "pgbackrest_warnings": warnings,
    }
    write_file_atomic(layout.copy_conf, layouts.RECORD, json.dumps(record, indent=2, sort_keys=True) + "\n",
                      mode=0o640, replace=True)
    fsync_dir(os.path.dirname(layout.copy_conf))
    return record


def _remove_tree(path):
    if os.path.islink(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


def stop_copy(layout, timeout=300):
    """Stop the copy if it runs (``pg_ctl stop -m fast``, as its owner). Returns True when it ran."""
    if not copy_running(layout):
        return False
    argv = [os.path.join("/usr/lib/postgresql", layout.version, "bin", "pg_ctl"), "stop", "-D", layout.copy_data,
            "-m", "fast", "-w", "-t", str(int(timeout))]
    try:
        proc = process.spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        raise RecoveryError("cannot stop the recovered copy: %s: %s" % (argv[0], exc.strerror))
    out, err = proc.communicate(timeout=timeout + 30)
    if proc.returncode != 0 and copy_running(layout):
        raise RecoveryError("cannot stop the recovered copy %s/%s: %s" % (
            layout.version, layout.copy, (err or out).decode("utf-8", "replace").strip()))
    return True


def discard(layout):
    """Stop the copy if it runs, and remove it: its data, tablespaces and configuration. Returns
    what was removed."""
    stop_copy(layout)
    pid = copy_running(layout)
    if pid:
        raise RecoveryError("the recovered copy %s/%s still runs (pid %d): stop %s first" % (
            layout.version, layout.copy, pid, layout.unit(layout.copy)))
    removed = []
    for path in (layout.copy_data, layout.copy_tablespaces):
        if os.path.lexists(path):
            _remove_tree(path)
            removed.append(path)
    if os.path.lexists(layout.copy_conf):
        if os.path.islink(layout.copy_conf):
            os.unlink(layout.copy_conf)
        else:
            for name in os.listdir(layout.copy_conf):
                if name not in layouts.CONFIG_FILES:
                    raise RecoveryError("%s holds %s, which this collection did not write: remove the directory by hand"
                                        % (layout.copy_conf, name))
            for name in layouts.CONFIG_FILES:
                path = os.path.join(layout.copy_conf, name)
                if os.path.lexists(path):
                    os.unlink(path)
            os.rmdir(layout.copy_conf)
        removed.append(layout.copy_conf)
    return removed
