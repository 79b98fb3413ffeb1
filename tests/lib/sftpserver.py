# -*- coding: utf-8 -*-
"""A real OpenSSH sshd for the SFTP storage tests (storage/sftp.py): started by the test run with
its own configuration file and freshly generated ed25519 host key in a temporary directory,
listening on 127.0.0.1 only, serving SFTP (internal-sftp) to one test user who logs in with a
test key. The machine's own sshd and /etc/ssh are never touched.

The test user is ``lift-sftp-test``, created with useradd when missing (and left in place for the
next run): ``postgres`` exists here but its password field is locked (``!``), which sshd without
PAM refuses even for key logins, and logging in as the database's OS account would give the
tests its files; a dedicated account with no shell and no home owns nothing but the test's folder.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

import processes

SSHD = "/usr/sbin/sshd"
TEST_USER = "lift-sftp-test"
PRIVSEP_DIR = "/run/sshd"
READY_TIMEOUT = 15
_PR_SET_PDEATHSIG = 1


def ensure_test_user():
    """The test user's passwd entry; created (no home, no shell, no password) when missing."""
    try:
        return pwd.getpwnam(TEST_USER)
    except KeyError:
        # "*" rather than useradd's default "!": sshd without PAM refuses a "!" (locked) account
        # even for key logins; "*" matches no password, and password logins are off anyway.
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", "--password", "*", TEST_USER], check=True)
        return pwd.getpwnam(TEST_USER)


def free_port():
    """A TCP port nobody listens on at 127.0.0.1 right now (sshd binds it next; a start that
    loses the race is retried on another port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _die_with_parent():
    # sshd -D would outlive a test run that was killed: have the kernel end it with us.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def descendants(pid):
    """Pids of the processes below ``pid`` (sshd's per-connection children), deepest last."""
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child in processes.pids() if processes.parent(child) == parent]
        found.extend(children)
        frontier.extend(children)
    return found


def alive(pid):
    state = processes.read(pid, "stat").rsplit(b")", 1)[-1].split()
    return bool(state) and state[0] != b"Z"


def listening_sockets(pid):
    """The local addresses ``ss -ltnp`` shows for ``pid``, and ss's lines for it."""
    out = subprocess.run(["ss", "-ltnpH"], check=True, capture_output=True, text=True).stdout
    lines = [line for line in out.splitlines() if "pid=%d," % pid in line]
    return [line.split()[3] for line in lines], lines


def damage_file(path, how):
    """Cut a file on the server to half (``truncate``) or change one bit in its middle (``flip``)."""
    with open(path, "r+b") as handle:
        if how == "truncate":
            handle.truncate(os.path.getsize(path) // 2)
        else:
            handle.seek(os.path.getsize(path) // 2)
            byte = handle.read(1)
            handle.seek(-1, 1)
            handle.write(bytes([byte[0] ^ 1]))


class SFTPServer(object):
    """One sshd in a temporary directory: ``start()``, ``stop()`` (the listener and every
    session: the connections drop), ``cleanup()``. ``root`` is a folder the test user owns."""

    def __init__(self):
        self.user = ensure_test_user()
        self.base = tempfile.mkdtemp(prefix="lift-sftpd-")
        # sshd reads the authorized keys as the test user: it must be able to reach them.
        os.chmod(self.base, 0o755)
        self.host_key = os.path.join(self.base, "host_ed25519_key")
        self.client_key = os.path.join(self.base, "client_ed25519_key")
        self.other_key = os.path.join(self.base, "other_ed25519_key")
        for path in (self.host_key, self.client_key, self.other_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lift-sftp-test", "-f", path],
                           check=True, stdout=subprocess.DEVNULL)
        self.authorized_keys = os.path.join(self.base, "authorized_keys")
        with open(self.authorized_keys, "w") as handle:
            handle.write(self.public(self.client_key) + "\n")
        os.chmod(self.authorized_keys, 0o644)
        self.root = os.path.join(self.base, "home")
        os.mkdir(self.root, 0o700)
        os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        self.config = os.path.join(self.base, "sshd_config")
        self.pid_file = os.path.join(self.base, "sshd.pid")
        self.log_path = os.path.join(self.base, "sshd.log")
        self.host = "127.0.0.1"
        self.port = None
        self.proc = None

    @staticmethod
    def public(key_path):
        with open(key_path + ".pub") as handle:
            return " ".join(handle.read().split()[:2])

    def private(self, key_path=None):
        with open(key_path or self.client_key) as handle:
            return handle.read()

    @property
    def known_hosts(self):
        """The known_hosts line of this server (its port is not 22: the [host]:port form)."""
        return "[%s]:%d %s\n" % (self.host, self.port, self.public(self.host_key))

    def host_fingerprint(self):
        """``ssh-keygen -l``'s SHA256 fingerprint of the host key."""
        out = subprocess.run(["ssh-keygen", "-l", "-f", self.host_key + ".pub"], check=True, capture_output=True,
                             text=True).stdout
        return out.split()[1]

    def _write_config(self):
        with open(self.config, "w") as handle:
            handle.write("\n".join([
                "# The SFTP storage tests' own sshd (tests/lib/sftpserver.py); not the machine's.",
                "ListenAddress %s:%d" % (self.host, self.port),
                "HostKey %s" % self.host_key,
                "PidFile %s" % self.pid_file,
                "AuthorizedKeysFile %s" % self.authorized_keys,
                # StrictModes checks every folder above the authorized keys: this temporary
                # directory is under /tmp (world-writable, sticky), which it rejects. The file
                # and its folder belong to root (0644, 0755), so nobody else can change them.
                "StrictModes no",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "PermitRootLogin no",
                "AllowUsers %s" % TEST_USER,
                "AllowTcpForwarding no",
                "X11Forwarding no",
                "PermitTTY no",
                "Subsystem sftp internal-sftp",
                "ForceCommand internal-sftp",
                "LogLevel VERBOSE",
                "",
            ]))

    def start(self, port=None):
        """Start sshd (on ``port``, or a free one) and wait until a key login works."""
        if not os.path.isdir(PRIVSEP_DIR):
            os.makedirs(PRIVSEP_DIR, 0o755)  # sshd's privilege separation folder
        for _attempt in range(3):
            self.port = port or free_port()
            self._write_config()
            log = open(self.log_path, "ab")
            try:
                self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", self.config], stdin=subprocess.DEVNULL,
                                             stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
            finally:
                log.close()
            if self._wait_ready():
                return self
            self.stop()
            if port is not None:
                break
        raise RuntimeError("sshd did not start; its log:\n%s" % self.log_tail())

    def _wait_ready(self):
        """Poll: a login with the test key, until it works or sshd exits (a lost port race)."""
        import paramiko  # the venv's or Debian's, whichever runs the tests
        deadline = time.monotonic() + READY_TIMEOUT
        key = paramiko.Ed25519Key.from_private_key_file(self.client_key)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            client = paramiko.SSHClient()
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            host_key = paramiko.Ed25519Key(data=base64.b64decode(self.public(self.host_key).split()[1]))
            client.get_host_keys().add("[%s]:%d" % (self.host, self.port), host_key.get_name(), host_key)
            try:
                client.connect(self.host, self.port, username=TEST_USER, pkey=key, look_for_keys=False,
                               allow_agent=False, timeout=2, banner_timeout=2, auth_timeout=2)
                return True
            except (paramiko.SSHException, OSError, EOFError):
                time.sleep(0.05)  # the interval between polls, not a wait for a condition
            finally:
                client.close()
        return False

    def log_tail(self, limit=4000):
        try:
            with open(self.log_path, "rb") as handle:
                return handle.read()[-limit:].decode("utf-8", "replace")
        except OSError:
            return ""

    def listening(self):
        return listening_sockets(self.proc.pid)

    def stop(self):
        """End sshd and its sessions (terminate, then kill after a grace period), by pid."""
        if self.proc is None:
            return
        sessions = descendants(self.proc.pid)
        for pid in [self.proc.pid] + sessions:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        deadline = time.monotonic() + 5
        while any(alive(pid) for pid in sessions) and time.monotonic() < deadline:
            time.sleep(0.05)  # polling the sessions' exit
        for pid in sessions:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def target_settings(self, directory):
        """The module settings (``target``) of this server's ``directory`` (below its root)."""
        return dict(type="sftp", host=self.host, port=self.port, user=TEST_USER, directory=os.path.join(self.root, directory),
                    private_key=self.private(), known_hosts=self.known_hosts)

    def storage(self, directory="backups", **options):
        """An SFTPStorage of ``directory`` below the test user's folder, trusting this server's
        host key and logging in with the test key (``options`` override)."""
        from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.sftp import SFTPStorage
        settings = dict(host=self.host, port=self.port, user=TEST_USER, directory=os.path.join(self.root, directory),
                        private_key=self.private(), known_hosts=self.known_hosts, connect_timeout=5)
        settings.update(options)
        return SFTPStorage(**settings)


def usable():
    """Why the real-sshd tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "starting sshd for another user needs root"
    if not os.access(SSHD, os.X_OK):
        return "%s is missing (Debian package openssh-server)" % SSHD
    return None


@pytest.fixture(scope="module", name="sftp_server")
def sftp_server_fixture():
    """A running sshd for the module's tests."""
    reason = usable()
    if reason:
        pytest.fail("the SFTP tests need a real sshd: %s" % reason)  # never a silent skip
    server = SFTPServer()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()
