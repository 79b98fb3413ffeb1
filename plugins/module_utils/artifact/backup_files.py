# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a backup file is: its format and compression (from its content), its size and manifest.

Recognises this collection's backups (with manifests) and the earlier processes' ones (plain
``.sql``, custom ``.backup``, compressed plain), by content rather than by name, after checking
that no other local user could have replaced them (storage/path_trust.py). Reading the file
through is the quick verification's job (verify/quick.py). Pure Python, no Ansible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.lift_simulator.postgresql.plugins.module_utils import codecs
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import manifest as manifest_mod
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import naming
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import path_trust

PLAIN_HEADER = b"-- PostgreSQL database dump"
PLAIN_TRAILER = b"-- PostgreSQL database dump complete"
CUSTOM_MAGIC = b"PGDMP"


class BackupFileError(Exception):
    pass


class Backup(object):
    """A backup on disk: its format and compression (from its content), its manifest if any."""

    def __init__(self, path, fmt, compression, size, manifest=None, manifest_error=None, encryption="none"):
        self.warnings = []
        self.encryption = encryption
        self.directory_checks = path_trust.STRICT
        self.path = path
        self.name = os.path.basename(path.rstrip("/"))
        self.format = fmt
        self.compression = compression
        self.size = size
        self.manifest = manifest
        self.manifest_error = manifest_error
        self.sha256 = None
        # (plain_split.Plan or None, why not) of a plain dump, found by the quick verification's
        # read (verify/quick.py) for the restore's parallel load; None: not read yet.
        self.split = None

    @property
    def expected_rows(self):
        """The row counts to compare with; None without a manifest or with a minimal one."""
        if not self.manifest or self.manifest.get("detail") == "minimal":
            return None
        return self.manifest["row_counts"]


def detect_format(path):
    """(format, compression) from the content; raises BackupFileError for what is not a dump."""
    return detect(path)[:2]


def detect(path):
    """(format, compression, encryption) from the content (an encrypted file's format and
    compression from its name); raises BackupFileError for what is not a dump."""
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "toc.dat")):
            raise BackupFileError("%s is a directory but not a directory-format dump (no toc.dat)" % path)
        return "directory", None, "none"
    if not os.path.isfile(path):
        raise BackupFileError("backup %s does not exist" % path)
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if not head:
        raise BackupFileError("backup %s is empty" % path)
    encryption = codecs.encryption_by_magic(head)
    if encryption is not None:
        named = naming.parse_backup_name(os.path.basename(path))
        if named is None or named.encryption != encryption.name:
            raise BackupFileError("%s is %s-encrypted but not named as an encrypted backup (%s after the format's "
                                  "suffix), so its format is unknown" % (path, encryption.name, encryption.suffix))
        return named.format, named.compression, encryption.name
    if head.startswith(CUSTOM_MAGIC):
        return "custom", None, "none"
    codec = codecs.by_magic(head)
    if codec:
        return "plain", codec.name, "none"
    if PLAIN_HEADER in head[:1024]:
        return "plain", "none", "none"
    raise BackupFileError("%s is not a PostgreSQL dump (no pg_dump header, not a custom or compressed dump)" % path)


def inspect(path, directory_checks=path_trust.STRICT):
    """Look at a backup and its manifest (if any). Raises BackupFileError for a non-dump, and
    (``directory_checks`` strict) for one that another local user could have replaced."""
    path = os.path.abspath(path)
    try:
        warnings = path_trust.check(trusted_paths(path), directory_checks, "the backup %s" % path)
        backup = _inspect(path)
    except path_trust.UntrustedPathError as exc:
        raise BackupFileError(str(exc))
    except OSError as exc:
        raise BackupFileError("cannot read %s: %s" % (exc.filename or path, exc.strerror))
    backup.warnings = warnings
    backup.directory_checks = directory_checks
    return backup


def trusted_paths(path):
    """What must be trustworthy for a backup to be: its directory, itself (with the files of a
    directory-format backup) and its manifest."""
    paths = [os.path.dirname(path.rstrip("/")), path, manifest_mod.manifest_path_for(path)]
    if os.path.isdir(path) and not os.path.islink(path):
        paths.extend(os.path.join(path, name) for name in sorted(os.listdir(path)))
    return paths


def _inspect(path):
    fmt, compression, encryption = detect(path)
    size = 0
    if fmt == "directory":
        for root, _dirs, files in os.walk(path):
            size += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    else:
        size = os.path.getsize(path)
    manifest = None
    manifest_error = None
    manifest_path = manifest_mod.manifest_path_for(path)
    if os.path.exists(manifest_path):
        try:
            manifest = manifest_mod.load_manifest(manifest_path)
        except manifest_mod.ManifestError as exc:
            manifest_error = str(exc)
    return Backup(path, fmt, compression, size, manifest, manifest_error, encryption)
