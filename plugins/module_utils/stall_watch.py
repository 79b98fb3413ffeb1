# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Noticing a client program that stopped making progress, and stopping it.

A pg_dump, psql or pg_restore that was stopped (SIGSTOP), hangs, or waits for something that
never comes would otherwise keep a backup or restore running forever (and a backup's snapshot
holding back vacuum). A run makes progress while its programs (and their children: pg_restore's
parallel workers) read or write anything (/proc/<pid>/io), or while one of its server sessions
is working (``busy``, from pg_stat_activity: active and not waiting for the client or a lock).
After ``timeout`` seconds without either, the programs are killed and ``stalled`` is set, so
the caller reports that rather than the kill. Lock waits have their own, shorter bound
(lock_timeout / pg_dump --lock-wait-timeout). Pure Python (Linux /proc).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading
import time


def _children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as handle:
            return [int(p) for p in handle.read().split()]
    except (OSError, ValueError):
        return []


def io_total(pids):
    """Bytes read and written so far by these processes and their descendants (what can be read)."""
    total = 0
    seen = set()
    pending = list(pids)
    while pending:
        pid = pending.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open("/proc/%d/io" % pid) as handle:
                for line in handle:
                    if line.startswith(("rchar:", "wchar:")):
                        total += int(line.split()[1])
        except (OSError, ValueError):
            continue
        pending.extend(_children(pid))
    return total


class Stall(object):
    """What to watch for: ``timeout`` seconds without progress (0 or None: never), and ``busy``, a
    function telling whether the run's server sessions are working."""

    def __init__(self, timeout, busy=None):
        self.timeout = timeout
        self.busy = busy


class StallWatch(threading.Thread):
    """Watches the processes ``procs()`` returns (Popen objects) while the ``with`` block runs."""

    def __init__(self, timeout, procs, busy=None, interval=0.5):
        threading.Thread.__init__(self, name="stall-watch")
        self.daemon = True
        self.timeout = timeout
        self.procs = procs
        self.busy = busy
        self.interval = interval
        self.stalled = False
        self._done = threading.Event()

    def run(self):
        last_total = None
        last_change = time.monotonic()
        while not self._done.wait(self.interval):
            procs = [p for p in self.procs() if p.poll() is None]
            total = io_total([p.pid for p in procs])
            busy = False
            if self.busy is not None:
                try:
                    busy = self.busy()
                except Exception:  # the server is gone: the programs will fail by themselves
                    busy = False
            now = time.monotonic()
            if total != last_total or busy:
                last_total, last_change = total, now
                continue
            if now - last_change >= self.timeout:
                self.stalled = True
                for proc in procs:
                    try:
                        proc.kill()
                    except OSError:
                        pass
                return

    def __enter__(self):
        if self.timeout:
            self.start()
        return self

    def __exit__(self, *exc_info):
        self._done.set()
        if self.is_alive():
            self.join()
        return False


def message(program, timeout):
    return ("%s made no progress for %d s (stopped, hung, or waiting for something that never came), so it was "
            "stopped; nothing was kept" % (program, timeout))
