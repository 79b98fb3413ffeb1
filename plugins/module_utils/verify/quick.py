# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The quick verification: everything that can be checked about a backup without a database.

The one implementation behind the verify module's quick level, the restore module's check before
it changes anything, and the scheduled job's check of what it just wrote. It reads each file:
sha256 against the manifest; for plain dumps (also through a decompressor) the whole text through
the collection's plain-dump reader, which refuses anything pg_dump does not write (psql
meta-commands above all), with pg_dump's header and completion trailer; the table of contents of
archives (every block, when no checksum vouches for them).
Pure Python (runs pg_restore and the decompressors; no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess
import tempfile
import threading

from ansible_collections.lift_simulator.postgresql.plugins.module_utils import codecs
from ansible_collections.lift_simulator.postgresql.plugins.module_utils import process
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.app.lift_simulator import check
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import age_header
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import checksums
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import decoding
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import manifest as manifest_mod
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import plain_dump
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import plain_split
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact.backup_files import (
    PLAIN_HEADER, PLAIN_TRAILER, BackupFileError)

_TAIL_BYTES = 64 * 1024


def verify_quickly(backup, pg_restore_for, identity=None):
    """The quick checks of an inspected backup (artifact.backup_files.inspect); each is a
    dict(name, passed, skipped, detail). ``pg_restore_for()`` gives the pg_restore to read an
    archive with; it is only called for custom and directory archives."""
    pg_restore = pg_restore_for() if backup.format != "plain" else None
    return quick_checks(backup, pg_restore, identity)


def _manifest_checks(backup):
    """Checks that the manifest belongs to this file and agrees with what the file is."""
    if backup.manifest is None:
        if backup.manifest_error:
            return [check("manifest", False, backup.manifest_error)]
        return [check("manifest", True, "no manifest (a backup of an earlier process?): checksum and row counts "
                      "cannot be compared", skipped=True)]
    m = backup.manifest
    problems = []
    if m["backup_name"] != backup.name:
        problems.append("it describes %s, not %s" % (m["backup_name"], backup.name))
    if m["format"] != backup.format:
        problems.append("it says format %s, the file is %s" % (m["format"], backup.format))
    if m.get("encryption", "none") != backup.encryption:
        problems.append("it says encryption %s, the file is %s" % (m.get("encryption", "none"), backup.encryption))
    if backup.format == "plain" and m["compression"] != backup.compression:
        problems.append("it says compression %s, the file is %s" % (m["compression"], backup.compression))
    if problems:
        return [check("manifest", False, "the manifest does not belong to this backup: " + "; ".join(problems))]
    return [check("manifest", True, "manifest version %s, written %s" % (m["manifest_version"], m["finished_at"]))]


def _checksum_check(backup):
    digest, size = checksums.backup_digest(backup.path)
    backup.sha256 = digest
    # A key rotation killed between its manifest writes: the manifest describes both files.
    backup.manifest = manifest_mod.settled(backup.manifest, digest)
    if backup.manifest is None:
        return check("sha256", True, "sha256 %s (%d bytes); no manifest to compare with" % (digest, size), skipped=True)
    if size != backup.manifest["size_bytes"]:
        return check("sha256", False, "size is %d bytes, the manifest recorded %d (truncated or appended?)"
                     % (size, backup.manifest["size_bytes"]))
    if digest != backup.manifest["sha256"]:
        detail = "sha256 %s differs from the manifest's %s" % (digest, backup.manifest["sha256"])
        if backup.format == "directory" and backup.manifest.get("files"):
            files, _total, _d = checksums.hash_directory(backup.path)
            bad = sorted(set(f for f in files if files[f] != backup.manifest["files"].get(f))
                         | set(f for f in backup.manifest["files"] if f not in files))
            detail += " (files: %s)" % ", ".join(bad[:10])
        return check("sha256", False, detail)
    return check("sha256", True, "matches the manifest (%s)" % digest)


class _Watched(object):
    """A stream read by the plain-dump reader, keeping its first and last bytes on the way."""

    def __init__(self, raw):
        self.raw = raw
        self.head = b""
        self.tail = b""

    def read(self, size=-1):
        data = self.raw.read(size)
        if len(self.head) < 4096:
            self.head += data[:4096 - len(self.head)]
        self.tail = (self.tail + data[-_TAIL_BYTES:])[-_TAIL_BYTES:]
        return data


def _role_definitions_check(backup):
    """The role definitions taken with the backup (its globals file) are there, as recorded."""
    entry = backup.manifest["globals"]
    path = os.path.join(os.path.dirname(backup.path.rstrip("/")), entry.get("name", ""))
    if not os.path.lexists(path):
        return check("role definitions", True, "%s is not beside the backup (copied without it?): a restore cannot "
                     "create the roles the backup needs from it" % path, skipped=True)
    if not os.path.isfile(path) or os.path.islink(path):
        return check("role definitions", False, "%s is not a regular file" % path)
    digest, size = checksums.sha256_file(path)
    if digest != entry.get("sha256") or size != entry.get("size_bytes"):
        return check("role definitions", False, "%s does not match the manifest's sha256 and size" % path)
    return check("role definitions", True, "%s matches the manifest%s" % (
        os.path.basename(path), " (with password verifiers)" if entry.get("role_passwords") else ""))


def _plain_structure_check(backup, identity):
    """The whole dump read by the collection's plain-dump reader (nothing outside pg_dump's grammar:
    no psql meta-command, COPY blocks ended as psql ends them), pg_dump's header at the start and
    its completion trailer at the end (which catches truncation); also through a decompressor and
    the decryption."""
    try:
        with decoding.DecodedStream(backup, identity) as stream:
            watched = _Watched(stream.stdout)
            problem = None
            try:
                if backup.compression in (None, "none") and backup.encryption == "none":
                    # The same pass plans the parallel load (its offsets are the file's): the
                    # restore that follows does not read the dump once more for it.
                    found, plan, why_not = plain_split.scan(watched)
                    backup.split = (plan, why_not)
                else:
                    found = plain_dump.validate(watched)
            except plain_dump.PlainDumpError as exc:
                problem = str(exc)
                while watched.read(process.CHUNK):
                    pass  # read to the end, for the trailer and the decoders' verdict
            failure = stream.finish()
    except decoding.DecodeError as exc:
        return check("structure", False, str(exc))
    if failure:
        return _decode_failed(backup, failure)
    head, tail = watched.head, watched.tail
    if PLAIN_HEADER not in head[:1024]:
        return check("structure", False, "no pg_dump header at the start")
    if b"\nCREATE DATABASE " in head or b"\n\\connect " in head:
        return check("structure", False, "made with pg_dump --create (it creates and connects to its own database); "
                     "dump without --create, or restore it with psql by hand")
    if PLAIN_TRAILER not in tail:
        return check("structure", False, "pg_dump's completion trailer is missing: the dump is truncated or incomplete")
    if problem:
        return check("structure", False, "not what pg_dump writes, refused (nothing of it is ever run): %s" % problem)
    return check("structure", True, "pg_dump header and completion trailer present; %d lines read, %d tables' data, "
                 "nothing outside pg_dump's grammar%s" % (found["lines"], found["tables"],
                                                          "" if found["restrict"] else " (no \\restrict line: an "
                                                          "older pg_dump)"))


def _archive_structure_check(backup, pg_restore, full_read, identity):
    """pg_restore reads the table of contents (and, without a checksum to rely on, every block);
    an encrypted archive reaches it decrypted through its stdin."""
    code, out, err, failure = _pg_restore(backup, pg_restore, ["--list"], identity)
    if failure:
        return _decode_failed(backup, failure)
    if code != 0:
        return check("structure", False, "pg_restore cannot read the table of contents: %s" % (err or "no output"))
    entries = [line for line in out.decode("utf-8", "replace").splitlines() if line and not line.startswith(";")]
    if full_read:
        code, _out, err, failure = _pg_restore(backup, pg_restore, ["-f", os.devnull], identity)
        if failure:
            return _decode_failed(backup, failure)
        if code != 0:
            return check("structure", False, "pg_restore cannot read the whole archive: %s" % err)
        return check("structure", True, "table of contents with %d entries; every data block read" % len(entries))
    return check("structure", True, "table of contents with %d entries" % len(entries))


def _pg_restore(backup, pg_restore, args, identity):
    """(exit code, stdout, last stderr line, decoding failure) of pg_restore reading the archive."""
    encrypted = backup.encryption != "none"
    with tempfile.TemporaryFile() as err:
        try:
            with decoding.DecodedStream(backup, identity) if encrypted else _NoStream() as stream:
                proc = process.spawn([pg_restore] + args + ([] if encrypted else [backup.path]),
                                     stdin=stream.stdout if encrypted else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=err)
                if encrypted:
                    stream.stdout.close()  # pg_restore's now: a decoder must not wait on us if it stops
                    stream.stdout = None
                out = proc.communicate()[0]
                failure = stream.finish(reader_stopped_early=proc.returncode == 0)
        except decoding.DecodeError as exc:
            return 1, b"", "", str(exc)
        lines = process.read_tail(err).strip().splitlines()
        return proc.returncode, out, lines[-1] if lines else "", failure


class _NoStream(object):
    stdout = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False

    def finish(self, reader_stopped_early=False):
        return None


def _decode_failed(backup, failure):
    program, message = failure
    if backup.encryption != "none" and program == codecs.encryption(backup.encryption).program[0]:
        return check("structure", False, "cannot decrypt it with the identity given (%s); it was made for: %s"
                     % (message, age_header.made_for((backup.manifest or {}).get("recipients"))))
    return check("structure", False, "the %s stream is damaged: %s" % (backup.compression, message))


def _encryption_check(backup):
    """The age header is well formed and has a stanza for each recipient the manifest recorded (as
    far as a header tells without the identity: SSH keys by their tag, X25519 keys by number)."""
    with open(backup.path, "rb") as handle:
        head = handle.read(age_header.MAX_HEADER)
    try:
        stanzas = age_header.read_stanzas(head)
    except age_header.AgeHeaderError as exc:
        return check("encryption", False, "the %s header is malformed: %s" % (backup.encryption, exc))
    if backup.manifest is None:
        return check("encryption", True, "%s header with %d recipient stanza(s); no manifest to compare with"
                     % (backup.encryption, len(stanzas)), skipped=True)
    problems = age_header.header_problems(stanzas, backup.manifest.get("recipients") or [])
    if problems:
        return check("encryption", False, "the %s header does not match the manifest's recipients: %s"
                     % (backup.encryption, "; ".join(problems)))
    return check("encryption", True, "%s header well formed, one stanza for each of the %d recipient(s) the manifest "
                 "lists" % (backup.encryption, len(stanzas)))


def quick_checks(backup, pg_restore=None, identity=None):
    """All quick checks of a backup; each is a dict(name, passed, skipped, detail). ``identity``
    (secret_file.SecretFile) reads an encrypted backup through; without it only its header is
    checked."""
    try:
        return _quick_checks(backup, pg_restore, identity)
    except OSError as exc:
        raise BackupFileError("cannot read %s: %s" % (exc.filename or backup.path, exc.strerror))


class _Beside(threading.Thread):
    """A check run in a thread beside another: its result, or what it raised, by ``result()``."""

    def __init__(self, function, *args):
        threading.Thread.__init__(self, name="quick-check")
        self.daemon = True
        self.function, self.args = function, args
        self.value = self.error = None
        self.start()

    def run(self):
        try:
            self.value = self.function(*self.args)
        except BaseException as exc:  # pylint: disable=broad-except
            self.error = exc

    def result(self):
        self.join()
        if self.error is not None:
            raise self.error
        return self.value


def _quick_checks(backup, pg_restore, identity):
    checks = [check("not empty", backup.size > 0, "%d bytes" % backup.size)]
    if backup.size == 0:
        return checks
    checks.extend(_manifest_checks(backup))
    structure = None
    if backup.format == "plain" and (backup.encryption == "none" or identity is not None):
        # A plain dump's two whole reads at once: the hash runs on another core (hashlib leaves
        # the GIL for big blocks) while the reader parses. The structure check reads neither the
        # manifest nor the checksum's verdict.
        structure = _Beside(_plain_structure_check, backup, identity)
    try:
        checks.append(_checksum_check(backup))
    finally:
        if structure is not None:
            structure.join()
    if backup.manifest is not None and backup.manifest.get("globals"):
        checks.append(_role_definitions_check(backup))
    if backup.encryption != "none":
        checks.append(_encryption_check(backup))
        if identity is None:
            checks.append(check("structure", True, "encrypted with %s: its content is read only with an identity "
                                "(identity or identity_file)" % backup.encryption, skipped=True))
            return checks
    if backup.format == "plain":
        checks.append(structure.result() if structure is not None else _plain_structure_check(backup, identity))
    else:
        if pg_restore is None:
            raise BackupFileError("pg_restore is needed to read %s archives" % backup.format)
        # With a matching checksum the archive is exactly what pg_dump wrote; without one, read it all.
        trusted = backup.manifest is not None and all(c["passed"] for c in checks if c["name"] == "sha256")
        checks.append(_archive_structure_check(backup, pg_restore, not trusted, identity))
    return checks
