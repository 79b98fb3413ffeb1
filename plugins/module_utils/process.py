# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running the programs this collection uses (pg_dump, pg_restore, psql, the compressors): spawning
them so that they inherit nothing but their passfile and die with their parent, running one to
completion under a stall watch, and describing how one ended. Pure Python.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import signal
import subprocess
import tempfile

from ansible_collections.lift_simulator.postgresql.plugins.module_utils import stall_watch
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.connection import inherited_fds

# The size in which streams are read and written.
CHUNK = 1024 * 1024


class ProgramError(Exception):
    """A program failed (or stalled); ``stderr`` holds the tail of the failing program's stderr."""

    def __init__(self, message, stderr=""):
        Exception.__init__(self, message)
        self.stderr = stderr


_PR_SET_PDEATHSIG = 1


def _load_prctl():
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (ImportError, OSError, AttributeError):
        return None


_PRCTL = _load_prctl()


def _die_with_parent():
    """In the child: get SIGKILL when the parent dies, so that a killed module or job leaves no
    pg_dump, psql or pg_restore running on behind it."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def spawn(argv, **kwargs):
    """subprocess.Popen for every program this collection runs: no inherited descriptors but the
    in-memory passfile of its environment, and the child dies with this process. Call it while
    no other thread runs (preexec_fn)."""
    kwargs.setdefault("pass_fds", inherited_fds(kwargs.get("env")))
    return subprocess.Popen(argv, close_fds=True, preexec_fn=_die_with_parent, **kwargs)


def describe_exit(program, code):
    name = os.path.basename(program)
    if code < 0:
        try:
            signame = signal.Signals(-code).name
        except ValueError:
            signame = "signal %d" % -code
        return "%s was killed by %s" % (name, signame)
    return "%s failed with exit code %d" % (name, code)


def read_tail(handle, limit=8192):
    try:
        handle.seek(0, os.SEEK_END)
        end = handle.tell()
        handle.seek(max(0, end - limit))
        return handle.read().decode("utf-8", "replace")
    except (OSError, ValueError):
        return ""


def run_program(argv, env=None, stdin=subprocess.DEVNULL, on_started=None, stall=None):
    """Run a program to completion (stdout discarded); raise ProgramError with its stderr on failure,
    or when it makes no progress for ``stall.timeout`` seconds (a stall_watch.Stall)."""
    with tempfile.TemporaryFile() as err:
        try:
            proc = spawn(argv, stdin=stdin, stdout=subprocess.DEVNULL, stderr=err, env=env)
        except OSError as exc:
            raise ProgramError("cannot start %s: %s" % (argv[0], exc.strerror))
        watch = stall_watcher(stall, lambda: [proc])
        with watch:
            if on_started is not None:
                on_started()
            try:
                code = proc.wait()
            except BaseException:
                proc.kill()
                proc.wait()
                raise
        if watch.stalled:
            raise ProgramError(stall_watch.message(os.path.basename(argv[0]), stall.timeout), read_tail(err))
        if code != 0:
            raise ProgramError(describe_exit(argv[0], code), read_tail(err))


def stall_watcher(stall, procs):
    """A stall_watch.StallWatch over ``procs()`` for ``stall`` (None: watch nothing)."""
    return stall_watch.StallWatch(stall.timeout if stall else None, procs, stall.busy if stall else None)
