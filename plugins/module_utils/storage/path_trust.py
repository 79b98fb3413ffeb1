# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether a backup directory, a backup file or a log directory can be trusted.

A backup is read, restored and trusted by whoever runs the modules (root or the postgres OS
user); another local user who could replace it, or its manifest, could make a restore load
what they wrote. So, as OpenSSH's StrictModes does for its files: every directory on the way
and the file itself must belong to root or to the user running the check, and none may be
writable by group or others (a directory with the sticky bit, such as /tmp, may be on the way:
nobody can replace what another user put there). A log directory must not be a symlink.
``strict`` refuses with an error that names the path and its owner; ``warn`` returns warnings
instead (and callers never follow a symlinked log directory either way). Pure Python.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import pwd
import stat

STRICT = "strict"
WARN = "warn"


class UntrustedPathError(Exception):
    pass


def owner_name(uid):
    """A user's name, or "uid N" when it has none."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return "uid %d" % uid


def _problem(path, st, uid, final):
    if st.st_uid not in (0, uid):
        return "%s belongs to %s, not to root%s" % (
            path, owner_name(st.st_uid), "" if uid == 0 else " or " + owner_name(uid))
    writable = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if writable and (final or not (stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX)):
        return "%s is writable by %s (mode %04o)" % (path, "group and others" if writable == (
            stat.S_IWGRP | stat.S_IWOTH) else "its group" if writable == stat.S_IWGRP else "others",
            stat.S_IMODE(st.st_mode))
    return None


def problems(path, uid=None):
    """Why ``path`` (a file or directory) cannot be trusted: a list of texts, empty when it can.

    Checks the path itself, each directory above it, and each symlink on the way (a symlink is
    as trustworthy as its owner and the directory holding it)."""
    uid = os.geteuid() if uid is None else uid
    found = []
    path = os.path.abspath(path)
    real = os.path.realpath(path)
    # Symlinks in the path as given.
    current = "/"
    for part in [p for p in path.split("/") if p]:
        current = os.path.join(current, part)
        try:
            st = os.lstat(current)
        except OSError:
            break
        if stat.S_ISLNK(st.st_mode) and st.st_uid not in (0, uid):
            found.append("the symlink %s belongs to %s" % (current, owner_name(st.st_uid)))
        if stat.S_ISLNK(st.st_mode):
            current = os.path.realpath(current)
    # The real path: each directory above it, then itself.
    parents = []
    head = os.path.dirname(real)
    while True:
        parents.append(head)
        if head == "/":
            break
        head = os.path.dirname(head)
    for directory in reversed(parents):
        try:
            st = os.stat(directory)
        except OSError:
            break  # not made yet: what exists above it decides
        problem = _problem(directory, st, uid, final=False)
        if problem:
            found.append(problem)
    try:
        problem = _problem(real, os.stat(real), uid, final=True)
    except OSError:
        problem = None  # it does not exist (yet): its directory decides
    if problem:
        found.append(problem)
    return found


def check(paths, mode=STRICT, what="backup"):
    """Check each existing path; raise UntrustedPathError (strict) or return warnings (warn)."""
    found = []
    for path in paths:
        if path and os.path.lexists(path):
            found.extend(problems(path))
    if not found:
        return []
    message = ("%s cannot be trusted: %s. Another user could replace what is read from there. Run the module "
               "as the user who owns the backups (become_user: postgres), or make every directory on the way "
               "belong to root or to that user with no write access for group and others (chmod 0700), or set "
               "directory_checks: warn to go on anyway" % (what, "; ".join(found)))
    if mode == STRICT:
        raise UntrustedPathError(message)
    return [message]


def check_log_dir(path, mode=STRICT):
    """A log directory that is a symlink is never used; strict mode refuses it, warn mode warns.
    Returns (usable, warnings)."""
    if path and os.path.islink(path):
        message = "the log directory %s is a symlink; it is never followed, so no log was written there" % path
        if mode == STRICT:
            raise UntrustedPathError(message + " (make it a real directory)")
        return False, [message]
    warnings = check([path], mode, "the log directory") if path else []
    return True, warnings
