# -*- coding: utf-8 -*-
"""What the manifest's checklist costs against the number of lift systems (issue 18).

For each number of systems N it seeds a scratch database (the fixture's schema.sql, then N
systems with 1-5 versions each, some published, keys with spaces, quotes and non-ASCII letters)
and measures, the median of ``repeat`` runs:

- ``bytes``: the manifest's ``checklist`` entry as the manifest writes it (artifact/manifest.dumps:
  indented JSON), i.e. what it adds to the manifest;
- ``build_s``: checklist.capture() in a read-only REPEATABLE READ transaction, as the backup takes
  it in its snapshot, plus writing the entry (manifest.dumps);
- ``compare_s``: reading the entry back (json.loads) and checklist.checklist_checks() against the
  live database, as restore and ``verify level=restore`` do (it captures the live figures again);
- the same three for the previous format (full maps {system_key: n}; the queries of the version
  before the digests, kept here as the baseline), and ``compat_compare_s``: today's checks against
  a manifest in the previous format (its maps are digested as the live figures are);
- ``server_hash_s`` (for reference): the time PostgreSQL takes to hash the same rows itself
  (sha256 of an ordered string_agg), the alternative to hashing them in Python.

Use from bench/bench.py with a started pglab.PgCluster:

    import checklist_cost
    rows = checklist_cost.measure(cluster)              # 1k, 20k, 200k systems
    text = checklist_cost.markdown(rows)

or standalone (starts and destroys its own pglab cluster, prints a markdown table):

    .venv/bin/python bench/checklist_cost.py [--systems 1000,20000,200000] [--repeat 3]
"""
from __future__ import absolute_import, division, print_function

import argparse
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
sys.path.insert(0, os.path.join(ROOT, ".cache", "collections"))

import psycopg2  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.app import (  # noqa: E402
    lift_simulator as checklist)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import (  # noqa: E402
    manifest as manifest_file)

SCHEMA_SQL = os.path.join(ROOT, "tests", "fixtures", "lift_simulator", "schema.sql")
SYSTEMS = (1000, 20000, 200000)
SEED_SQL = """
INSERT INTO lift_simulator.lift_system (system_key, display_name)
SELECT CASE g %% 7 WHEN 0 THEN 'caf\u00e9 ' || g WHEN 1 THEN 'tower "' || g || '"' ELSE 'building-' || g || '-lifts' END,
       'Building ' || g
FROM pg_catalog.generate_series(1, %(n)s) g;
INSERT INTO lift_simulator.lift_system_version (lift_system_id, version_number, status, is_published, config)
SELECT s.id, v,
       CASE WHEN v = 1 + s.id %% 3 THEN 'PUBLISHED' WHEN v < 1 + s.id %% 3 THEN 'ARCHIVED' ELSE 'DRAFT' END,
       v = 1 + s.id %% 3, '{"floors": 12}'::jsonb
FROM lift_simulator.lift_system s, pg_catalog.generate_series(1, 1 + (s.id %% 5)::int) v;
ANALYZE lift_simulator.lift_system;
ANALYZE lift_simulator.lift_system_version;
"""


def log(message):
    sys.stderr.write("[checklist_cost %s] %s\n" % (time.strftime("%H:%M:%S"), message))
    sys.stderr.flush()


def conninfo_of(cluster_or_conninfo, database="postgres"):
    """A libpq conninfo dict: from a pglab.PgCluster (the superuser over TCP), or a conninfo
    string (a superuser's, to create and drop the scratch database)."""
    if isinstance(cluster_or_conninfo, str):
        params = dict(psycopg2.extensions.parse_dsn(cluster_or_conninfo))
    else:
        env = cluster_or_conninfo.env()
        params = {"host": env["PGHOST"], "port": env["PGPORT"], "user": env["PGUSER"], "password": env["PGPASSWORD"]}
    params["dbname"] = database
    return params


def _admin(conninfo, statements):
    conn = psycopg2.connect(**conninfo)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def seed(conninfo, database, systems):
    _admin(conninfo, [
        "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'lift_admin') "
        "THEN CREATE ROLE lift_admin; END IF; END$$",
        "DROP DATABASE IF EXISTS %s" % database,
        "CREATE DATABASE %s OWNER lift_admin" % database])
    conn = psycopg2.connect(**dict(conninfo, dbname=database))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            with open(SCHEMA_SQL) as handle:
                cur.execute(handle.read())
            cur.execute("RESET ROLE")
            cur.execute(SEED_SQL, {"n": systems})
    finally:
        conn.close()


# The previous format, kept as the baseline: full maps, the queries of the version before the digests.
def _old_per_system(cur, published_only):
    cur.execute("SELECT s.system_key, count(v.id) %s FROM lift_simulator.lift_system s "
                "LEFT JOIN lift_simulator.lift_system_version v ON v.lift_system_id = s.id "
                "GROUP BY s.system_key ORDER BY s.system_key" % ("FILTER (WHERE v.is_published)" if published_only else ""))
    return dict((key, int(count)) for key, count in cur.fetchall())


def old_capture(cur):
    cur.execute("SELECT s.system_key, v.version_number, v.status, v.is_published FROM lift_simulator.lift_system s "
                "JOIN lift_simulator.lift_system_version v ON v.lift_system_id = s.id "
                "WHERE v.is_published OR v.status = 'PUBLISHED' ORDER BY s.system_key, v.version_number")
    published = {}
    for key, number, status, flag in cur.fetchall():
        published.setdefault(key, []).append([int(number), status, bool(flag)])
    figures = {"schema": "lift_simulator", "versions_per_system": _old_per_system(cur, False),
               "published_per_system": _old_per_system(cur, True), "published_versions": published}
    figures["lift_system_count"] = len(figures["versions_per_system"])
    return figures


def old_checks(cur, reference):
    found = old_capture(cur)
    return [key for key in ("lift_system_count", "versions_per_system", "published_per_system", "published_versions")
            if reference[key] != found[key]]


def server_hash(cur):
    cur.execute("SELECT pg_catalog.sha256(pg_catalog.convert_to(string_agg(json_build_array(system_key, n)::text, ',' "
                "ORDER BY pg_catalog.convert_to(system_key, 'UTF8')), 'UTF8')) FROM (SELECT s.system_key, count(v.id) n "
                "FROM lift_simulator.lift_system s LEFT JOIN lift_simulator.lift_system_version v "
                "ON v.lift_system_id = s.id GROUP BY s.system_key) c")
    return cur.fetchone()[0]


def _entry_bytes(figures):
    """What the checklist adds to the manifest, as the manifest writes it."""
    return len(manifest_file.dumps({"checklist": figures})) - len(manifest_file.dumps({"checklist": None}))


def _timed(conn, action):
    conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
    start = time.monotonic()
    try:
        with conn.cursor() as cur:
            value = action(cur)
    finally:
        conn.rollback()
    return time.monotonic() - start, value


def measure_one(conninfo, database, systems, repeat=3):
    seed(conninfo, database, systems)
    conn = psycopg2.connect(**dict(conninfo, dbname=database))
    try:
        samples = dict((name, []) for name in ("build_s", "compare_s", "old_build_s", "old_compare_s",
                                               "compat_compare_s", "server_hash_s"))
        for _run in range(repeat):  # alternating the formats, one run of each at a time
            seconds, text = _timed(conn, lambda cur: manifest_file.dumps({"checklist": checklist.capture(cur)}))
            samples["build_s"].append(seconds)
            seconds, old_text = _timed(conn, lambda cur: manifest_file.dumps({"checklist": old_capture(cur)}))
            samples["old_build_s"].append(seconds)
            seconds, checks = _timed(conn, lambda cur: checklist.checklist_checks(cur, json.loads(text)["checklist"]))
            assert not checklist.failing(checks), checks
            samples["compare_s"].append(seconds)
            seconds, differing = _timed(conn, lambda cur: old_checks(cur, json.loads(old_text)["checklist"]))
            assert not differing, differing
            samples["old_compare_s"].append(seconds)
            seconds, checks = _timed(conn, lambda cur: checklist.checklist_checks(cur, json.loads(old_text)["checklist"]))
            assert not checklist.failing(checks), checks
            samples["compat_compare_s"].append(seconds)
            seconds, _hash = _timed(conn, server_hash)
            samples["server_hash_s"].append(seconds)
        # Strict: one system's count changed in the database fails the check against the backup's digest.
        conn.set_session(isolation_level="READ COMMITTED", readonly=False)
        with conn.cursor() as cur:
            cur.execute("DELETE FROM lift_simulator.lift_system_version WHERE id = (SELECT max(id) FROM "
                        "lift_simulator.lift_system_version WHERE NOT is_published)")
            failing = [c["name"] for c in checklist.failing(checklist.checklist_checks(cur, json.loads(text)["checklist"]))]
        conn.rollback()
        assert failing == ["versions per system"], failing
    finally:
        conn.close()
        _admin(conninfo, ["DROP DATABASE IF EXISTS %s" % database])
    found = dict((name, statistics.median(values)) for name, values in samples.items())
    found.update(systems=systems, bytes=_entry_bytes(json.loads(text)["checklist"]),
                 old_bytes=_entry_bytes(json.loads(old_text)["checklist"]), repeat=repeat)
    return found


def measure(cluster_or_conninfo, systems=SYSTEMS, repeat=3):
    """The checklist's cost for each number of systems: a list of dicts (systems, bytes, build_s,
    compare_s, old_bytes, old_build_s, old_compare_s, compat_compare_s, server_hash_s, repeat).
    ``cluster_or_conninfo``: a started pglab.PgCluster, or a superuser's libpq conninfo string; a
    scratch database checklist_cost_<pid> is created and dropped on it."""
    conninfo = conninfo_of(cluster_or_conninfo)
    database = "checklist_cost_%d" % os.getpid()
    found = []
    for number in systems:
        log("%d systems" % number)
        found.append(measure_one(conninfo, database, number, repeat))
    return found


def _size(count):
    if count < 10240:
        return "%d B" % count
    if count < 1024 * 1024:
        return "%.1f kB" % (count / 1024.0)
    return "%.2f MB" % (count / 1024.0 / 1024.0)


def markdown(rows):
    lines = ["| systems | checklist in the manifest | build | compare | previous format: size | build | compare "
             "| previous-format manifest, compared today | versions per system hashed in PostgreSQL (reference) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append("| %d | %s | %.3f s | %.3f s | %s | %.3f s | %.3f s | %.3f s | %.3f s |" % (
            row["systems"], _size(row["bytes"]), row["build_s"], row["compare_s"], _size(row["old_bytes"]),
            row["old_build_s"], row["old_compare_s"], row["compat_compare_s"], row["server_hash_s"]))
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--systems", default=",".join(str(n) for n in SYSTEMS), help="numbers of lift systems")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median; default 3)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    import pglab  # pylint: disable=import-outside-toplevel
    cluster = pglab.PgCluster()
    cluster.durable = True
    cluster.start_fresh()
    try:
        rows = measure(cluster, [int(n) for n in args.systems.split(",") if n], args.repeat)
    finally:
        cluster.destroy()
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2, sort_keys=True)
    sys.stdout.write(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
