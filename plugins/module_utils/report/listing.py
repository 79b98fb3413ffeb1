# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backups of a directory as the status page shows them: retention/apply.py's examine (the one
listing of prune, backup_info and the job) turned into entries of the shape of backup_info's
RV(backups), so that the page renders the job's own directory and a fleet's backup_info results
with the same code. Pure Python (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact.naming import (
    parse_backup_name, safe_component)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.retention import apply as retention_apply
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.retention import policy as retention
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.posix import PosixStorage

UTC = datetime.timezone.utc


def describe(candidate, path, now):
    """One backup (a retention candidate) as an entry of backup_info's RV(backups), the keys the page
    reads, and ``duration_seconds`` (the manifest's ``duration_s``)."""
    manifest = candidate.manifest if candidate.manifest_valid else None
    parsed = parse_backup_name(candidate.name)
    age = int((now - candidate.time).total_seconds())
    duration = manifest.get("duration_s") if manifest else None
    return dict(
        name=candidate.name,
        path=os.path.join(path, candidate.name),
        legacy=candidate.legacy,
        good=candidate.good,
        problem=candidate.problem,
        problem_detail=candidate.detail,
        manifest_exists=candidate.manifest_exists,
        manifest_valid=candidate.manifest_valid,
        checksum_ok=candidate.checksum_ok,
        database=manifest["database"] if manifest else parsed.prefix,
        format=manifest["format"] if manifest else parsed.format,
        compression=manifest["compression"] if manifest else parsed.compression,
        size_bytes=candidate.size,
        time=candidate.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        age_seconds=age,
        age_days=round(age / 86400.0, 3),
        future=retention.is_future(candidate, now),
        duration_seconds=duration if isinstance(duration, (int, float)) and not isinstance(duration, bool) else None,
    )


def local_backups(dest_dir, database, verify_checksums=False, include_legacy=False, now=None):
    """The backups of ``database`` in ``dest_dir``, newest first (describe's entries). Checksums are
    not hashed by default (the page is written after every run: sizes are compared, checksum_ok is
    null); the run's own verification hashed the newest. Raises OSError when it cannot be read."""
    now = now or datetime.datetime.now(UTC)
    _scan, candidates, _left_out, _ids = retention_apply.examine(
        PosixStorage(dest_dir), safe_component(database), include_legacy, verify_checksums)
    return [describe(c, dest_dir, now) for c in candidates]
