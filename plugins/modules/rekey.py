#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: rekey
short_description: Re-encrypt age-encrypted backups to new recipients (key rotation), never losing one
version_added: 0.2.0
description:
  - Runs on the database host (or wherever the backups are). Re-encrypts existing age-encrypted
    backups to a new list of recipients, in the stream - C(age -d) with the old identity piped into
    C(age -e) with the new public keys - so the plaintext never touches the disk.
  - For each backup, the re-encrypted file is written beside it under a hidden name, published
    complete and synced, and read back (its sha256 and size as streamed, an age header for the new
    recipients). The manifest then records it as pending, the file is renamed over the backup, and
    the manifest is completed with the new sha256, size and recipients and a rotation record (the
    previous sha256 and recipients, when it started and finished). The old file is gone only once
    the new one is in place and verified.
  - Killed at any point, the backup is still there, complete and verifiable under the old keys or
    the new ones; M(lift_simulator.postgresql.verify), the restores, M(lift_simulator.postgresql.prune)
    and M(lift_simulator.postgresql.backup_info) take a backup between the two manifest writes for
    whichever file it is. Running the module again finishes or redoes what a killed run left.
  - A backup already encrypted to exactly these recipients is left alone, so running it twice
    changes nothing. Backups that are not encrypted are reported as C(not_encrypted) (O(backup_dir)) or
    refused (O(path)). A backup whose file does not match its manifest is refused and left alone.
  - One rotation at a time per directory (a lock on the directory itself).
options:
  path:
    description:
      - One backup to re-encrypt.
      - Mutually exclusive with O(backup_dir); one of them is required.
    type: path
    aliases: [ backup ]
  backup_dir:
    description:
      - Re-encrypt every encrypted backup of O(database) in this directory.
      - Mutually exclusive with O(path).
    type: path
  database:
    description:
      - With O(backup_dir), whose backups (the C(<database>_backup_...) names) are re-encrypted.
    type: str
    default: lift_simulator
    aliases: [ db ]
  encryption_recipients:
    description:
      - The new recipients - C(age1...) keys and OpenSSH C(ssh-ed25519) or C(ssh-rsa) public keys -
        or paths of files on the host that list them, one per line, as for the backup module. The
        backups are encrypted to exactly this list afterwards; an old key left out can no longer
        read them.
    type: list
    elements: str
    required: true
  stall_timeout:
    description:
      - Seconds the re-encryption may go without progress before it is stopped (0 waits forever).
    type: int
    default: 300
extends_documentation_fragment:
  - lift_simulator.postgresql.attributes
  - lift_simulator.postgresql.directory_checks
  - lift_simulator.postgresql.encryption.identity
attributes:
  check_mode:
    support: full
    details: Check mode reads every backup (its checksum against the manifest) and checks that the identity opens
      each one that would be re-encrypted; it lists them and writes nothing.
  diff_mode:
    support: full
    details: The diff shows, per backup, the recipients before and after.
  idempotent:
    support: full
notes:
  - O(identity) or O(identity_file) is required - an identity of one of the recipients the backups
    were made for. It reaches C(age) as an in-memory file and never appears in arguments, logs or
    results.
  - The role definitions taken with each backup (C(.globals.sql)) are not encrypted and are left as
    they are.
  - Needs free space beside each backup for one copy of it while it is re-encrypted.
seealso:
  - name: Encryption and key rotation
    description: The collection's docs/encryption.md.
    link: https://github.com/lift-simulator/lift_simulator.postgresql/blob/main/docs/encryption.md
author:
  - lift_simulator maintainers (@lift-simulator)
"""

EXAMPLES = r"""
- name: Rotate the operations key; the escrow key stays
  become: true
  become_user: postgres    # the backups' owner
  lift_simulator.postgresql.rekey:
    backup_dir: /var/backups/lift_simulator
    identity: "{{ vault_lift_age_identity_old }}"
    encryption_recipients:
      - age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq
      - /etc/lift-pg-backup/escrow.pub
  register: rotated
"""

RETURN = r"""
backups:
  description: What happened to each backup looked at.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The backup's file name.
      type: str
    action:
      description: V(rekeyed) (re-encrypted), V(finished) (a killed run's re-encrypted file was in place; its
        manifest was completed), V(unchanged) (already for these recipients), V(not_encrypted) (left alone), or
        V(refused).
      type: str
    detail:
      description: Why, for V(not_encrypted) and V(refused).
      type: str
    sha256_before:
      description: The backup's sha256 before.
      type: str
    sha256_after:
      description: Its sha256 after (the same unless re-encrypted).
      type: str
  sample: [{"name": "lift_simulator_backup_20261124_080001.sql.zst.age", "action": "rekeyed",
            "sha256_before": "9f2c...", "sha256_after": "41ab..."}]
rekeyed:
  description: Names of the backups re-encrypted (or, in check mode, that would be).
  returned: always
  type: list
  elements: str
finished:
  description: Names of the backups whose interrupted rotation was completed.
  returned: always
  type: list
  elements: str
unchanged:
  description: Names of the backups already encrypted to exactly these recipients.
  returned: always
  type: list
  elements: str
not_encrypted:
  description: Names of the backups left alone because they are not encrypted (O(backup_dir)).
  returned: always
  type: list
  elements: str
refused:
  description: Names of the backups that could not be re-encrypted (left as they were); the module then fails.
  returned: always
  type: list
  elements: str
recipients:
  description: The new recipients as the manifests record them (public keys, SSH fingerprints).
  returned: always
  type: list
  elements: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.ansible_common import (
    directory_checks_argument_spec)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.backup import encryption
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.backup.options import spec
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.rekey import rotation
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.retention import candidates
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.secret_file import SecretFileError, secret_or_file
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.stall_watch import Stall
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import path_trust
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.base import StorageError
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.posix import PosixStorage


def backup_names(storage, database):
    """(encrypted backup names, unencrypted ones) of ``database`` in the storage."""
    entries, _identities = storage.entries()
    found = candidates.scan(entries, database).backups
    return ([s.entry.name for s in found if s.parsed.encryption != "none"],
            [s.entry.name for s in found if s.parsed.encryption == "none"])


def recipients_text(recipients):
    return ", ".join(r.get("fingerprint") or r["recipient"] for r in recipients or [])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", aliases=["backup"]),
            backup_dir=dict(type="path"),
            database=spec("database", aliases=["db"]),
            encryption_recipients=dict(type="list", elements="str", required=True),
            stall_timeout=spec("stall_timeout"),
            identity=dict(type="str", no_log=True),
            identity_file=dict(type="path"),
            **directory_checks_argument_spec()
        ),
        mutually_exclusive=[["path", "backup_dir"], ["identity", "identity_file"]],
        required_one_of=[["path", "backup_dir"], ["identity", "identity_file"]],
        supports_check_mode=True,
    )
    p = module.params
    result = dict(changed=False, backups=[], rekeyed=[], finished=[], unchanged=[], not_encrypted=[], refused=[],
                  recipients=[])
    try:
        recipients, warnings = encryption.resolve_recipients(p["encryption_recipients"], p["directory_checks"])
        encoder = encryption.encoder_argv("age", recipients)
    except encryption.EncryptionError as exc:
        module.fail_json(msg=str(exc), **result)
    for warning in warnings:
        module.warn(warning)
    result["recipients"] = recipients
    directory = os.path.abspath(p["backup_dir"] or os.path.dirname(os.path.abspath(p["path"])))
    storage = PosixStorage(directory)
    try:
        for warning in path_trust.check([directory], p["directory_checks"], "the backup directory %s" % directory):
            module.warn(warning)
        if p["backup_dir"]:
            names, result["not_encrypted"] = backup_names(storage, p["database"])
        else:
            names = [os.path.basename(p["path"].rstrip("/"))]
        with secret_or_file(p["identity"], p["identity_file"], "lift-age-identity") as identity:
            with rotation.directory_locked(directory):
                rotate = rotation.Rotation(storage, recipients, encoder, identity, p["directory_checks"],
                                           Stall(p["stall_timeout"]) if p["stall_timeout"] else None)
                for name in names:
                    result["backups"].append(one_backup(module, rotate, name))
    except (path_trust.UntrustedPathError, rotation.RekeyError, SecretFileError, StorageError) as exc:
        module.fail_json(msg=str(exc), **result)
    except OSError as exc:
        module.fail_json(msg="cannot read %s: %s" % (exc.filename or directory, exc.strerror), **result)
    result["backups"].extend(dict(name=name, action="not_encrypted", detail="not encrypted: left as it is") for name in result["not_encrypted"])
    for entry in result["backups"]:
        if entry["action"] in ("rekeyed", "finished", "unchanged", "refused"):
            result[entry["action"]].append(entry["name"])
    result["changed"] = bool(result["rekeyed"] or result["finished"])
    if module._diff:
        result["diff"] = dict(
            before="".join("%s: %s\n" % (e["name"], e["recipients_before"]) for e in result["backups"] if "recipients_before" in e),
            after="".join("%s: %s\n" % (e["name"], recipients_text(recipients)) for e in result["backups"]
                          if "recipients_before" in e))
    for entry in result["backups"]:
        entry.pop("recipients_before", None)
    done = "; ".join("%s %d" % (what, len(result[what])) for what in ("rekeyed", "finished", "unchanged", "not_encrypted")
                     if result[what])
    if result["refused"]:
        module.fail_json(msg="rekey failed for %s" % "; ".join(
            "%s: %s" % (e["name"], e["detail"]) for e in result["backups"] if e["action"] == "refused")
            + (" (%s)" % done if done else ""), **result)
    result["msg"] = ("check mode: would have " if module.check_mode else "") + (done or "no encrypted backup found")
    module.exit_json(**result)


def one_backup(module, rotate, name):
    """One backup brought to the new recipients (or, in check mode, planned): its entry in ``backups``."""
    entry = dict(name=name)
    try:
        action, recipients, before, planned = rotate.check(name)
        entry.update(action=action, sha256_before=before, sha256_after=before,
                     recipients_before=recipients_text(recipients))
        if not module.check_mode:
            action, _before, after = rotate.run(name, planned)
            entry.update(action=action, sha256_after=after)
    except rotation.RekeyError as exc:
        entry.update(action="refused", detail=str(exc))
    return entry


if __name__ == "__main__":
    main()
