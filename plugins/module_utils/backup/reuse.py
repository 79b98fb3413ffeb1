# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Finding a recent good backup to reuse instead of taking a new one.

A backup is reused only when it is good (manifest valid, size and sha256 as recorded), younger
than the limit and not dated in the future, and provably of this database as it is now on this
machine: its manifest names this database, this host (FQDN) and this server's system identifier
(pg_control_system(), which a new or re-initialised cluster changes). A backup of another host
left in a shared directory is never taken for this one's. Pure Python.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os
import socket

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact.naming import safe_component
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.retention import apply as retention_apply
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.retention import policy as retention
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.posix import PosixStorage

UTC = datetime.timezone.utc


def system_identifier(cursor):
    cursor.execute("SELECT system_identifier::text FROM pg_control_system()")
    return cursor.fetchone()[0]


def find(dest_dir, database, identifier, max_age_s, now=None):
    """The newest reusable backup's manifest (with its path), or None; and why others were not
    reusable, as a list of texts."""
    now = now or datetime.datetime.now(UTC)
    if not os.path.isdir(dest_dir):
        return None, []
    candidates = retention_apply.examine(PosixStorage(dest_dir), safe_component(database))[1]
    host = socket.getfqdn()
    passed_over = []
    for candidate in candidates:
        if not candidate.good or retention.is_future(candidate, now):
            continue
        if (now - candidate.time).total_seconds() > max_age_s:
            break
        manifest = candidate.manifest
        reasons = []
        if manifest.get("database") != database:
            reasons.append("database %s" % manifest.get("database"))
        if manifest.get("host") != host:
            reasons.append("made on %s" % manifest.get("host"))
        if (manifest.get("server") or {}).get("system_identifier") != identifier:
            reasons.append("server system identifier %s, this server's is %s"
                           % ((manifest.get("server") or {}).get("system_identifier"), identifier))
        if reasons:
            passed_over.append("%s: %s" % (candidate.name, "; ".join(reasons)))
            continue
        return dict(manifest, path=os.path.join(dest_dir, candidate.name),
                    manifest_path=os.path.join(dest_dir, candidate.manifest_name)), passed_over
    return None, passed_over
