# -*- coding: utf-8 -*-
"""The SFTP storage driver's pure logic: the location text, host key fingerprints, the server's
announced extensions, errors in plain words, secrets kept out of messages, leftovers of dead
writers. The driver against a real sshd: tests/integration/test_storage_sftp.py."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import socket
import subprocess

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import atomic_files
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import sftp
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.base import Storage, StorageError
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.sftp import SFTPStorage

paramiko = pytest.importorskip("paramiko")

SECRET_BODY = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZWQyNTUxOTSECRETSECRET"
NOT_A_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\n%s\n-----END OPENSSH PRIVATE KEY-----\n" % SECRET_BODY


def test_the_driver_implements_the_whole_interface():
    wanted = [name for name in vars(Storage) if not name.startswith("_") and callable(getattr(Storage, name))]
    for name in wanted:
        assert getattr(SFTPStorage, name) is not getattr(Storage, name), name


@pytest.mark.parametrize("user, host, port, directory, expected", [
    ("backup", "offsite.example.org", 22, "/srv/backups", "sftp://backup@offsite.example.org:22/srv/backups"),
    ("backup", "10.0.0.5", 2222, "lift", "sftp://backup@10.0.0.5:2222/~/lift"),
    ("backup", "2001:db8::5", 22, "/b", "sftp://backup@[2001:db8::5]:22/b"),
])
def test_location_names_user_host_port_and_directory(user, host, port, directory, expected):
    assert sftp.location_of(user, host, port, directory) == expected
    assert SFTPStorage(host, directory + "/", user, port=port).location == expected


def test_fingerprint_is_what_ssh_keygen_prints(tmp_path):
    key = tmp_path / "key"
    try:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        printed = subprocess.run(["ssh-keygen", "-l", "-f", str(key) + ".pub"], check=True, capture_output=True,
                                 text=True).stdout.split()[1]
    except OSError:
        pytest.skip("no ssh-keygen")
    public = paramiko.Ed25519Key.from_private_key_file(str(key))
    assert sftp.fingerprint(public.asbytes()) == printed
    assert sftp.describe_key(public) == "ssh-ed25519 key " + printed


def test_fingerprint_of_known_bytes():
    # sha256(b"") = 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU= (padding dropped, as OpenSSH does)
    assert sftp.fingerprint(b"") == "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"


def _pairs(*items):
    return b"".join(len(item).to_bytes(4, "big") + item for item in items)


def test_the_servers_extensions_are_read_from_its_version_packet():
    data = _pairs(b"posix-rename@openssh.com", b"1", b"fsync@openssh.com", b"1")
    assert sftp.parse_extensions(data) == {"posix-rename@openssh.com": b"1", "fsync@openssh.com": b"1"}
    assert sftp.parse_extensions(b"") == {}
    assert sftp.parse_extensions(data + b"\x00\x00\x00\x09trunc") == {"posix-rename@openssh.com": b"1",
                                                                      "fsync@openssh.com": b"1"}


def _key(first=0):
    """An ed25519 public key from 32 made-up bytes (its wire form: type name, then the key)."""
    return paramiko.Ed25519Key(data=b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes(range(first, first + 32)))


@pytest.mark.parametrize("exc, code, words", [
    (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), errno.ECONNREFUSED, "connection refused"),
    (OSError(errno.EHOSTUNREACH, "No route to host"), errno.EHOSTUNREACH, "host unreachable"),
    (socket.timeout("timed out"), errno.ETIMEDOUT, "timed out"),
    (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), errno.EHOSTUNREACH, "cannot resolve the host name"),
    (IOError(errno.ENOENT, "No such file"), errno.ENOENT, "no such file or directory"),
    (IOError(errno.EACCES, "Permission denied"), errno.EACCES, "permission denied"),
    (IOError("Failure"), errno.EIO, "SFTP status failure"),
    (IOError("No space left on device"), errno.ENOSPC, "no space left on the server"),
    (IOError("Operation unsupported"), errno.EOPNOTSUPP, "does not support"),
    (EOFError(), errno.ECONNRESET, "the connection to the server was lost"),
    (OSError("Socket is closed"), errno.ECONNRESET, "the connection to the server was lost"),
    (paramiko.SSHException("Server connection dropped: "), errno.ECONNRESET, "the connection to the server was lost"),
    (paramiko.AuthenticationException("Authentication failed."), errno.EACCES, "authentication refused"),
    (paramiko.SSHException("Incompatible ssh peer"), errno.EIO, "SSH error: Incompatible ssh peer"),
])
def test_errors_are_said_in_plain_words(exc, code, words):
    found_code, problem = sftp.describe_error(exc)
    assert found_code == code and words in problem, problem


def test_refused_on_every_address_is_a_refused_connection():
    errors = {("127.0.0.1", 22): ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
              ("::1", 22, 0, 0): ConnectionRefusedError(errno.ECONNREFUSED, "refused")}
    code, problem = sftp.describe_error(paramiko.ssh_exception.NoValidConnectionsError(errors))
    assert code == errno.ECONNREFUSED and "connection refused" in problem


def test_host_key_errors_show_fingerprints():
    offered, other = _key(0), _key(1)
    _code, changed = sftp.describe_error(paramiko.BadHostKeyException("[h]:2222", offered, other))
    assert "host key changed" in changed and sftp.fingerprint(offered.asbytes()) in changed
    assert sftp.fingerprint(other.asbytes()) in changed
    _code, unknown = sftp.describe_error(sftp._UnknownHostKey("[h]:2222", offered))  # pylint: disable=protected-access
    assert "not in the known_hosts given" in unknown and sftp.fingerprint(offered.asbytes()) in unknown
    assert "[h]:2222" in unknown


def test_an_unreadable_private_key_is_refused_without_its_content():
    store = SFTPStorage("127.0.0.1", "/srv/b", "backup", port=9, private_key=NOT_A_KEY, known_hosts="")
    with pytest.raises(StorageError) as info:
        store.entries()  # refused before any connection is tried
    assert "is not a private key paramiko can read" in str(info.value)
    assert "SECRET" not in str(info.value) and "SECRET" not in repr(store) and "SECRET" not in store.location
    assert str(info.value).startswith("[Errno %d] sftp://backup@127.0.0.1:9/srv/b: " % errno.EINVAL)


def test_no_key_at_all_is_refused_key_logins_only():
    with pytest.raises(StorageError) as info:
        SFTPStorage("127.0.0.1", "/srv/b", "backup", port=9).entries()
    assert "no private key given" in str(info.value)


def test_a_missing_paramiko_is_named(monkeypatch):
    monkeypatch.setattr(sftp, "paramiko", None)
    with pytest.raises(StorageError) as info:
        SFTPStorage("127.0.0.1", "/srv/b", "backup", private_key=NOT_A_KEY).entries()
    assert str(info.value).endswith("the sftp storage needs paramiko (Debian package python3-paramiko)")


def test_names_must_be_plain():
    store = SFTPStorage("127.0.0.1", "/srv/b", "backup", private_key=NOT_A_KEY)
    for name in ("", ".", "..", "a/b", "../etc"):
        with pytest.raises(StorageError):
            store.create(name)


def test_only_dead_writers_of_this_host_leave_stale_temporaries():
    host = atomic_files.short_hostname()
    assert sftp._stale_partial(".b.sql%s%s-999999999" % (atomic_files.PARTIAL_MARK, host))  # pylint: disable=protected-access
    assert not sftp._stale_partial(atomic_files.partial_name("b.sql"))  # pylint: disable=protected-access
    assert not sftp._stale_partial(".b.sql%sotherhost-999999999" % atomic_files.PARTIAL_MARK)  # pylint: disable=protected-access
    assert not sftp._stale_partial("b.sql")  # pylint: disable=protected-access


class _Attrs(object):
    def __init__(self, mode, uid, size, mtime):
        self.st_mode, self.st_uid, self.st_size, self.st_mtime = mode, uid, size, mtime


def test_an_identity_changes_with_size_time_owner_or_type():
    base = sftp._identity_of(_Attrs(0o100600, 1000, 10, 1700000000))  # pylint: disable=protected-access
    for changed in (_Attrs(0o100600, 1000, 11, 1700000000), _Attrs(0o100600, 1000, 10, 1700000001),
                    _Attrs(0o100600, 0, 10, 1700000000), _Attrs(0o120777, 1000, 10, 1700000000)):
        assert sftp._identity_of(changed) != base  # pylint: disable=protected-access
    assert sftp._kind_of(0o120777) == "symlink" and sftp._kind_of(None) == "other"  # pylint: disable=protected-access
