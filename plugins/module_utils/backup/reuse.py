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


def find(dest_dir, database, identifier, max_age_s, now=None, encryption=("none", [])):
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
        made = (manifest.get("encryption", "none"), sorted(r.get("recipient") for r in manifest.get("recipients", [])))
        if made != tuple(encryption):
            reasons.append("encryption %s%s, this run wants %s%s" % (
                made[0], " to other recipients" if made[0] == encryption[0] else "", encryption[0],
                "" if encryption[0] == "none" else " to %d recipient(s)" % len(encryption[1])))
        if (manifest.get("server") or {}).get("system_identifier") != identifier:
            reasons.append("server system identifier %s, this server's is %s"
                           % ((manifest.get("server") or {}).get("system_identifier"), identifier))
        if reasons:
            passed_over.append("%s: %s" % (candidate.name, "; ".join(reasons)))
            continue
        return dict(manifest, path=os.path.join(dest_dir, candidate.name),
                    manifest_path=os.path.join(dest_dir, candidate.manifest_name)), passed_over
    return None, passed_over


def encryption_wanted(request):
    """What a reusable backup's manifest must say of its encryption (the same recipients)."""
    return (request.encryption, sorted(r["recipient"] for r in request.recipients))


def reused_result(request, identifier, result, log):
    """The backup's result for a reusable recent backup, or None to take a new one."""
    found, passed_over = find(request.dest_dir, request.connection.database, identifier, request.reuse_max_age_s,
                              encryption=encryption_wanted(request))
    for text in passed_over:
        log.add("not reused: %s" % text)
    if found is None:
        result["reuse_passed_over"] = passed_over
        return None
    log.add("reused %s instead of taking a new backup" % found["path"])
    return dict(result, path=found["path"], manifest_path=found["manifest_path"], name=found["backup_name"],
                stem=found["backup_name"], format=found["format"], compression=found["compression"],
                compression_level=found.get("compression_level"), size_bytes=found["size_bytes"],
                sha256=found["sha256"], row_counts=found["row_counts"], flyway_version=found.get("flyway_version"),
                started_at=found["started_at"], finished_at=found["finished_at"], duration_s=0.0,
                server_version=found["server"]["version"], pg_dump_version=found["pg_dump_version"],
                globals_path=(os.path.join(request.dest_dir, found["globals"]["name"])
                              if found.get("globals") else None),
                roles=found.get("roles"), encryption=found.get("encryption", "none"),
                recipients=found.get("recipients", []), reused=True, changed=False, reuse_passed_over=passed_over)
