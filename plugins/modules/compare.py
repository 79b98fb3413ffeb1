#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: compare
short_description: Compare a database with a backup's manifest or with another database, figure by figure
version_added: 0.2.0
description:
  - Compares a target database (O(database)) with a source, side by side, the way
    C(playbooks/migrate.yml) reports a move. The figures are the server version (shown, not
    compared), the rows of every table, the Flyway history of O(app_schema) (rows, failed rows,
    latest successful version) and the backup strategy's checklist (lift_system count, versions per
    system, published versions per system).
  - "The source is a backup (O(source_manifest), the figures the backup recorded in the snapshot it
    dumped), a live database (O(source_database), by default in the same cluster), or figures an
    earlier run returned (O(source_figures), for example read on another host). With a backup and
    a live source both, the live source is compared, and where it differs from its backup both
    figures are shown, as in '120 (backup: 118)': writes made after the backup."
  - A live database is read with the functions the backup module fills its manifest with, in one
    read-only C(REPEATABLE READ) transaction, so all its figures come from one snapshot. Every
    name is schema-qualified and quoted; only the tables C(pg_dump) dumps are counted.
  - Read-only. Never changes anything (C(changed=false)) and does not fail when the sides differ;
    RV(equal) and RV(differences) say so (see the examples to fail a play).
options:
  database:
    description:
      - The target database.
    type: str
    default: lift_simulator
    aliases: [ db ]
  source_manifest:
    description:
      - A backup's manifest (C(<backup>.manifest.json)) on the host, or the backup itself, whose
        manifest is then read beside it.
      - Alone, the source is the backup. With O(source_database) or O(source_figures), those are
        the source and the manifest's figures are shown beside theirs where they differ
        (RV(changed_since_backup)).
    type: path
  source_database:
    description:
      - A live source database, read with the same connection options as O(database) (the same
        cluster), except for those O(source_connection) sets.
      - Mutually exclusive with O(source_figures).
    type: str
  source_connection:
    description:
      - Where and as whom to connect to O(source_database) when that is not the target's cluster
        or login. Each option set here replaces the module's own for the source only; the others
        (TLS options, O(connect_params), O(connect_timeout), and the port unless set here) are the
        module's.
      - Setting O(source_connection.login_host) or O(source_connection.login_unix_socket) replaces
        both (the other is then unset); setting O(source_connection.login_user) without
        O(source_connection.login_password) uses no password (the target's is never sent to
        another login).
    type: dict
    suboptions:
      login_host:
        description: Host name or address of the source's server (TCP); empty for the local socket.
        type: str
      login_unix_socket:
        description: Directory of the source server's Unix socket.
        type: path
      login_port:
        description: Port of the source's server.
        type: int
      login_user:
        description: The PostgreSQL role to read the source as.
        type: str
      login_password:
        description: The password of O(source_connection.login_user).
        type: str
  source_figures:
    description:
      - The source's figures as an earlier run of this module returned them (its RV(target) or
        RV(source)), for example read on the old host of a move and compared on the new one.
      - Must have C(row_counts), rows per table (C(schema.table)); C(server_version), C(flyway) and
        C(checklist) are used when present.
      - Mutually exclusive with O(source_database).
    type: dict
  app_schema:
    description: Schema of the application's tables, for the Flyway history and the strategy's checklist.
    type: str
    default: lift_simulator
  tables:
    description:
      - Compare the rows of these tables only (C(schema.table), each part as PostgreSQL's
        C(quote_ident) writes it, as in a manifest's C(row_counts) and in RV(rows)). A table
        named here that a side does not have is a difference. The Flyway history and the
        checklist are compared all the same.
      - Empty compares every table either side has.
    type: list
    elements: str
    default: []
  extra_rows:
    description:
      - Rows to show first, for facts the databases do not hold (a checksum, the operating system,
        a duration). Each has an O(extra_rows[].item), the O(extra_rows[].source) and
        O(extra_rows[].target) values, and whether to O(extra_rows[].compare) them; a compared row
        that differs is a difference like any other.
    type: list
    elements: dict
    default: []
    suboptions:
      item:
        description: What the row shows.
        type: str
        required: true
      source:
        description: The source's value (any type; shown as text).
        type: raw
      target:
        description: The target's value.
        type: raw
      compare:
        description: Whether the two values must be equal; otherwise the row is shown only.
        type: bool
        default: false
  source_label:
    description: Heading of the source's column in RV(table).
    type: str
    default: source
  target_label:
    description: Heading of the target's column in RV(table).
    type: str
    default: target
extends_documentation_fragment:
  - lift_simulator.postgresql.attributes
  - lift_simulator.postgresql.attributes.read_only
  - lift_simulator.postgresql.connection
  - lift_simulator.postgresql.directory_checks
notes:
  - The login needs C(CONNECT) on the databases and C(SELECT) on every table it counts (the
    application's role or the read-only backup role do; the checklist needs the application's
    tables of O(app_schema)).
  - Counting the rows reads every table in full, as the backup does.
seealso:
  - module: lift_simulator.postgresql.backup
  - module: lift_simulator.postgresql.verify
author:
  - lift_simulator maintainers (@lift-simulator)
"""

EXAMPLES = r"""
- name: Compare the live database with a backup
  become: true
  become_user: postgres    # peer authentication, and the owner of the backups
  lift_simulator.postgresql.compare:
    source_manifest: /var/backups/lift_simulator/lift_simulator_backup_20261124_080001.sql.manifest.json
    database: lift_simulator
  register: comparison

- name: Fail when the database differs from the backup
  ansible.builtin.assert:
    that: comparison.equal
    fail_msg: "the database differs from the backup: {{ comparison.differences | join(', ') }}"
    success_msg: "{{ comparison.rows | length }} figures, all equal"

- name: Compare a copy with the live database, two tables only, as the application's role over TCP
  lift_simulator.postgresql.compare:
    source_database: lift_simulator
    database: lift_simulator_copy
    login_host: 127.0.0.1
    login_user: lift_admin
    login_password: "{{ vault_lift_admin_password }}"
    tables:
      - lift_simulator.lift_system
      - lift_simulator.lift_system_version
  register: copy_comparison

- name: Compare the copy with the source read over TCP as another role (e.g. an old server)
  become: true
  become_user: postgres
  lift_simulator.postgresql.compare:
    database: lift_simulator_copy
    source_database: lift_simulator
    source_connection:
      login_host: 127.0.0.1    # e.g. old-db.example.org
      login_user: lift_admin
      login_password: "{{ vault_lift_admin_password }}"

- name: Compare with figures read elsewhere (e.g. hostvars[old_host].comparison.target), beside the backup's
  become: true
  become_user: postgres
  lift_simulator.postgresql.compare:
    database: lift_simulator_copy
    source_figures: "{{ comparison.target }}"
    source_manifest: "{{ newest_backup }}"
    source_label: "old: db1"
    target_label: "new: db2"
    extra_rows:    # facts the databases do not hold, shown first; compared when asked
      - {item: backup sha256, source: "{{ comparison.source.sha256 }}", target: "{{ comparison.source.sha256 }}", compare: true}
  register: moved

- name: Show the comparison side by side
  ansible.builtin.debug:
    msg: "{{ moved.table }}"
"""

RETURN = r"""
equal:
  description: Whether every compared figure is equal (RV(differences) is empty).
  returned: always
  type: bool
  sample: true
rows:
  description:
    - One row per figure, in this order - C(PostgreSQL server) (shown, not compared), C(rows <schema.table>)
      per table (sorted), C(flyway history) with O(app_schema) in parentheses when a side has a Flyway history, and
      C(lift_system count), C(versions per system), C(published versions per system) when a side has
      the application's tables.
  returned: always
  type: list
  elements: dict
  contains:
    item:
      description: The figure.
      type: str
      sample: rows lift_simulator.lift_system
    source:
      description:
        - "The source's figure (a number, or a text such as C(12 systems, 40 in all)); C(missing)
          when the source does not have it. Where a live source differs from its backup, both, as
          in '120 (backup: 118)'."
      type: raw
      sample: 12
    target:
      description: The target's figure, as for RV(rows[].source).
      type: raw
      sample: 12
    equal:
      description:
        - Whether source and target are equal; null where nothing is compared (the server version).
        - A figure missing on either side is never equal, nor is a Flyway history with failed rows.
        - Published versions compare the counts per system, and which version numbers with which
          status where both sides recorded them.
      type: bool
      sample: true
  sample:
    - {"item": "PostgreSQL server", "source": "15.18", "target": "17.6", "equal": null}
    - {"item": "rows lift_simulator.lift_system", "source": 12, "target": 12, "equal": true}
    - {"item": "flyway history (lift_simulator)", "source": "14 rows, 0 failed, latest 13",
       "target": "14 rows, 0 failed, latest 13", "equal": true}
table:
  description:
    - RV(rows) side by side as lines of text, under O(source_label) and O(target_label), with
      C(yes), C(NO) or C(-) (not compared); values longer than 44 characters are cut.
  returned: always
  type: list
  elements: str
  sample:
    - "table / figure                   source: lift-db-1  target: lift-db-2  equal?"
    - "-------------------------------  -----------------  -----------------  ------"
    - "PostgreSQL server                15.18              17.6               -"
    - "rows lift_simulator.lift_system  12                 12                 yes"
differences:
  description: The items of the RV(rows) that differ.
  returned: always
  type: list
  elements: str
  sample: ["rows lift_simulator.simulation_run"]
source:
  description:
    - The source's figures (the live source's, or the backup's when it is the only source).
  returned: always
  type: dict
  contains:
    origin:
      description: C(manifest), C(database), or what O(source_figures) said.
      type: str
    database:
      description: The database the figures are of.
      type: str
    server_version:
      description: The server's version (C(15.18)); null when unknown.
      type: str
    row_counts:
      description: Rows per table, by C(schema.table) (of O(tables) only, when set).
      type: dict
    flyway:
      description:
        - The Flyway history of O(app_schema) (C(schema), C(version), C(description),
          C(installed_rank), C(rows), C(failed)); null when there is none.
      type: dict
    checklist:
      description:
        - The checklist's figures (C(schema), C(lift_system_count), C(versions_per_system),
          C(published_per_system), C(published_versions)), as in a manifest; null without the
          application's tables.
        - The figures per system are digests (C(systems), C(total), C(sha256) of the sorted rows,
          docs/manifest.md); a manifest written before the digests holds full maps, compared by
          digesting them the same way.
      type: dict
    path:
      description: The manifest read (origin C(manifest)).
      type: str
    backup_name:
      description: The backup's name (origin C(manifest)).
      type: str
    sha256:
      description: The backup's sha256 (origin C(manifest)).
      type: str
target:
  description: The target's figures (origin C(database)), as RV(source).
  returned: always
  type: dict
backup:
  description: The backup's figures (as RV(source), origin C(manifest)) when the source is a live one.
  returned: when O(source_manifest) is set with O(source_database) or O(source_figures)
  type: dict
changed_since_backup:
  description: The items of the RV(rows) in which the live source differs from its backup.
  returned: when O(source_manifest) is set with O(source_database) or O(source_figures)
  type: list
  elements: str
  sample: ["rows lift_simulator.simulation_run"]
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lift_simulator.postgresql.plugins.module_utils import compare
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.ansible_common import (
    CONNECTION_MUTUALLY_EXCLUSIVE, connection_argument_spec, connection_params, directory_checks_argument_spec)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact.manifest import (
    ManifestError, load_manifest, manifest_path_of)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.connection import (
    DatabaseError, PgError, quote_for_message)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import path_trust


def read(module, params, what, scrub):
    try:
        return compare.read_database(params, module.params["app_schema"], module.params["tables"])
    except PgError as exc:
        module.fail_json(msg="cannot read the %s: %s" % (what, scrub(exc)))
    except DatabaseError as exc:
        module.fail_json(msg="cannot read the %s, database %s at %s: %s" % (
            what, quote_for_message(params.database), params.describe(), scrub(str(exc).strip())))
    return None


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        database=dict(type="str", default="lift_simulator", aliases=["db"]),
        source_manifest=dict(type="path"),
        source_database=dict(type="str"),
        source_connection=dict(type="dict", options=dict(
            login_host=dict(type="str"),
            login_unix_socket=dict(type="path"),
            login_port=dict(type="int"),
            login_user=dict(type="str"),
            login_password=dict(type="str", no_log=True),
        )),
        source_figures=dict(type="dict"),
        app_schema=dict(type="str", default="lift_simulator"),
        tables=dict(type="list", elements="str", default=[]),
        extra_rows=dict(type="list", elements="dict", default=[], options=dict(
            item=dict(type="str", required=True),
            source=dict(type="raw"),
            target=dict(type="raw"),
            compare=dict(type="bool", default=False),
        )),
        source_label=dict(type="str", default="source"),
        target_label=dict(type="str", default="target"),
    )
    argument_spec.update(directory_checks_argument_spec())
    module = AnsibleModule(
        argument_spec=argument_spec, supports_check_mode=True,
        mutually_exclusive=CONNECTION_MUTUALLY_EXCLUSIVE + [["source_database", "source_figures"]],
        required_one_of=[["source_manifest", "source_database", "source_figures"]],
        required_by={"source_connection": "source_database"})
    p = module.params
    target_params = connection_params(module, p["database"])
    live_params = None
    if p["source_database"] is not None:
        live_params = connection_params(module, p["source_database"], p["source_connection"] or {})

    def scrub(text):
        text = target_params.scrub(text)
        return live_params.scrub(text) if live_params is not None else text

    backup = None
    if p["source_manifest"]:
        path = manifest_path_of(p["source_manifest"])
        try:
            # Another user who could replace the manifest would choose the figures it is judged by.
            for warning in path_trust.check([os.path.dirname(path), path], p["directory_checks"],
                                            "the manifest %s" % path):
                module.warn(warning)
            backup = compare.manifest_figures(load_manifest(path), p["app_schema"], p["tables"], path=path)
        except (ManifestError, path_trust.UntrustedPathError) as exc:
            module.fail_json(msg="cannot compare with the backup: %s" % exc)
    live = None
    if live_params is not None:
        live = read(module, live_params, "source database", scrub)
    elif p["source_figures"] is not None:
        try:
            live = compare.given_figures(p["source_figures"], p["tables"])
        except compare.CompareError as exc:
            module.fail_json(msg="cannot compare with source_figures: %s" % exc)
    target = read(module, target_params, "target database", scrub)

    source = live if live is not None else backup
    outcome = compare.compare(source, target, p["app_schema"], backup if live is not None else None, p["tables"],
                              p["extra_rows"])
    result = dict(changed=False, source=source, target=target, msg=compare.summary(outcome),
                  table=compare.render_table(outcome["rows"], p["source_label"], p["target_label"]), **outcome)
    if live is not None and backup is not None:
        result["backup"] = backup
    module.exit_json(**result)


if __name__ == "__main__":
    main()
