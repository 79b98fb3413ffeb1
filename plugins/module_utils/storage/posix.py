# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The local file system as backup storage (base.Storage): atomic writes with O_TMPFILE + link
(or a named temporary + rename) and fsync of file and directory (storage/atomic_files.py); listing,
removal and sizing through one open directory descriptor, never following a symlink
(storage/backup_dir.py). Pure Python.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import checksums
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import manifest as manifest_mod
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import atomic_files
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import backup_dir
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.base import Storage, StorageError, checked


class PosixStorage(Storage):
    """A backup directory. Use it as a context manager where listing and removal must see the
    same directory (prune): it holds the directory open in between."""

    def __init__(self, directory):
        self.location = directory
        self._fd = None

    def path(self, name):
        """The local path of ``name`` (the programs that read backups, pg_restore and psql, take paths)."""
        return os.path.join(self.location, name)

    def __enter__(self):
        try:
            self._fd = os.open(self.location, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise StorageError(exc.errno, "cannot open %s: %s" % (self.location, exc.strerror))
        return self

    def __exit__(self, exc_type, exc, tb):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def ensure(self):
        try:
            return atomic_files.ensure_private_dir(self.location)
        except atomic_files.AtomicFileError as exc:
            raise StorageError(exc.errno, exc.strerror)

    def exists(self, name):
        return os.path.lexists(self.path(name))

    def create(self, name, mode=0o600, sha256=None):
        return checked(atomic_files.AtomicFile(self.location, name, mode=mode), sha256)

    def write(self, name, data, mode=0o600, replace=False):
        return atomic_files.write_file_atomic(self.location, name, data, mode=mode, replace=replace)

    def promote(self, staged, name):
        try:
            os.rename(self.path(staged), self.path(name))
        except OSError as exc:
            raise StorageError(exc.errno, "cannot rename %s to %s: %s" % (staged, name, exc.strerror))
        atomic_files.fsync_dir(self.location)

    def partial_tree(self, name):
        """A private temporary folder for a directory archive that will be published as ``name``
        (pg_dump writes its files itself)."""
        return self.path(atomic_files.partial_name(name))

    def publish_tree(self, temp_dir, name):
        """Give a complete folder its final name, synced, never over an existing one."""
        atomic_files.publish_directory(temp_dir, self.path(name))

    def entries(self):
        return backup_dir.list_entries(self.location, dir_fd=self._fd)

    def read_manifest(self, name):
        return manifest_mod.load_manifest(self.path(name))

    def close(self):
        """Nothing to release: the directory is held open only inside a ``with`` block."""

    def open_read(self, name):
        try:
            return open(self.path(name), "rb")
        except OSError as exc:
            raise StorageError(exc.errno, "cannot read %s: %s" % (self.path(name), exc.strerror))

    def stat(self, name):
        try:
            return backup_dir.entry_of(self.location, name)
        except OSError as exc:
            raise StorageError(exc.errno, "cannot look at %s: %s" % (self.path(name), exc.strerror))

    def digest(self, name):
        return checksums.backup_digest(self.path(name))[0]

    def remove(self, name, identity):
        if self._fd is None:
            raise StorageError(0, "remove() needs the directory held open (use the storage in a with block)")
        backup_dir.remove_entry(self._fd, name, identity)

    def sync(self):
        """Make removals durable (fsync of the directory); best effort."""
        if self._fd is not None:
            try:
                os.fsync(self._fd)
            except OSError:
                pass

    def stale_partials(self):
        return [os.path.basename(found) for found in atomic_files.find_stale_partials(self.location)]

    def remove_partials(self, names):
        return atomic_files.remove_partials([self.path(name) for name in names])

    def free_bytes(self):
        return atomic_files.free_bytes(self.location)
