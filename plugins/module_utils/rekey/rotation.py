# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Key rotation: one encrypted backup re-encrypted to new recipients, the plaintext never on disk.

The steps (docs/encryption.md, "Key rotation"); after each, one complete backup that verifies is
there, under the old keys or the new:

1. ``age -d`` (the old identity, an in-memory file) piped into ``age -e`` (the new recipients),
   hashed as it passes, written to ``.<name>.rekey`` (published complete and synced);
2. that file read back: the sha256 and size streamed, an age header for the new recipients;
3. the manifest gains ``rekey_pending`` (that file's sha256, size and recipients);
4. the file renamed over the backup;
5. the manifest final: the new sha256, size and recipients, a rotation record; nothing pending.

A run killed between 3 and 5 leaves a manifest that describes both files (readers take the file
for whichever it is: artifact/manifest.py ``settled``); the next run finishes it. A staged file
of a killed run is removed and written again. Pure Python (runs age; no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import contextlib
import copy
import datetime
import errno
import fcntl
import os

from ansible_collections.lift_simulator.postgresql.plugins.module_utils import failpoints
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import age_header
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import backup_files
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import checksums
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import decoding
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import manifest as manifest_mod
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact.naming import manifest_name
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.backup.dump_pipeline import Pipeline
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.process import ProgramError
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.base import StorageError

REKEYED = "rekeyed"        # re-encrypted to the new recipients
FINISHED = "finished"      # a killed run's re-encrypted file was in place: its manifest completed
UNCHANGED = "unchanged"    # already encrypted to exactly these recipients
STAGED_SUFFIX = ".rekey"
UTC = datetime.timezone.utc


class RekeyError(Exception):
    pass


def staged_name(name):
    """The hidden name the re-encrypted file is written under, beside the backup."""
    return ".%s%s" % (name, STAGED_SUFFIX)


def decide(manifest, sha256, size, recipients):
    """What the backup whose file has ``sha256`` and ``size`` needs to be encrypted to
    ``recipients`` (descriptions): FINISHED (a killed rotation's file is in place; its manifest is
    completed first, and the backup may then still need REKEYED), REKEYED, or UNCHANGED. Raises
    RekeyError when the file is neither version its manifest describes."""
    pending = manifest.get(manifest_mod.REKEY_PENDING)
    if pending and (sha256, size) == (pending["sha256"], pending["size_bytes"]):
        return FINISHED
    if (sha256, size) != (manifest["sha256"], manifest["size_bytes"]):
        raise RekeyError("its sha256 or size does not match the manifest (damaged or replaced?): not re-encrypted; "
                         "verify it")
    if age_header.same_recipients(manifest.get("recipients"), recipients) and not pending:
        return UNCHANGED
    return REKEYED


def with_pending(manifest, sha256, size, recipients, started_at):
    """The manifest of step 3: the backup as it is, and the re-encrypted file about to replace it."""
    updated = dict(manifest)
    updated[manifest_mod.REKEY_PENDING] = {"sha256": sha256, "size_bytes": size, "recipients": recipients,
                                           "started_at": started_at}
    return manifest_mod.validate_manifest(updated)


def finished(manifest, finished_at):
    """The manifest of step 5: the re-encrypted file's sha256, size and recipients, and a rotation
    record naming what it replaced."""
    pending = manifest[manifest_mod.REKEY_PENDING]
    updated = manifest_mod.settled(manifest, pending["sha256"])
    record = {"started_at": pending.get("started_at"), "finished_at": finished_at,
              "previous_sha256": manifest["sha256"], "previous_size_bytes": manifest["size_bytes"],
              "previous_recipients": manifest.get("recipients") or []}
    updated["rotations"] = list(manifest.get("rotations") or []) + [record]
    return manifest_mod.validate_manifest(updated)


@contextlib.contextmanager
def directory_locked(path):
    """One rotation at a time in a backup directory (flock on the directory itself: no file)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise RekeyError("another key rotation is running in %s" % path)
            raise
        yield
    finally:
        os.close(fd)


Plan = collections.namedtuple("Plan", "backup action sha256 file_id")
Plan.__doc__ = """A backup as read once: its action (``decide``), the sha256 its file had, and that
file's identity (device, inode, size), which must be the same when the re-encrypted copy replaces it."""


def file_id(stat):
    return (stat.st_dev, stat.st_ino, stat.st_size)


def now_text():
    return manifest_mod.utc_iso(datetime.datetime.now(UTC))


class Rotation(object):
    """Re-encrypting the backups of one storage location (storage/posix.py) to ``recipients``
    (backup/encryption.py ``resolve_recipients``) with ``encoder`` (the ``age -e`` argv)."""

    def __init__(self, storage, recipients, encoder, identity=None, directory_checks="strict", stall=None):
        self.storage = storage
        self.recipients = recipients
        self.encoder = encoder
        self.identity = identity
        self.directory_checks = directory_checks
        self.stall = stall

    def inspect(self, name):
        """The backup ``name`` (trusted as backup_files.inspect trusts it), encrypted, with a manifest."""
        try:
            backup = backup_files.inspect(self.storage.path(name), self.directory_checks)
        except backup_files.BackupFileError as exc:
            raise RekeyError(str(exc))
        if backup.encryption == "none":
            raise RekeyError("it is not encrypted: rekey re-encrypts encrypted backups only")
        if backup.manifest is None:
            raise RekeyError(backup.manifest_error or "it has no manifest, which must record the rotation")
        return backup

    def plan(self, name):
        """The Plan for the backup ``name``; reads it whole, writes nothing."""
        backup = self.inspect(name)
        before = os.stat(backup.path)
        sha256, size = checksums.sha256_file(backup.path)
        after = os.stat(backup.path)
        if file_id(before) != file_id(after) or before.st_mtime_ns != after.st_mtime_ns:
            raise RekeyError("the backup changed while it was read; left as it is")
        return Plan(backup, decide(backup.manifest, sha256, size, self.recipients), sha256, file_id(after))

    def check(self, name):
        """What ``run`` would do to the backup ``name``, writing nothing: (action, the recipients its
        file is for now, its sha256, the Plan to give ``run``). Checks that the identity opens it
        when it would be re-encrypted."""
        planned = self.plan(name)
        backup, action = planned.backup, planned.action
        settled = manifest_mod.settled(backup.manifest, planned.sha256)
        if action == FINISHED and not age_header.same_recipients(settled.get("recipients"), self.recipients):
            action = REKEYED
        if action == REKEYED:
            as_settled = copy.copy(backup)  # the Plan keeps the manifest as read, for run
            as_settled.manifest = settled
            self.check_identity(as_settled)
        return action, settled.get("recipients"), planned.sha256, planned

    def check_identity(self, backup):
        """Whether the identity opens the backup (age checks the header and the first chunk)."""
        with decoding.DecodedStream(backup, self.identity) as stream:
            stream.stdout.read(1)
            stream.stdout.close()
            stream.stdout = None
            failure = stream.finish(reader_stopped_early=True)
        if failure:
            raise RekeyError(self._cannot_decrypt(backup, failure[1]))

    def run(self, name, planned=None):
        """Bring the backup ``name`` to the new recipients: (action, sha256 before, sha256 after).
        ``planned``: the Plan ``check`` made of it in this run (else it is read again here)."""
        planned = planned or self.plan(name)
        before = planned.sha256
        self._drop_staged(name)
        if planned.action == FINISHED:
            self._write_manifest(name, finished(planned.backup.manifest, now_text()))
            planned = self.plan(name)
            if planned.action == UNCHANGED:
                return FINISHED, before, before
        if planned.action == UNCHANGED:
            return UNCHANGED, before, before
        after = self._rotate(planned)
        return REKEYED, before, after

    def _rotate(self, planned):
        backup = planned.backup
        name, staged = backup.name, staged_name(backup.name)
        started_at = now_text()
        if self.storage.free_bytes() < backup.size + 1024 * 1024:
            raise RekeyError("the re-encrypted copy needs %d bytes free beside it; %s has %d"
                             % (backup.size, self.storage.location, self.storage.free_bytes()))
        try:
            decrypt = decoding.decrypt_argv(backup, self.identity.path)
        except decoding.DecodeError as exc:
            raise RekeyError(str(exc))
        pipeline = Pipeline([decrypt, self.encoder], stall=self.stall, pass_fds=self.identity.fds)
        try:
            with self.storage.create(staged) as target:
                stream = pipeline.run(target, on_started=lambda: failpoints.reached("rekey-streaming"))
                target.commit()
        except ProgramError as exc:
            raise RekeyError(self._cannot_decrypt(backup, str(exc), getattr(exc, "stderr", "")))
        except OSError as exc:
            raise RekeyError("cannot write the re-encrypted copy %s: %s" % (staged, exc.strerror or exc))
        failpoints.reached("rekey-staged")
        try:
            self._check_staged(staged, stream)
            manifest = with_pending(backup.manifest, stream.sha256, stream.size, self.recipients, started_at)
            self._write_manifest(name, manifest)
            failpoints.reached("rekey-pending")
            if file_id(os.stat(backup.path)) != planned.file_id:
                raise RekeyError("the backup was replaced while it was re-encrypted; left as it is")
            self.storage.promote(staged, name)
        except (RekeyError, StorageError) as exc:
            self._drop_staged(name)  # the backup and its manifest still describe each other
            raise RekeyError(str(exc))
        failpoints.reached("rekey-promoted")
        self._write_manifest(name, finished(manifest, now_text()))
        return stream.sha256

    def _check_staged(self, staged, stream):
        """Step 2: the file on disk is what was streamed, and its header is for the new recipients."""
        path = self.storage.path(staged)
        sha256, size = checksums.sha256_file(path)
        if (sha256, size) != (stream.sha256, stream.size):
            raise RekeyError("the re-encrypted copy %s does not read back as written (sha256 %s, %d bytes; streamed "
                             "%s, %d bytes); the backup is left as it was"
                             % (staged, sha256, size, stream.sha256, stream.size))
        with open(path, "rb") as handle:
            head = handle.read(age_header.MAX_HEADER)
        try:
            problems = age_header.header_problems(age_header.read_stanzas(head), self.recipients)
        except age_header.AgeHeaderError as exc:
            problems = [str(exc)]
        if problems:
            raise RekeyError("the re-encrypted copy %s is not for the new recipients (%s); the backup is left as it "
                             "was" % (staged, "; ".join(problems)))

    def _cannot_decrypt(self, backup, message, stderr=""):
        said = (stderr or "").strip().splitlines()
        return "cannot re-encrypt it (%s%s); the identity given must be one of those it was made for: %s" % (
            message, ": " + said[-1] if said else "", age_header.made_for(backup.manifest.get("recipients")))

    def _write_manifest(self, name, manifest):
        try:
            self.storage.write(manifest_name(name), manifest_mod.dumps(manifest), replace=True)
        except OSError as exc:
            raise RekeyError("cannot write the manifest of %s: %s" % (name, exc.strerror or exc))

    def _drop_staged(self, name):
        """A killed run's staged copy (never read: it is written again)."""
        path = self.storage.path(staged_name(name))
        if os.path.lexists(path):
            os.unlink(path)
