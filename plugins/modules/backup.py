#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: backup
short_description: Take a crash-safe, checksummed pg_dump backup with a manifest
version_added: 0.1.0
description:
  - Runs on the database host and wraps C(pg_dump). Writes one backup of O(database) into
    O(backup_dir) plus a sidecar manifest C(<backup>.manifest.json) (see the collection's
    C(docs/manifest.md)).
  - B(Consistency.) A C(REPEATABLE READ) transaction exports its snapshot; C(pg_dump --snapshot)
    dumps exactly that snapshot, and the per-table row counts in the manifest are counted in the
    same transaction while the dump runs, so a later verification can compare them exactly.
  - B(Streaming.) For C(plain) and C(custom) formats the sha256 (and, for plain dumps, the
    compression) is computed while C(pg_dump) writes, not in a second pass. C(pg_dump) 15 cannot
    compress plain dumps with zstd or lz4, so compression runs in the pipeline (C(zstd), C(lz4),
    C(pigz) or C(gzip) on the host). For C(directory) archives C(pg_dump) writes the files
    itself; their digests are computed once it has finished.
  - B(Crash safety.) The backup is written to an anonymous temporary file in O(backup_dir) (or a
    hidden C(.<name>.partial-<host>-<pid>) where the file system lacks C(O_TMPFILE)), synced, then
    linked to its final name, and the directory is synced. When C(pg_dump) fails or is killed, or
    the disk fills up, no file and no temporary is left and the module fails with the tail of
    C(pg_dump)'s stderr. Hidden temporaries of interrupted runs are removed by the next run.
    An existing backup is never overwritten.
  - Backup files are created with mode 0600; a missing O(backup_dir) is created with mode 0700.
  - Before C(pg_dump) starts, the module fails clearly when O(backup_dir) is a file, is not
    writable, or has less free space than the estimated size of the dump.
options:
  database:
    description:
      - The database to back up.
    type: str
    default: lift_simulator
    aliases: [ db ]
  backup_dir:
    description:
      - Directory on the database host that receives the backup and its manifest (the same
        directory that M(lift_simulator.postgresql.prune) and M(lift_simulator.postgresql.backup_info)
        take as O(lift_simulator.postgresql.prune#module:backup_dir)).
      - O(dest_dir) is its older name, deprecated.
    type: path
    version_added: 0.2.0
    required: true
    aliases: [ dest_dir ]
  format:
    description:
      - V(plain) is SQL text, as the backup strategy prescribes (restored with C(psql)).
      - V(custom) is C(pg_dump -Fc), restorable selectively and in parallel with C(pg_restore).
      - V(directory) is C(pg_dump -Fd), dumped in parallel with O(jobs); the backup is a folder.
    type: str
    choices: [ plain, custom, directory ]
    default: plain
  compression:
    description:
      - Compression of the backup. For V(plain) dumps it happens in the pipeline and sets the
        suffix (C(.sql), C(.sql.gz), C(.sql.zst), C(.sql.lz4)).
      - For V(custom) and V(directory) archives it is C(pg_dump)'s own compression inside the
        archive; V(zstd) and V(lz4) there need C(pg_dump) 16 or later.
      - Defaults to V(none) for V(plain) and to V(gzip) (C(pg_dump)'s default) for archives.
    type: str
    choices: [ none, gzip, zstd, lz4 ]
  compression_level:
    description:
      - Compression level; gzip 1-9 (default 6), zstd 1-19 (default 3), lz4 1-12 (default 1).
    type: int
  jobs:
    description:
      - Parallel C(pg_dump) jobs; more than one only with O(format=directory).
      - Default is the number of CPU cores of the host the module runs on for O(format=directory), 1 otherwise.
    type: int
  name_template:
    description:
      - Name of the backup without its suffix. C(strftime) codes are replaced with the start time,
        C({database}) and C({host}) with the database name and the host's short name (made
        file-name safe, where characters other than letters, digits, C(.), C(_) and C(-) become C(_)).
      - The default gives C(lift_simulator_backup_YYYYMMDD_HHMMSS.sql) for the lift_simulator
        database, the name the backup strategy prescribes.
      - The suffix is added from O(format) and O(compression); a directory archive has none.
    type: str
    default: "{database}_backup_%Y%m%d_%H%M%S"
  name_timezone:
    description:
      - Time zone of the time in the backup's name (O(name_template)). V(utc) (default) gives names that sort
        correctly across hosts and daylight-saving changes; V(local) uses the host's local time.
      - Times inside the manifest are always UTC.
    type: str
    version_added: 0.2.0
    choices: [ utc, local ]
    default: utc
    aliases: [ timezone ]
  bin_dir:
    description:
      - Directory holding C(pg_dump) (for example C(/usr/lib/postgresql/17/bin)).
      - By default the newest C(/usr/lib/postgresql/<major>/bin) is used, then C(PATH); a
        C(pg_dump) older than the server is refused.
    type: path
  check_free_space:
    description:
      - Refuse to start when O(backup_dir) has less free space than the estimated dump size
        (estimated from the on-disk size of the dumped tables).
    type: bool
    default: true
  lock_wait_timeout:
    description:
      - Passed to C(pg_dump --lock-wait-timeout) (for example V(60s)). pg_dump fails, naming the
        table, instead of waiting forever behind another session's exclusive lock (a migration, say)
        while its snapshot holds back vacuum. An empty value waits without limit.
    type: str
    default: 120s
  stall_timeout:
    description:
      - Seconds the dump may go without any progress (pg_dump and the compressor neither read nor
        write, and pg_dump's server session is not working) before it is stopped and the backup
        fails with an error that says so; for a stopped (SIGSTOP) or hung pg_dump. V(0) never stops it.
    type: int
    default: 300
  app_schema:
    description:
      - Schema of the application's tables. When it holds C(lift_system) and C(lift_system_version),
        the manifest records the backup strategy's checklist figures (versions and published versions
        per system, as digests of a fixed size whatever the number of systems) counted in the dumped
        snapshot, for verification to compare.
    type: str
    default: lift_simulator
  reuse_max_age_minutes:
    description:
      - Reuse the newest good backup in O(backup_dir) that is younger than this many minutes instead of
        taking a new one (RV(reused), C(changed=false)) - but only one that is provably of this database
        as it is now on this machine - its manifest names this database, this host and this server's
        system identifier (which a new or re-initialised cluster changes), and its size and sha256
        are as recorded. A backup another host left in a shared directory is never reused.
        C(playbooks/migrate.yml) uses it (C(migrate_reuse_backup)).
    type: int
  role_definitions:
    description:
      - Also write the cluster's role definitions (C(pg_dumpall --globals-only)) beside the backup, as
        C(<backup>.globals.sql) (mode 0600), recorded with its sha256 in the manifest. pg_dump never
        carries roles; a restore on a new machine creates the roles the backup needs from this file
        (see M(lift_simulator.postgresql.restore) O(lift_simulator.postgresql.restore#module:create_roles)).
        The manifest also lists the roles the database's objects refer to.
    type: bool
    default: true
  role_passwords:
    description:
      - With O(role_definitions), keep the roles' password verifiers in that file (SCRAM or md5 hashes,
        never plain passwords). Reading them needs a superuser login. Off by default - the roles then
        come back without passwords.
    type: bool
    default: false
  log_dir:
    description:
      - When set, one log file per run, C(<backup name without suffix>.log), is written there
        (mode 0600; the directory is created 0700), recording success or failure and why.
    type: path
extends_documentation_fragment:
  - lift_simulator.postgresql.attributes
  - lift_simulator.postgresql.connection
  - lift_simulator.postgresql.directory_checks
  - lift_simulator.postgresql.encryption
attributes:
  check_mode:
    support: full
    details: Check mode renders the name and checks O(backup_dir) but does not connect or write.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Every run takes a new backup under a new name.
seealso:
  - name: pg_dump
    description: The PostgreSQL program this module wraps.
    link: https://www.postgresql.org/docs/current/app-pgdump.html
author:
  - lift_simulator maintainers (@lift-simulator)
"""

EXAMPLES = r"""
- name: Back up lift_simulator as the postgres OS user over the local socket (peer auth)
  become: true
  become_user: postgres
  lift_simulator.postgresql.backup:
    backup_dir: /var/backups/lift_simulator
    log_dir: /var/backups/lift_simulator/logs

- name: Back up over TCP with a password, zstd-compressed plain SQL
  become: true
  become_user: postgres    # the owner of the backup directory (an unprivileged SSH user cannot write there)
  lift_simulator.postgresql.backup:
    database: lift_simulator
    login_host: 127.0.0.1
    login_user: lift_admin
    login_password: "{{ vault_lift_admin_password }}"
    backup_dir: /var/backups/lift_simulator
    compression: zstd
  register: backup

- name: Parallel directory-format dump with a host name in the backup's name
  become: true
  become_user: postgres
  lift_simulator.postgresql.backup:
    backup_dir: /srv/pg-backups
    format: directory
    jobs: 4
    name_template: "{database}_{host}_%Y%m%d_%H%M%S"

- name: Show where it went
  ansible.builtin.debug:
    msg: "{{ backup.path }} ({{ backup.size_bytes }} bytes, sha256 {{ backup.sha256 }})"
"""

RETURN = r"""
path:
  description: The backup file (or folder, for O(format=directory)).
  returned: always
  type: str
  sample: /var/backups/lift_simulator/lift_simulator_backup_20261124_080001.sql
manifest_path:
  description: The manifest written beside the backup.
  returned: always
  type: str
  sample: /var/backups/lift_simulator/lift_simulator_backup_20261124_080001.sql.manifest.json
database:
  description: The database that was backed up.
  returned: always
  type: str
  sample: lift_simulator
name:
  description: The backup's file (or folder) name.
  returned: always
  type: str
  sample: lift_simulator_backup_20261124_080001.sql
stem:
  description: The name without the format's suffix; the run's log is C(<stem>.log).
  returned: always
  type: str
  sample: lift_simulator_backup_20261124_080001
dest_dir_created:
  description: Whether O(backup_dir) did not exist and was created (in check mode, would be).
  returned: always
  type: bool
estimated_bytes:
  description: The size the dump was estimated at before it started (for the free-space check).
  returned: when a new backup was started
  type: int
  sample: 812345678
removed_partials:
  description: Temporary files of killed runs that were removed from O(backup_dir) before the dump.
  returned: when not check mode
  type: list
  elements: str
started_at:
  description: When the dump's snapshot was taken (UTC, ISO 8601).
  returned: success and not check mode
  type: str
  sample: "2026-11-24T08:00:01Z"
finished_at:
  description: When the backup (and its manifest) was complete (UTC, ISO 8601).
  returned: success and not check mode
  type: str
  sample: "2026-11-24T08:00:10Z"
dump_duration_s:
  description: Seconds pg_dump ran (part of RV(duration_s)); for a directory archive, with the hashing of its files.
  returned: when a new backup was made
  type: float
  sample: 8.95
reused:
  description: Whether a recent backup was reused instead of taking one (O(reuse_max_age_minutes)).
  returned: always
  type: bool
reuse_passed_over:
  description: With O(reuse_max_age_minutes), recent good backups that were not reused, and why (another host, database or server).
  returned: when reuse_max_age_minutes is set
  type: list
  elements: str
globals_path:
  description: The role definitions written beside the backup (O(role_definitions)), or null.
  returned: success and not check mode
  type: str
  sample: /var/backups/lift_simulator/lift_simulator_backup_20261124_080001.sql.globals.sql
roles:
  description: The roles the database's objects refer to, and how (owner, privileges, policies).
  returned: success and not check mode
  type: dict
  sample: {"lift_admin": ["owner", "privileges"], "backup_user": ["privileges"]}
size_bytes:
  description: Size of the backup in bytes (sum of the files for a directory archive).
  returned: success and not check mode
  type: int
  sample: 861235
sha256:
  description:
    - sha256 of the backup file, as C(sha256sum) prints it.
    - For a directory archive, the sha256 of the sorted C(sha256sum)-style listing of its files.
  returned: success and not check mode
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
format:
  description: The format written.
  returned: always
  type: str
  sample: plain
compression:
  description: The compression used.
  returned: always
  type: str
  sample: zstd
compression_level:
  description: The compression level used (null without compression).
  returned: always
  type: int
  sample: 3
encryption:
  description: The encryption of the stream (V(none) or V(age)).
  returned: always
  type: str
  sample: age
recipients:
  description:
    - The recipients it was encrypted to, as the manifest records them - C(type), C(recipient) (the
      public key), and for SSH keys C(fingerprint) and C(tag) (the key's tag in the age header).
  returned: always
  type: list
  elements: dict
  sample: [{"type": "X25519", "recipient": "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"}]
duration_s:
  description:
    - Wall time of the whole backup in seconds, from the module's start of the run to its end
      (the manifest and the run log written). The manifest's own C(duration_s) ends when the data
      is complete, before the manifest is written.
  returned: success and not check mode
  type: float
  sample: 9.412
timings:
  description:
    - Seconds (rounded to the millisecond) spent in each phase of the run, one after the other; their
      sum is RV(duration_s) (up to rounding). Where the time between the dump's end and the total goes.
    - C(prepare) checks and prepares O(backup_dir); C(connect) opens the database sessions;
      C(catalog) exports the snapshot and reads the tables and roles; C(reuse_check) looks for a
      reusable backup (only with O(reuse_max_age_minutes)); C(preflight) finds C(pg_dump) and checks
      the free space; C(dump) runs C(pg_dump) (and the compressor and the encryption) into the
      backup, hashing as it writes; C(checksum) hashes a directory archive's files (only
      O(format=directory)); C(row_counts_wait) waits for what runs beside the dump (see
      RV(concurrent_timings)) once the dump is done; C(fsync_publish) syncs the backup and gives it
      its name; C(publish) gives the role definitions theirs; C(close) ends the snapshot;
      C(manifest) builds and writes the manifest; C(log) writes the run log.
  returned: success and not check mode, when a new backup was taken
  type: dict
  sample: {"prepare": 0.001, "connect": 0.009, "catalog": 0.006, "preflight": 0.01, "dump": 7.912,
           "row_counts_wait": 0.0, "fsync_publish": 0.012, "publish": 0.003, "close": 0.0, "manifest": 0.008,
           "log": 0.001}
concurrent_timings:
  description:
    - Seconds spent by what runs beside C(pg_dump), in the dump's snapshot or in another session
      (inside the C(dump) and C(row_counts_wait) phases of RV(timings), not added to them).
    - C(row_counts) counts the rows of every dumped table; C(checklist) reads the Flyway history
      and the application checklist's figures; C(role_definitions) runs C(pg_dumpall --globals-only)
      (null with O(role_definitions=false)).
  returned: success and not check mode, when a new backup was taken
  type: dict
  sample: {"row_counts": 1.204, "checklist": 0.013, "role_definitions": 0.051}
row_counts:
  description: Exact rows per table (C(schema.table)) in the snapshot that was dumped.
  returned: success and not check mode
  type: dict
  sample: {"lift_simulator.lift_system": 12, "lift_simulator.lift_system_version": 60}
server_version:
  description: The server's version.
  returned: success and not check mode
  type: str
  sample: "15.18"
pg_dump_version:
  description: Version of the C(pg_dump) that made the backup.
  returned: success and not check mode
  type: str
  sample: 15.18 (Debian 15.18-0+deb12u1)
pg_dump_path:
  description: The C(pg_dump) program used.
  returned: success and not check mode
  type: str
  sample: /usr/lib/postgresql/15/bin/pg_dump
flyway_version:
  description: Latest successful Flyway version of the application's history table, if any.
  returned: success and not check mode
  type: str
  sample: "13"
log_path:
  description: The run's log file when O(log_dir) is set.
  returned: always
  type: str
  sample: /var/backups/lift_simulator/logs/lift_simulator_backup_20261124_080001.log
stderr_tail:
  description: Last lines of the failing program's stderr (scrubbed of secrets).
  returned: failure
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.ansible_common import (
    CONNECTION_MUTUALLY_EXCLUSIVE, connection_argument_spec, connection_params,
    directory_checks_argument_spec, renamed)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.backup.options import spec
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.backup.run import (
    BackupError, BackupRequest, run_backup)


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(directory_checks_argument_spec())
    argument_spec.update(
        database=spec("database", aliases=["db"]),
        backup_dir=renamed(dict(type="path", required=True), "dest_dir"),
        format=spec("format"),
        compression=spec("compression"),
        compression_level=spec("compression_level"),
        jobs=spec("jobs"),
        name_template=spec("name_template"),
        name_timezone=renamed(spec("name_timezone"), "timezone"),
        bin_dir=spec("bin_dir"),
        check_free_space=spec("check_free_space"),
        lock_wait_timeout=spec("lock_wait_timeout"),
        stall_timeout=spec("stall_timeout"),
        role_definitions=spec("role_definitions"),
        reuse_max_age_minutes=dict(type="int"),
        role_passwords=spec("role_passwords"),
        log_dir=spec("log_dir"),
        app_schema=spec("app_schema"),
        encryption=spec("encryption"),
        encryption_recipients=spec("encryption_recipients"),
        manifest_detail=spec("manifest_detail"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           mutually_exclusive=CONNECTION_MUTUALLY_EXCLUSIVE)
    p = module.params
    request = BackupRequest.from_options(
        connection_params(module, p["database"]), p, dest_dir=p["backup_dir"], timezone=p["name_timezone"],
        reuse_max_age_s=p["reuse_max_age_minutes"] * 60 if p["reuse_max_age_minutes"] else None)
    try:
        result = run_backup(request, check_mode=module.check_mode)
    except BackupError as exc:
        module.fail_json(msg=str(exc), stderr_tail=exc.stderr or "", log_path=exc.log_path)
    result.setdefault("changed", True)
    result.setdefault("reused", False)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
