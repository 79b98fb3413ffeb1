# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sha256 of backups: single files and directory archives. Pure Python."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os

CHUNK = 1024 * 1024


def sha256_file(path, chunk=CHUNK):
    """(sha256 hex, size) of a file, read once in large blocks."""
    digest = hashlib.sha256()
    size = 0
    buf = bytearray(chunk)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as handle:
        while True:
            count = handle.readinto(buf)
            if not count:
                break
            digest.update(view[:count])
            size += count
    return digest.hexdigest(), size


def hash_directory(path):
    """sha256 of each file of a directory archive, and one sha256 over the sorted list.

    The combined digest is that of the text ``sha256sum`` prints for the sorted files
    (``<hex>  <relative path>\\n`` lines), so it can be checked with standard tools.
    Returns (files, total size, combined digest); files maps path -> {size_bytes, sha256}.
    """
    files = {}
    total = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            full = os.path.join(root, name)
            digest, size = sha256_file(full)
            files[os.path.relpath(full, path)] = {"size_bytes": size, "sha256": digest}
            total += size
    listing = "".join("%s  %s\n" % (files[rel]["sha256"], rel) for rel in sorted(files))
    return files, total, hashlib.sha256(listing.encode("utf-8")).hexdigest()


def backup_digest(path):
    """(sha256, size) of a backup as its manifest records it: file digest, or directory listing digest."""
    if os.path.isdir(path):
        _files, size, digest = hash_directory(path)
        return digest, size
    return sha256_file(path)
