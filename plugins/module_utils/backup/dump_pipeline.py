# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_dump command lines and the streaming pipeline that compresses and hashes while it writes
(the compressors' command lines come from codecs.py).

Command lines are argv lists described by small argument formats (in the manner of
community.general's CmdRunner) so each can be unit-tested without running anything.
Pure Python, shared by the modules and the host-side job.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import hashlib
import os
import signal
import subprocess
import tempfile
import time

from ansible_collections.lift_simulator.postgresql.plugins.module_utils import stall_watch
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.process import (
    CHUNK, ProgramError, describe_exit, read_tail, spawn, stall_watcher)

_BATCH = CHUNK // 2
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


# --- argument formats -------------------------------------------------------------------------

def fmt_opt(option):
    """``--option=value`` for a set value, nothing for None."""
    return lambda value: [] if value is None else ["%s=%s" % (option, value)]


def fmt_bool(option):
    return lambda value: [option] if value else []


_PG_DUMP_FORMATS = {"plain": "p", "custom": "c", "directory": "d"}

PG_DUMP_ARGS = (
    ("format", lambda value: ["--format=%s" % _PG_DUMP_FORMATS[value]]),
    ("no_password", fmt_bool("--no-password")),
    ("snapshot", fmt_opt("--snapshot")),
    ("jobs", lambda value: ["--jobs=%d" % value] if value and value > 1 else []),
    ("compress", fmt_opt("--compress")),
    ("lock_wait_timeout", fmt_opt("--lock-wait-timeout")),
    ("file", fmt_opt("--file")),
    ("extra", lambda value: list(value or [])),
)


def build_argv(program, formats, values):
    argv = [program]
    for name, formatter in formats:
        argv.extend(formatter(values.get(name)))
    return argv


def pg_dump_argv(pg_dump, fmt, snapshot=None, compress=None, jobs=None, file_path=None,
                 lock_wait_timeout=None, extra=None):
    """pg_dump's argv. The database and connection come from the environment (PGDATABASE...)."""
    return build_argv(pg_dump, PG_DUMP_ARGS, dict(
        format=fmt, no_password=True, snapshot=snapshot, compress=compress, jobs=jobs,
        file=file_path, lock_wait_timeout=lock_wait_timeout, extra=extra))


# --- the streaming pipeline -------------------------------------------------------------------

def _grow_pipe(fd):
    try:
        fcntl.fcntl(fd, _F_SETPIPE_SZ, CHUNK)
    except OSError:
        pass  # a smaller pipe only costs a few more system calls


class StreamResult(object):
    """What was written: its size, sha256 and duration; ``files`` the files of a directory archive
    (None for a single file)."""

    def __init__(self, size, sha256, duration_s, files=None):
        self.size = size
        self.sha256 = sha256
        self.duration_s = duration_s
        self.files = files


class Pipeline(object):
    """Run ``commands`` connected stdout to stdin, the last one feeding ``sink``.

    ``sink.write(bytes)`` receives the final stream; the sha256 of that stream is computed as it
    passes. On any failure every process is killed and reaped, and ProgramError is raised with the
    stderr of the first program that failed (a program killed by SIGPIPE because a later one
    failed is not the cause).
    """

    def __init__(self, commands, env=None, progress=None, progress_interval=1.0, stall=None, pass_fds=()):
        self.commands = commands
        self.pass_fds = pass_fds  # the first program's secret files (secret_file.SecretFile.fds)
        self.stall = stall
        self.env = env
        self.progress = progress
        self.progress_interval = progress_interval
        self.procs = []
        self.stderr_files = []

    def _start(self):
        previous = None
        for argv in self.commands:
            err = tempfile.TemporaryFile()
            self.stderr_files.append(err)
            try:
                extra = dict(pass_fds=self.pass_fds) if previous is None and self.pass_fds else {}
                proc = spawn(argv, stdin=previous if previous is not None else subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=err, env=self.env, bufsize=0, **extra)
            except OSError as exc:
                raise ProgramError("cannot start %s: %s" % (argv[0], exc.strerror))
            if previous is not None:
                previous.close()  # the child holds it now; we must not keep the pipe open
            previous = proc.stdout
            _grow_pipe(proc.stdout.fileno())
            self.procs.append(proc)
        return previous

    def run(self, sink, on_started=None):
        """Stream into ``sink``; ``on_started`` is called once every program runs."""
        started = time.monotonic()
        digest = hashlib.sha256()
        watch = stall_watcher(self.stall, lambda: self.procs)
        try:
            with watch:
                size = self._pump(sink, on_started, digest, started)
        except BaseException:
            self.kill()
            if watch.stalled:
                raise ProgramError(stall_watch.message(os.path.basename(self.commands[0][0]), self.stall.timeout))
            raise
        finally:
            for err in self.stderr_files:
                err.close()
        if self.progress is not None:
            self.progress(size, time.monotonic() - started)
        return StreamResult(size, digest.hexdigest(), time.monotonic() - started)

    def _pump(self, sink, on_started, digest, started):
        size = 0
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        next_report = started + self.progress_interval
        source = self._start()
        if on_started is not None:
            on_started()
        filled = 0
        while True:
            count = source.readinto(view[filled:])
            filled += count or 0
            # pg_dump writes 8 kB at a time; hash and write in batches of at least half a
            # buffer, which saves a system call and a hash call per 8 kB.
            if count and filled < _BATCH:
                continue
            if filled:
                chunk = view[:filled]
                digest.update(chunk)
                try:
                    sink.write(chunk)
                except OSError as exc:
                    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                        raise ProgramError("no space left on the device after writing %d bytes (%s)"
                                           % (size, os.strerror(exc.errno)))
                    raise ProgramError("cannot write the backup: %s" % exc.strerror)
                size += filled
                filled = 0
            if not count:
                break
            if self.progress is not None and time.monotonic() >= next_report:
                self.progress(size, time.monotonic() - started)
                next_report = time.monotonic() + self.progress_interval
        source.close()
        self._wait_all()
        return size

    def _wait_all(self):
        codes = [proc.wait() for proc in self.procs]
        failed = [i for i, code in enumerate(codes) if code != 0]
        if not failed:
            return
        # The root cause is the first program that failed other than by SIGPIPE.
        cause = next((i for i in failed if codes[i] != -signal.SIGPIPE), failed[0])
        raise ProgramError(describe_exit(self.commands[cause][0], codes[cause]), read_tail(self.stderr_files[cause]))

    def kill(self):
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    proc.kill()
                except OSError:
                    pass
        for proc in self.procs:
            try:
                if proc.stdout is not None:
                    proc.stdout.close()
            except OSError:
                pass
            proc.wait()
