# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # An off-site target: an SFTP server or an S3-compatible bucket (offsite; prune and backup_info
    # instead of a local directory).
    DOCUMENTATION = r"""
options:
  target:
    description:
      - Where the off-site copies live (docs/offsite.md). The settings each type takes are checked; a setting of
        the other type, or a missing one, is an error before anything is read or written.
      - Required by M(lift_simulator.postgresql.offsite); M(lift_simulator.postgresql.prune) takes it instead of
        O(ignore:backup_dir), and M(lift_simulator.postgresql.backup_info) a list of them (O(ignore:targets)).
    type: dict
    suboptions:
      type:
        description:
          - V(sftp) - any SSH server, through paramiko; key authentication only, the host key checked
            against O(target.known_hosts) or O(target.known_hosts_file) and never accepted blindly.
          - V(s3) - any S3-compatible endpoint (AWS S3, Ceph RGW, MinIO, Garage, SeaweedFS), through boto3;
            uploads are multipart and complete only when every part is in.
        type: str
        choices: [ sftp, s3 ]
        required: true
      host:
        description: SFTP server's host name or address.
        type: str
      port:
        description: SFTP server's port.
        type: int
        default: 22
      user:
        description: SFTP login.
        type: str
      directory:
        description: SFTP directory of the copies (relative paths start at the login's home); made 0700 if missing.
        type: str
      private_key:
        description:
          - The content of the SFTP login's private key (unencrypted OpenSSH or PEM). Keep it in Ansible Vault;
            it never appears in arguments, logs or results.
          - Mutually exclusive with O(target.private_key_file).
        type: str
      private_key_file:
        description: Path on the host of the SFTP login's private key.
        type: path
      known_hosts:
        description: known_hosts lines for the SFTP server (what C(ssh-keyscan) printed, checked out of band).
        type: str
      known_hosts_file:
        description: Path on the host of a known_hosts file holding the SFTP server's key.
        type: path
      connect_timeout:
        description: Seconds to wait for the SFTP server.
        type: int
        default: 10
      bucket:
        description: S3 bucket (it must exist).
        type: str
      prefix:
        description: S3 key prefix of the copies (a folder-like path inside the bucket).
        type: str
        default: ''
      endpoint_url:
        description: S3 endpoint for non-AWS servers (for example C(https://s3.example.net:8333)); AWS when unset.
        type: str
      region:
        description: S3 region.
        type: str
      addressing_style:
        description: S3 addressing; V(path) for most non-AWS servers.
        type: str
        choices: [ auto, path, virtual ]
        default: auto
      access_key:
        description:
          - S3 access key id; with O(target.secret_key). Unset, boto3's standard chain is used (the
            E(AWS_ACCESS_KEY_ID) environment, a profile, an instance role).
        type: str
      secret_key:
        description: S3 secret access key. Never appears in arguments, logs or results.
        type: str
      session_token:
        description: S3 session token for temporary credentials.
        type: str
      validate_certs:
        description: Check the S3 endpoint's TLS certificate.
        type: bool
        default: true
      ca_bundle:
        description: CA bundle on the host for the S3 endpoint's certificate.
        type: path
      object_lock_days:
        description:
          - S3 Object Lock - every object of a copy M(lift_simulator.postgresql.offsite) pushes (the backup, its role
            definitions, its manifest) asks the server to retain it for this many days (1 or more); until then the
            server refuses to delete that version of the object (an upload under the same name adds a version and
            leaves it stored) - see O(target.object_lock_mode) and docs/offsite.md, "Immutable copies".
          - The bucket must have Object Lock enabled (it is enabled when the bucket is made); a bucket without it is
            an error before anything is uploaded. The date asked for is the server's time plus the days; the server
            enforces it by its own clock. An object stored without the lock asked for fails the push.
          - A copy already there is left as it is (its retention is not extended).
          - M(lift_simulator.postgresql.prune) and M(lift_simulator.postgresql.backup_info) take the setting and do
            not use it; prune never removes a copy the server still retains, with this setting or without.
          - Unset, nothing is locked by this collection (a bucket's default retention still applies).
        type: int
      object_lock_mode:
        description:
          - The Object Lock mode of O(target.object_lock_days).
          - V(COMPLIANCE) - nobody can delete the copy or shorten its retention before the date, not even the
            bucket's owner or an administrator. What protects copies from an attacker holding this host's
            credentials.
          - V(GOVERNANCE) - principals with the permission C(s3:BypassGovernanceRetention) can delete early; for
            trying Object Lock out, or where an administrator must be able to clean up. The host's own credentials
            must not have that permission.
        type: str
        choices: [ COMPLIANCE, GOVERNANCE ]
        default: COMPLIANCE
"""

    # The copy a restore or verify run takes from a target (restore, verify: with target).
    SOURCE = r"""
options:
  name:
    description:
      - With O(target), the backup's name on the target, or V(latest) for the newest good copy of
        O(database) there (never one dated in the future). Required with O(target).
    type: str
    version_added: 0.2.0
  pull_dir:
    description:
      - With O(target), where the copy goes. A private directory (C(lift-pull-*), 0700) is made in
        O(pull_dir) for the run and removed afterwards, whatever happens. By default it is made in
        C(/var/tmp). It needs room for the backup.
      - With O(keep_pulled=true) the copy goes into O(pull_dir) itself (made 0700 if missing) and stays
        there. An identical copy there already is used as it is (nothing is pulled again); a different
        backup of the same name there is never replaced (the run fails and says so).
    type: path
    version_added: 0.2.0
  keep_pulled:
    description:
      - With O(target), keep the copy, with its role definitions and its manifest, in O(pull_dir)
        (required then) after the run.
    type: bool
    default: false
    version_added: 0.2.0
"""
