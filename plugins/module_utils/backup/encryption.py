# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Encrypting a backup in its stream: the recipients (public keys, or files listing them) checked
and described for the manifest, and the encryption stage of the dump pipeline.

Only public keys ever reach the database host for a backup; the plaintext is never written to
disk (the stage runs between the compressor and the atomic write). A recipients file decides who
can read every backup made with it, so it must be as trustworthy as the backups themselves
(storage/path_trust.py). Pure Python (runs age; no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess

from ansible_collections.lift_simulator.postgresql.plugins.module_utils import codecs
from ansible_collections.lift_simulator.postgresql.plugins.module_utils import process
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import age_header
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import path_trust

MAX_RECIPIENTS_FILE = 1024 * 1024


class EncryptionError(ValueError):
    pass


def _is_key(entry):
    return entry.startswith("age1") or entry.split(" ", 1)[0] in age_header.SSH_TYPES


def _refuse_identity(entry, where):
    """An identity given as a recipient: refused without repeating any of it."""
    if age_header.looks_like_identity(entry):
        raise EncryptionError("%s holds a private key (an identity); only public keys belong there, and the "
                              "identity must be kept off the database host" % where)


def _read_recipients_file(path, directory_checks):
    try:
        warnings = path_trust.check([os.path.dirname(os.path.abspath(path)), path], directory_checks,
                                    "the recipients file %s" % path)
        with open(path, "rb") as handle:
            data = handle.read(MAX_RECIPIENTS_FILE + 1)
    except path_trust.UntrustedPathError as exc:
        raise EncryptionError(str(exc))
    except OSError as exc:
        raise EncryptionError("cannot read the recipients file %s: %s" % (path, exc.strerror))
    if len(data) > MAX_RECIPIENTS_FILE:
        raise EncryptionError("the recipients file %s is larger than 1 MiB" % path)
    lines = [line.strip() for line in data.decode("utf-8", "replace").splitlines()]
    return [line for line in lines if line and not line.startswith("#")], warnings


def resolve_recipients(entries, directory_checks=path_trust.STRICT):
    """The recipients of ``entries`` (public keys, or paths of files with one per line, ``#``
    comments allowed), each described for the manifest: (list of descriptions, warnings)."""
    described, warnings = [], []
    for entry in entries or []:
        entry = (entry or "").strip()
        if not entry:
            continue
        _refuse_identity(entry, "encryption_recipients")
        if _is_key(entry):
            keys = [entry]
        else:
            keys, found = _read_recipients_file(entry, directory_checks)
            warnings.extend(found)
            if not keys:
                raise EncryptionError("the recipients file %s lists no recipient" % entry)
        for key in keys:
            _refuse_identity(key, "the recipients file %s" % entry)
            try:
                description = age_header.describe_recipient(key)
            except age_header.AgeHeaderError as exc:
                raise EncryptionError("encryption_recipients: %s" % exc)
            if description["recipient"] not in [d["recipient"] for d in described]:
                described.append(description)
    if not described:
        raise EncryptionError("encryption age needs encryption_recipients: at least one age or SSH public key")
    return described, warnings


def encoder_argv(name, recipients):
    """The encryption stage's argv, after checking that the program takes these recipients (it
    encrypts nothing, before pg_dump starts): raises EncryptionError with the program's words."""
    try:
        argv = codecs.encryption(name).encode_argv([r["recipient"] for r in recipients])
    except codecs.CodecError as exc:
        raise EncryptionError(str(exc))
    try:
        proc = process.spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _out, err = proc.communicate(timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EncryptionError("cannot run %s: %s" % (argv[0], exc))
    if proc.returncode != 0:
        lines = err.decode("utf-8", "replace").strip().splitlines()
        said = lines[0] if lines else "exit code %d" % proc.returncode
        raise EncryptionError("%s refuses the recipients: %s" % (os.path.basename(argv[0]), said))
    return argv


def manifest_record(name, recipients):
    """What the manifest says of the encryption: its name and each recipient's public description
    (never an identity)."""
    return {"encryption": name, "recipients": [dict((k, v) for k, v in r.items()) for r in recipients]}
