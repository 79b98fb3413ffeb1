#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: offsite
short_description: Copy backups to an off-site target (SFTP or S3-compatible), list, verify and pull them back
version_added: 0.2.0
description:
  - Runs on the database host. Off-site copies are what survives the machine (docs/offsite.md).
  - B(push) copies a local backup, its role definitions and its manifest to the target. Each file
    streams (a large backup never sits in memory), is hashed on the way and is published by the
    target only complete (SFTP - a temporary name, synced, renamed; S3 - a multipart upload completed
    after every part is in) and only when it hashes to the sha256 the manifest records; the manifest
    goes last, so a copy without it never counts as good. A copy already there with the same sha256
    is left alone (C(changed=false)); a different one (a key rotation re-encrypted the backup) is
    replaced, its manifest removed first.
  - B(pull) copies a backup from the target into a local directory the same way, checked against
    the target's manifest; it never replaces a different local backup of the same name.
  - B(verify) checks a copy on the target - its manifest, each file's size, and with
    O(level=checksum) a re-read that hashes every file.
  - B(list) lists the target's backups of O(database), newest first, good or not and why, as
    M(lift_simulator.postgresql.backup_info) does for a directory.
  - Encrypted backups (docs/encryption.md) are what should leave the machine; the module warns when
    it pushes one that is not encrypted.
options:
  action:
    description: What to do.
    type: str
    choices: [ push, pull, verify, list ]
    required: true
  path:
    description:
      - O(action=push) - the local backup to copy (its manifest and role definitions beside it go too).
    type: path
    aliases: [ backup ]
  name:
    description:
      - O(action=pull) and O(action=verify) - the backup's name on the target, or V(latest) for the newest good
        copy of O(database) there.
    type: str
  dest_dir:
    description:
      - O(action=pull) - the local directory the copy goes to (made 0700 if missing).
    type: path
  database:
    description:
      - Whose backups (C(<database>_backup_...)) O(action=list) lists and V(latest) picks from.
    type: str
    default: lift_simulator
    aliases: [ db ]
  level:
    description:
      - How a copy is checked. V(checksum) re-reads every file of the copy and compares its sha256 with the
        manifest's; V(manifest) compares sizes only.
      - O(action=verify) reports what it finds. O(action=push) and O(action=pull) leave a copy that passes alone
        (C(changed=false)); push replaces one that does not, pull refuses it (a different local backup of the
        same name is never replaced).
    type: str
    choices: [ checksum, manifest ]
    default: checksum
  target:
    required: true
extends_documentation_fragment:
  - lift_simulator.postgresql.attributes
  - lift_simulator.postgresql.directory_checks
  - lift_simulator.postgresql.offsite_target
attributes:
  check_mode:
    support: full
    details: Check mode reads the target and the local backup's manifest and reports what push or pull would copy;
      nothing is written. O(action=verify) and O(action=list) only read.
  diff_mode:
    support: none
  idempotent:
    support: full
notes:
  - The target's credentials (O(target.private_key), O(target.secret_key), O(target.session_token)) never appear
    in arguments, logs or results. Keep them in Ansible Vault.
  - Needs paramiko (Debian package C(python3-paramiko)) for SFTP targets and boto3 (C(python3-boto3)) for S3 ones.
seealso:
  - name: Off-site copies
    description: The collection's docs/offsite.md.
    link: https://github.com/lift-simulator/lift_simulator.postgresql/blob/main/docs/offsite.md
author:
  - lift_simulator maintainers (@lift-simulator)
"""

EXAMPLES = r"""
- name: Copy the newest backup off-site (an S3-compatible bucket)
  become: true
  become_user: postgres
  lift_simulator.postgresql.offsite:
    action: push
    path: "{{ newest_backup }}"
    target:
      type: s3
      endpoint_url: https://s3.example.net:8333
      addressing_style: path
      bucket: lift-backups
      prefix: db1
      access_key: "{{ vault_s3_access_key }}"
      secret_key: "{{ vault_s3_secret_key }}"

- name: Copy it to an SFTP server as well
  become: true
  become_user: postgres
  lift_simulator.postgresql.offsite:
    action: push
    path: "{{ newest_backup }}"
    target:
      type: sftp
      host: backup.example.net
      user: lift
      directory: /srv/copies/db1
      private_key_file: /var/lib/postgresql/.ssh/offsite_ed25519
      known_hosts: "{{ offsite_known_hosts }}"

- name: Re-read the newest copy on the SFTP server
  become: true
  become_user: postgres
  lift_simulator.postgresql.offsite:
    action: verify
    name: latest
    target:
      type: sftp
      host: backup.example.net
      user: lift
      directory: /srv/copies/db1
      private_key_file: /var/lib/postgresql/.ssh/offsite_ed25519
      known_hosts: "{{ offsite_known_hosts }}"

- name: Bring the newest good copy back from the bucket
  become: true
  become_user: postgres
  lift_simulator.postgresql.offsite:
    action: pull
    name: latest
    dest_dir: /var/backups/lift_simulator/from-offsite
    target: "{{ offsite_target }}"
  register: pulled
"""

RETURN = r"""
target:
  description: The target, without credentials.
  returned: always
  type: str
  sample: s3://lift-backups/db1 (https://s3.example.net:8333)
name:
  description: The backup copied or verified.
  returned: push, pull, verify
  type: str
  sample: lift_simulator_backup_20261201_080000.sql.zst.age
copy:
  description: V(copied), V(replaced) or V(unchanged) (in check mode - what would happen).
  returned: push, pull
  type: str
path:
  description: The local backup (push), or where the copy was written (pull).
  returned: push, pull
  type: str
sha256:
  description: The backup's sha256 as its manifest records it (checked on the way).
  returned: push, pull, verify
  type: str
size_bytes:
  description: The backup's size.
  returned: push, pull, verify
  type: int
checks:
  description: Each check of the copy (O(action=verify)) - name (the manifest or the file), passed, detail.
  returned: verify
  type: list
  elements: dict
backups:
  description: The target's backups of O(database), newest first (O(action=list)) - name, time, good, problem,
    detail, size_bytes, sha256, encryption, future (dated after now - a wrong clock; never the newest good copy).
  returned: list
  type: list
  elements: dict
newest_good:
  description: The newest good copy's name (O(action=list)), or null.
  returned: list
  type: str
duration_s:
  description: How long it took.
  returned: always
  type: float
"""

import errno
import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.ansible_common import (
    directory_checks_argument_spec, offsite_target_argument_spec, target_settings)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import backup_files
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.backup.options import spec
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.offsite import targets, transfer
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import path_trust
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.base import StorageError
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.posix import PosixStorage


def local_store(module, directory, label, paths=None):
    """The local directory as storage, after the trust checks every module makes (of ``paths``:
    by default the directory itself)."""
    for warning in path_trust.check(paths or [directory], module.params["directory_checks"],
                                    "%s %s" % (label, directory)):
        module.warn(warning)
    return PosixStorage(directory)


def run(module, remote, result):
    p = module.params
    if p["action"] == "list":
        try:
            result["backups"], result["newest_good"] = transfer.listing(remote, p["database"])
        except StorageError as exc:
            if exc.errno != errno.ENOENT:
                raise
            module.warn("%s does not exist yet: no copies" % result["target"])
            result["backups"], result["newest_good"] = [], None
        return
    name = transfer.resolve(remote, p["name"], p["database"], result["target"])
    if p["action"] == "verify":
        checks = transfer.check_copy(remote, name, p["level"])
        manifest = transfer.source_manifest(remote, name) if checks[0][1] else {}
        result.update(name=name, sha256=manifest.get("sha256"), size_bytes=manifest.get("size_bytes"),
                      checks=[dict(name=n, passed=ok, detail=d) for n, ok, d in checks])
        failed = ["%s (%s)" % (n, d) for n, ok, d in checks if not ok]
        if failed:
            raise transfer.TransferError("the copy of %s in %s is not good: %s"
                                         % (name, result["target"], "; ".join(failed)))
        return
    if p["action"] == "push":
        path = os.path.abspath(p["path"])
        name = os.path.basename(path)
        source = local_store(module, os.path.dirname(path), "the backup", backup_files.trusted_paths(path))
        if not module.check_mode:
            remote.ensure()
        action, manifest = transfer.copy(source, remote, name, check_mode=module.check_mode, level=p["level"])
    else:
        directory = os.path.abspath(p["dest_dir"])
        destination = local_store(module, directory, "the destination directory")
        path = os.path.join(directory, name)
        action, manifest = transfer.pull(remote, destination, name, check_mode=module.check_mode, level=p["level"])
    if p["action"] == "push" and manifest.get("encryption", "none") == "none":
        module.warn("%s is not encrypted: whoever holds %s can read it (docs/encryption.md)" % (name, result["target"]))
    result.update(name=name, copy=action, path=path, sha256=manifest["sha256"], size_bytes=manifest["size_bytes"],
                  changed=action != transfer.UNCHANGED)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            action=dict(type="str", required=True, choices=["push", "pull", "verify", "list"]),
            path=dict(type="path", aliases=["backup"]),
            name=dict(type="str"),
            dest_dir=dict(type="path"),
            database=spec("database", aliases=["db"]),
            level=dict(type="str", default="checksum", choices=["checksum", "manifest"]),
            **dict(directory_checks_argument_spec(), **offsite_target_argument_spec(required=True))
        ),
        required_if=[["action", "push", ["path"]], ["action", "pull", ["name", "dest_dir"]],
                     ["action", "verify", ["name"]]],
        supports_check_mode=True,
    )
    p = module.params
    started = time.monotonic()
    result = dict(changed=False)
    try:
        settings = target_settings(p["target"])
        result["target"] = targets.describe(settings)
        remote = targets.open_target(settings)
    except targets.TargetError as exc:
        module.fail_json(msg="target: %s" % exc, **result)
    try:
        run(module, remote, result)
    except (transfer.TransferError, path_trust.UntrustedPathError, StorageError) as exc:
        result["duration_s"] = round(time.monotonic() - started, 3)
        module.fail_json(msg=str(exc), **result)
    finally:
        remote.close()
    result["duration_s"] = round(time.monotonic() - started, 3)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
