# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Encrypting a backup in its stream (backup).
    DOCUMENTATION = r"""
options:
  encryption:
    description:
      - V(age) encrypts the backup in its stream with L(age,https://age-encryption.org) to the
        public keys in O(encryption_recipients), after compression and before anything is written;
        no unencrypted byte of the dump reaches the disk, and the database host needs no private
        key. The name gets C(.age) after the format's and the compression's suffix
        (C(.sql.zst.age), C(.dump.age)); the sha256 is the encrypted file's.
      - Needs the C(age) program on the host (Debian package C(age)). Plain and custom formats
        only; a V(directory) archive is refused (C(pg_dump) writes its files itself, outside the
        stream).
      - The manifest stays readable (row counts, table names, sizes; docs/encryption.md) and records
        each recipient's public key or SSH fingerprint, never an identity.
    type: str
    choices: [ none, age ]
    default: none
  encryption_recipients:
    description:
      - Public keys to encrypt to - C(age1...) keys and OpenSSH C(ssh-ed25519) or C(ssh-rsa)
        public keys - or paths of files on the host that list them, one per line (C(#) comments
        allowed). Anyone holding the identity of one of them can read the backup, so a file is
        checked like the backups are (O(directory_checks)).
      - Several recipients are normal (an operations key and an offline escrow key).
    type: list
    elements: str
    default: []
  manifest_detail:
    description:
      - What the manifest (always readable, also for an encrypted backup) tells of the content.
      - V(full) records the row count of every table, the Flyway history and the application's
        checklist figures; restores and C(verify level=restore) compare the restored database with
        them.
      - V(minimal) leaves them out (C(detail=minimal), empty C(row_counts)), so that only what retention,
        C(backup_info) and monitoring need remains (names, times, sizes, checksums, roles). Restores
        then check structure, Flyway and the checklist without figures to compare with.
    type: str
    choices: [ full, minimal ]
    default: full
"""

    # Reading an encrypted backup (verify).
    IDENTITY = r"""
options:
  identity:
    description:
      - The content of an age identity (C(AGE-SECRET-KEY-1...), or an unencrypted OpenSSH private
        key) that can decrypt the backup. It is handed to C(age) through a file that exists only in
        memory; it never appears in arguments, logs or results. Keep it in Ansible Vault.
      - Mutually exclusive with O(identity_file).
    type: str
  identity_file:
    description:
      - Path on the host of a file holding the identity (readable by the user the module runs as).
      - Mutually exclusive with O(identity).
    type: path
"""
