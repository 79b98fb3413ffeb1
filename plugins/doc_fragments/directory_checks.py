# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Whether backup directories and files are trusted (backup, verify, restore, prune, backup_info).
    DOCUMENTATION = r"""
options:
  directory_checks:
    description:
      - What to do with a backup directory, backup file or manifest that another local user could
        replace. Each must belong to root or to the user the module runs as, and neither it nor a
        directory above it may be writable by group or others (a directory with the sticky bit, such
        as C(/tmp), may be above it). A log directory that is a symlink counts too.
      - V(strict) refuses with an error that names the path, its owner or its mode, before anything
        is read or written.
      - V(warn) goes on with a warning. A symlinked log directory is never followed either way (no
        log is written through it).
    type: str
    choices: [ strict, warn ]
    default: strict
"""
