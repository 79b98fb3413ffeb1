# -*- coding: utf-8 -*-
"""Finding and watching the processes a test wants to kill (via /proc)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os
import time


def pids():
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def read(pid, name):
    try:
        with open("/proc/%d/%s" % (pid, name), "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def comm(pid):
    return read(pid, "comm").decode("utf-8", "replace").strip()


def environ(pid):
    return read(pid, "environ").split(b"\0")


def cmdline(pid):
    return read(pid, "cmdline").split(b"\0")


def parent(pid):
    for line in read(pid, "status").decode().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    return None


def version_probe(pid):
    """A ``<program> -V`` run (pg_dumpall checks its pg_dump that way), not real work."""
    return any(arg in (b"-V", b"--version") for arg in cmdline(pid))


def find(program, database=None):
    """Pids of ``program`` (by comm) working on ``database`` (PGDATABASE in its environment), among
    this process's descendants only (find_matching)."""
    wanted = None if database is None else b"PGDATABASE=" + database.encode()
    return find_matching(program, lambda pid: not version_probe(pid) and (wanted is None or wanted in environ(pid)))


def find_matching(program, predicate):
    """Pids of ``program`` (by comm) for which ``predicate(pid)`` holds, among this process's
    descendants only: another pytest worker's or a container's process of the same program and
    database is never a test's to kill."""
    me = os.getpid()
    return [pid for pid in pids() if comm(pid) == program and predicate(pid) and descends_from(pid, me)]


def bytes_written(pid):
    for line in read(pid, "io").decode().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def bytes_read(pid):
    for line in read(pid, "io").decode().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def alive(pid):
    status = read(pid, "status").decode()
    return bool(status) and "\nState:\tZ" not in status


def wait_for(predicate, timeout=120, interval=0.002, what="condition"):
    """Poll ``predicate`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out after %s s waiting for %s" % (timeout, what))


def wait_for_marker(directory, point, timeout=120):
    """The pid a failpoint wrote when a run reached ``point``."""
    def marker():
        found = glob.glob(os.path.join(directory, point + ".*"))
        return found[0] if found else None
    path = wait_for(marker, timeout=timeout, interval=0.01, what="failpoint %s" % point)
    return int(path.rsplit(".", 1)[1])


def descends_from(pid, ancestor):
    """Whether ``pid`` is a descendant of ``ancestor`` (by the parent chain at this moment)."""
    for _depth in range(64):
        pid = parent(pid)
        if pid is None or pid <= 1:
            return False
        if pid == ancestor:
            return True
    return False


def watch_for_secret(thread, secret, programs):
    """While ``thread`` runs, read the argv and environment of every process this test started
    (descendants of this process: ansible-playbook, the module, its programs; other test runs on
    the machine are not ours) for ``secret`` (bytes), every millisecond. Returns (leaks as (pid,
    program), the ``programs`` seen)."""
    leaks, seen = [], set()
    me = os.getpid()
    while thread.is_alive():
        for pid in pids():
            if pid == me or not descends_from(pid, me):
                continue
            if comm(pid) in programs:
                seen.add(comm(pid))
            for part in cmdline(pid) + environ(pid):
                if secret in part:
                    leaks.append((pid, comm(pid)))
        time.sleep(0.001)
    thread.join()
    return leaks, seen
