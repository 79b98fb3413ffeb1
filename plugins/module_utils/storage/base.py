# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The storage interface: where backups live, and the only way the backup, prune, backup_info
and the scheduled job write, list and remove them.

A driver owns atomic writes (a name appears only when its content is complete and synced),
listing with what retention needs (kind, size, time, an identity to remove only what was
examined), reading, removal, and free space. posix.py is the local file system; a driver for
remote storage (SFTP, S3-compatible) implements the same methods. Pure Python.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib

# The kinds of entry a listing reports (never following symlinks).
FILE = "file"
DIRECTORY = "directory"
SYMLINK = "symlink"
OTHER = "other"


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


class StorageError(OSError):
    """A storage operation failed; the message names the location and the problem."""


class Storage(object):
    """What every driver provides. ``name`` arguments are plain names inside the location."""

    location = None

    def __enter__(self):
        """Hold the location for a listing and the removals that follow it (the local driver holds
        the directory open, so that what it removes is what it listed); connections stay open."""
        return self

    def __exit__(self, exc_type, exc, tb):
        return False

    def ensure(self):
        """Make the location usable (create it privately if missing); True when it was created."""
        raise NotImplementedError

    def exists(self, name):
        raise NotImplementedError

    def create(self, name, mode=0o600, sha256=None):
        """A writer for ``name``: ``write(data)``, then ``commit()`` publishes it complete and synced;
        ``abort()`` (or leaving a ``with`` block on an exception) leaves nothing under ``name``.
        ``sha256``, when the caller knows it: ``commit()`` publishes nothing that hashes otherwise
        (and a driver that can store it with the object does: s3)."""
        raise NotImplementedError

    def write(self, name, data, mode=0o600, replace=False):
        """Write ``data`` (bytes or text) under ``name`` atomically."""
        raise NotImplementedError

    def promote(self, staged, name):
        """Give the complete, synced file ``staged`` the name ``name``, atomically replacing the
        file there (a key rotation's re-encrypted backup): a reader sees one or the other, whole."""
        raise NotImplementedError

    def entries(self):
        """(list of Entry, {name: identity}) for every entry of the location."""
        raise NotImplementedError

    def read_manifest(self, name):
        """The validated manifest ``name`` (artifact/manifest.py); raises ManifestError (a
        ValueError) naming the problem."""
        raise NotImplementedError

    def open_read(self, name):
        """A binary stream of the file ``name`` (``read(size)``, ``close()``; usable in a ``with``
        block), read from the storage as it is: a download streams, it never sits in memory."""
        raise NotImplementedError

    def stat(self, name):
        """The Entry of ``name`` (its kind, size and time), or None when there is none."""
        raise NotImplementedError

    def close(self):
        """Release connections (remote drivers); the local driver has none."""

    def digest(self, name):
        """The sha256 of a backup (a file, or a directory archive's combined digest)."""
        raise NotImplementedError

    def remove(self, name, identity):
        """Remove ``name`` only if it is still what ``entries`` returned as ``identity``."""
        raise NotImplementedError

    def sync(self):
        """Make the removals done through this storage durable; best effort (remote drivers:
        nothing to do, the server answers a removal once it is done)."""

    def stale_partials(self):
        """Names of temporaries an interrupted writer left (never one still being written)."""
        raise NotImplementedError

    def remove_partials(self, names):
        raise NotImplementedError

    def free_bytes(self):
        raise NotImplementedError


class CheckedWriter(object):
    """A driver's writer that publishes only content hashing to ``sha256`` (``create(sha256=...)``)."""

    def __init__(self, writer, sha256):
        self.writer = writer
        self.sha256 = sha256
        self.digest = hashlib.sha256()

    @property
    def size(self):
        return self.writer.size

    def write(self, data):
        self.digest.update(data)
        self.writer.write(data)

    def commit(self):
        if self.digest.hexdigest() != self.sha256:
            self.writer.abort()
            raise StorageError(0, "the content written hashes to sha256 %s, not %s: not published"
                               % (self.digest.hexdigest(), self.sha256))
        self.writer.commit()

    def abort(self):
        self.writer.abort()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.writer.__exit__(exc_type, exc, tb)
        return False


def checked(writer, sha256):
    """``writer`` itself, or (``sha256`` given) one that publishes only that content."""
    return writer if sha256 is None else CheckedWriter(writer, sha256)
