# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files that appear under their final name only when complete and on disk.

A backup is written to an anonymous O_TMPFILE inode in the destination directory (so a crash,
even SIGKILL, leaves nothing behind), fsynced, then linked to its final name (link never
replaces an existing file or follows a symlink planted there) and the directory is fsynced.
Where the file system has no O_TMPFILE, a hidden named temporary is used instead and a later
run removes it when the process that wrote it is gone (see ``remove_stale_partials``).

Pure Python, shared by the modules and the host-side job.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import re
import shutil
import socket
import stat

try:
    import ctypes
except ImportError:  # an interpreter built without it: plain named temporaries, no writeback hints
    ctypes = None

PARTIAL_MARK = ".partial-"
_AT_FDCWD = -100
_AT_SYMLINK_FOLLOW = 0x400


def _libc_function(name, argtypes):
    """A libc function taking ``argtypes`` (ctypes type names) and returning an int, with errno
    kept; None where ctypes or the function is unavailable."""
    if ctypes is None:
        return None
    try:
        func = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return None
    func.argtypes = [getattr(ctypes, argtype) for argtype in argtypes]
    func.restype = ctypes.c_int
    return func


def _load_linkat():
    """libc's linkat: os.link() cannot give an O_TMPFILE inode a name (it calls link(2), which
    does not follow the /proc/self/fd magic link). None where unavailable."""
    func = _libc_function("linkat", ("c_int", "c_char_p", "c_int", "c_char_p", "c_int"))
    if func is None:
        return None

    def linkat_fd(fd, dest):
        if func(_AT_FDCWD, ("/proc/self/fd/%d" % fd).encode(), _AT_FDCWD, os.fsencode(dest),
                _AT_SYMLINK_FOLLOW) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), dest)

    return linkat_fd


_LINKAT_FD = _load_linkat()

_SYNC_FILE_RANGE_WRITE = 2
# Start writing back every 8 MiB as the data arrives, so the final fsync has almost nothing
# left to do: measured on a 1.1 GB dump, it took the fsync off the end of the backup (0.45 s
# to under 0.01 s) and kept dirty pages from piling up (see docs/performance.md).
WRITEBACK_EVERY = 8 * 1024 * 1024


def _load_sync_file_range():
    """libc's sync_file_range (Linux): start writeback of a range without waiting for it.
    None where unavailable; it is only an optimisation, the fsync at commit is what counts."""
    func = _libc_function("sync_file_range", ("c_int", "c_longlong", "c_longlong", "c_uint"))
    if func is None:
        return None

    def start_writeback(fd, offset, length):
        func(fd, offset, length, _SYNC_FILE_RANGE_WRITE)  # a failure only loses the head start

    return start_writeback


_START_WRITEBACK = _load_sync_file_range()
_PARTIAL_RE = re.compile(r"^\..+\.partial-(?P<host>[^-]+)-(?P<pid>\d+)$")


class AtomicFileError(OSError):
    pass


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def short_hostname():
    return (socket.gethostname().split(".")[0] or "host").replace("-", "_")


def partial_name(final_name):
    """The hidden name of a named temporary: host and pid tell a later run whether it is stale."""
    return ".%s%s%s-%d" % (final_name, PARTIAL_MARK, short_hostname(), os.getpid())


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class AtomicFile(object):
    """Write a file that becomes visible under ``dir_path/name`` only on ``commit()``.

    ``replace=False`` (backups, manifests, logs) refuses to overwrite an existing name;
    ``replace=True`` (status files such as metrics) atomically replaces it.
    """

    def __init__(self, dir_path, name, mode=0o600, replace=False, use_tmpfile=True):
        if "/" in name or name in ("", ".", ".."):
            raise AtomicFileError(errno.EINVAL, "not a plain file name: %r" % (name,))
        self.dir_path = dir_path
        self.name = name
        self.final_path = os.path.join(dir_path, name)
        self.mode = mode
        self.replace = replace
        self.fd = None
        self.temp_path = None
        self.size = 0
        self._written_back = 0
        self._open(use_tmpfile and not replace and hasattr(os, "O_TMPFILE") and _LINKAT_FD is not None
                   and os.path.isdir("/proc/self/fd"))

    def _open(self, try_tmpfile):
        if try_tmpfile:
            try:
                self.fd = os.open(self.dir_path, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, self.mode)
                return
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
                    raise
        self.temp_path = os.path.join(self.dir_path, partial_name(self.name))
        self.fd = os.open(self.temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
                          | getattr(os, "O_NOFOLLOW", 0), self.mode)

    def write(self, data):
        _write_all(self.fd, data)
        self.size += len(data)
        if _START_WRITEBACK is not None and self.size - self._written_back >= WRITEBACK_EVERY:
            _START_WRITEBACK(self.fd, self._written_back, self.size - self._written_back)
            self._written_back = self.size

    def commit(self):
        """fsync, publish under the final name, fsync the directory."""
        os.fchmod(self.fd, self.mode)
        os.fsync(self.fd)
        try:
            if self.temp_path is None:
                _LINKAT_FD(self.fd, self.final_path)
            elif self.replace:
                os.replace(self.temp_path, self.final_path)
                self.temp_path = None
            else:
                os.link(self.temp_path, self.final_path)
                os.unlink(self.temp_path)
                self.temp_path = None
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                raise AtomicFileError(errno.EEXIST, "refusing to overwrite %s: it already exists"
                                      % self.final_path)
            raise
        finally:
            self._close()
        fsync_dir(self.dir_path)

    def abort(self):
        self._close()
        if self.temp_path is not None:
            try:
                os.unlink(self.temp_path)
            except OSError:
                pass
            self.temp_path = None

    def _close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.abort()  # a no-op after a successful commit
        return False


def write_file_atomic(dir_path, name, data, mode=0o600, replace=False):
    """Write ``data`` (bytes or text) to ``dir_path/name`` atomically and durably."""
    if not isinstance(data, bytes):
        data = data.encode("utf-8")
    with AtomicFile(dir_path, name, mode=mode, replace=replace) as handle:
        handle.write(data)
        handle.commit()
    return os.path.join(dir_path, name)


def fsync_tree(path):
    """fsync every file and directory below ``path`` (a directory-format archive)."""
    for root, _dirs, files in os.walk(path):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(root)


def publish_directory(temp_dir, final_path):
    """Rename a complete, synced directory to its final name (never over an existing one)."""
    if os.path.lexists(final_path):
        raise AtomicFileError(errno.EEXIST, "refusing to overwrite %s: it already exists" % final_path)
    fsync_tree(temp_dir)
    os.rename(temp_dir, final_path)
    fsync_dir(os.path.dirname(final_path) or ".")


def ensure_private_dir(path, mode=0o700):
    """Make sure ``path`` is a usable directory; create it (and parents) with ``mode`` if missing.

    Returns True when it was created. Raises AtomicFileError naming the problem otherwise.
    """
    created = False
    if os.path.lexists(path) and not os.path.isdir(path):
        raise AtomicFileError(errno.ENOTDIR, "%s exists and is not a directory" % path)
    if not os.path.exists(path):
        try:
            os.makedirs(path, mode)
        except OSError as exc:
            raise AtomicFileError(exc.errno, "cannot create directory %s: %s" % (path, exc.strerror))
        os.chmod(path, mode)
        created = True
    if not os.access(path, os.W_OK | os.X_OK):
        raise AtomicFileError(errno.EACCES, "directory %s is not writable by this user (uid %d)"
                              % (path, os.geteuid()))
    return created


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def partial_target(entry):
    """The final name a hidden named temporary was written for, or None for any other name."""
    match = _PARTIAL_RE.match(entry)
    if not match:
        return None
    return entry[1:match.start("host") - len(PARTIAL_MARK)]


def find_stale_partials(dir_path):
    """Named temporaries in ``dir_path`` left by a writer on this host that no longer runs.

    Only entries that carry our partial mark, our host name and a dead pid qualify. Nothing is
    removed (check mode uses this alone); returns their paths, sorted.
    """
    stale = []
    host = short_hostname()
    try:
        entries = os.listdir(dir_path)
    except OSError:
        return stale
    for entry in sorted(entries):
        match = _PARTIAL_RE.match(entry)
        if not match or match.group("host") != host or _pid_alive(int(match.group("pid"))):
            continue
        stale.append(os.path.join(dir_path, entry))
    return stale


def remove_partials(paths):
    """Remove named temporaries found by ``find_stale_partials``: folders recursively (never
    following symlinks), anything else with unlink (a symlink itself, never its target).
    Entries that vanished in between are skipped. Returns the paths removed."""
    removed = []
    for path in paths:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
        removed.append(path)
    return removed


def remove_stale_partials(dir_path):
    """Remove named temporaries left by a writer on this host that no longer runs.

    Only entries that carry our partial mark, our host name and a dead pid are touched.
    """
    return remove_partials(find_stale_partials(dir_path))
