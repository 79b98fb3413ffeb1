# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Before a recovery beside it: the running cluster's current WAL into the repository now.

Without it, a target of a minute ago may be in the segment PostgreSQL is still writing, which
reaches the repository only at ``archive_timeout``. ``archive_now`` commits an empty transaction
(PostgreSQL stops at a time target on the first commit after it: this makes sure there is one),
switches to a new segment and waits until the archiver reports the switched one (or a later one)
archived. The caller is the superuser over the local socket. No Ansible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import connection as pg_connection

_ARCHIVER_SQL = ("SELECT coalesce(last_archived_wal, ''), coalesce(last_failed_wal, ''), "
                 "coalesce(last_failed_time::pg_catalog.text, '') FROM pg_catalog.pg_stat_archiver")


class ArchiveError(Exception):
    pass


def archived_since(last_archived, segment):
    """Whether the archiver's last archived file is ``segment`` or a later one. Its name may be a
    segment, a backup label (<segment>.<offset>.backup), a .partial or a history file; the first
    24 characters of a segment's name sort in WAL order within and across timelines."""
    return bool(last_archived) and len(last_archived) >= 24 and last_archived[:24] >= segment


def archive_now(params, timeout=300, poll=0.2):
    """Commit, switch, wait. Returns {segment, archived, archive_mode, waited_s}."""
    conn = pg_connection.connect(params.with_database("postgres"))
    started = time.time()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_catalog.current_setting('archive_mode')")
            mode = cur.fetchone()[0]
            cur.execute("SELECT pg_catalog.pg_current_xact_id()")
            cur.execute("SELECT pg_catalog.pg_walfile_name(pg_catalog.pg_switch_wal())")
            segment = cur.fetchone()[0]
            if mode not in ("on", "always"):
                return {"segment": segment, "archived": False, "archive_mode": mode, "waited_s": 0.0}
            while True:
                cur.execute(_ARCHIVER_SQL)
                last, failed, failed_at = cur.fetchone()
                if archived_since(last, segment):
                    break
                if time.time() - started > timeout:
                    raise ArchiveError(
                        "the running cluster's WAL segment %s did not reach the repository within %d s (last archived "
                        "%s; last failure %s at %s): archiving is broken, see the cluster's log" % (
                            segment, timeout, last or "none", failed or "none", failed_at or "-"))
                time.sleep(poll)
    finally:
        conn.close()
    return {"segment": segment, "archived": True, "archive_mode": mode, "waited_s": round(time.time() - started, 3)}
