# -*- coding: utf-8 -*-
"""The verify and restore modules (and playbooks), driven through ansible-playbook against a real
PostgreSQL cluster. Each test works on its own copy of the fixture database."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gzip
import json
import os
import shutil
import subprocess
import threading
import time

import pytest

from pglab import LIFT_ADMIN_PASSWORD, SUPERUSER_PASSWORD, load_fixture, own_cluster, postgres_owned_dir, run_playbook
from helpers import backup, clone_database, databases, drop_databases, provenance_of, restore, verify
from pgcompare import fingerprint


def comment_of(cluster, database):
    return cluster.psql("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '%s'"
                        % database.replace("'", "''"))


def damage(cluster, database):
    """Changes made after the backup, which a restore must undo."""
    cluster.psql("INSERT INTO lift_simulator.lift_system (system_key, display_name) VALUES ('after-backup', 'x'); "
                 "DELETE FROM lift_simulator.simulation_run WHERE status = 'FAILED'; "
                 "UPDATE lift_simulator.scenario SET name = name || ' (changed)'", database=database)


def backed_up_then_damaged(cluster, workdir, kind, fmt, compression):
    """A clone of lift_simulator, backed up in ``fmt``/``compression``, then damaged: (db, backup, fingerprint)."""
    db = clone_database(cluster, "%s_%s_%s" % (kind, fmt, compression or "default"))
    options = dict(database=db, format=fmt)
    if compression:
        options["compression"] = compression
    made = backup(cluster, os.path.join(workdir, "b"), **options)
    before = fingerprint(cluster, db)
    damage(cluster, db)
    return db, made, before


SWAP_FORMATS = [("plain", None), ("plain", "zstd"), ("plain", "gzip"), ("custom", None), ("directory", None)]


@pytest.mark.parametrize("fmt, compression", SWAP_FORMATS, ids=["%s-%s" % f for f in SWAP_FORMATS])
def test_swap_restore_of_every_format(cluster, workdir, fmt, compression):
    db, made, before = backed_up_then_damaged(cluster, workdir, "swap", fmt, compression)
    cluster.psql("COMMENT ON DATABASE %s IS 'the operator''s note'" % db)
    damaged = fingerprint(cluster, db)

    result = restore(cluster, made["path"], database=db, jobs=2 if fmt != "plain" else 1)
    assert result["changed"] is True
    assert 0 <= result["downtime_s"] < 1
    assert fingerprint(cluster, db) == before
    assert fingerprint(cluster, result["previous_database"]) == damaged
    assert result["row_counts"] == made["row_counts"]
    assert all(c["passed"] for c in result["checks"])
    assert {c["name"] for c in result["checks"]} >= {"sha256", "structure", "flyway history", "lift_system count",
                                                     "versions per system", "published versions per system",
                                                     "rows lift_simulator.lift_system"}
    # The operator's comment stays; the provenance is kept where only the superuser writes.
    assert comment_of(cluster, db) == "the operator's note"
    assert provenance_of(cluster, db)["sha256"] == made["sha256"]
    assert cluster.psql("SELECT has_database_privilege('lift_admin', '%s', 'CREATE')" % db) == "t"
    assert result["staging_database"] not in databases(cluster)
    if fmt == "plain" and compression is None:
        again = restore(cluster, made["path"], database=db)
        assert again["changed"] is False and "already restored from this backup" in again["msg"]
        forced = restore(cluster, made["path"], database=db, force=True, keep_previous=False)
        assert forced["changed"] is True and forced["previous_database"] not in databases(cluster)
        assert fingerprint(cluster, db) == before
    drop_databases(cluster, db)


def test_check_mode_reports_the_plan_and_changes_nothing(cluster, workdir):
    db = clone_database(cluster, "plan_only")
    made = backup(cluster, os.path.join(workdir, "b"), database=db)
    before = databases(cluster)
    args = dict(cluster.connection_vars(), path=made["path"], database=db)
    run = run_playbook("restore_module.yml", {"restore_args": args}, check=True)
    result = run.task("Restore")
    assert run.rc == 0 and result["changed"] is True, result.get("msg")
    assert "would restore into %s_staging_" % db in result["msg"]
    assert databases(cluster) == before
    drop_databases(cluster, db)


def test_replace_needs_force_then_drops_and_restores(cluster, workdir):
    db = clone_database(cluster, "replace_me")
    made = backup(cluster, os.path.join(workdir, "b"), database=db, format="custom")
    before = fingerprint(cluster, db)
    damage(cluster, db)
    refused = restore(cluster, made["path"], database=db, strategy="replace", expect_ok=False)
    assert "needs force: true" in refused["msg"]
    result = restore(cluster, made["path"], database=db, strategy="replace", force=True)
    assert result["previous_database"] is None and result["downtime_s"] > 0
    assert fingerprint(cluster, db) == before
    assert cluster.psql("SELECT has_database_privilege('lift_admin', '%s', 'CREATE')" % db) == "t"
    drop_databases(cluster, db)


def test_create_on_a_fresh_machine_and_refused_when_the_database_exists(cluster, workdir, source_fp):
    made = backup(cluster, os.path.join(workdir, "b"), compression="zstd")
    result = restore(cluster, made["path"], database="fresh_copy", strategy="create")
    assert result["changed"] is True and result["previous_database"] is None
    assert fingerprint(cluster, "fresh_copy") == source_fp
    assert cluster.psql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'fresh_copy'") == "lift_admin"
    assert cluster.psql("SELECT has_database_privilege('lift_admin', 'fresh_copy', 'CREATE')") == "t"
    refused = restore(cluster, made["path"], database="fresh_copy", strategy="create", force=True, expect_ok=False)
    assert "exists; strategy create is for a machine without it" in refused["msg"]
    drop_databases(cluster, "fresh_copy")


@pytest.fixture(scope="module")
def source_fp(cluster):
    return fingerprint(cluster, "lift_simulator")


@pytest.mark.parametrize("fmt, compression", [("plain", None), ("plain", "zstd"), ("custom", None)])
def test_selective_restore_of_tables(cluster, workdir, fmt, compression):
    db, made, before = backed_up_then_damaged(cluster, workdir, "selective", fmt, compression)
    cluster.psql("SELECT setval('lift_simulator.simulation_run_id_seq', 1)", database=db)
    tables = ["lift_simulator.simulation_run", "lift_simulator.scenario"]
    result = restore(cluster, made["path"], database=db, tables=tables, truncate=True)
    after = fingerprint(cluster, db)
    for table in tables:
        assert after["rows"][table] == before["rows"][table]
        assert result["row_counts"][table] == made["row_counts"][table]
    # Only those tables: the row added to lift_system after the backup is still there.
    assert after["rows"]["lift_simulator.lift_system"][0] == before["rows"]["lift_simulator.lift_system"][0] + 1
    # Their sequences are where the backup left them.
    seq = [s for s in after["sequences"] if "simulation_run_id_seq" in s]
    assert seq == [s for s in before["sequences"] if "simulation_run_id_seq" in s]
    drop_databases(cluster, db)


def test_selective_restore_names_unknown_tables(cluster, workdir):
    db = clone_database(cluster, "selective_unknown")
    made = backup(cluster, os.path.join(workdir, "b"), database=db)
    bare = os.path.join(workdir, "lift_simulator_backup_2026-11-17_08-00-01.backup")
    env = cluster.env()
    env["PGDATABASE"] = db
    subprocess.run([cluster.bin_path("pg_dump"), "--format=custom", "-f", bare], env=env, check=True)
    os.chmod(bare, 0o644)
    cluster.psql("CREATE TABLE lift_simulator.extra (id int)", database=db)
    missing = restore(cluster, made["path"], database=db, tables=["lift_simulator.nope"], expect_ok=False)
    assert 'table "lift_simulator.nope" does not exist in the target database' in missing["msg"]
    assert "The backup has: lift_simulator.flyway_schema_history, lift_simulator.lift_system, " in missing["msg"]
    unqualified = restore(cluster, made["path"], database=db, tables=["lift_system"], expect_ok=False)
    assert "with its schema" in unqualified["msg"] and "Did you mean lift_simulator.lift_system?" in unqualified["msg"]
    for path in (made["path"], bare):
        result = restore(cluster, path, database=db, tables=["lift_simulator.extra"], expect_ok=False)
        assert "the backup has no table lift_simulator.extra; it has: " in result["msg"]
        assert "lift_simulator.lift_system_version" in result["msg"]
    drop_databases(cluster, db)


def test_a_corrupt_backup_is_refused_and_nothing_changes(cluster, workdir):
    db = clone_database(cluster, "corrupt_target")
    made = backup(cluster, os.path.join(workdir, "b"), database=db)
    with open(made["path"], "r+b") as handle:
        handle.seek(os.path.getsize(made["path"]) // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0x01]))
    before = fingerprint(cluster, db)
    names = databases(cluster)
    result = restore(cluster, made["path"], database=db, expect_ok=False)
    assert "failed verification, nothing was changed" in result["msg"] and "sha256" in result["msg"]
    assert databases(cluster) == names
    assert fingerprint(cluster, db) == before
    drop_databases(cluster, db)


def test_a_dump_failing_halfway_leaves_the_live_database_untouched(cluster, workdir):
    db = clone_database(cluster, "halfway_target")
    damage(cluster, db)
    before = fingerprint(cluster, db)
    names = databases(cluster)
    # An earlier process's plain dump (no manifest) whose SQL fails after some data was loaded.
    good = os.path.join(workdir, "good.sql")
    env = cluster.env()
    env["PGDATABASE"] = "lift_simulator"
    subprocess.run([cluster.bin_path("pg_dump"), "-f", good], env=env, check=True)
    with open(good, "rb") as handle:
        text = handle.read()
    first_data_end = text.index(b"\n\\.\n") + 4
    bad = os.path.join(workdir, "lift_simulator_backup_20261117_080001.sql")
    with open(bad, "wb") as handle:
        handle.write(text[:first_data_end] + b"\nSELECT 1/0;\n" + text[first_data_end:])
    os.chmod(bad, 0o644)
    result = restore(cluster, bad, database=db, expect_ok=False)
    assert "division by zero" in result["msg"]
    assert databases(cluster) == names
    assert fingerprint(cluster, db) == before
    drop_databases(cluster, db)


def test_server_stopped_mid_restore_leaves_live_intact_and_the_next_run_cleans_up(workdir):
    """A cluster of its own, stopped while psql loads the staging database."""
    with own_cluster(size_mb=40, seed=3) as pg:
        made = backup(pg, os.path.join(workdir, "b"))
        damage(pg, "lift_simulator")
        before = fingerprint(pg, "lift_simulator")
        holder = {}
        runner = threading.Thread(target=lambda: holder.update(
            result=restore(pg, made["path"], expect_ok=False)))
        runner.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and runner.is_alive():
            loading = pg.psql("SELECT count(*) FROM pg_stat_activity WHERE datname LIKE 'lift_simulator_staging_%' "
                              "AND backend_type = 'client backend'")
            if loading != "0":
                break
        assert runner.is_alive(), "the restore ended before the server could be stopped"
        # A normal stop (as systemctl stop does). After a crash (-m immediate) the data is the same
        # too, but sequences jump ahead by up to 32 values, as PostgreSQL logs them in batches.
        pg.stop("fast")
        runner.join(300)
        assert "restore of" in holder["result"]["msg"]
        pg.start()
        assert fingerprint(pg, "lift_simulator") == before
        leftovers = [n for n in databases(pg) if n.startswith("lift_simulator_staging_")]
        assert len(leftovers) == 1
        # The next run drops the leftover and restores.
        result = restore(pg, made["path"])
        assert result["removed_leftovers"] == leftovers
        assert [n for n in databases(pg) if n.startswith("lift_simulator_staging_")] == []


def test_a_connected_client_reconnects_once_and_sees_the_restored_data(cluster, workdir):
    """Downtime under a second on a database of more than 200 MB, with a client on it."""
    load_fixture(cluster, "big_swap", size_mb=210, seed=5)
    cluster.psql("GRANT ALL PRIVILEGES ON DATABASE big_swap TO lift_admin")
    size = int(cluster.psql("SELECT pg_database_size('big_swap')"))
    assert size > 200 * 1024 * 1024
    made = backup(cluster, os.path.join(workdir, "b"), database="big_swap", format="custom")
    cluster.psql("INSERT INTO lift_simulator.lift_system (system_key, display_name) VALUES ('marker', 'm')",
                 database="big_swap")
    stop = threading.Event()
    seen = []

    def client():
        import psycopg2

        conn = None
        while not stop.is_set():
            try:
                if conn is None:
                    conn = psycopg2.connect(host="127.0.0.1", port=cluster.port, user="postgres",
                                            password=SUPERUSER_PASSWORD, dbname="big_swap")
                    conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_backend_pid(), count(*) FROM lift_simulator.lift_system "
                                "WHERE system_key = 'marker'")
                    seen.append(cur.fetchone())
            except psycopg2.Error:
                conn = None
                seen.append(None)
            time.sleep(0.002)

    thread = threading.Thread(target=client)
    thread.start()
    try:
        result = restore(cluster, made["path"], database="big_swap", keep_previous=False, jobs=2)
    finally:
        time.sleep(0.05)
        stop.set()
        thread.join()
    assert result["downtime_s"] < 1
    sessions = []
    for row in seen:
        if row is not None and (not sessions or sessions[-1][0] != row[0]):
            sessions.append(row)
    assert len(sessions) == 2, "expected one reconnection, saw sessions %s" % sessions
    assert sessions[0][1] == 1 and sessions[1][1] == 0
    assert seen[-1][1] == 0
    drop_databases(cluster, "big_swap")


# --- verify -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def backups(cluster, tmp_path_factory):
    """One backup of each kind, made once for the verify tests."""
    base = postgres_owned_dir("lift-it-verify-")
    made = {
        "plain": backup(cluster, base),
        "custom": backup(cluster, base, format="custom", name_template="custom_%Y%m%d_%H%M%S"),
        "zstd": backup(cluster, base, compression="zstd", name_template="zstd_%Y%m%d_%H%M%S"),
        "directory": backup(cluster, base, format="directory", name_template="dir_%Y%m%d_%H%M%S"),
    }
    env = cluster.env()
    env["PGDATABASE"] = "lift_simulator"
    legacy = {
        "legacy_plain": os.path.join(base, "lift_simulator_backup_20261110_080001.sql"),
        "legacy_custom": os.path.join(base, "lift_simulator_backup_2026-11-17_08-00-01.backup"),
        "legacy_gzip": os.path.join(base, "old_backup.sql.gz"),
    }
    subprocess.run([cluster.bin_path("pg_dump"), "-F", "p", "-f", legacy["legacy_plain"]], env=env, check=True)
    subprocess.run([cluster.bin_path("pg_dump"), "--format=custom", "-f", legacy["legacy_custom"]], env=env, check=True)
    with open(legacy["legacy_plain"], "rb") as source, gzip.open(legacy["legacy_gzip"], "wb") as target:
        shutil.copyfileobj(source, target)
    for path in legacy.values():
        os.chmod(path, 0o644)
    made.update({k: {"path": v} for k, v in legacy.items()})
    yield made
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("kind", ["plain", "custom", "zstd", "directory"])
def test_verify_passes_good_backups_at_both_levels(cluster, backups, kind):
    quick = verify(cluster, backups[kind]["path"])
    assert quick["changed"] is False and quick["failed_checks"] == [] and quick["manifest"] is True
    assert quick["sha256"] == backups[kind]["sha256"]
    before = databases(cluster)
    full = verify(cluster, backups[kind]["path"], level="restore")
    assert full["row_counts"] == backups[kind]["row_counts"]
    # sha256, manifest, role definitions, structure, ... : all real checks, none skipped.
    assert "all 16 checks passed" in full["msg"]
    assert full["scratch_database"] not in databases(cluster) and databases(cluster) == before


@pytest.mark.parametrize("kind", ["legacy_plain", "legacy_custom", "legacy_gzip"])
def test_verify_accepts_the_earlier_processes_backups(cluster, backups, kind):
    run = run_playbook("verify_module.yml", {"verify_args": dict(cluster.connection_vars(),
                                                                 path=backups[kind]["path"], level="restore")})
    result = run.task("Verify")
    assert run.rc == 0, result.get("msg")
    assert result["manifest"] is False
    assert any("has no manifest" in w for w in result.get("warnings", []))
    checks = {c["name"]: c for c in result["checks"]}
    assert checks["flyway history"]["passed"] and "13 migrations" in checks["flyway history"]["detail"]
    assert checks["structure"]["passed"]
    assert result["row_counts"]["lift_simulator.lift_system_version"] == backups["plain"]["row_counts"][
        "lift_simulator.lift_system_version"]


def skipped_part(checks):
    """What a summary says of the skipped checks: ", M skipped (names)"."""
    skipped = [c["name"] for c in checks if c["skipped"]]
    assert skipped and all(c["passed"] for c in checks if c["skipped"])
    return ", %d skipped (%s)" % (len(skipped), ", ".join(skipped))


def test_skipped_checks_are_counted_as_skipped_in_every_summary(cluster, workdir):
    """A backup whose manifest has no figures (manifest_detail: minimal) and one of the earlier
    process without a manifest: verify and restore summaries count what they skipped as skipped."""
    db = clone_database(cluster, "summary_skipped")
    minimal = backup(cluster, os.path.join(workdir, "b"), database=db, manifest_detail="minimal")
    legacy = os.path.join(workdir, "b", "summary_skipped_backup_20261110_080001.sql")
    env = dict(cluster.env(), PGDATABASE=db)
    subprocess.run([cluster.bin_path("pg_dump"), "-F", "p", "-f", legacy], env=env, check=True)
    os.chmod(legacy, 0o644)
    for path, level in ((minimal["path"], "restore"), (legacy, "quick"), (legacy, "restore")):
        result = verify(cluster, path, level=level)
        checks = result["checks"]
        counted = len([c for c in checks if not c["skipped"]])
        assert result["msg"] == "%s: %d checks passed%s" % (os.path.basename(path), counted, skipped_part(checks))
        if path == minimal["path"]:
            assert "row counts" in result["msg"]  # nothing to compare the restored rows with
        else:
            assert "sha256" in result["msg"]  # no manifest: no checksum to compare with
    # A restore's summary, when a check fails: the skipped checks of the restored database are
    # counted and named, not counted as passed.
    failing = [{"name": "no lift systems", "sql": "SELECT count(*) FROM lift_simulator.lift_system", "expect": 0}]
    quick = set(("not empty", "sha256", "manifest", "role definitions", "structure", "encryption"))
    for path in (minimal["path"], legacy):
        refused = restore(cluster, path, database=db, force=True, checks=failing, expect_ok=False)
        checks = [c for c in refused["checks"] if c["name"] not in quick]
        assert [c["name"] for c in checks if not c["passed"]] == ["no lift systems"]
        assert "the restored database failed its checks; the live database was not touched: 1 of %d checks failed%s: "\
            "no lift systems (value " % (len(checks), skipped_part(checks)) in refused["msg"]
        assert "row counts" in refused["msg"]
    drop_databases(cluster, db)


def broken_copy(source, directory, name, mutate, with_manifest=True):
    target = os.path.join(directory, name)
    with open(source, "rb") as handle:
        data = handle.read()
    with open(target, "wb") as handle:
        handle.write(mutate(data))
    if with_manifest:
        with open(source + ".manifest.json") as handle:
            manifest = json.load(handle)
        manifest["backup_name"] = name
        with open(target + ".manifest.json", "w") as handle:
            json.dump(manifest, handle)
    return target


def flip(data):
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x10]) + data[middle + 1:]


def truncate(data):
    return data[:int(len(data) * 0.7)]


@pytest.mark.parametrize("kind, mutate, with_manifest, failing", [
    ("plain", truncate, True, {"sha256", "structure"}),
    ("plain", truncate, False, {"structure"}),
    ("plain", flip, True, {"sha256"}),
    ("zstd", truncate, True, {"sha256", "structure"}),
    # Without a matching checksum an archive is read in full, so the damage shows there too.
    ("custom", truncate, True, {"sha256", "structure"}),
    ("custom", truncate, False, {"structure"}),
    ("custom", flip, True, {"sha256", "structure"}),
], ids=["plain-truncated", "plain-truncated-no-manifest", "plain-flipped", "zstd-truncated", "custom-truncated",
        "custom-truncated-no-manifest", "custom-flipped"])
def test_verify_catches_damage(cluster, backups, workdir, kind, mutate, with_manifest, failing):
    name = os.path.basename(backups[kind]["path"]).replace("backup", "broken")
    path = broken_copy(backups[kind]["path"], workdir, name, mutate, with_manifest)
    result = verify(cluster, path, expect_ok=False)
    assert set(result["failed_checks"]) == failing
    for check in failing:
        assert check in result["msg"]


def test_verify_catches_a_manifest_of_another_backup(cluster, backups, workdir):
    path = os.path.join(workdir, os.path.basename(backups["plain"]["path"]))
    shutil.copy(backups["plain"]["path"], path)
    shutil.copy(backups["zstd"]["path"] + ".manifest.json", path + ".manifest.json")
    os.chmod(path, 0o644)
    os.chmod(path + ".manifest.json", 0o644)
    result = verify(cluster, path, expect_ok=False)
    assert "manifest" in result["failed_checks"]
    assert "does not belong to this backup" in result["msg"]


@pytest.mark.parametrize("content, message", [(b"", "is empty"), (b"hello, not a dump\n", "not a PostgreSQL dump"),
                                              (None, "Permission denied")])
def test_verify_refuses_empty_and_foreign_files(cluster, workdir, content, message):
    path = os.path.join(workdir, "lift_simulator_backup_20261124_080001.sql")
    with open(path, "wb") as handle:
        handle.write(content if content is not None else b"-- PostgreSQL database dump\n")
    if content is None:
        os.chmod(path, 0o600)  # root's; the module runs as postgres
    result = verify(cluster, path, expect_ok=False)
    assert message in result["msg"]


def test_failing_user_check_is_named_and_the_scratch_database_dropped(cluster, backups, workdir):
    report = os.path.join(workdir, "logs", "report.json")
    before = databases(cluster)
    result = verify(cluster, backups["plain"]["path"], level="restore", expect_ok=False, report_path=report, checks=[
        {"name": "systems", "sql": "SELECT count(*) FROM lift_simulator.lift_system", "min": 1},
        {"name": "impossible", "sql": "SELECT count(*) FROM lift_simulator.lift_system", "expect": -1},
    ])
    assert result["failed_checks"] == ["impossible"]
    assert "impossible" in result["msg"] and "systems" not in result["msg"]
    assert databases(cluster) == before
    with open(report) as handle:
        saved = json.load(handle)
    assert saved["passed"] is False and saved["failed_checks"] == ["impossible"]


# --- hostile names ----------------------------------------------------------------------------

HOSTILE_DB = 'li"ft; DROP DATABASE postgres; --\nÜ'
HOSTILE_TABLE = 'lift_simulator."we;ird ""t\'"'


def test_hostile_database_and_table_names_are_quoted_safely(cluster, workdir):
    others = {n: comment_of(cluster, n) for n in databases(cluster)}
    clone_database(cluster, HOSTILE_DB)
    cluster.psql('CREATE TABLE %s (id int primary key, v text); INSERT INTO %s SELECT g, md5(g::text) '
                 'FROM generate_series(1, 50) g; ALTER TABLE %s OWNER TO lift_admin'
                 % (HOSTILE_TABLE, HOSTILE_TABLE, HOSTILE_TABLE), database=HOSTILE_DB)
    made = backup(cluster, os.path.join(workdir, "b"), database=HOSTILE_DB, format="custom")
    assert os.path.basename(made["path"]).startswith("li_ft__DROP_DATABASE_postgres__--_Ü_backup_")
    assert made["row_counts"][HOSTILE_TABLE] == 50
    verified = verify(cluster, made["path"], level="restore", database=HOSTILE_DB)
    assert verified["row_counts"][HOSTILE_TABLE] == 50
    before = fingerprint(cluster, HOSTILE_DB)
    cluster.psql("DELETE FROM %s WHERE id > 10" % HOSTILE_TABLE, database=HOSTILE_DB)
    selective = restore(cluster, made["path"], database=HOSTILE_DB, tables=[HOSTILE_TABLE], truncate=True)
    assert selective["row_counts"] == {HOSTILE_TABLE: 50}
    assert fingerprint(cluster, HOSTILE_DB) == before
    swapped = restore(cluster, made["path"], database=HOSTILE_DB, keep_previous=True)
    assert fingerprint(cluster, HOSTILE_DB) == before
    # Nothing else changed: every other database is still there with its comment.
    assert {n: comment_of(cluster, n) for n in others} == others
    assert databases(cluster) - set(others) == {HOSTILE_DB, swapped["previous_database"]}
    drop_databases(cluster, HOSTILE_DB[:5])


# --- the playbooks ----------------------------------------------------------------------------

def test_restore_and_verify_playbooks(cluster, workdir):
    db = clone_database(cluster, "playbook_target")
    backup_dir = os.path.join(workdir, "backups")
    made = backup(cluster, backup_dir, database=db)
    before = fingerprint(cluster, db)
    damage(cluster, db)
    connection = {"lift_pg_login_unix_socket": cluster.socket_dir, "lift_pg_login_port": cluster.port}
    run = run_playbook("playbooks/restore.yml", dict(connection, lift_restore_backup=made["path"],
                                                     lift_restore_database=db), json_output=False)
    assert run.rc == 0, run.stdout[-3000:]
    assert fingerprint(cluster, db) == before
    assert "downtime:" in run.stdout and "restored (swap)" in run.stdout
    log_dir = os.path.join(workdir, "logs")
    run = run_playbook("playbooks/verify.yml", dict(connection, lift_backup_dir=backup_dir, lift_backup_log_dir=log_dir,
                                                    lift_backup_database=db), json_output=False)
    assert run.rc == 0, run.stdout[-3000:]
    reports = os.listdir(log_dir)
    assert len(reports) == 1 and reports[0].startswith("verify_%s_backup_" % db)
    with open(os.path.join(log_dir, reports[0])) as handle:
        assert json.load(handle)["passed"] is True
    drop_databases(cluster, db)


# --- the operator's night: truncate with references, rollback, the playbooks' guard rails -----

def test_truncate_names_every_table_that_refers_to_the_selection(cluster, workdir):
    db, made, before = backed_up_then_damaged(cluster, workdir, "truncref", "custom", None)
    damaged = fingerprint(cluster, db)
    refused = restore(cluster, made["path"], database=db, tables=["lift_simulator.lift_system"], truncate=True,
                      expect_ok=False)
    for referrer in ("lift_simulator.lift_system_version references lift_simulator.lift_system",
                     "lift_simulator.simulation_run references lift_simulator.lift_system"):
        assert referrer in refused["msg"]
    assert "nothing was changed" in refused["msg"]
    assert fingerprint(cluster, db) == damaged
    # The whole family, as the module's EXAMPLES and docs/restore.md name it, goes through.
    family = ["lift_simulator.lift_system", "lift_simulator.lift_system_version", "lift_simulator.scenario",
              "lift_simulator.simulation_run"]
    restore(cluster, made["path"], database=db, tables=family, truncate=True)
    after = fingerprint(cluster, db)
    for table in family:
        assert after["rows"][table] == before["rows"][table]
    drop_databases(cluster, db)


def test_rollback_puts_the_replaced_database_back_and_can_itself_be_rolled_back(cluster, workdir):
    db, made, before = backed_up_then_damaged(cluster, workdir, "rollback", "plain", None)
    damaged = fingerprint(cluster, db)
    none_yet = run_module_check(cluster, dict(database=db, phase="rollback"), expect_ok=False)
    assert 'there is no previous database of "%s" to roll back to' % db in none_yet["msg"]
    restored = restore(cluster, made["path"], database=db)
    assert fingerprint(cluster, db) == before
    # Check mode names the plan and changes nothing.
    plan = run_module_check(cluster, dict(database=db, phase="rollback"))
    assert plan["changed"] is True and plan["rolled_back_to"] == restored["previous_database"]
    assert fingerprint(cluster, db) == before
    wrong = restore(cluster, None, database=db, phase="rollback", rollback_to="lift_simulator", expect_ok=False)
    assert 'is not a previous database of "%s" kept by a restore' % db in wrong["msg"]
    assert restored["previous_database"] in wrong["msg"]
    back = restore(cluster, None, database=db, phase="rollback")
    assert back["changed"] is True and back["rolled_back_to"] == restored["previous_database"]
    assert 0 <= back["downtime_s"] < 1
    assert fingerprint(cluster, db) == damaged
    assert fingerprint(cluster, back["previous_database"]) == before
    assert restored["previous_database"] not in databases(cluster)
    again = restore(cluster, None, database=db, phase="rollback", rollback_to=back["previous_database"])
    assert fingerprint(cluster, db) == before
    assert fingerprint(cluster, again["previous_database"]) == damaged
    drop_databases(cluster, db)


def run_module_check(cluster, args, expect_ok=True):
    run = run_playbook("restore_module.yml", {"restore_args": dict(cluster.connection_vars(), path=None, **args)},
                       check=True)
    result = run.task("Restore")
    assert (run.rc == 0) == expect_ok, result
    return result


def test_restore_playbook_check_latest_one_host_and_rollback(cluster, workdir):
    db = clone_database(cluster, "playbook_latest")
    backup_dir = postgres_owned_dir("lift-it-latest-")
    os.chmod(backup_dir, 0o700)
    made = backup(cluster, backup_dir, database=db)
    before = fingerprint(cluster, db)
    damage(cluster, db)
    damaged = fingerprint(cluster, db)
    connection = {"lift_pg_login_unix_socket": cluster.socket_dir, "lift_pg_login_port": cluster.port}
    # backup.yml's login (a non-superuser over TCP here) is not the restore's: it is ignored.
    common = dict(connection, lift_restore_backup="latest", lift_backup_dir=backup_dir, lift_restore_database=db,
                  lift_pg_login_host="127.0.0.1", lift_pg_login_user="lift_admin",
                  lift_pg_login_password=LIFT_ADMIN_PASSWORD)
    # The list of backups names the newest good one.
    listed = run_playbook("playbooks/list_backups.yml", dict(lift_backup_dir=backup_dir, lift_backup_database=db),
                          json_output=False)
    assert listed.rc == 0 and "newest good: %s" % made["path"] in listed.stdout, listed.stdout[-2000:]
    # --check: the plan, from the stage phase through the swap, and nothing changes.
    names = databases(cluster)
    dry = run_playbook("playbooks/restore.yml", common, check=True, json_output=False)
    assert dry.rc == 0, dry.stdout[-3000:]
    assert "restoring %s (the newest good backup)" % made["path"] in dry.stdout
    assert "would swap in the database the stage phase would restore and check" in dry.stdout
    assert fingerprint(cluster, db) == damaged and databases(cluster) == names
    # Two hosts: refused before anything happens.
    inventory = os.path.join(workdir, "two-hosts.ini")
    with open(inventory, "w") as handle:
        handle.write("[lift_db]\nlocalhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n"
                     "second ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n")
    both = run_playbook("playbooks/restore.yml", common, json_output=False, inventory=inventory)
    assert both.rc != 0 and "this run would restore 2 hosts (localhost, second)" in both.stdout + both.stderr
    assert fingerprint(cluster, db) == damaged
    # The real thing, then back to where it was.
    run = run_playbook("playbooks/restore.yml", common, json_output=False)
    assert run.rc == 0, run.stdout[-3000:]
    assert fingerprint(cluster, db) == before
    back = run_playbook("playbooks/rollback.yml", dict(connection, lift_restore_database=db), json_output=False)
    assert back.rc == 0, back.stdout[-3000:]
    assert fingerprint(cluster, db) == damaged
    drop_databases(cluster, db)
    shutil.rmtree(backup_dir)


def test_verify_in_check_mode_only_reads(cluster, workdir):
    made = backup(cluster, os.path.join(workdir, "b"))
    report = os.path.join(workdir, "reports", "verify.json")
    names = databases(cluster)
    run = run_playbook("verify_module.yml", {"verify_args": dict(cluster.connection_vars(), path=made["path"],
                                                                 level="restore", report_path=report)}, check=True)
    result = run.task("Verify")
    assert run.rc == 0 and result["changed"] is False, result.get("msg")
    assert "check mode: would restore it into a scratch database" in result["msg"]
    assert "scratch_database" not in result
    assert databases(cluster) == names and not os.path.exists(os.path.dirname(report))
