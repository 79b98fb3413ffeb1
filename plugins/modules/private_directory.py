#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: private_directory
short_description: A directory owned by a user, made without root working through what another user can change
version_added: 0.2.0
description:
  - Makes sure O(path) is a directory owned by O(owner) with mode O(mode), in one call (it looks at
    the path and every directory above it, and acts, in one module run).
  - When every directory above it belongs to root, is no symlink and nobody else may write there
    (C(/var/backups), C(/var/lib/...)), root makes the directory and sets its owner, group and mode.
    Otherwise the directory above must belong to O(owner), and the owner makes it (a child process
    with the owner's user, group and supplementary groups, so that root does nothing in a directory
    another user controls). Any other parent is refused, with the directory above and the first
    directory that is not root's alone named in the error.
  - A symlink, or anything but a directory, at O(path) is refused, never followed. Every step goes
    through directory descriptors opened without following symlinks, so a directory swapped for a
    symlink on the way is refused too.
  - The collection's role C(lift_simulator.postgresql.private_directory), and through it every role
    and playbook of the collection, makes its backup, log, upload, report, state and metrics
    directories with this module (see the collection's C(docs/security.md), section 9).
  - Run it as root (C(become=true)); run as O(owner) itself it can make only what the owner makes.
options:
  path:
    description: The directory; absolute, below C(/), without C(.) or C(..) parts.
    type: path
    required: true
  owner:
    description: The OS user who owns it.
    type: str
    required: true
  group:
    description:
      - Its group (a name or a number) when root makes it; by default the owner's primary group.
      - When the owner makes it, the group is the one the system gives a new directory of the owner.
    type: str
  mode:
    description: Its mode, as octal text (C("0700"), C("0750")); set on every run, whoever makes it.
    type: str
    default: "0700"
extends_documentation_fragment:
  - lift_simulator.postgresql.attributes
attributes:
  check_mode:
    support: full
    details: Looks at the path exactly as a real run does and reports whether it would change it.
  diff_mode:
    support: none
  idempotent:
    support: full
notes:
  - One module run per directory. The role's earlier tasks ran a stat module per directory above the
    path, then a file module, most of what a fleet's backup.yml spent per host.
seealso:
  - module: ansible.builtin.file
author:
  - lift_simulator maintainers (@lift-simulator)
"""

EXAMPLES = r"""
- name: The backup directory, made by root under /var/backups and owned by postgres
  become: true
  lift_simulator.postgresql.private_directory:
    path: /var/backups/lift_simulator
    owner: postgres

- name: Its log directory, inside the postgres-owned backup directory, made by postgres itself
  become: true
  lift_simulator.postgresql.private_directory:
    path: /var/backups/lift_simulator/logs
    owner: postgres
    mode: "0700"

- name: The scheduled job's metrics directory, which node_exporter reads
  become: true
  lift_simulator.postgresql.private_directory:
    path: /var/lib/lift-pg-backup/metrics
    owner: postgres
    mode: "0755"
"""

RETURN = r"""
path:
  description: The directory (absolute, without a trailing slash).
  returned: always
  type: str
  sample: /var/backups/lift_simulator
made_by:
  description: Who makes it and sets its mode, C(root) (every directory above is root's alone) or C(owner).
  returned: success
  type: str
  sample: root
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import private_directory


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            owner=dict(type="str", required=True),
            group=dict(type="str"),
            mode=dict(type="str", default="0700"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    result = dict(changed=False, path=p["path"])
    try:
        result["path"] = private_directory.checked_path(p["path"])
        result.update(private_directory.ensure(result["path"], p["owner"], p["group"], p["mode"],
                                               check_mode=module.check_mode))
    except private_directory.PrivateDirectoryError as exc:
        module.fail_json(msg=str(exc), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
