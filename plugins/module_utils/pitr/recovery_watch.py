# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Watching the recovered copy replay WAL until it reaches its target, and saying why it did not.

The copy has been started (systemd); ``watch`` polls it (its log from where this run's part
starts, its postmaster.pid, a connection over the local socket) until it is paused at the target,
promoted, or gone. A copy that is gone is explained from its log: PostgreSQL's FATAL, the segment
it could not get (recovery_wal.py: missing from the repository, or there and unreadable, in
pgBackRest's own words from ``archive-get``), or a target past the end of the archived WAL.
A ``latest`` recovery that PostgreSQL promoted at a hole in the archive, although the repository
held later WAL when the restore began, is a failure too: PostgreSQL takes the first segment it
cannot get for the end of the WAL. No Ansible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import connection as pg_connection
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import recovery_log
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import recovery_repository as repo
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import recovery_wal as wal
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr.recovery_instance import (
    RecoveryError, copy_running)

STATE_SQL = (
    "SELECT pg_catalog.pg_is_in_recovery(), "
    "CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_get_wal_replay_pause_state() END, "
    "pg_catalog.pg_last_xact_replay_timestamp()::pg_catalog.text, "
    "pg_catalog.pg_last_wal_replay_lsn()::pg_catalog.text, "
    "(SELECT timeline_id FROM pg_catalog.pg_control_checkpoint()), "
    "pg_catalog.pg_size_bytes(pg_catalog.current_setting('wal_segment_size')), "
    "pg_catalog.current_setting('server_version')")
_STARTING = ("starting up", "not yet accepting connections", "shutting down", "in recovery mode")


def read_log(path, offset):
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


def server_state(params):
    """The copy's state over a connection, or None while it does not accept connections yet."""
    try:
        conn = pg_connection.connect(params)
    except pg_connection.PgError as exc:
        text = str(exc).lower()
        if any(word in text for word in _STARTING) or "not running" in text or "could not connect" in text:
            return None
        raise
    try:
        with conn.cursor() as cur:
            cur.execute(STATE_SQL)
            row = cur.fetchone()
    finally:
        conn.close()
    return {"in_recovery": bool(row[0]), "pause_state": row[1], "last_transaction": row[2], "replay_lsn": row[3],
            "timeline": int(row[4]) if row[4] is not None else None, "wal_segment_size": int(row[5]),
            "server_version": row[6]}


def watch(layout, params, record, timeout, poll=0.2, started_grace=30, clock=time.time, sleep=time.sleep):
    """Wait until the copy is paused at its target or promoted. Returns (state, parsed log).
    Raises RecoveryError, explained, when it stopped or did not get there within ``timeout``."""
    start = clock()
    log_path = layout.log_file(layout.copy)
    offset = int(record.get("log_offset") or 0)
    while True:
        text = read_log(log_path, offset)
        parsed = recovery_log.parse(text)
        running = copy_running(layout)
        state = server_state(params) if running else None
        if state is not None and (not state["in_recovery"] or state["pause_state"] == "paused"):
            return state, parsed
        if not running:
            waited = clock() - start
            # Gone: after a FATAL at once; without one, once it had time to write its last words.
            if parsed.fatal or (text and waited > 2) or waited > started_grace:
                raise RecoveryError(explain_stop(layout, record, parsed, text))
        if clock() - start > timeout:
            raise RecoveryError(
                "the recovered copy has not reached its target within %d s (it is still replaying WAL: last segment "
                "restored %s); it keeps running as %s. Watch %s, run the playbook again with a longer "
                "pitr_restore_timeout, or discard it (pitr_restore_discard=true)" % (
                    timeout, parsed.last_restored or "none yet", layout.unit(layout.copy), log_path))
        sleep(poll)


def explain_stop(layout, record, parsed, text):
    """Why the copy stopped before it reached its target, with PostgreSQL's and pgBackRest's words."""
    log_path = layout.log_file(layout.copy)
    target = (record.get("target") or {}).get("description", "its target")
    said_pg = "; ".join(parsed.fatal) or "nothing (see %s)" % log_path
    said_pgbr = "; ".join(parsed.pgbackrest)
    if parsed.ended_before_target:
        gap = _gap(record, parsed)
        if gap:
            return gap_message(record, parsed, gap) + " PostgreSQL: %s. The running cluster was not touched." % said_pg
        return ("the recovery cannot reach %s: the repository's WAL ends before it. The last transaction in the "
                "archived WAL is at %s (last segment %s; the repository's newest is %s): choose an earlier target, "
                "or latest. PostgreSQL: %s.%s The running cluster was not touched." % (
                    target, parsed.last_transaction or "an unknown time", parsed.last_restored or "none",
                    record.get("newest_wal") or "none", said_pg,
                    " pgBackRest: %s." % said_pgbr if said_pgbr else ""))
    if not text:
        return ("the recovered copy did not start and wrote nothing to %s: see journalctl -u %s. The running "
                "cluster was not touched." % (log_path, layout.unit(layout.copy)))
    return ("the recovered copy stopped before it reached %s. PostgreSQL: %s.%s See %s. The running cluster was "
            "not touched." % (target, said_pg, " pgBackRest: %s." % said_pgbr if said_pgbr else "", log_path))


def _gap(record, parsed):
    """(next segment, listed) when the recovery stopped before WAL the repository held at the restore."""
    if not parsed.last_restored or not record.get("archive"):
        return None
    archive = wal.Archive.from_dict(record["archive"])
    return wal.stopped_short(archive, parsed.last_restored)


def gap_message(record, parsed, gap):
    """The gap named: the segment, whether the repository lists it, and pgBackRest's own words
    about it (``archive-get`` of that segment, run now)."""
    segment, listed = gap
    archive = wal.Archive.from_dict(record["archive"])
    timeline, _number = wal.parse_segment(segment)
    code, words = repo.probe_segment(record["stanza"], segment, record.get("config"))
    if code == 0:
        state = "could not be read during the recovery (pgBackRest reads it now: retry the recovery)"
    elif listed:
        state = "is in the repository but cannot be read"
    else:
        state = "is missing from the repository"
    ranges = ", ".join("%s-%s" % pair for pair in archive.ranges(timeline))
    return ("the recovery stopped at WAL segment %s: the next one, %s, %s, although the repository holds later WAL "
            "of timeline %d (it holds %s). Everything after %s is out of reach from this backup: recover to a time "
            "before that (the last transaction replayed is at %s), or repair the archive. pgBackRest: %s." % (
                parsed.last_restored, segment, state, timeline, ranges, parsed.last_restored,
                parsed.last_transaction or "an unknown time", words or "(no message)"))


def check_reached_end(record, parsed):
    """For a latest recovery that PostgreSQL promoted: refuse when it stopped short of WAL the
    repository held when the restore began (a hole PostgreSQL took for the end of the WAL)."""
    if (record.get("target") or {}).get("kind") != "latest":
        return
    gap = _gap(record, parsed)
    if gap:
        raise RecoveryError(gap_message(record, parsed, gap) + " PostgreSQL took the hole for the end of the WAL and "
                            "promoted the copy there: it is not put in service. The running cluster was not touched.")


def facts(record, state, parsed, waited_s):
    """What the recovery reached, for the module's result and the report."""
    stop = parsed.stop or {}
    target = record.get("target") or {}
    last = state.get("last_transaction") or parsed.last_transaction
    if target.get("kind") == "time":
        recovered_to = target.get("value")
    elif target.get("kind") == "name":
        recovered_to = stop.get("time") or last
    else:
        recovered_to = last
    return {
        "state": "paused" if state["in_recovery"] else "promoted",
        "target": target,
        "backup_set": record.get("backup_set"),
        "recovered_to": recovered_to,
        "stop": parsed.stop,
        "first_not_replayed": stop.get("time") if stop.get("kind", "").endswith("commit") else None,
        "last_transaction": last,
        "replay_lsn": state.get("replay_lsn") or parsed.redo_done,
        "timeline": state.get("timeline"),
        "last_wal": parsed.last_restored,
        "wal_segments_restored": len(set(parsed.restored)),
        "newest_wal_in_repository": record.get("newest_wal"),
        "server_version": state.get("server_version"),
        "waited_s": round(waited_s, 3),
        "log": record.get("log"),
    }
