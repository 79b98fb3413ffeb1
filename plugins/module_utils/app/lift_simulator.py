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
restore can be compared exactly. Every name is schema-qualified: lift_admin's search_path does not
include the application's schema, and the superuser's sessions (the backup's) pin theirs to
pg_catalog (pg/connection.py); catalog functions are named with their schema, so a function the
owner put in public never stands in for them. Pure Python over a psycopg2 cursor (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.connection import ident, pg_sql

DEFAULT_APP_SCHEMA = "lift_simulator"


def _exists(cursor, schema, table):
    cursor.execute("SELECT pg_catalog.to_regclass(pg_catalog.quote_ident(%s::pg_catalog.text) || '.' "
                   "|| pg_catalog.quote_ident(%s::pg_catalog.text)) IS NOT NULL", (schema, table))
    return bool(cursor.fetchone()[0])


def _per_system(cursor, schema, published_only):
    query = pg_sql.SQL(
        "SELECT s.system_key, count(v.id) {filter} FROM {systems} s "
        "LEFT JOIN {versions} v ON v.lift_system_id = s.id GROUP BY s.system_key ORDER BY s.system_key").format(
        filter=pg_sql.SQL("FILTER (WHERE v.is_published)" if published_only else ""),
        systems=ident(schema, "lift_system"), versions=ident(schema, "lift_system_version"))
    cursor.execute(query)
    return {key: int(count) for key, count in cursor.fetchall()}


def _published(cursor, schema):
    """Item 4 exactly: per system, which version numbers are published, with their status."""
    query = pg_sql.SQL(
        "SELECT s.system_key, v.version_number, v.status, v.is_published FROM {systems} s "
        "JOIN {versions} v ON v.lift_system_id = s.id WHERE v.is_published OR v.status = 'PUBLISHED' "
        "ORDER BY s.system_key, v.version_number").format(
        systems=ident(schema, "lift_system"), versions=ident(schema, "lift_system_version"))
    cursor.execute(query)
    found = {}
    for key, number, status, published in cursor.fetchall():
        found.setdefault(key, []).append([int(number), status, bool(published)])
    return found


def capture(cursor, schema=DEFAULT_APP_SCHEMA):
    """The checklist's figures, or None when the application's tables are not there."""
    if not (_exists(cursor, schema, "lift_system") and _exists(cursor, schema, "lift_system_version")):
        return None
    figures = {"schema": schema,
               "versions_per_system": _per_system(cursor, schema, False),
               "published_per_system": _per_system(cursor, schema, True),
               "published_versions": _published(cursor, schema)}
    figures["lift_system_count"] = len(figures["versions_per_system"])
    return figures


def check(name, passed, detail, skipped=False):
    return {"name": name, "passed": bool(passed), "skipped": bool(skipped), "detail": detail}


def _diff(expected, actual, limit=5):
    keys = sorted(set(expected) | set(actual))
    differing = [k for k in keys if expected.get(k) != actual.get(k)]
    shown = ", ".join("%s: expected %s, found %s" % (k, expected.get(k), actual.get(k)) for k in differing[:limit])
    more = " (and %d more)" % (len(differing) - limit) if len(differing) > limit else ""
    return shown + more


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


def checklist_checks(cursor, reference, schema=DEFAULT_APP_SCHEMA):
    """Items 2-4 of the checklist, compared with the manifest's figures when it has them."""
    if not (_exists(cursor, schema, "lift_system") and _exists(cursor, schema, "lift_system_version")):
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
        if not reference or key not in reference:
            detail = (value if isinstance(value, int) else "%d systems, %d in all" % (len(value), _total(value)))
            checks.append(check(label, True, "%s (no reference in the backup to compare with)" % detail))
        elif reference[key] == value:
            detail = value if isinstance(value, int) else "%d systems, %d in all" % (len(value), _total(value))
            checks.append(check(label, True, "as in the backup: %s" % detail))
        elif isinstance(value, int):
            checks.append(check(label, False, "expected %s, found %s" % (reference[key], value)))
        else:
            checks.append(check(label, False, _diff(reference[key], value)))
    return checks


def _total(figures):
    return sum(len(v) if isinstance(v, list) else v for v in figures.values())


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
