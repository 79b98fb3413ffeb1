# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scheduled job's lock: one run at a time per job (flock on a lock file; the holder writes
its pid and start time into it, so that a refused run can say who is running). Pure Python (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import errno
import fcntl
import os
import time

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.settings import ConfigError
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import atomic_files


def lock_message(path, holder):
    """What a run says when another one holds the lock. ``holder`` is dict(pid, started) or None."""
    pid = holder.get("pid") if holder else None
    started = holder.get("started") if holder else None
    return ("another backup is running (pid %s)%s; this run did nothing (lock %s). Use --wait to wait for it."
            % (pid or "unknown", " since %s" % started if started else "", path))


class LockBusy(Exception):
    def __init__(self, path, holder):
        Exception.__init__(self, lock_message(path, holder))
        self.path = path
        self.holder = holder


class JobLock(object):
    """flock on a lock file; the holder writes its pid and start time into it."""

    def __init__(self, path):
        self.path = path
        self.fd = None

    def _open(self):
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            try:
                atomic_files.ensure_private_dir(directory)
            except OSError as exc:
                raise ConfigError("cannot create the lock directory %s: %s" % (directory, exc.strerror or exc))
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise ConfigError("cannot open the lock file %s: %s" % (self.path, exc.strerror))

    def holder(self, fd=None, patience=1.0):
        """The running holder's pid and start, as it wrote them (polled briefly: it writes them
        right after it got the lock)."""
        fd = self.fd if fd is None else fd
        deadline = time.monotonic() + patience
        while True:
            text = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
            if text or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        return dict(pid=text[0] if text else None, started=text[1] if len(text) > 1 else None)

    def acquire(self, wait=False, timeout=None, on_wait=None):
        """Take the lock; returns the seconds waited. Raises LockBusy (not waiting, or timed out)."""
        fd = self._open()
        started = time.monotonic()
        try:
            waiting = False
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                        raise
                if not wait or (timeout is not None and time.monotonic() - started >= timeout):
                    raise LockBusy(self.path, self.holder(fd))
                if not waiting:
                    waiting = True
                    if on_wait is not None:
                        on_wait(self.holder(fd))
                time.sleep(0.2)
            stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            os.ftruncate(fd, 0)
            os.pwrite(fd, ("%d %s\n" % (os.getpid(), stamp)).encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return time.monotonic() - started

    def release(self):
        if self.fd is not None:
            try:
                os.ftruncate(self.fd, 0)  # no stale pid for the next reader
            except OSError:
                pass
            os.close(self.fd)  # releases the flock; the file stays (removing it would race)
            self.fd = None
