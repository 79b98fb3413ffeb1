#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: pitr_info
short_description: What a pgBackRest repository holds for point-in-time recovery - backups, WAL archive, recoverable times
version_added: 0.2.0
description:
  - Reads C(pgbackrest info --output=json) for O(stanza) and, with O(list_archive), lists the stanza's WAL
    archive with C(pgbackrest repo-ls), and returns what an operator asks before and after a recovery - the newest
    full, differential and incremental backups, the archive's range, the earliest and the latest time a recovery
    can reach, how old the newest backup and the newest archived WAL segment are (the archive lag), the size of the
    repository, and the stanza's status.
  - pgBackRest runs as the OS user of the task (use C(become_user=postgres), as in the examples; the role
    C(lift_simulator.postgresql.pitr) makes its configuration file readable by root and postgres only) with
    the configuration file O(config), which holds the repository's credentials and passphrase. No secret is passed
    on a command line or returned.
  - The times come from clocks this module does not trust - backup times from the clock of the host that ran the
    backup, WAL times from the repository's storage (the file system, or the S3 server). Ages are counted from
    this host's clock at the time of the run; a time more than ten minutes after it is flagged in RV(anomalies)
    and never taken as the newest backup or as the archive lag.
  - Read-only. A stanza that does not exist (yet) is not an error - RV(exists) is false. A repository that cannot be
    read (connection, TLS, credentials, passphrase) fails the module with pgBackRest's message.
options:
  stanza:
    description: The pgBackRest stanza (the role's C(pitr_stanza)).
    type: str
    default: lift_simulator
  config:
    description: pgBackRest's configuration file.
    type: path
    default: /etc/pgbackrest/pgbackrest.conf
  list_archive:
    description:
      - List the WAL archive (C(pgbackrest repo-ls --recurse)) for the newest segment's time (the archive lag and the
        latest recoverable time), the archive's size and the missing segments in RV(archive.gaps).
      - V(false) reads the backups only; those results are then null. On an S3 repository the listing costs one
        request per thousand files.
    type: bool
    default: true
  timeout:
    description: Seconds each pgBackRest command may take.
    type: int
    default: 300
extends_documentation_fragment:
  - lift_simulator.postgresql.attributes
  - lift_simulator.postgresql.attributes.read_only
notes:
  - Needs pgBackRest on the host (Debian package C(pgbackrest); the role C(lift_simulator.postgresql.pitr) installs it).
  - The latest recoverable time is the newer of the newest backup's end and the time the newest WAL segment was
    stored. A segment is stored within seconds of its switch, and PostgreSQL switches at least every
    C(archive_timeout) seconds while there are writes, so a recovery reaches the last commit before that time. On
    an idle server no segment is switched, so the archive lag grows without anything being wrong; monitor it
    together with the server's write activity, or accept a lag alert after long quiet periods.
seealso:
  - module: lift_simulator.postgresql.backup_info
author:
  - lift_simulator maintainers (@lift-simulator)
"""

EXAMPLES = r"""
- name: Read the point-in-time recovery repository
  become: true
  become_user: postgres
  lift_simulator.postgresql.pitr_info:
    stanza: lift_simulator
  register: pitr

- name: Show how far back and how far forward a recovery can go
  ansible.builtin.debug:
    msg: >-
      {{ pitr.backup_count }} backups; recoverable from {{ pitr.earliest_recoverable_time }}
      to about {{ pitr.latest_recoverable_time }}; newest full {{ pitr.newest_full.label | default('none') }};
      repository {{ pitr.repo_size_bytes | default(0, true) | human_readable }}

# The alerts: a recent backup, WAL still arriving, no hole in the archive.
- name: The newest backup is younger than 8 days and the newest WAL younger than 10 minutes
  ansible.builtin.assert:
    that:
      - pitr.status.ok
      - pitr.newest_backup_age_seconds is not none
      - pitr.newest_backup_age_seconds < 8 * 86400
      - pitr.archive_lag_seconds is not none
      - pitr.archive_lag_seconds < 600
      - pitr.archive.gaps | length == 0
    fail_msg: >-
      Point-in-time recovery of {{ inventory_hostname }} is at risk: {{ pitr.status.message }};
      newest backup {{ pitr.newest_backup_age_seconds }} s old, newest WAL {{ pitr.archive_lag_seconds }} s old;
      {{ pitr.anomalies | join('; ') }}
"""

RETURN = r"""
stanza:
  description: The stanza.
  returned: always
  type: str
  sample: lift_simulator
exists:
  description: Whether the stanza exists in the repository (false until C(stanza-create) has run).
  returned: always
  type: bool
  sample: true
status:
  description: The stanza's status as pgBackRest reports it.
  returned: always
  type: dict
  contains:
    code:
      description:
        - pgBackRest's status code - 0 ok, 1 missing stanza path, 2 no valid backups, 3 missing stanza data,
          99 other (the repository could not be read; the module then fails).
      type: int
      sample: 0
    message:
      description: pgBackRest's message (for code 99, the repository's own error).
      type: str
      sample: ok
    ok:
      description: Whether the code is 0.
      type: bool
      sample: true
    backup_running:
      description: Whether a backup holds the stanza's lock now.
      type: bool
      sample: false
cipher:
  description: The repository's encryption, V(none) or V(aes-256-cbc).
  returned: always
  type: str
  sample: aes-256-cbc
pg_version:
  description: The PostgreSQL major version of the stanza's current database (null before stanza-create).
  returned: always
  type: str
  sample: "15"
system_id:
  description: The PostgreSQL system identifier of the current database (null before stanza-create).
  returned: always
  type: int
  sample: 7714295663484234502
backup_count:
  description: How many backups of the current database the repository holds.
  returned: always
  type: int
  sample: 9
backups:
  description: The backups of the current database, newest first.
  returned: always
  type: list
  elements: dict
  contains:
    label:
      description: pgBackRest's label (the C(--set) of a restore).
      type: str
      sample: 20261201-010002F_20261202-010001D
    type:
      description: V(full), V(diff) or V(incr).
      type: str
      sample: diff
    prior:
      description: The backup it is based on (null for a full backup).
      type: str
      sample: 20261201-010002F
    references:
      description: The backups it needs besides itself.
      type: list
      elements: str
    start_time:
      description: When it started, UTC, by the clock of the host that made it.
      type: str
      sample: "2026-12-02T01:00:01Z"
    stop_time:
      description: When it ended, UTC; the earliest time a recovery from it can reach.
      type: str
      sample: "2026-12-02T01:00:09Z"
    start_epoch:
      description: RV(backups[].start_time) as a Unix time.
      type: int
    stop_epoch:
      description: RV(backups[].stop_time) as a Unix time.
      type: int
    age_seconds:
      description: Seconds from its end to the time of this run (negative when dated in the future).
      type: int
      sample: 3600
    future:
      description: Whether it is dated more than ten minutes after the time of this run (a clock was or is wrong).
      type: bool
      sample: false
    archive_start:
      description: Its first WAL segment.
      type: str
      sample: "000000010000000000000006"
    archive_stop:
      description: Its last WAL segment (the backup is consistent once recovery has replayed it).
      type: str
      sample: "000000010000000000000006"
    lsn_start:
      description: Its start LSN.
      type: str
      sample: 0/6000028
    lsn_stop:
      description: Its stop LSN.
      type: str
      sample: 0/6000100
    size_bytes:
      description: Size of the database it copied.
      type: int
      sample: 23057698
    delta_bytes:
      description: Size of what it copied (the changed files, for diff and incr).
      type: int
      sample: 1474826
    repo_size_bytes:
      description: Size in the repository of everything a restore of it reads (compressed).
      type: int
      sample: 3048933
    repo_delta_bytes:
      description: Size it adds to the repository (compressed).
      type: int
      sample: 167087
    error:
      description: Whether pgBackRest found errors (page checksums) while copying it.
      type: bool
      sample: false
newest_full:
  description: The entry of RV(backups) of the newest full backup, or null (never one dated in the future).
  returned: always
  type: dict
newest_diff:
  description: The newest differential backup, or null.
  returned: always
  type: dict
newest_incr:
  description: The newest incremental backup, or null.
  returned: always
  type: dict
newest_backup:
  description: The newest backup of any type, or null.
  returned: always
  type: dict
newest_backup_age_seconds:
  description: Its age in seconds at the time of the run (the value to alert on), or null.
  returned: always
  type: int
  sample: 3600
archive:
  description: The current database's WAL archive.
  returned: always
  type: dict
  contains:
    id:
      description: pgBackRest's archive id (major version and database id).
      type: str
      sample: 15-1
    min_wal:
      description: Its oldest WAL segment (null when empty).
      type: str
      sample: "000000010000000000000002"
    max_wal:
      description: Its newest WAL segment (null when empty).
      type: str
      sample: "000000010000000000000008"
    listed:
      description: Whether it was listed (O(list_archive)); the fields below are null when not.
      type: bool
    newest_wal:
      description: The newest segment found in the listing.
      type: str
      sample: "000000010000000000000008"
    newest_wal_time:
      description: When the repository's storage stored it, UTC (by the storage's clock).
      type: str
      sample: "2026-12-02T09:41:17Z"
    newest_wal_epoch:
      description: RV(archive.newest_wal_time) as a Unix time.
      type: int
    newest_wal_age_seconds:
      description: Its age in seconds at the time of the run.
      type: int
      sample: 42
    newest_wal_future:
      description: Whether it is dated more than ten minutes after the time of the run.
      type: bool
      sample: false
    size_bytes:
      description: Size of the archive's files in the repository.
      type: int
      sample: 1555310
    file_count:
      description: How many files it has (segments, backup labels, history files).
      type: int
      sample: 11
    gaps:
      description:
        - Missing segments on the newest timeline after the newest full backup's first segment, as
          C({first, last}) ranges of segment names. A recovery cannot cross one; empty when there is none.
      type: list
      elements: dict
      sample: []
archive_lag_seconds:
  description:
    - Age of the newest archived WAL segment in seconds (RV(archive.newest_wal_age_seconds); null when not listed,
      empty, or dated in the future). With writes going on it stays below about C(archive_timeout) plus the time a
      push takes; see the notes about idle servers.
  returned: always
  type: int
  sample: 42
earliest_recoverable_time:
  description: The end of the oldest backup, UTC - the earliest time a recovery can reach (null without a backup).
  returned: always
  type: str
  sample: "2026-11-24T01:00:09Z"
earliest_recoverable_epoch:
  description: RV(earliest_recoverable_time) as a Unix time.
  returned: always
  type: int
latest_recoverable_time:
  description:
    - About the latest time a recovery can reach, UTC - the newer of the newest backup's end and the newest WAL
      segment's storage time (null without a backup). See the notes.
  returned: always
  type: str
  sample: "2026-12-02T09:41:17Z"
latest_recoverable_epoch:
  description: RV(latest_recoverable_time) as a Unix time.
  returned: always
  type: int
repo_backup_bytes:
  description: What the backups take in the repository (the sum of RV(backups[].repo_delta_bytes)).
  returned: always
  type: int
  sample: 3211119
repo_archive_bytes:
  description: What the WAL archive takes in the repository (null when not listed).
  returned: always
  type: int
  sample: 1555310
repo_size_bytes:
  description: Both together (null when the archive was not listed).
  returned: always
  type: int
  sample: 4766429
anomalies:
  description: What looks wrong, in words - times after the time of the run, missing WAL segments.
  returned: always
  type: list
  elements: str
now:
  description: The time of the run the ages are counted from, UTC, by this host's clock.
  returned: always
  type: str
  sample: "2026-12-02T09:42:00Z"
now_epoch:
  description: RV(now) as a Unix time.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import info as pitr_info
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import info_query


def main():
    module = AnsibleModule(
        argument_spec=dict(
            stanza=dict(type="str", default="lift_simulator"),
            config=dict(type="path", default=info_query.DEFAULT_CONFIG),
            list_archive=dict(type="bool", default=True),
            timeout=dict(type="int", default=info_query.DEFAULT_TIMEOUT),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p["timeout"] < 1:
        module.fail_json(msg="timeout must be at least 1 second")
    try:
        summary, _entry = info_query.query(p["stanza"], p["config"], p["list_archive"], p["timeout"])
    except info_query.QueryError as exc:
        module.fail_json(msg=str(exc), stanza=p["stanza"])
    if summary["status"]["code"] == pitr_info.STATUS_OTHER:
        module.fail_json(msg="pgBackRest cannot read the repository of the stanza %s: %s" % (
            p["stanza"], summary["status"]["message"]), **summary)
    module.exit_json(changed=False, **summary)


if __name__ == "__main__":
    main()
