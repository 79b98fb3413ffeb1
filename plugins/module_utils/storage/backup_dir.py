# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading a backup directory for the retention planner, and removing from it safely (the I/O
that retention/ leaves out).

Shared by prune, backup_info and the host-side scheduled job (through retention/apply.py). Symlinks
are never followed; removal goes through directory file descriptors. Pure Python.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import errno
import os
import stat

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact.naming import parse_backup_name
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.base import DIRECTORY, FILE, OTHER, SYMLINK, Entry

UTC = datetime.timezone.utc


def _kind_and_size(st, path, name):
    if stat.S_ISLNK(st.st_mode):
        return SYMLINK, st.st_size
    if stat.S_ISREG(st.st_mode):
        return FILE, st.st_size
    if stat.S_ISDIR(st.st_mode):
        return DIRECTORY, tree_size(os.path.join(path, name)) if parse_backup_name(name) else 0
    return OTHER, st.st_size


def entry_of(path, name):
    """The Entry of ``name`` in the directory ``path`` (lstat), or None when there is none."""
    try:
        st = os.lstat(os.path.join(path, name))
    except FileNotFoundError:
        return None
    kind, size = _kind_and_size(st, path, name)
    return Entry(name, kind, size, datetime.datetime.fromtimestamp(st.st_mtime, UTC))


def list_entries(path, dir_fd=None):
    """Every entry of the directory (lstat) as Entry, and each entry's (st_dev, st_ino).

    With ``dir_fd`` the listing reads that open directory (prune holds it open so that what it
    deletes is what it listed); ``path`` names it for sizing directory-format backups.
    """
    entries, idents = [], {}
    with os.scandir(dir_fd if dir_fd is not None else path) as listing:
        for item in listing:
            st = item.stat(follow_symlinks=False)
            kind, size = _kind_and_size(st, path, item.name)
            entries.append(Entry(item.name, kind, size, datetime.datetime.fromtimestamp(st.st_mtime, UTC)))
            idents[item.name] = (st.st_dev, st.st_ino)
    return entries, idents


def tree_size(path):
    """Sum of the regular files below a folder (symlinks not followed)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(root, name))
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


def remove_tree(parent_fd, name):
    """Remove a folder below ``parent_fd`` recursively, by file descriptors, never following symlinks."""
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent_fd)
    try:
        with os.scandir(fd) as listing:
            children = [(item.name, item.is_dir(follow_symlinks=False)) for item in listing]
        for child, is_dir in children:
            if is_dir:
                remove_tree(fd, child)
            else:
                os.unlink(child, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent_fd)


def remove_entry(dir_fd, name, ident):
    """Remove the file or folder ``name`` if it is still what was examined; never a symlink."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if (st.st_dev, st.st_ino) != ident:
        raise OSError(errno.EAGAIN, "it changed since it was examined; left alone")
    if stat.S_ISDIR(st.st_mode):
        remove_tree(dir_fd, name)
    elif stat.S_ISREG(st.st_mode):
        os.unlink(name, dir_fd=dir_fd)
    else:
        raise OSError(errno.EPERM, "it is no longer a file or folder; left alone")
