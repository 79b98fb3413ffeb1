# -*- coding: utf-8 -*-
"""The comparison's pure logic: figures from a manifest or given, the report rows, equality."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils import compare
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import catalog as pg_catalog

FLYWAY = {"schema": "lift_simulator", "version": "13", "description": "one published version", "installed_rank": 13,
          "rows": 14, "failed": 0}
CHECKLIST = {
    "schema": "lift_simulator",
    "lift_system_count": 2,
    "versions_per_system": {"building-a-lifts": 3, "building-b-lifts": 0},
    "published_per_system": {"building-a-lifts": 1, "building-b-lifts": 0},
    "published_versions": {"building-a-lifts": [[2, "PUBLISHED", True]]},
}
COUNTS = {"lift_simulator.lift_system": 2, "lift_simulator.lift_system_version": 3,
          "lift_simulator.flyway_schema_history": 14, '"we.ird"."ta ""ble"': 1}


def figures(**changes):
    found = {"origin": "database", "database": "lift_simulator", "server_version": "17.6",
             "row_counts": dict(COUNTS), "flyway": dict(FLYWAY), "checklist": copy.deepcopy(CHECKLIST)}
    found.update(changes)
    return found


def manifest(**changes):
    found = {"manifest_version": 1, "backup_name": "lift_simulator_backup_20261124_080001.sql",
             "database": "lift_simulator", "sha256": "ab" * 32, "row_counts": dict(COUNTS),
             "server": {"host": "local socket", "port": 5432, "version": "15.18", "version_num": 150018},
             "flyway_version": "13",
             "flyway": [dict(FLYWAY, schema="public", version="1", rows=1), dict(FLYWAY)],
             "checklist": copy.deepcopy(CHECKLIST)}
    found.update(changes)
    return found


def by_item(rows):
    return dict((row["item"], row) for row in rows)


def test_equal_sides_give_every_row_in_migrate_order():
    result = compare.compare(figures(server_version="15.18"), figures())
    assert result["equal"] is True and result["differences"] == []
    assert "changed_since_backup" not in result
    items = [row["item"] for row in result["rows"]]
    assert items == (["PostgreSQL server"] + ["rows %s" % t for t in sorted(COUNTS)]
                     + ["flyway history (lift_simulator)", "lift_system count", "versions per system",
                        "published versions per system"])
    rows = by_item(result["rows"])
    assert rows["PostgreSQL server"] == {"item": "PostgreSQL server", "source": "15.18", "target": "17.6",
                                         "equal": None}
    assert rows["rows lift_simulator.lift_system"] == {"item": "rows lift_simulator.lift_system", "source": 2,
                                                       "target": 2, "equal": True}
    assert rows["flyway history (lift_simulator)"]["source"] == "14 rows, 0 failed, latest 13"
    assert rows["lift_system count"]["target"] == 2
    assert rows["versions per system"]["source"] == "2 systems, 3 in all"
    assert rows["published versions per system"]["target"] == "2 systems, 1 in all"
    assert all(row["equal"] for row in result["rows"][1:])
    assert compare.summary(result) == "the target equals the source: 8 figures compared"


def test_a_different_row_count_is_a_difference_named_by_its_table():
    target = figures(row_counts=dict(COUNTS, **{'"we.ird"."ta ""ble"': 0}))
    result = compare.compare(figures(), target)
    assert result["equal"] is False
    assert result["differences"] == ['rows "we.ird"."ta ""ble"']
    row = by_item(result["rows"])['rows "we.ird"."ta ""ble"']
    assert (row["source"], row["target"], row["equal"]) == (1, 0, False)
    assert 'rows "we.ird"."ta ""ble"' in compare.summary(result)


@pytest.mark.parametrize("side", ["source", "target"])
def test_a_table_missing_on_either_side_is_a_difference(side):
    fewer = dict(COUNTS)
    del fewer["lift_simulator.lift_system_version"]
    sides = {"source": figures(), "target": figures()}
    sides[side] = figures(row_counts=fewer)
    result = compare.compare(sides["source"], sides["target"])
    assert result["differences"] == ["rows lift_simulator.lift_system_version"]
    row = by_item(result["rows"])["rows lift_simulator.lift_system_version"]
    assert row[side] == "missing" and row["equal"] is False
    assert row["target" if side == "source" else "source"] == 3


def test_tables_limit_the_rows_and_a_named_table_neither_side_has_differs():
    result = compare.compare(figures(), figures(row_counts=dict(COUNTS, **{"lift_simulator.lift_system": 9})),
                             tables=["lift_simulator.lift_system_version", "lift_simulator.no_such_table"])
    rows = by_item(result["rows"])
    assert "rows lift_simulator.lift_system" not in rows  # not asked for: its difference does not count
    assert rows["rows lift_simulator.lift_system_version"]["equal"] is True
    assert rows["rows lift_simulator.no_such_table"] == {"item": "rows lift_simulator.no_such_table",
                                                         "source": "missing", "target": "missing", "equal": False}
    assert result["differences"] == ["rows lift_simulator.no_such_table"]


@pytest.mark.parametrize("side", ["source", "target"])
def test_a_missing_flyway_history_on_either_side_is_a_difference(side):
    sides = {"source": figures(), "target": figures()}
    sides[side] = figures(flyway=None)
    result = compare.compare(sides["source"], sides["target"])
    row = by_item(result["rows"])["flyway history (lift_simulator)"]
    assert row[side] == "missing" and row["equal"] is False
    assert result["differences"] == ["flyway history (lift_simulator)"]


def test_no_flyway_history_on_either_side_is_no_row():
    result = compare.compare(figures(flyway=None), figures(flyway=None))
    assert result["equal"] is True
    assert not any(row["item"].startswith("flyway") for row in result["rows"])


def test_flyway_compares_rows_failed_and_version_and_a_failed_history_is_never_equal():
    newer = compare.compare(figures(), figures(flyway=dict(FLYWAY, version="14", rows=15)))
    assert newer["differences"] == ["flyway history (lift_simulator)"]
    failed = dict(FLYWAY, failed=1)
    both_failed = compare.compare(figures(flyway=failed), figures(flyway=dict(failed)))
    assert both_failed["differences"] == ["flyway history (lift_simulator)"]
    # The description and rank are not compared (only rows, failed, latest version).
    assert compare.compare(figures(), figures(flyway=dict(FLYWAY, description="other", installed_rank=99)))["equal"]


@pytest.mark.parametrize("side", ["source", "target"])
def test_a_missing_checklist_on_either_side_makes_its_three_rows_differ(side):
    sides = {"source": figures(), "target": figures()}
    sides[side] = figures(checklist=None)
    result = compare.compare(sides["source"], sides["target"])
    assert result["differences"] == ["lift_system count", "versions per system", "published versions per system"]
    for item in result["differences"]:
        assert by_item(result["rows"])[item][side] == "missing"


def test_no_checklist_on_either_side_is_no_row():
    result = compare.compare(figures(checklist=None), figures(checklist=None))
    assert result["equal"] is True
    assert [row["item"] for row in result["rows"]][-1] == "flyway history (lift_simulator)"


def test_checklist_figures_are_compared_per_system():
    moved = copy.deepcopy(CHECKLIST)
    moved["versions_per_system"] = {"building-a-lifts": 2, "building-b-lifts": 1}  # same totals
    result = compare.compare(figures(), figures(checklist=moved))
    assert result["differences"] == ["versions per system"]
    row = by_item(result["rows"])["versions per system"]
    assert row["source"] == row["target"] == "2 systems, 3 in all"


def test_published_versions_are_compared_where_both_sides_recorded_them():
    other = copy.deepcopy(CHECKLIST)
    other["published_versions"] = {"building-a-lifts": [[3, "PUBLISHED", True]]}
    assert compare.compare(figures(), figures(checklist=other))["differences"] == ["published versions per system"]
    older = copy.deepcopy(CHECKLIST)
    del older["published_versions"]  # a manifest from before item 4 was recorded exactly
    assert compare.compare(figures(checklist=older), figures(checklist=other))["equal"] is True


def test_the_manifests_figures():
    found = compare.manifest_figures(manifest(), path="/b/x.sql.manifest.json")
    assert found["origin"] == "manifest" and found["path"] == "/b/x.sql.manifest.json"
    assert found["server_version"] == "15.18" and found["sha256"] == "ab" * 32
    assert found["row_counts"] == COUNTS
    assert found["flyway"] == FLYWAY  # the application schema's history, not public's
    assert found["checklist"] == CHECKLIST
    assert compare.manifest_figures(manifest(), app_schema="other")["flyway"] is None
    assert compare.manifest_figures(manifest(), app_schema="other")["checklist"] is None
    assert compare.manifest_figures(manifest(), tables=["lift_simulator.lift_system", "x.y"])["row_counts"] == {
        "lift_simulator.lift_system": 2}
    bare = compare.manifest_figures(manifest(flyway=None, checklist=None, server=None))
    assert (bare["flyway"], bare["checklist"], bare["server_version"]) == (None, None, None)


def test_a_manifest_compared_with_itself_is_equal():
    found = compare.manifest_figures(manifest())
    assert compare.compare(found, copy.deepcopy(found))["equal"] is True


def test_a_live_source_is_shown_beside_its_backup_where_it_changed():
    backup = compare.manifest_figures(manifest())
    live = figures(row_counts=dict(COUNTS, **{"lift_simulator.lift_system": 3}),
                   checklist=dict(copy.deepcopy(CHECKLIST), lift_system_count=3))
    target = figures(server_version="17.6")  # restored from the backup
    result = compare.compare(live, target, backup=backup)
    rows = by_item(result["rows"])
    assert rows["rows lift_simulator.lift_system"]["source"] == "3 (backup: 2)"
    assert rows["rows lift_simulator.lift_system"]["equal"] is False
    assert rows["lift_system count"]["source"] == "3 (backup: 2)"
    assert rows["PostgreSQL server"]["source"] == "17.6 (backup: 15.18)"
    assert rows["rows lift_simulator.lift_system_version"]["source"] == 3  # unchanged: the number alone
    assert result["changed_since_backup"] == ["PostgreSQL server", "rows lift_simulator.lift_system",
                                              "lift_system count"]
    assert result["differences"] == ["rows lift_simulator.lift_system", "lift_system count"]
    assert "changed since the backup" in compare.summary(result)


def test_a_live_source_equal_to_its_backup_has_not_changed():
    backup = compare.manifest_figures(manifest())
    result = compare.compare(figures(server_version="15.18"), figures(), backup=backup)
    assert result["equal"] is True and result["changed_since_backup"] == []


def test_given_figures_are_checked():
    given = compare.given_figures({"row_counts": {"a.b": 1}}, tables=None)
    assert given == {"origin": "figures", "row_counts": {"a.b": 1}, "server_version": None, "flyway": None,
                     "checklist": None}
    assert compare.given_figures(figures(), tables=["lift_simulator.lift_system"])["row_counts"] == {
        "lift_simulator.lift_system": 2}
    for bad in ("not a dict", {}, {"row_counts": []}, {"row_counts": {"a.b": -1}}, {"row_counts": {"a.b": True}},
                {"row_counts": {"a.b": "1"}}, {"row_counts": {}, "flyway": "13"}):
        with pytest.raises(compare.CompareError):
            compare.given_figures(bad)


def test_database_figures_use_the_backups_own_functions(monkeypatch):
    tables = [pg_catalog.Table("lift_simulator.lift_system", "lift_simulator", "lift_system"),
              pg_catalog.Table('"we.ird"."ta ""ble"', "we.ird", 'ta "ble')]
    counted = []
    monkeypatch.setattr(pg_catalog, "server_version", lambda cur: (170006, "17.6"))
    monkeypatch.setattr(pg_catalog, "dumped_tables", lambda cur: tables)
    monkeypatch.setattr(pg_catalog, "row_counts",
                        lambda cur, listed: counted.extend(listed) or dict((t.qualified, 5) for t in listed))
    monkeypatch.setattr(pg_catalog, "flyway_state", lambda cur: [dict(FLYWAY, schema="public"), FLYWAY])
    monkeypatch.setattr(compare.checklist, "capture", lambda cur, schema: dict(CHECKLIST, schema=schema))
    found = compare.database_figures(object(), tables=['"we.ird"."ta ""ble"'])
    assert counted == [tables[1]]  # only the tables asked for are counted
    assert found == {"origin": "database", "server_version": "17.6", "row_counts": {'"we.ird"."ta ""ble"': 5},
                     "flyway": FLYWAY, "checklist": CHECKLIST}
    assert compare.database_figures(object(), app_schema="other")["flyway"] is None


def test_differences_skip_rows_not_compared():
    rows = [{"item": "a", "equal": None}, {"item": "b", "equal": False}, {"item": "c", "equal": True}]
    assert compare.differences(rows) == ["b"]


def test_given_rows_compare_only_when_asked():
    rows = compare.given_rows([
        {"item": "operating system", "source": "Debian 12", "target": "Debian 13"},
        {"item": "backup sha256", "source": "ab", "target": "ab", "compare": True},
        {"item": "backup name", "source": "x", "target": "y", "compare": True},
        {"item": "checksum there", "source": "ab", "target": None, "compare": True},
    ])
    assert [row["equal"] for row in rows] == [None, True, False, False]
    assert rows[3]["target"] == "missing"


def test_extra_rows_come_first_and_count_as_differences():
    figures = {"server_version": "15.1", "row_counts": {"a.t": 1}, "flyway": None, "checklist": None}
    outcome = compare.compare(figures, dict(figures, server_version="17.2"),
                              extra_rows=[{"item": "backup sha256", "source": "ab", "target": "cd", "compare": True}])
    assert [row["item"] for row in outcome["rows"]] == ["backup sha256", "PostgreSQL server", "rows a.t"]
    assert outcome["differences"] == ["backup sha256"] and not outcome["equal"]


def test_render_table_lines_up_and_cuts_long_values():
    rows = [{"item": "PostgreSQL server", "source": "15.18", "target": "17.6", "equal": None},
            {"item": "rows lift_simulator.lift_system", "source": 12, "target": 11, "equal": False},
            {"item": "backup sha256", "source": "f" * 64, "target": "f" * 64, "equal": True}]
    lines = compare.render_table(rows, "source: lift-db-1", "target: lift-db-2")
    assert lines[0].split() == ["table", "/", "figure", "source:", "lift-db-1", "target:", "lift-db-2", "equal?"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].endswith("  -") and lines[3].endswith("  NO") and lines[4].endswith("  yes")
    assert "f" * 41 + "..." in lines[4] and "f" * 42 not in lines[4]
    assert len(set(line.index("target") if "target" in line else None for line in lines[:1])) == 1
    columns = [line.index("17.6") for line in lines if "17.6" in line] + [lines[0].index("target:")]
    assert len(set(columns)) == 1
