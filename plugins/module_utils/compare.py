# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Comparing a source (a backup's manifest, a live database) with a target database.

This file owns the comparison the compare module returns (and that playbooks/migrate.yml and
lab/demo.yml show side by side):

- the *figures* of one side, a dict: ``origin`` (manifest or database), ``database``,
  ``server_version``, ``row_counts`` ({"schema.table": rows}, names as in the manifest),
  ``flyway`` (the application schema's Flyway state as pg_catalog.flyway_state gives it, or None)
  and ``checklist`` (as checklist.capture gives it, or None). A manifest's figures are those the
  backup recorded in its snapshot; a live database's are read, in one read-only REPEATABLE READ
  transaction, with the very functions the backup fills its manifest with (pg_catalog.row_counts,
  pg_catalog.flyway_state, checklist.capture): one implementation of each figure;
- the report rows ``{item, source, target, equal}`` built from two figure dicts (and optionally the
  backup's figures, shown beside a live source's where they differ), rows the caller adds (facts
  the databases do not hold: a checksum, an operating system), what differs, and the rows side by
  side as text.

No Ansible imports; building the rows is pure Python, reading a database needs psycopg2.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.app import lift_simulator as checklist
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import catalog as pg_catalog
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import connection as pg_connection

MISSING = "missing"
SERVER_ITEM = "PostgreSQL server"
LIFT_SYSTEM_COUNT_ITEM = "lift_system count"
VERSIONS_ITEM = "versions per system"
PUBLISHED_ITEM = "published versions per system"
FIGURE_KEYS = ("server_version", "row_counts", "flyway", "checklist")


class CompareError(ValueError):
    """Figures that cannot be compared (the message says why)."""


def rows_item(table):
    return "rows %s" % table


def flyway_item(app_schema):
    return "flyway history (%s)" % app_schema


def flyway_of(states, app_schema=checklist.DEFAULT_APP_SCHEMA):
    """The Flyway state of ``app_schema`` among pg_catalog.flyway_state()'s (or a manifest's), or None."""
    for state in states or []:
        if isinstance(state, dict) and state.get("schema") == app_schema:
            return state
    return None


def select_tables(counts, tables=None):
    """The row counts of ``tables`` only (all of them when ``tables`` is empty)."""
    counts = counts or {}
    if not tables:
        return dict(counts)
    return dict((table, counts[table]) for table in tables if table in counts)


def manifest_figures(manifest, app_schema=checklist.DEFAULT_APP_SCHEMA, tables=None, path=None):
    """The figures a backup recorded in its manifest (a validated manifest dict)."""
    found = manifest.get("checklist")
    if isinstance(found, dict) and found.get("schema", app_schema) != app_schema:
        found = None  # the backup took the checklist of another schema
    return {
        "origin": "manifest",
        "path": path,
        "backup_name": manifest.get("backup_name"),
        "sha256": manifest.get("sha256"),
        "database": manifest.get("database"),
        "server_version": (manifest.get("server") or {}).get("version"),
        "row_counts": select_tables(manifest["row_counts"], tables),
        "flyway": flyway_of(manifest.get("flyway"), app_schema),
        "checklist": found if isinstance(found, dict) else None,
    }


def given_figures(figures, tables=None):
    """Figures passed in (e.g. another run's ``target``), checked, restricted to ``tables``."""
    if not isinstance(figures, dict):
        raise CompareError("the source's figures are not a dictionary")
    counts = figures.get("row_counts")
    if not isinstance(counts, dict):
        raise CompareError("the source's figures have no row_counts dictionary")
    for table, rows in counts.items():
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
            raise CompareError("the source's row count for %s is not a non-negative integer"
                               % pg_connection.quote_for_message(table))
    for key in ("flyway", "checklist"):
        if figures.get(key) is not None and not isinstance(figures[key], dict):
            raise CompareError("the source's figures' %s is neither a dictionary nor null" % key)
    found = dict(figures)
    found.setdefault("origin", "figures")
    for key in FIGURE_KEYS:
        found.setdefault(key, None)
    found["row_counts"] = select_tables(counts, tables)
    return found


def database_figures(cursor, app_schema=checklist.DEFAULT_APP_SCHEMA, tables=None):
    """The figures of the cursor's database, read with the backup's own functions, in the cursor's
    transaction. Only the tables pg_dump dumps (those of ``tables`` when given) are counted."""
    _num, version = pg_catalog.server_version(cursor)
    listed = pg_catalog.dumped_tables(cursor)
    if tables:
        wanted = set(tables)
        listed = [table for table in listed if table.qualified in wanted]
    return {
        "origin": "database",
        "server_version": version,
        "row_counts": pg_catalog.row_counts(cursor, listed),
        "flyway": flyway_of(pg_catalog.flyway_state(cursor), app_schema),
        "checklist": checklist.capture(cursor, app_schema),
    }


def read_database(params, app_schema=checklist.DEFAULT_APP_SCHEMA, tables=None):
    """Connect with ``params`` (pg_connection.ConnectionParams) and read the figures of its database
    in one read-only REPEATABLE READ transaction (one snapshot; the server refuses any write)."""
    conn = pg_connection.connect(params, autocommit=False)
    try:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with conn.cursor() as cur:
            figures = database_figures(cur, app_schema, tables)
        conn.rollback()
    finally:
        conn.close()
    figures["database"] = params.database
    return figures


def _show(value):
    return MISSING if value is None else value


def _flyway_value(figures):
    state = figures.get("flyway")
    if not state:
        return None
    return [state.get("rows"), state.get("failed"), state.get("version")]


def _show_flyway(value):
    return MISSING if value is None else "%s rows, %s failed, latest %s" % tuple(value)


class _Unreadable(object):
    """A figure per system that is neither a digest nor an older manifest's map: never equal to anything."""

    def __eq__(self, other):
        return False

    def __ne__(self, other):
        return True

    __hash__ = None


def _checklist_value(figures, key):
    found = (figures.get("checklist") or {}).get(key)
    if found is None or key == "lift_system_count":
        return found
    # Digests; an older manifest's full maps are digested the same way.
    digest = checklist.as_digest(key, found)
    return _Unreadable() if digest is None else digest


def _show_systems(per_system):
    if per_system is None:
        return MISSING
    if isinstance(per_system, _Unreadable):
        return "unreadable"
    return "%s systems, %s in all" % (per_system["systems"], per_system["total"])


def _published_value(figures):
    per_system = _checklist_value(figures, "published_per_system")
    if per_system is None:
        return None
    return {"per_system": per_system, "versions": _checklist_value(figures, "published_versions")}


def _show_published(value):
    return _show_systems(None if value is None else value["per_system"])


def _same(one, other):
    return one == other


def _same_published(one, other):
    """Item 4 of the checklist: the counts per system, and which versions (number, status,
    is_published) where both sides recorded them (older manifests have only the counts)."""
    if one is None or other is None:
        return one is other
    if one["per_system"] != other["per_system"]:
        return False
    return one["versions"] is None or other["versions"] is None or one["versions"] == other["versions"]


def _flyway_ok(value):
    return value[1] == 0  # a history with failed migrations is never "equal"


class _Item(object):
    """One figure: how it is taken from a side, shown, and compared."""

    def __init__(self, name, value, show=_show, same=_same, sound=None, compared=True):
        self.name = name
        self.value = value
        self.show = show
        self.same = same
        self.sound = sound
        self.compared = compared

    def equal(self, source, target):
        if not self.compared:
            return None
        if source is None or target is None or not self.same(source, target):
            return False
        return self.sound is None or bool(self.sound(source))


def _items(source, target, app_schema, tables):
    items = [_Item(SERVER_ITEM, lambda f: f.get("server_version"), compared=False)]
    names = list(tables) if tables else sorted(set(source.get("row_counts") or {}) | set(target.get("row_counts") or {}))
    for table in names:
        items.append(_Item(rows_item(table), lambda f, t=table: (f.get("row_counts") or {}).get(t)))
    if source.get("flyway") or target.get("flyway"):
        items.append(_Item(flyway_item(app_schema), _flyway_value, _show_flyway, sound=_flyway_ok))
    if source.get("checklist") or target.get("checklist"):
        items.extend([
            _Item(LIFT_SYSTEM_COUNT_ITEM, lambda f: _checklist_value(f, "lift_system_count")),
            _Item(VERSIONS_ITEM, lambda f: _checklist_value(f, "versions_per_system"), _show_systems),
            _Item(PUBLISHED_ITEM, _published_value, _show_published, _same_published),
        ])
    return items


def build_rows(source, target, app_schema=checklist.DEFAULT_APP_SCHEMA, backup=None, tables=None):
    """The report rows {item, source, target, equal}, in migrate.yml's order: the server version
    (shown, not compared: equal is None), rows per table (the union of both sides', or ``tables``),
    the Flyway history of ``app_schema``, and the checklist's three figures.

    ``backup``: the backup's figures when ``source`` is a live source; where a figure of the source
    differs from the backup's, the source shows both ("120 (backup: 118)"). A figure missing on a
    side shows as "missing" and is never equal. Returns (rows, items where source and backup differ).
    """
    rows = []
    changed = []
    for item in _items(source, target, app_schema, tables):
        value = item.value(source)
        shown = item.show(value)
        if backup is not None:
            recorded = item.value(backup)
            if not item.same(value, recorded):
                shown = "%s (backup: %s)" % (shown, item.show(recorded))
                changed.append(item.name)
        rows.append({"item": item.name, "source": shown, "target": item.show(item.value(target)),
                     "equal": item.equal(value, item.value(target))})
    return rows, changed


def given_rows(specs):
    """Rows the caller adds, each ``{item, source, target, compare}``: ``equal`` is whether source
    and target are the same when ``compare`` is set (a side missing is never equal), else None."""
    rows = []
    for spec in specs or []:
        source, target = spec.get("source"), spec.get("target")
        equal = (source is not None and source == target) if spec.get("compare") else None
        rows.append({"item": spec["item"], "source": _show(source), "target": _show(target), "equal": equal})
    return rows


def _cut(value, width):
    text = "%s" % (value,)
    return text if len(text) <= width else text[:width - 3] + "..."


def render_table(rows, source_label="source", target_label="target", max_width=44):
    """The rows side by side as lines of text; values wider than ``max_width`` are cut (RV(rows)
    has them whole). The last column: yes, NO, or - where nothing is compared."""
    cells = [("table / figure", source_label, target_label, "equal?")]
    for row in rows:
        cells.append((row["item"], _cut(row["source"], max_width), _cut(row["target"], max_width),
                      "-" if row["equal"] is None else ("yes" if row["equal"] else "NO")))
    widths = [max(len(cell[i]) for cell in cells) for i in range(3)]
    lines = []
    for number, cell in enumerate(cells):
        lines.append("  ".join(text.ljust(width) for text, width in zip(cell, widths)) + "  " + cell[3])
        if number == 0:
            lines.append("  ".join("-" * width for width in widths) + "  ------")
    return lines


def differences(rows):
    """The items that differ (rows whose equal is false; null means not compared)."""
    return [row["item"] for row in rows if row["equal"] is False]


def compare(source, target, app_schema=checklist.DEFAULT_APP_SCHEMA, backup=None, tables=None, extra_rows=None):
    """The whole comparison: {equal, rows, differences} and, with ``backup``, changed_since_backup.
    ``extra_rows`` (given_rows) come first."""
    rows, changed = build_rows(source, target, app_schema, backup, tables)
    rows = given_rows(extra_rows) + rows
    differing = differences(rows)
    result = {"equal": not differing, "rows": rows, "differences": differing}
    if backup is not None:
        result["changed_since_backup"] = changed
    return result


def summary(result):
    """One line for the module's msg."""
    compared = len([row for row in result["rows"] if row["equal"] is not None])
    if result["equal"]:
        line = "the target equals the source: %d figures compared" % compared
    else:
        line = "the target differs from the source in %d of %d figures: %s" % (
            len(result["differences"]), compared, ", ".join(result["differences"]))
    if result.get("changed_since_backup"):
        line += "; the source changed since the backup: %s" % ", ".join(result["changed_since_backup"])
    return line
