# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A directory on an SFTP server as backup storage (base.Storage), for off-site copies.

Host keys are checked only against the known_hosts given, and only key authentication is used.
A file is written to a hidden temporary in the same remote directory (named like atomic_files'
temporaries: host and pid of the writer), synced on the server where it offers
``fsync@openssh.com``, then renamed: plain SFTP rename, which never replaces (OpenSSH links),
or ``posix-rename@openssh.com`` where replacing is wanted. SFTP has no inode numbers, so an
entry's identity is its type, owner, size and mtime. Pure Python over paramiko, imported only
when a connection is made (2.12 as in Debian 12, and later).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import collections
import datetime
import errno
import hashlib
import io
import json
import posixpath
import socket
import stat

try:
    import paramiko
    from paramiko import sftp as sftp_protocol
except ImportError:  # the module still imports; connecting says what is missing
    paramiko = None
    sftp_protocol = None
    REMOTE_ERRORS = (OSError, EOFError)
else:
    # What a call to the server raises: the SFTP status as IOError (OSError), a lost connection
    # as EOFError, SSHException or OSError.
    REMOTE_ERRORS = (OSError, EOFError, paramiko.SSHException)

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import manifest as manifest_mod
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact.naming import parse_backup_name
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import atomic_files
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.base import (
    DIRECTORY, FILE, OTHER, SYMLINK, Entry, Storage, StorageError, checked)

UTC = datetime.timezone.utc
NEEDS_PARAMIKO = "the sftp storage needs paramiko (Debian package python3-paramiko)"
FSYNC_EXTENSION = "fsync@openssh.com"
STATVFS_EXTENSION = "statvfs@openssh.com"
# paramiko sends at most 32 KiB per SFTP write or read request.
REQUEST_SIZE = 32768
# Write requests in flight before the oldest acknowledgement is awaited: 2 MiB, paramiko's
# default channel window, so the pipe stays full without unbounded bookkeeping.
WRITES_IN_FLIGHT = 64
# A download is fetched in windows of this many bytes (read requests in flight at once): the
# stream never holds more than one window, whatever the file's size.
READ_WINDOW = 4 * 1024 * 1024
# A generic SFTP "Failure" of a write while the server has less than this free is a full disk:
# OpenSSH reports ENOSPC only as "Failure", without the errno's text.
FULL_DISK_BYTES = 1024 * 1024
# How long one SFTP request may stay unanswered once connected: without it a server that
# vanished from the network would hang a backup forever.
MIN_IO_TIMEOUT = 60


def location_of(user, host, port, directory):
    """The text naming the storage: sftp://user@host:port/dir (a directory relative to the
    login's home as /~/dir, as ssh URLs write it; an IPv6 address in brackets)."""
    shown_host = "[%s]" % host if ":" in host else host
    path = directory if directory.startswith("/") else "/~/" + directory
    return "sftp://%s@%s:%d%s" % (user, shown_host, port, path)


def fingerprint(key_blob):
    """The SHA256 fingerprint of a public key (its wire form), as ``ssh-keygen -l`` prints it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key_blob).digest()).decode("ascii").rstrip("=")


def describe_key(key):
    """``ssh-ed25519 key SHA256:...``: what an operator compares with the server's key out of band."""
    return "%s key %s" % (key.get_name(), fingerprint(key.asbytes()))


def parse_extensions(data):
    """{name: data} of the extensions an SFTP server announced after its version number (pairs
    of length-prefixed strings); a truncated pair ends the list."""
    found = {}
    offset = 0
    while offset + 4 <= len(data):
        fields = []
        for _field in range(2):
            if offset + 4 > len(data):
                return found
            length = int.from_bytes(data[offset:offset + 4], "big")
            offset += 4
            if offset + length > len(data):
                return found
            fields.append(data[offset:offset + length])
            offset += length
        found[fields[0].decode("utf-8", "replace")] = fields[1]
    return found


# Texts of SSH/SFTP errors that mean the connection is gone (paramiko raises them as
# SSHException, EOFError or OSError without an errno).
_CONNECTION_LOST = ("server connection dropped", "socket is closed", "ssh session not active", "connection lost",
                    "connection reset", "broken pipe", "channel closed")
_NO_SPACE = ("no space left", "enospc", "disk full", "quota exceeded", "insufficient space")
_CONNECT_ERRNO = {
    errno.ECONNREFUSED: "connection refused (no SSH server listening on that port?)",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ETIMEDOUT: "no answer (timed out)",
    errno.ECONNRESET: "the connection to the server was lost (reset)",
    errno.EPIPE: "the connection to the server was lost",
}


class _UnknownHostKey(Exception):
    """The server offered a host key the known_hosts given does not list."""

    def __init__(self, hostname, key):
        Exception.__init__(self, hostname)
        self.hostname = hostname
        self.key = key


def describe_error(exc):
    """(errno, plain words) for an exception of paramiko, the socket or the SFTP server."""
    if isinstance(exc, StorageError):  # already in plain words
        return exc.errno, exc.strerror
    if paramiko is not None:
        if isinstance(exc, paramiko.BadHostKeyException):
            return errno.EACCES, ("host key changed: the server offered %s, the known_hosts given lists %s for it; "
                                  "refused (a reinstalled server, or someone in between: check the server's key "
                                  "out of band before changing known_hosts)"
                                  % (describe_key(exc.key), describe_key(exc.expected_key)))
        if isinstance(exc, paramiko.AuthenticationException):
            return errno.EACCES, "authentication refused: the server did not accept the private key given for this user"
        if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
            codes = set(getattr(error, "errno", None) for error in exc.errors.values())
            if len(codes) == 1:
                code = codes.pop()
                if code in _CONNECT_ERRNO:
                    return code, _CONNECT_ERRNO[code]
            return errno.ECONNREFUSED, "cannot connect: %s" % exc
    if isinstance(exc, _UnknownHostKey):
        return errno.EACCES, ("the server's host key is not in the known_hosts given; it offered %s: check it "
                              "out of band (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub on the server) and add it "
                              "to known_hosts as %s" % (describe_key(exc.key), exc.hostname))
    if isinstance(exc, socket.gaierror):
        return errno.EHOSTUNREACH, "cannot resolve the host name (%s)" % exc.strerror
    if isinstance(exc, socket.timeout):
        return errno.ETIMEDOUT, "no answer from the server (timed out)"
    if isinstance(exc, EOFError):
        return errno.ECONNRESET, "the connection to the server was lost"
    text = str(exc.strerror if isinstance(exc, OSError) and exc.strerror else exc)
    lowered = text.lower()
    code = getattr(exc, "errno", None)
    if code in (errno.ENOENT,):
        return code, "no such file or directory"
    if code in (errno.EACCES, errno.EPERM):
        return code, "permission denied"
    if code == errno.ENOSPC or any(words in lowered for words in _NO_SPACE):
        return errno.ENOSPC, "no space left on the server"
    if code in _CONNECT_ERRNO:
        return code, _CONNECT_ERRNO[code]
    if any(words in lowered for words in _CONNECTION_LOST):
        return errno.ECONNRESET, "the connection to the server was lost"
    if lowered == "failure":
        return errno.EIO, "the server refused the operation (SFTP status failure)"
    if lowered == "operation unsupported":
        return errno.EOPNOTSUPP, "the server does not support this operation"
    if paramiko is not None and isinstance(exc, paramiko.SSHException):
        return errno.EIO, "SSH error: %s" % text
    return code or errno.EIO, text or exc.__class__.__name__


def _plain_name(name):
    if not name or "/" in name or name in (".", ".."):
        raise StorageError(errno.EINVAL, "not a plain file name: %r" % (name,))
    return name


def _kind_of(mode):
    mode = mode or 0  # a server may leave the permissions out
    if stat.S_ISLNK(mode):
        return SYMLINK
    if stat.S_ISREG(mode):
        return FILE
    if stat.S_ISDIR(mode):
        return DIRECTORY
    return OTHER


def _mtime_of(attrs):
    return datetime.datetime.fromtimestamp(attrs.st_mtime or 0, UTC)


def _identity_of(attrs):
    # No inode numbers in SFTP v3: type and permissions, owner, size and mtime (whole seconds)
    # stand for "the same file". A replacement of the same size, owner and mode within the same
    # second would pass; a backup name is written once, so that is not a case retention meets.
    return (attrs.st_mode, attrs.st_uid, attrs.st_size, attrs.st_mtime)


if paramiko is not None:
    class _RejectUnknownHost(paramiko.RejectPolicy):
        """paramiko's RejectPolicy, keeping the key the server offered so the error can show it."""

        def missing_host_key(self, client, hostname, key):
            raise _UnknownHostKey(hostname, key)

    class _SFTPClient(paramiko.SFTPClient):
        """paramiko's SFTP client that also keeps the extensions the server announced in its
        version packet (paramiko reads that packet and drops them): fsync and statvfs are used
        only when offered."""

        server_extensions = {}

        def _send_version(self):
            read_packet = self._read_packet

            def read_and_remember():
                kind, data = read_packet()
                if kind == sftp_protocol.CMD_VERSION:
                    self.server_extensions = parse_extensions(data[4:])
                return kind, data

            self._read_packet = read_and_remember
            try:
                return paramiko.SFTPClient._send_version(self)
            finally:
                del self._read_packet


class SFTPStorage(Storage):
    """A directory on an SFTP server. Connects on first use; ``close()`` disconnects. Each writer
    and reader has an SFTP channel of its own on the one SSH connection, so that pipelined
    requests never mix with the listing and removal of other calls."""

    def __init__(self, host, directory, user, port=22, private_key=None, private_key_file=None,
                 known_hosts=None, known_hosts_file=None, connect_timeout=10):
        self.host = host
        self.directory = directory.rstrip("/") or "/"
        self.user = user
        self.port = int(port)
        self.location = location_of(user, host, self.port, self.directory)
        self._private_key = private_key
        self._private_key_file = private_key_file
        self._known_hosts = known_hosts
        self._known_hosts_file = known_hosts_file
        self.connect_timeout = connect_timeout
        self._client = None
        self._main = None

    def __repr__(self):
        return "SFTPStorage(%r)" % self.location

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        """The connection stays until close(): callers hold the storage in a with block around a
        listing and its removals (posix holds its directory there) and may go on using it."""
        return False

    # --- connection ---------------------------------------------------------------------

    def error(self, exc, action, name=None):
        """A StorageError naming the location, what was being done, to what, and the problem."""
        if isinstance(exc, StorageError):
            return exc
        code, problem = describe_error(exc)
        if code == errno.ECONNRESET or isinstance(exc, (socket.timeout, EOFError)):
            self._forget_connection()
        what = "%s %s" % (action, name) if name else action
        return StorageError(code, "%s: %s: %s" % (self.location, what, problem))

    def _fail(self, code, problem, name=None):
        return StorageError(code, "%s: %s%s" % (self.location, "%s: " % name if name else "", problem))

    def _private_key_object(self):
        text = self._private_key
        source = "the private key given"
        if text is None and self._private_key_file:
            source = "the private key file %s" % self._private_key_file
            try:
                with open(self._private_key_file, "r") as handle:
                    text = handle.read()
            except (OSError, UnicodeDecodeError) as exc:
                raise self._fail(getattr(exc, "errno", None) or errno.EINVAL, "cannot read %s: %s"
                                 % (source, getattr(exc, "strerror", None) or exc.__class__.__name__))
        if not text:
            raise self._fail(errno.EINVAL, "no private key given (private_key or private_key_file): the sftp storage "
                                           "logs in with a key only")
        # Whatever fails below, the message never quotes the key or paramiko's text about it.
        for key_class in [getattr(paramiko, name) for name in ("Ed25519Key", "ECDSAKey", "RSAKey")
                          if hasattr(paramiko, name)]:
            try:
                return key_class.from_private_key(io.StringIO(text))
            except paramiko.PasswordRequiredException:
                raise self._fail(errno.EINVAL, "%s is protected by a passphrase: give a key without one (kept "
                                               "secret by the caller)" % source)
            except (paramiko.SSHException, ValueError, TypeError, IndexError, AssertionError):
                continue
        raise self._fail(errno.EINVAL, "%s is not a private key paramiko can read (OpenSSH or PEM; ed25519, ecdsa "
                                       "or rsa)" % source)

    def _known_host_lines(self):
        lines = []
        if self._known_hosts:
            lines.extend(("known_hosts given", number, line) for number, line in
                         enumerate(self._known_hosts.splitlines(), 1))
        if self._known_hosts_file:
            try:
                with open(self._known_hosts_file, "r") as handle:
                    text = handle.read()
            except (OSError, UnicodeDecodeError) as exc:
                raise self._fail(getattr(exc, "errno", None) or errno.EINVAL, "cannot read the known_hosts file %s: %s"
                                 % (self._known_hosts_file, getattr(exc, "strerror", None) or exc.__class__.__name__))
            lines.extend((self._known_hosts_file, number, line) for number, line in enumerate(text.splitlines(), 1))
        return lines

    def _trust(self, client):
        """Put the known_hosts given, and only them, into ``client``; returns the revoked keys."""
        revoked = set()
        host_keys = client.get_host_keys()
        for source, number, line in self._known_host_lines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            marker = None
            if line.startswith("@"):
                # paramiko knows no markers: @revoked keys are refused below, @cert-authority
                # lines (host certificates) cannot be used and are skipped.
                marker, _sep, line = line.partition(" ")
                if marker != "@revoked":
                    continue
            try:
                entry = paramiko.hostkeys.HostKeyEntry.from_line(line, number)
            except (paramiko.SSHException, ValueError, TypeError, IndexError, AssertionError) as exc:
                raise self._fail(errno.EINVAL, "line %d of the %s is not a known_hosts line (%s)"
                                 % (number, source, exc.__class__.__name__))
            if entry is None:  # a key type paramiko does not know, or too few fields
                continue
            if marker == "@revoked":
                revoked.add(entry.key.asbytes())
                continue
            for hostname in entry.hostnames:
                host_keys.add(hostname, entry.key.get_name(), entry.key)
        return revoked

    def _connect(self):
        if paramiko is None:
            raise StorageError(errno.ENOSYS, NEEDS_PARAMIKO)
        key = self._private_key_object()
        client = paramiko.SSHClient()
        try:
            revoked = self._trust(client)
            client.set_missing_host_key_policy(_RejectUnknownHost())
            client.connect(self.host, port=self.port, username=self.user, pkey=key, password=None,
                           look_for_keys=False, allow_agent=False,
                           timeout=self.connect_timeout, banner_timeout=self.connect_timeout,
                           auth_timeout=self.connect_timeout)
            transport = client.get_transport()
            if transport.get_remote_server_key().asbytes() in revoked:
                raise self._fail(errno.EACCES, "the server's host key %s is marked @revoked in the known_hosts given"
                                 % describe_key(transport.get_remote_server_key()))
            # Notice a server that went away during a long upload, rather than wait on TCP.
            transport.set_keepalive(max(5, self.connect_timeout))
        except StorageError:
            client.close()
            raise
        except (paramiko.SSHException, OSError, EOFError, _UnknownHostKey) as exc:
            client.close()
            raise self.error(exc, "cannot connect as %s" % self.user)
        self._client = client
        return client

    def _open_channel(self, action, name=None):
        """A new SFTP session on the connection (connecting first when needed)."""
        transport = self._client.get_transport() if self._client is not None else None
        if transport is None or not transport.is_active():
            self._forget_connection()
            self._connect()
        try:
            session = _SFTPClient.from_transport(self._client.get_transport())
            session.get_channel().settimeout(max(MIN_IO_TIMEOUT, 6 * self.connect_timeout))
        except REMOTE_ERRORS as exc:
            raise self.error(exc, action, name)
        if session is None:
            raise self._fail(errno.ECONNRESET, "the server refused to start the SFTP subsystem", name)
        return session

    def _sftp(self):
        """The SFTP session for listing, looking and removing."""
        if self._main is None or self._main.get_channel().closed:
            self._main = self._open_channel("cannot open an SFTP session")
        return self._main

    def _forget_connection(self):
        client, self._client, self._main = self._client, None, None
        if client is not None:
            client.close()

    def close(self):
        self._forget_connection()

    def path(self, name):
        """The remote path of ``name``."""
        return posixpath.join(self.directory, name)

    # --- looking ------------------------------------------------------------------------

    def _lstat(self, name, session=None):
        """The lstat attributes of ``name``, or None when there is none."""
        return self._lstat_path(self.path(name), session, name)

    def _lstat_path(self, path, session=None, label=None, follow=False):
        sftp = session or self._sftp()
        try:
            return sftp.stat(path) if follow else sftp.lstat(path)
        except REMOTE_ERRORS as exc:
            if getattr(exc, "errno", None) == errno.ENOENT:
                return None
            raise self.error(exc, "cannot look at", label or path)

    def ensure(self):
        sftp = self._sftp()
        # The location itself may be a symlink to a directory (as posix's ensure allows).
        attrs = self._lstat_path(self.directory, follow=True)
        if attrs is not None:
            if not stat.S_ISDIR(attrs.st_mode):
                raise self._fail(errno.ENOTDIR, "%s exists and is not a directory" % self.directory)
            return False
        parts, current = [], self.directory
        while current not in ("", "/", ".") and self._lstat_path(current) is None:
            parts.append(current)
            current = posixpath.dirname(current)
        for path in reversed(parts):
            try:
                sftp.mkdir(path, 0o700)
                sftp.chmod(path, 0o700)  # mkdir's mode passes through the server's umask
            except REMOTE_ERRORS as exc:
                raise self.error(exc, "cannot create the directory", path)
        return True

    def exists(self, name):
        return self._lstat(_plain_name(name)) is not None

    def _entry(self, name, attrs, session=None):
        kind = _kind_of(attrs.st_mode)
        size = attrs.st_size or 0
        if kind == DIRECTORY:
            size = self._tree_size(self.path(name), session) if parse_backup_name(name) else 0
        return Entry(name, kind, size, _mtime_of(attrs))

    def _tree_size(self, path, session=None):
        total = 0
        for _path, attrs in self._walk_files(path, session):
            if stat.S_ISREG(attrs.st_mode):
                total += attrs.st_size
        return total

    def _walk_files(self, path, session=None):
        """[(path, lstat attributes)] of every non-directory below ``path``, never entering a symlink."""
        sftp = session or self._sftp()
        try:
            listing = sftp.listdir_attr(path)
        except REMOTE_ERRORS as exc:
            raise self.error(exc, "cannot list", path)
        found = []
        for attrs in sorted(listing, key=lambda a: a.filename):
            child = posixpath.join(path, attrs.filename)
            if stat.S_ISDIR(attrs.st_mode):
                found.extend(self._walk_files(child, session))
            else:
                found.append((child, attrs))
        return found

    def entries(self):
        sftp = self._sftp()
        try:
            listing = sftp.listdir_attr(self.directory)
        except REMOTE_ERRORS as exc:
            raise self.error(exc, "cannot list", self.directory)
        entries, identities = [], {}
        for attrs in sorted(listing, key=lambda a: a.filename):
            entries.append(self._entry(attrs.filename, attrs))
            identities[attrs.filename] = _identity_of(attrs)
        return entries, identities

    def stat(self, name):
        attrs = self._lstat(_plain_name(name))
        return None if attrs is None else self._entry(name, attrs)

    # --- writing ------------------------------------------------------------------------

    def create(self, name, mode=0o600, sha256=None):
        return checked(_RemoteWriter(self, _plain_name(name), mode, replace=False), sha256)

    def write(self, name, data, mode=0o600, replace=False):
        if not isinstance(data, bytes):
            data = data.encode("utf-8")
        with _RemoteWriter(self, _plain_name(name), mode, replace=replace) as writer:
            writer.write(data)
            writer.commit()
        return self.path(name)

    def promote(self, staged, name):
        sftp = self._sftp()
        try:
            sftp.posix_rename(self.path(_plain_name(staged)), self.path(_plain_name(name)))
        except REMOTE_ERRORS as exc:
            raise self.error(exc, "cannot rename %s to" % staged, name)

    def free_bytes(self):
        """Free bytes for this user in the directory (statvfs@openssh.com), or None when the
        server does not offer it."""
        sftp = self._sftp()
        if STATVFS_EXTENSION not in sftp.server_extensions:
            return None
        try:
            # paramiko has no call for it: the extended request as posix_rename sends its own.
            kind, msg = sftp._request(sftp_protocol.CMD_EXTENDED, STATVFS_EXTENSION, self.directory)  # pylint: disable=protected-access
        except REMOTE_ERRORS as exc:
            raise self.error(exc, "cannot ask for the free space of", self.directory)
        if kind != sftp_protocol.CMD_EXTENDED_REPLY:
            return None
        # struct statvfs as OpenSSH sends it: bsize, frsize, blocks, bfree, bavail, ...
        _bsize, frsize, _blocks, _bfree, bavail = [msg.get_int64() for _field in range(5)]
        return bavail * frsize

    # --- reading ------------------------------------------------------------------------

    def open_read(self, name):
        attrs = self._lstat(_plain_name(name))
        if attrs is None:
            raise self._fail(errno.ENOENT, "cannot read %s: no such file" % name)
        if not stat.S_ISREG(attrs.st_mode):
            raise self._fail(errno.EINVAL, "cannot read %s: it is a %s, not a file" % (name, _kind_of(attrs.st_mode)))
        return _RemoteReader(self, self.path(name), name, attrs.st_size)

    def read_manifest(self, name):
        entry = self.stat(name)
        where = "%s/%s" % (self.location, name)
        if entry is None or entry.kind != FILE:
            raise manifest_mod.ManifestError("cannot read manifest %s: %s" % (
                where, "no such file" if entry is None else "it is a %s" % entry.kind))
        if entry.size > manifest_mod.MAX_MANIFEST_BYTES:
            raise manifest_mod.ManifestError("manifest %s is larger than %d bytes" % (where, manifest_mod.MAX_MANIFEST_BYTES))
        with self.open_read(name) as stream:
            raw = stream.read(manifest_mod.MAX_MANIFEST_BYTES + 1)
        if len(raw) > manifest_mod.MAX_MANIFEST_BYTES:
            raise manifest_mod.ManifestError("manifest %s is larger than %d bytes" % (where, manifest_mod.MAX_MANIFEST_BYTES))
        try:
            manifest = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise manifest_mod.ManifestError("manifest %s is not valid JSON: %s" % (where, exc))
        return manifest_mod.validate_manifest(manifest)

    def _sha256(self, path, label, size):
        digest = hashlib.sha256()
        with _RemoteReader(self, path, label, size) as stream:
            while True:
                chunk = stream.read(READ_WINDOW)
                if not chunk:
                    break
                digest.update(chunk)
        return digest.hexdigest()

    def digest(self, name):
        """sha256 of a file, streamed; of a directory archive, the combined digest of
        artifact/checksums.py (the sha256 of its ``sha256sum`` listing)."""
        attrs = self._lstat(_plain_name(name))
        if attrs is None:
            raise self._fail(errno.ENOENT, "cannot hash %s: no such file" % name)
        if stat.S_ISREG(attrs.st_mode):
            return self._sha256(self.path(name), name, attrs.st_size)
        if not stat.S_ISDIR(attrs.st_mode):
            raise self._fail(errno.EINVAL, "cannot hash %s: it is a %s" % (name, _kind_of(attrs.st_mode)))
        top = self.path(name)
        lines = []
        for path, file_attrs in self._walk_files(top):
            if not stat.S_ISREG(file_attrs.st_mode):
                raise self._fail(errno.EINVAL, "cannot hash %s: %s is a %s" % (name, path, _kind_of(file_attrs.st_mode)))
            lines.append((posixpath.relpath(path, top), self._sha256(path, path, file_attrs.st_size)))
        listing = "".join("%s  %s\n" % (sha, rel) for rel, sha in sorted(lines))
        return hashlib.sha256(listing.encode("utf-8")).hexdigest()

    # --- removing -----------------------------------------------------------------------

    def remove(self, name, identity):
        """Remove ``name`` if its lstat is still ``identity``: a file or a symlink (the link
        itself, never its target) with one remove, a folder recursively without entering links."""
        attrs = self._lstat(_plain_name(name))
        if attrs is None:
            return
        if _identity_of(attrs) != identity:
            raise self._fail(errno.EAGAIN, "%s changed since it was examined; left alone" % name)
        self._remove_path(self.path(name), attrs)

    def _remove_path(self, path, attrs):
        sftp = self._sftp()
        try:
            if stat.S_ISDIR(attrs.st_mode):
                for child in sftp.listdir_attr(path):
                    self._remove_path(posixpath.join(path, child.filename), child)
                sftp.rmdir(path)
            else:
                sftp.remove(path)  # SSH_FXP_REMOVE is unlink(2): a symlink goes, its target stays
        except REMOTE_ERRORS as exc:
            raise self.error(exc, "cannot remove", path)

    def sync(self):
        """Nothing to do: the server answers a removal once it is done, and SFTP cannot sync a
        directory (fsync@openssh.com takes a file handle only)."""

    def stale_partials(self):
        """Temporaries of writers on this host (the client's) whose process is gone."""
        sftp = self._sftp()
        try:
            names = sftp.listdir(self.directory)
        except REMOTE_ERRORS as exc:
            raise self.error(exc, "cannot list", self.directory)
        return sorted(name for name in names if _stale_partial(name))

    def remove_partials(self, names):
        removed = []
        for name in names:
            if atomic_files.partial_target(_plain_name(name)) is None:
                raise self._fail(errno.EINVAL, "%s is not a writer's temporary; left alone" % name)
            attrs = self._lstat(name)
            if attrs is None:
                continue
            self._remove_path(self.path(name), attrs)
            removed.append(name)
        return removed


def _stale_partial(name):
    """Whether ``name`` is the temporary of a writer on this host that no longer runs."""
    match = atomic_files._PARTIAL_RE.match(name)  # pylint: disable=protected-access
    return bool(match and match.group("host") == atomic_files.short_hostname()
                and not atomic_files._pid_alive(int(match.group("pid"))))  # pylint: disable=protected-access


class _RemoteWriter(object):
    """A file being uploaded to its hidden temporary; ``commit()`` publishes it."""

    def __init__(self, storage, name, mode, replace):
        self._storage = storage
        self.name = name
        self.mode = mode
        self.replace = replace
        self.size = 0
        self.temp_name = atomic_files.partial_name(name)
        self._temp_path = storage.path(self.temp_name)
        self._session = storage._open_channel("cannot start writing", name)  # pylint: disable=protected-access
        self._file = None
        self._finished = False
        try:
            self._file = self._open_exclusive()
            self._file.chmod(mode)  # the mode given at creation went through the server's umask
        except REMOTE_ERRORS as exc:
            self._finish(remove=self._file is not None)
            raise storage.error(exc, "cannot create", self.temp_name)
        self._file.set_pipelined(True)

    def _open_exclusive(self):
        """Open the temporary: created here or refused (no one else's file is ever written into),
        private from the first byte (mode 0600 in the open request, which paramiko's open() omits)."""
        attrs = paramiko.SFTPAttributes()
        attrs.st_mode = 0o600
        flags = sftp_protocol.SFTP_FLAG_WRITE | sftp_protocol.SFTP_FLAG_CREATE | sftp_protocol.SFTP_FLAG_EXCL
        kind, msg = self._session._request(sftp_protocol.CMD_OPEN, self._temp_path, flags, attrs)  # pylint: disable=protected-access
        if kind != sftp_protocol.CMD_HANDLE:
            raise paramiko.SFTPError("Expected handle")
        return paramiko.SFTPFile(self._session, msg.get_binary(), "wb", REQUEST_SIZE)

    def _collect_acks(self, keep):
        """Await the server's answers to the oldest writes until ``keep`` are in flight.

        paramiko's pipelined writes keep their request numbers in the file's ``_reqs`` and look at
        the answers only when more than 100 are pending; close() never looks at the last ones. A
        write the server refused (a full disk) would go unnoticed, so they are read here, in
        order, and a refusal raises from write() or commit()."""
        pending = self._file._reqs  # pylint: disable=protected-access
        while len(pending) > keep:
            self._session._read_response(pending.popleft())  # pylint: disable=protected-access

    def write(self, data):
        if self._finished:
            raise self._storage._fail(errno.EINVAL, "%s is already committed or aborted" % self.name)  # pylint: disable=protected-access
        try:
            self._file.write(data)
            self._collect_acks(WRITES_IN_FLIGHT)
        except REMOTE_ERRORS as exc:
            raise self._write_error(exc, "cannot write")
        self.size += len(data)

    def _write_error(self, exc, action):
        error = self._storage.error(exc, action, self.temp_name)
        if error.errno == errno.EIO and "SFTP status failure" in error.strerror:
            try:
                free = self._storage.free_bytes()
            except StorageError:
                free = None
            if free is not None and free < FULL_DISK_BYTES:
                error = self._storage._fail(  # pylint: disable=protected-access
                    errno.ENOSPC, "%s %s: no space left on the server (%d bytes free)" % (action, self.temp_name, free))
        return error

    def commit(self):
        """Flush, sync on the server, rename to the final name, check the size there."""
        try:
            self._file.flush()
            self._collect_acks(0)
            if FSYNC_EXTENSION in self._session.server_extensions:
                # paramiko has no call for it: the extended request as its posix_rename sends its own.
                self._session._request(sftp_protocol.CMD_EXTENDED, FSYNC_EXTENSION, self._file.handle)  # pylint: disable=protected-access
            there = self._file.stat().st_size
            self._file.close()
        except REMOTE_ERRORS as exc:
            error = self._write_error(exc, "cannot finish writing")
            self.abort()
            raise error
        if there != self.size:
            self.abort()
            raise self._storage._fail(errno.EIO, "%s has %d bytes on the server, %d were written; not published"  # pylint: disable=protected-access
                                      % (self.temp_name, there, self.size))
        final = self._storage.path(self.name)
        try:
            if self.replace:
                self._session.posix_rename(self._temp_path, final)
            else:
                # SSH_FXP_RENAME never replaces: OpenSSH links the new name (refused when it exists)
                # and unlinks the old one.
                self._session.rename(self._temp_path, final)
        except REMOTE_ERRORS as exc:
            try:
                exists = not self.replace and self._storage._lstat(self.name, self._session) is not None  # pylint: disable=protected-access
            except StorageError:
                exists = False
            self.abort()
            if exists:
                raise self._storage._fail(errno.EEXIST, "refusing to overwrite %s: it already exists" % self.name)  # pylint: disable=protected-access
            raise self._storage.error(exc, "cannot rename %s to" % self.temp_name, self.name)
        self._finish(remove=False)
        attrs = self._storage._lstat(self.name)  # pylint: disable=protected-access
        if attrs is None or not stat.S_ISREG(attrs.st_mode) or attrs.st_size != self.size:
            raise self._storage._fail(errno.EIO, "%s is not the file just written (%s, %d bytes were written)" % (  # pylint: disable=protected-access
                self.name, "gone" if attrs is None else "%s of %d bytes" % (_kind_of(attrs.st_mode), attrs.st_size),
                self.size))

    def abort(self):
        """Remove the temporary (best effort: when the connection is gone, it stays as a hidden
        temporary that ``stale_partials`` reports once this process has ended)."""
        self._finish(remove=True)

    def _finish(self, remove):
        if self._finished:
            return
        self._finished = True
        try:
            if self._file is not None:
                if remove:
                    # Data still buffered for an aborted file is not sent: after a lost
                    # connection, close() (and paramiko's __del__ after it) would fail on it.
                    self._file._wbuffer = io.BytesIO()  # pylint: disable=protected-access
                self._file.close()
        except REMOTE_ERRORS:
            pass
        try:
            if remove:
                self._session.remove(self._temp_path)
        except REMOTE_ERRORS:
            pass
        self._session.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.abort()  # a no-op after a successful commit
        return False


class _RemoteReader(object):
    """A download as a binary stream: ``read(size)`` returns what the next window of read
    requests fetched, never more than one window held."""

    def __init__(self, storage, path, name, size):
        self._storage = storage
        self.name = name
        self._size = size
        self._fetched = 0
        self._blocks = collections.deque()
        self._buffered = 0
        self._session = storage._open_channel("cannot start reading", name)  # pylint: disable=protected-access
        try:
            self._file = self._session.open(path, "rb")
        except REMOTE_ERRORS as exc:
            self._session.close()
            raise storage.error(exc, "cannot read", name)

    def _fetch_window(self):
        end = min(self._size, self._fetched + READ_WINDOW)
        chunks = [(offset, min(REQUEST_SIZE, end - offset)) for offset in range(self._fetched, end, REQUEST_SIZE)]
        try:
            # readv sends all the window's requests at once and yields the blocks in order.
            for block in self._file.readv(chunks):
                if not block:
                    raise EOFError("the file ended early")
                self._blocks.append(block)
                self._buffered += len(block)
                self._fetched += len(block)
        except REMOTE_ERRORS as exc:
            if isinstance(exc, EOFError) and self._session.get_channel().active:
                raise self._storage._fail(errno.EIO, "cannot read %s: it became shorter while being read (%d bytes "  # pylint: disable=protected-access
                                          "expected)" % (self.name, self._size))
            raise self._storage.error(exc, "cannot read", self.name)

    def read(self, size=-1):
        if size is None or size < 0:
            size = self._size - self._fetched + self._buffered
        while self._buffered < size and self._fetched < self._size:
            self._fetch_window()
        out = []
        wanted = min(size, self._buffered)
        while wanted:
            block = self._blocks.popleft()
            if len(block) > wanted:
                self._blocks.appendleft(block[wanted:])
                block = block[:wanted]
            out.append(block)
            wanted -= len(block)
            self._buffered -= len(block)
        return b"".join(out)

    def close(self):
        if self._session is not None:
            try:
                self._file.close()
            except REMOTE_ERRORS:
                pass
            self._session.close()
            self._session = None
            self._blocks.clear()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False
