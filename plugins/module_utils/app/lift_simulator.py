# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup strategy's restore checklist, and the checks run on a restored database.

The checklist (what "restored correctly" means for lift_simulator):
  1. Flyway history intact (rows ordered by installed_rank, all successful);
  2. lift_system row count as before;
  3. version count per system_key as before (LEFT JOIN: systems without versions count 0);
  4. published versions per system as before: which version numbers, with which status.
The backup records the checklist's figures in its manifest, taken in the snapshot it dumps, so a
restore can be compared exactly. The figures per system (items 3 and 4) are kept as digests - the
number of systems, the total and the sha256 of the sorted rows - so the manifest stays small
whatever the number of systems while one count that differs still fails the check; an older
manifest's full maps are digested the same way when compared. Every name is schema-qualified:
lift_admin's search_path does not include the application's schema, and the superuser's sessions
(the backup's) pin theirs to pg_catalog (pg/connection.py); catalog functions are named with their
schema, so a function the owner put in public never stands in for them. Pure Python over a
psycopg2 cursor (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.connection import ident, pg_sql

DEFAULT_APP_SCHEMA = "lift_simulator"
DIGEST_KEYS = ("systems", "total", "sha256")


def _exists(cursor, schema, table):
    cursor.execute("SELECT pg_catalog.to_regclass(pg_catalog.quote_ident(%s::pg_catalog.text) || '.' "
                   "|| pg_catalog.quote_ident(%s::pg_catalog.text)) IS NOT NULL", (schema, table))
    return bool(cursor.fetchone()[0])


def _per_system(cursor, schema):
    """Items 3 and 4's counts: rows [system_key, versions, published versions], one per system."""
    query = pg_sql.SQL(
        "SELECT s.system_key, count(v.id), count(v.id) FILTER (WHERE v.is_published) FROM {systems} s "
        "LEFT JOIN {versions} v ON v.lift_system_id = s.id GROUP BY s.system_key "
        "ORDER BY pg_catalog.convert_to(s.system_key, 'UTF8')").format(
        systems=ident(schema, "lift_system"), versions=ident(schema, "lift_system_version"))
    cursor.execute(query)
    return cursor.fetchall()


def _published(cursor, schema):
    """Item 4 exactly: rows [system_key, version_number, status, is_published] of the published versions."""
    query = pg_sql.SQL(
        "SELECT s.system_key, v.version_number, v.status, v.is_published FROM {systems} s "
        "JOIN {versions} v ON v.lift_system_id = s.id WHERE v.is_published OR v.status = 'PUBLISHED' "
        "ORDER BY pg_catalog.convert_to(s.system_key, 'UTF8'), v.version_number").format(
        systems=ident(schema, "lift_system"), versions=ident(schema, "lift_system_version"))
    cursor.execute(query)
    return cursor.fetchall()


# The queries give the rows in the digest's order already (UTF-8 byte order is code point order):
# sorting them again is then one pass; the order, and so the digest, never depends on the server's.
def _digest(rows, total):
    rows = sorted(tuple(row) for row in rows)
    text = json.dumps(rows, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return {"systems": len({row[0] for row in rows}), "total": total(rows),
            "sha256": hashlib.sha256(text.encode("ascii")).hexdigest()}


def count_digest(rows):
    """The digest of per-system counts, rows [system_key, count]: {systems, total (the counts' sum),
    sha256}. sha256 is that of the compact ASCII JSON text (json.dumps with ensure_ascii and
    separators "," and ":") of the rows sorted (system keys in code point order): any key, whatever
    characters it holds, has one encoding, and no two lists of rows share one."""
    return _digest(rows, lambda rows: sum(row[1] for row in rows))


def rows_digest(rows):
    """The digest of per-system rows [system_key, value, ...] (item 4's published versions), as
    count_digest's but with total the number of rows."""
    return _digest(rows, len)


def is_digest(value):
    """A digest (as count_digest gives it), not a full map: a map of an older manifest holds no text values."""
    return isinstance(value, dict) and isinstance(value.get("sha256"), str)


def as_digest(key, value):
    """A checklist figure (``key``: versions_per_system, published_per_system, published_versions) as
    a digest: a digest as recorded, a full map of a manifest written before the digests
    ({system_key: n}, or {system_key: [[version_number, status, is_published], ...]}) digested the
    same way as live figures. None for anything else (a map a manifest made up that cannot be read)."""
    if is_digest(value):
        return dict((name, value.get(name)) for name in DIGEST_KEYS)
    if not isinstance(value, dict):
        return None
    try:
        if key == "published_versions":
            if not all(isinstance(v, list) and all(isinstance(x, list) for x in v) for v in value.values()):
                return None
            return rows_digest([system] + version for system, versions in value.items() for version in versions)
        if any(isinstance(n, bool) or not isinstance(n, int) for n in value.values()):
            return None
        return count_digest(value.items())
    except (TypeError, ValueError):
        return None


def is_app_database(cursor, schema=DEFAULT_APP_SCHEMA):
    """Whether the application's tables the checklist reads are there."""
    return _exists(cursor, schema, "lift_system") and _exists(cursor, schema, "lift_system_version")


def capture(cursor, schema=DEFAULT_APP_SCHEMA):
    """The checklist's figures, or None when the application's tables are not there. The figures per
    system are digests (count_digest, rows_digest): the same size whatever the number of systems."""
    if not is_app_database(cursor, schema):
        return None
    counts = _per_system(cursor, schema)
    return {"schema": schema,
            "lift_system_count": len(counts),
            "versions_per_system": count_digest((key, int(versions)) for key, versions, _p in counts),
            "published_per_system": count_digest((key, int(published)) for key, _v, published in counts),
            "published_versions": rows_digest((key, int(number), status, bool(published))
                                              for key, number, status, published in _published(cursor, schema))}


def check(name, passed, detail, skipped=False):
    return {"name": name, "passed": bool(passed), "skipped": bool(skipped), "detail": detail}


def row_count_checks(cursor, expected_counts):
    """One check per table of the manifest; returns (checks, counts found)."""
    checks = []
    found = {}
    for table in sorted(expected_counts):
        try:
            cursor.execute("SELECT n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
                           "ON n.oid OPERATOR(pg_catalog.=) c.relnamespace WHERE c.oid OPERATOR(pg_catalog.=) "
                           "pg_catalog.to_regclass(%s::pg_catalog.text)::pg_catalog.oid", (table,))
            row = cursor.fetchone()
        except Exception as exc:  # a table name the manifest made up: a failed check
            cursor.connection.rollback()
            checks.append(check("rows %s" % table, False, "not a valid table name: %s" % str(exc).strip()))
            continue
        if row is None:
            checks.append(check("rows %s" % table, False, "the table is missing"))
            continue
        schema, name = row
        cursor.execute(pg_sql.SQL("SELECT count(*) FROM {}").format(ident(schema, name)))
        count = int(cursor.fetchone()[0])
        found[table] = count
        expected = expected_counts[table]
        checks.append(check("rows %s" % table, count == expected,
                            "%d rows" % count if count == expected else "expected %d rows, found %d" % (expected, count)))
    return checks, found


def flyway_check(cursor, schema=DEFAULT_APP_SCHEMA, expected_version=None):
    name = "flyway history"
    if not _exists(cursor, schema, "flyway_schema_history"):
        return check(name, False, "%s.flyway_schema_history is missing" % schema)
    table = ident(schema, "flyway_schema_history")
    cursor.execute(pg_sql.SQL("SELECT installed_rank, version, success FROM {} ORDER BY installed_rank").format(table))
    rows = cursor.fetchall()
    # Migrations are the rows with a version: Flyway's schema-creation row (rank 0, type SCHEMA)
    # and repeatable migrations' rows have none.
    migrations = [r for r in rows if r[1] is not None]
    failed = [r for r in rows if not r[2]]
    latest = [r[1] for r in migrations if r[2]]
    latest = latest[-1] if latest else None
    if not rows:
        return check(name, False, "the history is empty")
    if failed:
        return check(name, False, "%d of %d rows of the history are not successful (ranks %s)"
                     % (len(failed), len(rows), ", ".join(str(r[0]) for r in failed[:10])))
    if expected_version is not None and latest != expected_version:
        return check(name, False, "latest successful version is %s, the backup recorded %s" % (latest, expected_version))
    other = len(rows) - len(migrations)
    return check(name, True, "%d migrations, all successful, latest version %s%s" % (
        len(migrations), latest, " (and %d rows that are not migrations)" % other if other else ""))


def _shown(found):
    return "%s systems, %s in all" % (found["systems"], found["total"])


def _digest_diff(expected, found):
    """Why two digests differ: the number of systems, the total, or (both the same) the figures per system."""
    differing = ["expected %s %s, found %s" % (expected[name], label, found[name])
                 for name, label in (("systems", "systems"), ("total", "in all")) if expected[name] != found[name]]
    if differing:
        return ", ".join(differing)
    return ("%s as in the backup, but the figures per system differ (their sha256 is not the backup's)"
            % _shown(found))


def checklist_checks(cursor, reference, schema=DEFAULT_APP_SCHEMA):
    """Items 2-4 of the checklist, compared with the manifest's figures when it has them (digests,
    or an older manifest's full maps: digested the same way, as_digest)."""
    if not is_app_database(cursor, schema):
        if reference:
            return [check("lift_system count", False, "%s.lift_system or .lift_system_version is missing" % schema)]
        return [check("lift_system count", True, "not a lift_simulator database: checklist skipped", skipped=True)]
    actual = capture(cursor, schema)
    checks = []
    # Item 4 compares which version numbers are published with which status where the backup
    # recorded them; older manifests have only the counts.
    published = "published_versions" if reference and "published_versions" in reference else "published_per_system"
    for key, label in (("lift_system_count", "lift_system count"),
                       ("versions_per_system", "versions per system"),
                       (published, "published versions per system")):
        value = actual[key]
        detail = value if key == "lift_system_count" else _shown(value)
        if not reference or key not in reference:
            checks.append(check(label, True, "%s (no reference in the backup to compare with)" % detail))
            continue
        expected = reference[key] if key == "lift_system_count" else as_digest(key, reference[key])
        if expected == value:
            checks.append(check(label, True, "as in the backup: %s" % detail))
        elif key == "lift_system_count":
            checks.append(check(label, False, "expected %s, found %s" % (reference[key], value)))
        elif expected is None:
            checks.append(check(label, False, "the backup's figures cannot be read; found %s" % detail))
        else:
            checks.append(check(label, False, _digest_diff(expected, value)))
    return checks


def user_checks(cursor, specs):
    """Operator-defined checks: {name, sql, expect | min}. The first column of the first row counts."""
    checks = []
    for spec in specs or []:
        name = spec["name"]
        try:
            cursor.execute(spec["sql"])
            row = cursor.fetchone()
        except Exception as exc:  # a failing query is a failing check, not a crash
            cursor.connection.rollback()
            checks.append(check(name, False, "the query failed: %s" % str(exc).strip().splitlines()[0]))
            continue
        value = row[0] if row else None
        if spec.get("min") is not None:
            try:
                passed = value is not None and float(value) >= float(spec["min"])
            except (TypeError, ValueError):
                passed = False
            checks.append(check(name, passed, "value %s, minimum %s" % (value, spec["min"])))
        else:
            expected = spec.get("expect")
            passed = str(value) == str(expected) if value is not None else expected is None
            checks.append(check(name, passed, "value %s, expected %s" % (value, expected)))
    return checks


def failing(checks):
    return [c for c in checks if not c["passed"]]


def summary(checks):
    """One line; skipped checks are counted as skipped, never as passed."""
    bad = failing(checks)
    skipped = [c for c in checks if c["skipped"]]
    counted = ", %d skipped (%s)" % (len(skipped), ", ".join(c["name"] for c in skipped)) if skipped else ""
    if not bad:
        if skipped:
            return "%d checks passed%s" % (len(checks) - len(skipped), counted)
        return "all %d checks passed" % len(checks)
    # A failing summary counts the skipped ones too: "1 of 12 checks failed" alone reads as 11 passed.
    return "%d of %d checks failed%s: %s" % (len(bad), len(checks), counted,
                                             "; ".join("%s (%s)" % (c["name"], c["detail"]) for c in bad))
