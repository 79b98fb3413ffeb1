# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A secret (a passfile, an age identity) handed to a child program as a file that exists only
in memory.

An anonymous memfd (mode 0600) that the children inherit and read as ``/proc/self/fd/<n>``: it has
no name in any file system and disappears with the last process holding it, so it cannot outlive
the run, not even after SIGKILL. Where memfd is missing, a 0600 file in a private 0700 directory,
removed on exit, stands in. ``process.spawn`` must pass ``fds`` on. Pure Python.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import os
import shutil
import tempfile

FD_PREFIX = "/proc/self/fd/"


class SecretFileError(Exception):
    """The operator's secret file cannot be used."""


class SecretFile(object):
    """Context manager: ``path`` names the secret for a child, ``fds`` the descriptors it needs."""

    def __init__(self, content, label):
        self.data = content.encode("utf-8") if not isinstance(content, bytes) else content
        self.label = label
        self.path = None
        self.fds = ()
        self._fd = None
        self._tmpdir = None

    def __enter__(self):
        if hasattr(os, "memfd_create"):
            # Without MFD_CLOEXEC: the children must inherit it (spawn closes every other descriptor).
            self._fd = os.memfd_create(self.label, 0)
            os.fchmod(self._fd, 0o600)
            os.write(self._fd, self.data)
            self.path, self.fds = "%s%d" % (FD_PREFIX, self._fd), (self._fd,)
            return self
        self._tmpdir = tempfile.mkdtemp(prefix="lift-pg-")
        os.chmod(self._tmpdir, 0o700)
        self.path = os.path.join(self._tmpdir, self.label)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(self.data)
        return self

    def __exit__(self, *exc_info):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
        self.data = b""
        return False


class _GivenFile(object):
    """A secret the operator keeps in a file of their own: used where it is, never copied."""

    fds = ()

    def __init__(self, path):
        self.path = path


@contextlib.contextmanager
def secret_or_file(content=None, path=None, label="lift-secret"):
    """The secret ``content`` as a SecretFile, or the file ``path`` as it is, or None."""
    if content:
        with SecretFile(content, label) as secret:
            yield secret
    elif path:
        if not os.path.isfile(path) or not os.access(path, os.R_OK):
            raise SecretFileError("%s is not a file this user (uid %d) can read" % (path, os.geteuid()))
        yield _GivenFile(path)
    else:
        yield None
