# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Making a directory that belongs to a user without root ever working through what another user
can change: the one implementation behind the private_directory module (and so the role).

Root makes the directory, and sets its owner, group and mode, only when every directory above it
belongs to root, is no symlink and nobody else may write there (the sticky bit of /tmp does not
make it safe: other users' entries are there). Otherwise the directory above must belong to the
owner, and the owner makes it: a child process with the owner's uid, gid and groups, so root does
nothing there. Any other parent is refused, and so is a symlink (or anything but a directory) at
the path. Every step goes through directory file descriptors opened without following symlinks,
so a directory swapped for a symlink on the way is refused, not followed. Pure Python.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import grp
import json
import os
import pwd
import stat

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.path_trust import owner_name

BY_ROOT = "root"
BY_OWNER = "owner"
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class PrivateDirectoryError(Exception):
    """The directory cannot be made (safely); the message says why, naming the path."""


class Seen(object):
    """What lstat tells of a path (``exists`` False: nothing there)."""

    def __init__(self, path, st=None):
        self.path = path
        self.exists = st is not None
        self.isdir = st is not None and stat.S_ISDIR(st.st_mode)
        self.islnk = st is not None and stat.S_ISLNK(st.st_mode)
        self.uid = st.st_uid if st is not None else None
        self.gid = st.st_gid if st is not None else None
        self.mode = stat.S_IMODE(st.st_mode) if st is not None else None

    @property
    def writable_by_others(self):
        return bool(self.mode & (stat.S_IWGRP | stat.S_IWOTH))


def look(path):
    try:
        return Seen(path, os.lstat(path))
    except FileNotFoundError:
        return Seen(path)


def checked_path(path):
    """``path`` without a trailing slash; an error unless it is absolute, below "/", without "."
    or ".." parts."""
    parts = path.split("/")
    if not path.startswith("/") or not path.strip("/") or any(p in (".", "..") for p in parts):
        raise PrivateDirectoryError('%s must be an absolute path below "/" without "." or ".." parts' % path)
    return "/" + "/".join(p for p in parts if p)


def ancestors(path):
    """The directories above ``path`` (checked), nearest first, up to "/"."""
    found = []
    while path != "/":
        path = os.path.dirname(path)
        found.append(path)
    return found


def parse_mode(text):
    """An octal mode written as text ("0700", "750")."""
    text = str(text)
    if not text.isdigit() or any(c not in "01234567" for c in text) or int(text, 8) > 0o7777:
        raise PrivateDirectoryError("mode %s is not an octal mode such as 0700" % text)
    return int(text, 8)


def decide(path, owner, owner_uid, itself, above):
    """Who makes ``path`` (BY_ROOT or BY_OWNER), from what lstat saw of it (``itself``) and of each
    directory above it (``above``, nearest first); PrivateDirectoryError when nobody may."""
    if itself.exists and (itself.islnk or not itself.isdir):
        raise PrivateDirectoryError("%s is a symlink or not a directory: it is never made or changed through one"
                                    % path)
    parent = above[0]
    unsafe = [seen for seen in above if not (seen.exists and seen.isdir and not seen.islnk and seen.uid == 0
                                             and not seen.writable_by_others)]
    if not unsafe:
        return BY_ROOT
    if not parent.exists:
        raise PrivateDirectoryError("%s cannot be made safely: the directory above it, %s, does not exist"
                                    % (path, parent.path))
    if parent.islnk or not parent.isdir:
        raise PrivateDirectoryError("%s cannot be made safely: the directory above it, %s, is a symlink or not a "
                                    "directory" % (path, parent.path))
    if parent.uid == owner_uid:
        return BY_OWNER
    first = unsafe[0]
    raise PrivateDirectoryError(
        "%s cannot be made safely: the directory above it, %s, belongs to %s, not to %s, and root makes directories "
        "only where root alone may change every directory above (%s: owner %s, mode %s%s)" % (
            path, parent.path, owner_name(parent.uid), owner, first.path,
            owner_name(first.uid) if first.exists else "none", "%04o" % first.mode if first.exists else "none",
            ", a symlink" if first.islnk else ""))


def _open_parent(path):
    """A file descriptor of the directory above ``path``, opened from "/" one part at a time
    without following a symlink; an error naming the part that is not a directory."""
    fd = os.open("/", _OPEN_DIR)
    current = ""
    try:
        for part in [p for p in os.path.dirname(path).split("/") if p]:
            current += "/" + part
            try:
                child = os.open(part, _OPEN_DIR, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise PrivateDirectoryError("%s cannot be made safely: %s is a symlink or not a directory"
                                                % (path, current))
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def make(path, mode, uid=None, gid=None, check_mode=False):
    """Make ``path`` a directory with ``mode`` (and, as root, owner ``uid`` and group ``gid``),
    working below descriptors; whether anything changed. A new directory is private (0700) until
    its owner and mode are set."""
    parent = _open_parent(path)
    name = os.path.basename(path)
    try:
        try:
            os.stat(name, dir_fd=parent, follow_symlinks=False)
            exists = True
        except FileNotFoundError:
            exists = False
        if not exists:
            if check_mode:
                return True
            os.mkdir(name, 0o700, dir_fd=parent)
        try:
            fd = os.open(name, _OPEN_DIR, dir_fd=parent)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise PrivateDirectoryError("%s is a symlink or not a directory: it is never made or changed "
                                            "through one" % path)
            raise
        try:
            st = os.fstat(fd)
            owner_differs = uid is not None and (st.st_uid, st.st_gid) != (uid, gid)
            mode_differs = stat.S_IMODE(st.st_mode) != mode
            changed = not exists or owner_differs or mode_differs
            if not check_mode:
                if owner_differs:
                    os.fchown(fd, uid, gid)
                if owner_differs or mode_differs:
                    os.fchmod(fd, mode)  # after fchown, which clears set-id bits
                if changed:
                    os.fsync(parent)
            return changed
        finally:
            os.close(fd)
    finally:
        os.close(parent)


def _as_user(user, function, *args):
    """``function(*args)`` in a child process with ``user``'s uid, gid and groups (root forks it);
    its result, or its PrivateDirectoryError / OSError as PrivateDirectoryError."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            os.close(reader)
            os.setgroups(os.getgrouplist(user.pw_name, user.pw_gid))
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            outcome = dict(value=function(*args))
            code = 0
        except PrivateDirectoryError as exc:
            outcome = dict(error=str(exc))
        except OSError as exc:
            outcome = dict(error="%s: %s" % (exc.filename or args[0], exc.strerror))
        except BaseException as exc:  # pylint: disable=broad-except
            outcome = dict(error=repr(exc))
        try:
            os.write(writer, json.dumps(outcome).encode("utf-8"))
        finally:
            os._exit(code)
    os.close(writer)
    with os.fdopen(reader, "rb") as handle:
        said = handle.read()
    os.waitpid(pid, 0)
    try:
        outcome = json.loads(said.decode("utf-8"))
    except ValueError:
        raise PrivateDirectoryError("the process making %s as %s ended without a result" % (args[0], user.pw_name))
    if "error" in outcome:
        raise PrivateDirectoryError("cannot make %s as %s: %s" % (args[0], user.pw_name, outcome["error"]))
    return outcome["value"]


def ensure(path, owner, group=None, mode="0700", check_mode=False):
    """Make ``path`` a directory of ``owner`` (group ``group`` or the owner's primary group, when root
    makes it) with ``mode``: dict(changed, made_by). Raises PrivateDirectoryError."""
    path = checked_path(path)
    mode = parse_mode(mode)
    try:
        user = pwd.getpwnam(owner)
    except KeyError:
        raise PrivateDirectoryError("owner %s: no such user" % owner)
    gid = user.pw_gid
    if group:
        try:
            gid = int(group) if str(group).isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise PrivateDirectoryError("group %s: no such group" % group)
    made_by = decide(path, owner, user.pw_uid, look(path), [look(p) for p in ancestors(path)])
    euid = os.geteuid()
    try:
        if made_by == BY_ROOT:
            if euid == 0:
                return dict(changed=make(path, mode, user.pw_uid, gid, check_mode), made_by=made_by)
            # Not root: only say whether root would change it.
            changed = make(path, mode, user.pw_uid, gid, check_mode=True)
            if changed and not check_mode:
                raise PrivateDirectoryError("%s is made by root (every directory above is root's): run as root "
                                            "(become: true)" % path)
            return dict(changed=changed, made_by=made_by)
        if euid == user.pw_uid:
            return dict(changed=make(path, mode, check_mode=check_mode), made_by=made_by)
        if euid != 0:
            raise PrivateDirectoryError("%s is made by its owner %s: run as root or as %s" % (path, owner, owner))
        return dict(changed=_as_user(user, make, path, mode, None, None, check_mode), made_by=made_by)
    except OSError as exc:
        raise PrivateDirectoryError("cannot make %s: %s" % (exc.filename or path, exc.strerror))
