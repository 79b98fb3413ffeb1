# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A temporary PostgreSQL server in a private scratch directory, for the restore drill's PITR source.

The scratch directory ``<root>/drill-pitr-<job>-<UTC time>`` (0700) holds the data directory
(``data``, 0700, restored by pgBackRest), its tablespaces (``tablespaces``), the server's
configuration (``postgresql.conf``, ``pg_hba.conf``, ``pg_ident.conf``: outside the data directory,
the backup's own may be absent, as on Debian), its log (``server.log``) and its private socket
directory (``s``, 0700). The server is started with the version's ``pg_ctl`` as the current OS user
(never root): no TCP (``listen_addresses=''``), the socket in its private directory only, archiving
off, messages in English (recovery_log.py reads them); the settings that keep it apart from the
live cluster are given on its command line, so that nothing in the restored
``postgresql.auto.conf`` (``ALTER SYSTEM`` of the live cluster) overrides them. ``stop`` is an
immediate shutdown; ``remove`` removes the whole scratch directory; ``remove_stale`` removes the
scratch directories of the same job that a killed drill left (stopping their server only when the
process is really that server: its working directory is that data directory). Those serve
``Scratch`` objects also as the ``layout`` that recovery_watch.watch and
recovery_instance.copy_running read. No Ansible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import time

from ansible_collections.lift_simulator.postgresql.plugins.module_utils import process
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.connection import ConnectionParams
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import recovery_layout as layouts

PREFIX = "drill-pitr-"
BIN_DIR = "/usr/lib/postgresql/%s/bin"  # Debian's, per major version
_STAMP_RE = r"\d{8}T\d{6}Z"
# Paths the server's command line carries (pg_ctl passes its -o text through a shell): plain ones only.
_SAFE_PATH_RE = re.compile(r"^/[A-Za-z0-9_./-]+$")
# Unix socket paths are at most 107 bytes (sun_path).
_SOCKET_MAX = 107
_CONTROL_SETTINGS = (  # pg_controldata's line -> the setting a recovery needs at least as high
    ("max_connections setting", "max_connections"),
    ("max_worker_processes setting", "max_worker_processes"),
    ("max_wal_senders setting", "max_wal_senders"),
    ("max_prepared_xacts setting", "max_prepared_transactions"),
    ("max_locks_per_xact setting", "max_locks_per_transaction"),
)


class ScratchError(Exception):
    """The scratch directory or its server cannot be made, started or removed."""


def refuse_root():
    """The drill's pgBackRest commands and server run as the job's OS user (postgres), never as root."""
    if os.geteuid() == 0:
        raise ScratchError("the PITR drill runs as the postgres OS user, never as root (started as root, "
                           "lift-pg-backup switches to the job's user: set user in the job's settings)")


def name_pattern(job):
    return re.compile(r"^%s%s-%s$" % (re.escape(PREFIX), re.escape(job), _STAMP_RE))


def free_port():
    """A port number free on 127.0.0.1 now; it only names the socket file (no TCP is opened)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Scratch(object):
    """The paths of one scratch directory, and what recovery_watch reads of a ``layout``."""

    def __init__(self, root, job, when=None):
        when = when or datetime.datetime.now(datetime.timezone.utc)
        self.root = root
        self.path = os.path.join(root, "%s%s-%s" % (PREFIX, job, layouts.stamp(when)))
        self.data = os.path.join(self.path, "data")
        self.tablespaces = os.path.join(self.path, "tablespaces")
        self.socket_dir = os.path.join(self.path, "s")
        self.log = os.path.join(self.path, "server.log")
        self.conf = os.path.join(self.path, "postgresql.conf")
        self.port = None
        self.version = None
        self.copy = "drill"  # recovery_watch's name of the copy

    # --- what recovery_watch / recovery_instance read of a layout --------------------------------
    @property
    def copy_data(self):
        return self.data

    def log_file(self, _cluster):
        return self.log

    def unit(self, _cluster):
        return "the drill's temporary server (data directory %s)" % self.data

    # --- making it ----------------------------------------------------------------------------
    def make(self):
        """The scratch directory (0700, must not exist yet), its data and socket directories (0700)."""
        if not _SAFE_PATH_RE.match(self.path):
            raise ScratchError("the scratch directory %s has characters the server's command line cannot carry "
                               "(letters, digits, _ . / - only): choose another state_dir" % self.path)
        if len(os.path.join(self.socket_dir, ".s.PGSQL.65535")) > _SOCKET_MAX:
            raise ScratchError("the socket path under %s would be longer than %d bytes: choose a shorter state_dir"
                               % (self.path, _SOCKET_MAX))
        os.mkdir(self.path, 0o700)
        os.chmod(self.path, 0o700)
        for path in (self.data, self.socket_dir):
            os.mkdir(path, 0o700)
            os.chmod(path, 0o700)

    def read_version(self):
        """The restored cluster's major version (its PG_VERSION), checked."""
        try:
            with open(os.path.join(self.data, "PG_VERSION")) as handle:
                version = handle.read(16).strip()
        except OSError as exc:
            raise ScratchError("the restored data directory has no PG_VERSION: %s" % exc.strerror)
        if not re.match(r"^\d{1,2}$", version):
            raise ScratchError("the restored data directory's PG_VERSION is %r, not a major version" % version)
        self.version = version
        return version

    def bin(self, program):
        return os.path.join(BIN_DIR % self.version, program)

    def control_settings(self):
        """[(setting, value)] that recovery needs at least as high as the backed-up cluster had
        (pg_controldata of the restored data directory)."""
        argv = [self.bin("pg_controldata"), "-D", self.data]
        try:
            proc = process.spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 env=dict(os.environ, LC_ALL="C"))
        except OSError as exc:
            raise ScratchError("cannot run %s: %s (is PostgreSQL %s installed?)"
                               % (argv[0], exc.strerror, self.version))
        out, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise ScratchError("%s failed: %s" % (argv[0], err.decode("utf-8", "replace").strip()))
        found = {}
        for line in out.decode("utf-8", "replace").splitlines():
            key, _sep, value = line.partition(":")
            found[key.strip()] = value.strip()
        return [(setting, found[key]) for key, setting in _CONTROL_SETTINGS if found.get(key, "").isdigit()]

    def write_config(self):
        """postgresql.conf (with what the backed-up cluster needs), pg_hba.conf (peer over the
        socket only), pg_ident.conf (empty)."""
        lines = ["# The restore drill's temporary server (lift-pg-backup --drill, source pitr); removed with %s"
                 % self.path]
        lines += ["%s = %s" % item for item in self.control_settings()]
        lines += ["hot_standby = on", "jit = off", "fsync = off", "log_destination = 'stderr'"]
        with open(self.conf, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        with open(os.path.join(self.path, "pg_hba.conf"), "w") as handle:
            handle.write("# The drill's temporary server: its own OS user over its private socket only.\n"
                         "local all all peer\n")
        with open(os.path.join(self.path, "pg_ident.conf"), "w"):
            pass

    def command_line(self):
        """The server's settings that nothing in the restored files may override."""
        settings = [
            ("config_file", self.conf),
            ("hba_file", os.path.join(self.path, "pg_hba.conf")),
            ("ident_file", os.path.join(self.path, "pg_ident.conf")),
            ("listen_addresses", ""),
            ("port", "%d" % self.port),
            ("unix_socket_directories", self.socket_dir),
            ("unix_socket_permissions", "0700"),
            ("archive_mode", "off"),
            ("primary_conninfo", ""),  # never streams from anywhere: the repository's WAL only
            ("recovery_target_action", "promote"),
            ("shared_buffers", "128MB"),  # beside the live cluster: not what ALTER SYSTEM gave it
            ("huge_pages", "try"),
            ("logging_collector", "off"),
            ("lc_messages", "C"),
            ("TimeZone", "UTC"),
            ("ssl", "off"),
            ("cluster_name", "lift-drill-pitr"),
            ("external_pid_file", ""),
        ]
        return " ".join("-c %s" % shlex.quote("%s=%s" % item) for item in settings)

    def start(self):
        """Start the server (pg_ctl without waiting: recovery_watch polls it)."""
        self.read_version()
        self.port = free_port()
        self.write_config()
        argv = [self.bin("pg_ctl"), "-D", self.data, "-l", self.log, "-o", self.command_line(), "-W", "start"]
        self._pg_ctl(argv, "start")

    def _pg_ctl(self, argv, what, timeout=120):
        try:
            proc = process.spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 cwd=self.path)
        except OSError as exc:
            raise ScratchError("cannot run %s: %s" % (argv[0], exc.strerror))
        out, err = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            raise ScratchError("pg_ctl %s failed: %s" % (what, (err or out).decode("utf-8", "replace").strip()))

    def params(self, database="postgres"):
        """The connection to it: its socket, as the OS user (peer)."""
        return ConnectionParams(database, login_port=self.port, login_unix_socket=self.socket_dir, connect_timeout=5)

    # --- ending it ----------------------------------------------------------------------------
    def stop(self, timeout=60):
        """Immediate shutdown when its server runs. Returns True when it ran."""
        pid = server_pid(self.data)
        if not pid:
            return False
        if self.version is None:
            self.read_version()
        try:
            self._pg_ctl([self.bin("pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "-t", str(timeout), "stop"],
                         "stop", timeout + 30)
        except ScratchError:
            if server_pid(self.data):
                raise
        return True

    def remove(self):
        return remove_tree(self.path)


def server_pid(data):
    """The pid of the live server of ``data``: its postmaster.pid names a process whose working
    directory is ``data`` (a pid reused by another process, the live cluster's, never counts)."""
    try:
        with open(os.path.join(data, "postmaster.pid")) as handle:
            pid = int(handle.readline().strip() or "0")
    except (OSError, ValueError):
        return None
    if pid <= 0:
        return None
    try:
        cwd = os.readlink("/proc/%d/cwd" % pid)
    except OSError:
        return None
    return pid if os.path.realpath(cwd) == os.path.realpath(data) else None


def remove_tree(path):
    """Remove a scratch directory (never following a symlink). Returns whether there was one."""
    if os.path.islink(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)
    else:
        return False
    return True


def kill_server(pid, data, timeout=60, poll=0.1):
    """SIGQUIT (immediate shutdown) to the server of ``data`` and wait until it is gone."""
    os.kill(pid, signal.SIGQUIT)
    deadline = time.monotonic() + timeout
    while server_pid(data) == pid:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(poll)


def remove_stale(root, job):
    """Remove the scratch directories of ``job`` under ``root`` that a killed drill left (the
    caller holds the job's drill lock: none of them is in use). Only real directories of this
    user that match the name pattern; their server is stopped first. Returns the removed paths."""
    pattern = name_pattern(job)
    removed = []
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return removed
    for name in names:
        path = os.path.join(root, name)
        if not pattern.match(name):
            continue
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            continue
        data = os.path.join(path, "data")
        pid = server_pid(data)
        if pid:
            kill_server(pid, data)
        remove_tree(path)
        removed.append(path)
    return removed
