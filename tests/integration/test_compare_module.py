# -*- coding: utf-8 -*-
"""The compare module, driven through ansible-playbook against a real PostgreSQL cluster: a
backup's manifest against a live database, database against database (also over another
connection), figures passed from one run to the next, and hostile names. Each test works on its
own copies of the fixture database."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil

import pytest

from pglab import LIFT_ADMIN_PASSWORD
from helpers import backup, clone_database, drop_databases, run_module

PREFIX = "cmp_"
SIMULATION_RUN = "lift_simulator.simulation_run"
CHECKLIST_ITEMS = ["lift_system count", "versions per system", "published versions per system"]
# quote, dot and space in every part: schema, table, database.
HOSTILE_SCHEMA = 'we"ird. sch'
HOSTILE_TABLE_NAME = 'ta"b.le x'
HOSTILE_TABLE = '"we""ird. sch"."ta""b.le x"'  # as quote_ident writes it (the manifest's key)
HOSTILE_DB = PREFIX + 'co"py. of x'


def compare(cluster, expect_ok=True, check=False, **options):
    return run_module("compare", dict(cluster.connection_vars(), **options), expect_ok, check=check)


def by_item(result):
    return dict((row["item"], row) for row in result["rows"])


def rows_in(cluster, database, table="lift_simulator.simulation_run"):
    return int(cluster.psql("SELECT count(*) FROM %s" % table, database=database))


@pytest.fixture
def backed_up(cluster, workdir):
    """A copy of the fixture database and a backup of it: (database, backup result)."""
    db = clone_database(cluster, PREFIX + "src")
    made = backup(cluster, os.path.join(workdir, "backups"), database=db)
    yield db, made
    drop_databases(cluster, PREFIX)


def test_a_backup_equals_the_database_it_was_taken_from(cluster, backed_up):
    db, made = backed_up
    result = compare(cluster, source_manifest=made["manifest_path"], database=db)
    assert result["changed"] is False
    assert result["equal"] is True and result["differences"] == []
    rows = by_item(result)
    # Every table of the manifest, with the manifest's count on both sides, then Flyway and the checklist.
    assert [r["item"] for r in result["rows"]] == (
        ["PostgreSQL server"] + ["rows %s" % t for t in sorted(made["row_counts"])]
        + ["flyway history (lift_simulator)"] + CHECKLIST_ITEMS)
    for table, count in made["row_counts"].items():
        assert rows["rows %s" % table] == {"item": "rows %s" % table, "source": count, "target": count, "equal": True}
    assert rows["PostgreSQL server"]["equal"] is None
    assert rows["flyway history (lift_simulator)"]["source"].endswith("0 failed, latest %s" % made["flyway_version"])
    assert rows["versions per system"]["source"] == rows["versions per system"]["target"]
    assert result["source"]["origin"] == "manifest" and result["source"]["sha256"] == made["sha256"]
    assert result["target"]["origin"] == "database" and result["target"]["database"] == db
    assert result["target"]["row_counts"] == made["row_counts"]
    assert result["target"]["checklist"]["lift_system_count"] == int(
        cluster.psql("SELECT count(*) FROM lift_simulator.lift_system", database=db))
    assert "backup" not in result and "changed_since_backup" not in result
    # The backup's own path reads its manifest; check mode runs the same reads.
    again = compare(cluster, source_manifest=made["path"], database=db, check=True)
    assert again["changed"] is False
    assert (again["equal"], again["rows"]) == (True, result["rows"])


def test_a_copy_with_a_row_deleted_differs_and_names_the_table(cluster, backed_up):
    db, made = backed_up
    copy = clone_database(cluster, PREFIX + "deleted", template=db)
    cluster.psql("DELETE FROM %s WHERE id = (SELECT min(id) FROM %s)" % (SIMULATION_RUN, SIMULATION_RUN), database=copy)
    result = compare(cluster, source_manifest=made["manifest_path"], database=copy)
    assert result["changed"] is False
    assert result["equal"] is False
    assert result["differences"] == ["rows %s" % SIMULATION_RUN]
    row = by_item(result)["rows %s" % SIMULATION_RUN]
    assert row == {"item": "rows %s" % SIMULATION_RUN, "source": made["row_counts"][SIMULATION_RUN],
                   "target": made["row_counts"][SIMULATION_RUN] - 1, "equal": False}
    assert "rows %s" % SIMULATION_RUN in result["msg"]
    # A difference is reported, not a failure; the same in check mode.
    assert compare(cluster, source_manifest=made["manifest_path"], database=copy, check=True)["differences"] == [
        "rows %s" % SIMULATION_RUN]


def test_database_against_database(cluster, backed_up):
    db = backed_up[0]
    copy = clone_database(cluster, PREFIX + "copy", template=db)
    same = compare(cluster, source_database=db, database=copy)
    assert same["equal"] is True
    assert same["source"]["database"] == db and same["target"]["database"] == copy
    assert same["source"]["row_counts"] == same["target"]["row_counts"]
    assert len(same["rows"]) == 1 + len(same["source"]["row_counts"]) + 1 + len(CHECKLIST_ITEMS)

    # A lift system without versions: its row, the count, and both per-system figures (a new key with 0).
    cluster.psql("INSERT INTO lift_simulator.lift_system (system_key, display_name) VALUES ('cmp-new', 'x')",
                 database=copy)
    changed = compare(cluster, source_database=db, database=copy)
    assert changed["differences"] == ["rows lift_simulator.lift_system"] + CHECKLIST_ITEMS
    rows = by_item(changed)
    assert rows["lift_system count"]["target"] == rows["lift_system count"]["source"] + 1
    # Only the tables asked for; the checklist is compared all the same.
    only = compare(cluster, source_database=db, database=copy, tables=[SIMULATION_RUN, "lift_simulator.no_such"])
    assert [r["item"] for r in only["rows"]][:3] == ["PostgreSQL server", "rows %s" % SIMULATION_RUN,
                                                     "rows lift_simulator.no_such"]
    assert only["differences"] == ["rows lift_simulator.no_such"] + CHECKLIST_ITEMS
    assert only["source"]["row_counts"] == {SIMULATION_RUN: rows_in(cluster, db)}


def test_the_source_over_another_connection(cluster, backed_up):
    db = backed_up[0]
    over_tcp = {"login_host": "127.0.0.1", "login_user": "lift_admin", "login_password": LIFT_ADMIN_PASSWORD}
    result = compare(cluster, source_database=db, database=db, source_connection=over_tcp)
    assert result["equal"] is True
    wrong = compare(cluster, expect_ok=False, source_database=db, database=db,
                    source_connection=dict(over_tcp, login_password="not-" + LIFT_ADMIN_PASSWORD))
    assert "source database" in wrong["msg"] and "authentication failed" in wrong["msg"]
    # The target over the socket as postgres needs no password: the source's user gets none of it either.
    nopass = compare(cluster, expect_ok=False, source_database=db, database=db,
                     source_connection={"login_host": "127.0.0.1", "login_user": "lift_admin"})
    assert "source database" in nopass["msg"]


def test_a_live_source_beside_its_backup_and_figures_from_another_run(cluster, backed_up):
    db, made = backed_up
    restored = clone_database(cluster, PREFIX + "restored", template=db)  # stands for the target of a move
    cluster.psql("DELETE FROM %s WHERE id = (SELECT max(id) FROM %s)" % (SIMULATION_RUN, SIMULATION_RUN), database=db)
    # On the source: the source now against its backup (what migrate.yml warns about).
    on_source = compare(cluster, source_manifest=made["manifest_path"], database=db)
    assert on_source["differences"] == ["rows %s" % SIMULATION_RUN]
    # On the target: the source's figures now (passed on), beside the backup the target was restored from.
    result = compare(cluster, source_figures=on_source["target"], source_manifest=made["path"], database=restored)
    count = made["row_counts"][SIMULATION_RUN]
    row = by_item(result)["rows %s" % SIMULATION_RUN]
    assert row == {"item": "rows %s" % SIMULATION_RUN, "source": "%d (backup: %d)" % (count - 1, count),
                   "target": count, "equal": False}
    assert result["differences"] == result["changed_since_backup"] == ["rows %s" % SIMULATION_RUN]
    assert result["backup"]["sha256"] == made["sha256"] and result["source"]["database"] == db
    # A live source of the same cluster gives the same rows.
    live = compare(cluster, source_database=db, source_manifest=made["manifest_path"], database=restored)
    assert live["rows"] == result["rows"]
    bad = compare(cluster, expect_ok=False, source_figures={"row_counts": {"a.b": "many"}}, database=restored)
    assert "source_figures" in bad["msg"]


def test_hostile_names_are_quoted(cluster, workdir):
    db = clone_database(cluster, PREFIX + "hostile")
    quoted_schema = '"%s"' % HOSTILE_SCHEMA.replace('"', '""')
    cluster.psql('CREATE SCHEMA %s AUTHORIZATION lift_admin; CREATE TABLE %s.%s (id int PRIMARY KEY); '
                 'INSERT INTO %s SELECT generate_series(1, 7); ALTER TABLE %s OWNER TO lift_admin'
                 % (quoted_schema, quoted_schema, '"%s"' % HOSTILE_TABLE_NAME.replace('"', '""'), HOSTILE_TABLE,
                    HOSTILE_TABLE), database=db)
    made = backup(cluster, os.path.join(workdir, "backups"), database=db)
    assert made["row_counts"][HOSTILE_TABLE] == 7
    try:
        clone_database(cluster, HOSTILE_DB, template=db)
        equal = compare(cluster, source_manifest=made["manifest_path"], database=HOSTILE_DB)
        assert equal["equal"] is True
        assert by_item(equal)["rows %s" % HOSTILE_TABLE]["target"] == 7

        cluster.psql("DELETE FROM %s WHERE id = 3" % HOSTILE_TABLE, database=HOSTILE_DB)
        differs = compare(cluster, source_database=db, database=HOSTILE_DB)
        assert differs["differences"] == ["rows %s" % HOSTILE_TABLE]
        assert differs["target"]["database"] == HOSTILE_DB
        only = compare(cluster, source_manifest=made["manifest_path"], database=HOSTILE_DB, tables=[HOSTILE_TABLE])
        assert [r["item"] for r in only["rows"]][:2] == ["PostgreSQL server", "rows %s" % HOSTILE_TABLE]
        assert only["target"]["row_counts"] == {HOSTILE_TABLE: 6}
        # A hostile application schema that does not exist: no Flyway history, no checklist, no error.
        schema = compare(cluster, source_database=db, database=HOSTILE_DB, app_schema='no"such. schema')
        assert not [r for r in schema["rows"] if r["item"].startswith("flyway") or r["item"] in CHECKLIST_ITEMS]
        assert schema["differences"] == ["rows %s" % HOSTILE_TABLE]
        # The hostile schema as the application's: it has no Flyway history nor checklist tables either.
        assert compare(cluster, source_database=db, database=db, app_schema=HOSTILE_SCHEMA)["equal"] is True
    finally:
        drop_databases(cluster, PREFIX)


def test_wrong_use_fails_clearly(cluster, workdir):
    nothing = compare(cluster, expect_ok=False, database="lift_simulator")
    assert "one of the following is required" in nothing["msg"]
    missing = compare(cluster, expect_ok=False, source_manifest=os.path.join(workdir, "no.sql.manifest.json"))
    assert "cannot compare with the backup" in missing["msg"] and "no.sql.manifest.json" in missing["msg"]
    absent = compare(cluster, expect_ok=False, source_database="lift_simulator", database=PREFIX + "absent")
    assert "target database" in absent["msg"] and "does not exist" in absent["msg"]


def test_a_manifest_other_users_could_replace_is_refused(cluster, backed_up, workdir):
    """Another local user who can write where the manifest is could choose the figures the
    target is judged by: refused (strict, the default), or a warning (directory_checks: warn)."""
    db, made = backed_up
    shared = os.path.join(workdir, "shared")
    os.mkdir(shared)
    os.chmod(shared, 0o777)
    copied = os.path.join(shared, os.path.basename(made["manifest_path"]))
    shutil.copy(made["manifest_path"], copied)
    os.chmod(copied, 0o644)
    refused = compare(cluster, expect_ok=False, source_manifest=copied, database=db)
    assert "cannot compare with the backup" in refused["msg"] and "cannot be trusted" in refused["msg"]
    assert shared in refused["msg"] and "writable by group and others" in refused["msg"]
    warned = compare(cluster, source_manifest=copied, database=db, directory_checks="warn")
    assert warned["equal"] is True
    assert any("cannot be trusted" in w and shared in w for w in warned.get("warnings", []))
