# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verification by a real restore (``verify`` with ``level: restore``): the backup is quickly
verified, restored into a scratch database ``<database>_verify_<time>`` as the loading role,
checked there, and the scratch database is always dropped. Nothing lasting is created: roles the
backup grants to that do not exist here are left out with its GRANTs. Pure Python (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.app import lift_simulator as checklist
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.connection import quote_for_message
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore import names
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore import opening
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.leftovers import discard, drop_stale
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.loader import Loader
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.request import RestoreError
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.roles import missing_roles


def run_verify_restore(request):
    """verify level restore: restore into a scratch database, check it, always drop it.
    Returns (backup, checks, row counts, scratch database name, seconds)."""
    started = time.monotonic()
    backup, admin, major = opening.open_run(request)
    try:
        quick = opening.verify_quickly(backup, request, major)
        missing = missing_roles(request, admin, backup)
        if missing:
            # A verification creates nothing lasting: without those roles, it restores without GRANTs.
            request.privileges = "skip"
            still = missing_roles(request, admin, backup)
            if still:
                raise RestoreError("the backup needs roles that do not exist here (its row-security policies name "
                                   "them): %s; create them first" % ", ".join(quote_for_message(r) for r in still))
            quick.append(checklist.check("roles", True, "the backup grants to roles that do not exist here (%s): "
                                         "restored without its GRANTs" % ", ".join(missing), skipped=True))
        database = (backup.manifest or {}).get("database") or request.database
        drop_stale(admin, database, kinds=("verify",))
        scratch = names.derived_name(database, "verify", names.timestamp())
        admin.try_lock(scratch)
        load = Loader(request, admin, request.owner)
        try:
            load.create(scratch, "verify", database)
            checks, counts = load.load_and_check(backup, scratch, request.owner, major, None)
        finally:
            discard(admin, scratch)
            names.unlock_quietly(admin, scratch)
            load.drop_role_quietly()
        return backup, quick + checks, counts, scratch, round(time.monotonic() - started, 3)
    finally:
        admin.close()
