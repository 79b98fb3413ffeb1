#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: pitr_restore
short_description: Point-in-time recovery with pgBackRest beside the running cluster, proven before it goes in service
version_added: 0.2.0
description:
  - Runs on the database host, one step per call (O(action)); C(playbooks/pitr_restore.yml) runs them in order
    (docs/pitr.md, "Recovery"). The running cluster's data directory is never written before the recovered copy
    has been proven, and only at the switch, which keeps it as C(<cluster>.replaced-<UTC time>).
  - B(archive) (as C(postgres), on the running cluster's O(main_port)) puts its current WAL into the repository
    now - an empty commit (PostgreSQL stops at a time target on the first commit after it), C(pg_switch_wal()),
    and a wait until the archiver reports the segment archived - so that a target of a minute ago is reachable.
  - B(restore) (as the C(postgres) OS user) checks the target against the repository (C(pgbackrest info) - a time
    before the end of the oldest backup is refused before anything is restored), then restores with
    C(pgbackrest restore) into a new data directory beside the running cluster,
    C(/var/lib/postgresql/<version>/<cluster>_pitr), with archiving off in the copy (it never pushes WAL into the
    repository while it runs beside), and writes the configuration of a temporary Debian cluster
    C(<cluster>_pitr) on O(port) - the running cluster's C(postgresql.conf) included, then the settings that make
    it another instance. Start it with C(systemctl start postgresql@<version>-<cluster>_pitr).
  - B(recover) (as C(postgres)) waits until the copy has replayed the WAL to its target (paused there, or
    promoted) and reports the recovered-to time and the last replayed transaction's time. When it stops short it
    fails and says why - PostgreSQL's FATAL, the WAL segment it could not get (missing from the repository, or
    there and unreadable, in pgBackRest's own words from C(archive-get)), or a target past the end of the archived
    WAL. A V(latest) recovery that PostgreSQL promoted at a hole in the archive, although the repository held later
    WAL, fails too.
  - B(check) (as C(postgres)) checks the copy through O(port) - every database opens, the collection's checklist
    (Flyway history intact and successful, lift_system count, versions and published versions per system),
    exact row counts, and the operator's O(checks) - and fails when one fails. With O(port) set to the cluster's
    own port it checks the cluster after the switch.
  - B(promote) (as C(postgres)) promotes a copy paused at its target and resets the settings pgBackRest wrote
    into its C(postgresql.auto.conf) (archive_mode back to what the backup had there); a checkpoint in the copy
    and in the running cluster makes their shutdowns at the switch short.
  - B(switch) (as root) stops the copy, then the running cluster, renames the running cluster's data directory to
    C(<cluster>.replaced-<UTC time>) and the copy's into its place, and starts the cluster; RV(downtime_s) is the
    time the cluster was down. If it will not start on the recovered data, the previous data directory is put
    back and started.
  - B(finish) (as C(postgres)) pushes the new timeline's history file to the repository (PostgreSQL does not
    archive it, the copy was promoted with archiving off).
  - B(discard) (as C(postgres)) stops the copy if it runs (C(pg_ctl stop -m fast)) and removes it - its data
    directory, tablespaces and configuration.
options:
  action:
    description: The step to run.
    type: str
    choices: [ archive, restore, recover, check, promote, switch, finish, discard ]
    required: true
  stanza:
    description: The pgBackRest stanza (the role M(lift_simulator.postgresql.pitr)'s C(pitr_stanza)).
    type: str
    default: lift_simulator
  pg_version:
    description:
      - The PostgreSQL major version of the cluster (C(15)). Empty - the only version under C(/etc/postgresql)
        that has O(cluster).
    type: str
    default: ''
  cluster:
    description: The Debian cluster recovered (C(pg_lsclusters)); the copy is C(<cluster>_pitr).
    type: str
    default: main
  port:
    description:
      - The copy's temporary port (O(action=restore) writes it into its configuration; the other steps connect
        there). O(action=check) after the switch - the cluster's own port.
    type: int
    default: 5433
  main_port:
    description: The cluster's own port (O(action=archive) switches its WAL, O(action=finish) reads its timeline there).
    type: int
    default: 5432
  target:
    description:
      - O(action=restore) - V(latest) (the end of the archived WAL), V(time) (O(target_time)) or V(name) (a restore
        point made with C(pg_create_restore_point), O(target_name)).
    type: str
    choices: [ latest, time, name ]
    default: latest
  target_time:
    description:
      - The time to recover to, with its UTC offset - C(2026-11-24 14:03:00+00), C(2026-11-24 15:03:00+01:00).
        Every transaction committed at or before it is recovered, none after it. A time without an offset is
        refused (the host's time zone would decide).
    type: str
  target_name:
    description: The restore point's name.
    type: str
  target_action:
    description:
      - What the copy does at a time or name target - V(promote) (it becomes writable, on a new timeline) or
        V(pause) (it stays read-only at the target, for inspection; O(action=promote) promotes it later). A
        V(latest) recovery always promotes at the end of the WAL.
    type: str
    choices: [ promote, pause ]
    default: promote
  backup_set:
    description: O(action=restore) - the pgBackRest backup set to start from (a label); by default pgBackRest's choice.
    type: str
  listen_addresses:
    description: The copy's C(listen_addresses) (its socket is always there).
    type: str
    default: localhost
  config:
    description: pgBackRest's configuration file; by default pgBackRest's own (C(/etc/pgbackrest/pgbackrest.conf)).
    type: path
  timeout:
    description:
      - Seconds O(action=restore) may take, and O(action=recover) may wait for the copy to reach its target
        (replaying a week of WAL takes a while); also the limit of the switch's start.
    type: int
    default: 3600
  database:
    description: O(action=check) - the application's database.
    type: str
    default: lift_simulator
    aliases: [ db ]
  check_user:
    description:
      - O(action=check) - the role the application's checks log in as, over TCP to O(check_host) (the owner,
        C(lift_admin)). Empty - the C(postgres) superuser over the local socket, which then reads ordinary tables
        only and runs O(checks) only with O(checks_as_superuser) (the owner's views and functions would run
        with superuser rights).
    type: str
    default: ''
  check_password:
    description: The password of O(check_user) (Ansible Vault; never logged).
    type: str
    default: ''
  check_host:
    description: Where O(check_user) logs in (the copy listens on O(listen_addresses)).
    type: str
    default: 127.0.0.1
  checks_as_superuser:
    description: Run O(checks) as the superuser when O(check_user) is empty (only for a database owner you trust).
    type: bool
    default: false
  count_rows:
    description: O(action=check) - count the rows of every table (reads them all).
    type: bool
    default: true
extends_documentation_fragment:
  - lift_simulator.postgresql.attributes
  - lift_simulator.postgresql.checks
attributes:
  check_mode:
    support: partial
    details: O(action=restore) reads the repository and checks the target (it fails when the repository cannot
      reach it) and restores nothing; O(action=recover) and O(action=check) run as usual (they only read); the
      other steps report what they would do.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: O(action=restore) refuses to restore over a copy that is already there; O(action=recover),
      O(action=check) and O(action=finish) can run again.
notes:
  - Debian's layout only (C(/etc/postgresql/<version>/<cluster>), C(/var/lib/postgresql/<version>/<cluster>),
    C(postgresql@<version>-<cluster>) units). The recovering machine needs PostgreSQL of the backup's major version
    and pgBackRest's configuration (role M(lift_simulator.postgresql.pitr), entry point C(repository_client)).
  - The copy runs with the running cluster's settings (shared_buffers and all) beside it - mind the memory.
  - After a switch the cluster runs on a new timeline; take a full backup (the playbook starts
    C(lift-pitr-backup-full.service)).
requirements:
  - pgBackRest 2.45 or later, psycopg2 (C(python3-psycopg2)) on the database host
seealso:
  - module: lift_simulator.postgresql.compare
  - module: lift_simulator.postgresql.verify
author:
  - lift_simulator maintainers (@lift-simulator)
"""

EXAMPLES = r"""
- name: Restore beside the running cluster, to the moment before the mistake
  become: true
  become_user: postgres
  lift_simulator.postgresql.pitr_restore:
    action: restore
    target: time
    target_time: "2026-11-24 14:03:00+00"
  register: pitr

- name: Start the recovered copy on its temporary port (a start that fails is explained by the next step)
  become: true
  ansible.builtin.systemd_service:
    name: "{{ pitr.layout.copy_unit }}"
    state: started
  failed_when: false

- name: Wait until it has replayed the WAL to the target
  become: true
  become_user: postgres
  lift_simulator.postgresql.pitr_restore:
    action: recover
  register: recovered

- name: Check it through the temporary port, as the application's owner
  become: true
  become_user: postgres
  lift_simulator.postgresql.pitr_restore:
    action: check
    check_user: lift_admin
    check_password: "{{ vault_lift_admin_password }}"
    checks:
      - name: the dropped table is back
        sql: SELECT count(*) FROM lift_simulator.lift_system
        min: 1

- name: Put it in service (downtime - a stop and a start)
  become: true
  lift_simulator.postgresql.pitr_restore:
    action: switch
  register: switched
"""

RETURN = r"""
layout:
  description: The paths and units of the running cluster and of its copy.
  returned: always
  type: dict
  sample: {"version": "15", "cluster": "main", "copy_cluster": "main_pitr", "data_dir": "/var/lib/postgresql/15/main",
           "copy_data_dir": "/var/lib/postgresql/15/main_pitr", "copy_conf_dir": "/etc/postgresql/15/main_pitr",
           "copy_unit": "postgresql@15-main_pitr.service", "unit": "postgresql@15-main.service",
           "copy_log": "/var/log/postgresql/postgresql-15-main_pitr.log", "log": "/var/log/postgresql/postgresql-15-main.log"}
record:
  description:
    - O(action=restore) - what was restored - C(target), C(backup_set), C(restore_s), C(earliest_recoverable) (the
      end of the oldest backup), C(newest_wal) (the repository's newest segment at the restore), C(port).
  returned: action restore
  type: dict
recovery:
  description:
    - O(action=recover) - C(state) (V(paused) or V(promoted)), C(recovered_to) (the target time for a time target -
      every transaction committed at or before it is in, none after; the restore point's time for a name; the last
      transaction's for latest), C(last_transaction) (the last replayed transaction's commit time,
      C(pg_last_xact_replay_timestamp())), C(first_not_replayed) (the commit time of the first transaction left out,
      time targets), C(stop) (PostgreSQL's stop line, parsed), C(replay_lsn), C(timeline), C(last_wal),
      C(wal_segments_restored), C(newest_wal_in_repository), C(backup_set), C(target), C(waited_s),
      C(server_version).
  returned: action recover
  type: dict
checks:
  description: O(action=check) - every check - C(name), C(passed), C(skipped), C(detail).
  returned: action check
  type: list
  elements: dict
checks_failed:
  description: O(action=check) - the names of the failed checks.
  returned: action check
  type: list
  elements: str
figures:
  description:
    - O(action=check) - C(checklist), C(flyway), C(row_counts) of O(database), C(not_counted) (tables the checks'
      login may not read), C(superuser) (whether that login is one).
  returned: action check
  type: dict
state:
  description: O(action=check) and O(action=finish) - the server's state (C(in_recovery), C(pause_state), C(last_transaction), C(timeline)).
  returned: action check, finish
  type: dict
downtime_s:
  description: O(action=switch) - seconds between the running cluster's stop and its start on the recovered data.
  returned: action switch
  type: float
  sample: 1.8
replaced_data_dir:
  description: O(action=switch) - where the previous data directory is kept.
  returned: action switch
  type: str
  sample: /var/lib/postgresql/15/main.replaced-20261124T141502Z
report_path:
  description: O(action=switch) - the recovery's record and the switch's figures as JSON (C(/var/log/postgresql)).
  returned: action switch
  type: str
segment:
  description: O(action=archive) - the WAL segment switched (and archived, see RV(archived)).
  returned: action archive
  type: str
  sample: "000000010000000000000042"
archived:
  description: O(action=archive) - whether it was archived (false when the running cluster does not archive).
  returned: action archive
  type: bool
promoted_now:
  description: O(action=promote) - whether the copy was paused and has been promoted now.
  returned: action promote
  type: bool
timeline:
  description: O(action=promote) and O(action=finish) - the timeline the cluster runs on.
  returned: action promote, finish
  type: int
history_pushed:
  description: O(action=finish) - whether the timeline's history file was pushed to the repository.
  returned: action finish
  type: bool
removed:
  description: O(action=discard) - what was removed.
  returned: action discard
  type: list
  elements: str
duration_s:
  description: Seconds the step took.
  returned: always
  type: float
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.ansible_common import checks_argument_spec
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.app import lift_simulator as checklist
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.backup.options import spec
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.connection import (
    ConnectionParams, DatabaseError, PgError)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import info as pitr_info
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import recovery_archive
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import recovery_checks
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import recovery_instance as instance
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import recovery_layout as layouts
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import recovery_repository as repo
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import recovery_switch
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import recovery_target as targets
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import recovery_watch


def version_of(cluster):
    """The only PostgreSQL version under /etc/postgresql that has ``cluster``."""
    try:
        versions = sorted(v for v in os.listdir(layouts.BASE_CONF)
                          if os.path.isfile(os.path.join(layouts.BASE_CONF, v, cluster, "postgresql.conf")))
    except OSError:
        versions = []
    if len(versions) != 1:
        raise instance.RecoveryError(
            "set pg_version: %s" % ("no PostgreSQL cluster %s under %s" % (cluster, layouts.BASE_CONF) if not versions
                                    else "%s has %s" % (cluster, ", ".join(versions))))
    return versions[0]


def local(port, database="postgres"):
    """The superuser's connection over Debian's socket directory (peer authentication as postgres)."""
    return ConnectionParams(database, login_port=port, login_unix_socket=layouts.RUN_DIR, connect_timeout=5)


def run(module, layout, result):
    p = module.params
    action = p["action"]
    if action == "restore":
        target = targets.parse_target(p["target"], p["target_time"], p["target_name"], p["target_action"])
        backup_set = targets.check_backup_set(p["backup_set"])
        if module.check_mode:
            instance.running_cluster_checks(layout)
            backups = pitr_info.current_backups(instance.read_repository(p["stanza"], p["config"]))
            earliest, label = targets.check_in_range(target, backups, backup_set)
            result["record"] = {"target": target.to_dict(), "earliest_recoverable": targets.format_epoch(earliest),
                                "earliest_backup": label, "port": p["port"]}
            result["changed"] = True
            return
        result["record"] = dict((k, v) for k, v in instance.restore(
            layout, p["stanza"], target, p["port"], p["config"], backup_set, p["listen_addresses"],
            p["timeout"]).items() if k != "archive")
        result["changed"] = True
    elif action == "archive":
        if module.check_mode:
            return
        result.update(recovery_archive.archive_now(local(p["main_port"]), p["timeout"]))
        result["changed"] = True
    elif action == "recover":
        record = instance.read_record(layout)
        if record is None:
            raise instance.RecoveryError("no recovery beside %s/%s (%s is missing): run action restore first" % (
                layout.version, layout.cluster, layout.record))
        started = time.time()
        state, parsed = recovery_watch.watch(layout, local(record.get("port") or p["port"]), record, p["timeout"])
        if not state["in_recovery"]:
            recovery_watch.check_reached_end(record, parsed)
        result["recovery"] = recovery_watch.facts(record, state, parsed, time.time() - started)
    elif action == "check":
        state = recovery_watch.server_state(local(p["port"]))
        if state is None:
            raise instance.RecoveryError("nothing accepts connections on port %d" % p["port"])
        result["state"] = state
        checks, _names = recovery_checks.server_checks(local(p["port"]))
        if p["check_user"]:
            app = ConnectionParams(p["database"], login_host=p["check_host"], login_port=p["port"],
                                   login_user=p["check_user"], login_password=p["check_password"], connect_timeout=10)
        else:
            app = local(p["port"], p["database"])
        app_checks, figures = recovery_checks.app_checks(app, p["app_schema"], p["checks"], p["checks_as_superuser"],
                                                         p["count_rows"])
        checks.extend(app_checks)
        result.update(checks=checks, figures=figures, checks_failed=[c["name"] for c in checklist.failing(checks)])
        if result["checks_failed"]:
            raise instance.RecoveryError("the recovered copy on port %d fails its checks: %s" % (
                p["port"], checklist.summary(checks)))
        result["msg"] = checklist.summary(checks)
    elif action == "promote":
        if module.check_mode:
            result["changed"] = True
            return
        result.update(recovery_switch.promote(local(p["port"]), layout.copy_data, p["timeout"], local(p["main_port"])))
        result["changed"] = True
    elif action == "switch":
        if os.geteuid() != 0:
            raise instance.RecoveryError("the switch stops and starts clusters and renames their data directories: "
                                         "run it as root (become without become_user)")
        if module.check_mode:
            recovery_switch.switch_checks(layout)
            result["changed"] = True
            return
        result.update(recovery_switch.switch(layout, p["timeout"]))
        result["changed"] = True
    elif action == "finish":
        if module.check_mode:
            return
        done = recovery_switch.finish(layout, p["stanza"], local(p["main_port"]), p["config"])
        result.update(done)
        result["changed"] = done["history_pushed"]
    elif action == "discard":
        if module.check_mode:
            result["changed"] = instance.copy_exists(layout)
            return
        result["removed"] = instance.discard(layout)
        result["changed"] = bool(result["removed"])


def main():
    argument_spec = dict(
        action=dict(type="str", required=True,
                    choices=["archive", "restore", "recover", "check", "promote", "switch", "finish", "discard"]),
        stanza=dict(type="str", default="lift_simulator"),
        pg_version=dict(type="str", default=""),
        cluster=dict(type="str", default="main"),
        port=dict(type="int", default=5433),
        main_port=dict(type="int", default=5432),
        target=dict(type="str", default="latest", choices=list(targets.KINDS)),
        target_time=dict(type="str"),
        target_name=dict(type="str"),
        target_action=dict(type="str", default="promote", choices=list(targets.ACTIONS)),
        backup_set=dict(type="str"),
        listen_addresses=dict(type="str", default="localhost"),
        config=dict(type="path"),
        timeout=dict(type="int", default=3600),
        database=spec("database", aliases=["db"]),
        check_user=dict(type="str", default=""),
        check_password=dict(type="str", default="", no_log=True),
        check_host=dict(type="str", default="127.0.0.1"),
        checks_as_superuser=dict(type="bool", default=False),
        count_rows=dict(type="bool", default=True),
    )
    argument_spec.update(checks_argument_spec())
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_if=[["target", "time", ["target_time"]], ["target", "name", ["target_name"]]],
        mutually_exclusive=[["target_time", "target_name"]],
        supports_check_mode=True,
    )
    p = module.params
    started = time.monotonic()
    result = dict(changed=False)
    try:
        layout = layouts.Layout(p["pg_version"] or version_of(p["cluster"]), p["cluster"])
        result["layout"] = layout.to_dict()
        run(module, layout, result)
    except (instance.RecoveryError, targets.TargetError, layouts.LayoutError, repo.RepositoryError, PgError,
            recovery_archive.ArchiveError) as exc:
        result["duration_s"] = round(time.monotonic() - started, 3)
        module.fail_json(msg=str(exc), **result)
    except DatabaseError as exc:
        result["duration_s"] = round(time.monotonic() - started, 3)
        module.fail_json(msg="PostgreSQL: %s" % str(exc).strip(), **result)
    result["duration_s"] = round(time.monotonic() - started, 3)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
