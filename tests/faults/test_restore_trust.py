# -*- coding: utf-8 -*-
"""What a restore trusts, and what it reports (docs/security.md): provenance the owner cannot
forge, a database that comes back exactly as it was (owner, comment, privileges, list-valued
settings, the roles it needs on a new machine), previous databases kept in bounds, true reports
when a step after the swap fails, bounded waits, and nothing left behind."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import signal
import subprocess
import threading
import time

import pytest

import processes
from helpers import backup, clone_database, databases, drop_databases, provenance_of, restore, run_module, verify
from pgcompare import fingerprint, row_counts
from pglab import (LIFT_ADMIN_PASSWORD, SUPERUSER_PASSWORD, PgCluster, load_fixture, own_cluster, postgres_owned_dir,
                   run_playbook)


def as_owner(cluster, sql, database):
    return cluster.psql(sql, database=database, user="lift_admin", password=LIFT_ADMIN_PASSWORD)


# --- "already restored" only while provably unchanged -------------------------------------------

CHANGES = {
    "rows deleted": "DELETE FROM lift_simulator.simulation_run",
    "a row updated, counts unchanged": ("UPDATE lift_simulator.lift_system SET display_name = display_name || '!' "
                                        "WHERE id = (SELECT min(id) FROM lift_simulator.lift_system)"),
    "a definition changed": "ALTER TABLE lift_simulator.scenario ADD COLUMN note text",
    "a comment changed": "COMMENT ON TABLE lift_simulator.scenario IS 'changed'",
    "a sequence moved": "SELECT nextval('lift_simulator.lift_system_id_seq')",
    "a table truncated": "TRUNCATE lift_simulator.simulation_run",
}


@pytest.fixture(scope="module")
def restored(cluster):
    base = postgres_owned_dir("lift-fault-prov-")
    db = clone_database(cluster, "provenance_src")
    made = backup(cluster, base, database=db)
    yield db, made
    drop_databases(cluster, "provenance_")


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_database_changed_since_its_restore_is_restored_again(cluster, restored, change):
    db, made = restored
    first = restore(cluster, made["path"], database=db, force=True, keep_previous=False)
    assert first["changed"] is True
    expected = fingerprint(cluster, db)
    same = restore(cluster, made["path"], database=db, keep_previous=False)
    assert same["changed"] is False and "unchanged since" in same["msg"]
    as_owner(cluster, CHANGES[change], db)
    again = restore(cluster, made["path"], database=db, keep_previous=False)
    assert again["changed"] is True
    assert any("restoring it again" in w for w in again.get("warnings", []))
    assert fingerprint(cluster, db) == expected
    assert row_counts(fingerprint(cluster, db)) == made["row_counts"]


def test_provenance_the_owner_writes_is_not_believed(cluster, restored):
    db, made = restored
    target = clone_database(cluster, "provenance_forged", template=db)
    as_owner(cluster, "DELETE FROM lift_simulator.scenario", target)
    forged = "lift_simulator.postgresql restore " + json.dumps({"backup": made["name"], "sha256": made["sha256"],
                                                                "restored_at": "2026-11-24T08:00:00Z"})
    as_owner(cluster, "COMMENT ON DATABASE %s IS '%s'" % (target, forged.replace("'", "''")), "postgres")
    result = restore(cluster, made["path"], database=target)
    assert result["changed"] is True
    assert row_counts(fingerprint(cluster, target)) == made["row_counts"]
    # The operator's (here the owner's) comment is kept as it was; the provenance is elsewhere.
    assert cluster.psql("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '%s'"
                        % target) == forged
    assert provenance_of(cluster, target)["sha256"] == made["sha256"]
    # The owner cannot write there.
    denied = subprocess.run([cluster.bin_path("psql"), "-X", "-q", "-d", "postgres", "-c",
                             "UPDATE lift_simulator_postgresql.databases SET record = '{}'"],
                            env=cluster.env("lift_admin", LIFT_ADMIN_PASSWORD), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, check=False)
    assert denied.returncode != 0 and "permission denied" in denied.stderr


# --- the database comes back as it was -----------------------------------------------------------

def attributes(cluster, database):
    """Owner, comment, privileges and settings of a database (and of its roles in it)."""
    return cluster.psql(
        "SELECT json_build_object('owner', pg_get_userbyid(d.datdba), 'comment', shobj_description(d.oid, "
        "'pg_database'), 'acl', (SELECT json_agg(a ORDER BY a::text) FROM aclexplode(d.datacl) a), "
        "'settings', (SELECT json_agg(json_build_array(coalesce(pg_get_userbyid(NULLIF(s.setrole, 0)), ''), "
        "s.setconfig) ORDER BY s.setrole) FROM pg_db_role_setting s WHERE s.setdatabase = d.oid)) "
        "FROM pg_database d WHERE d.datname = '%s'" % database)


@pytest.mark.parametrize("strategy", ["swap", "replace"])
def test_owner_comment_privileges_and_list_settings_come_back_exactly(cluster, workdir, strategy):
    """A database as the application's README creates it (owned by postgres), with a comment,
    restricted CONNECT and the search_path settings operators add."""
    db = clone_database(cluster, "attributes_%s" % strategy)
    cluster.psql("ALTER DATABASE %s OWNER TO postgres" % db)
    cluster.psql("COMMENT ON DATABASE %s IS 'Lift simulator configuration (ops: #db)'" % db)
    cluster.psql("REVOKE ALL ON DATABASE %s FROM PUBLIC; GRANT CONNECT, TEMPORARY ON DATABASE %s TO lift_admin"
                 % (db, db))
    cluster.psql("ALTER DATABASE %s SET search_path TO lift_simulator, public" % db)
    cluster.psql('ALTER ROLE lift_admin IN DATABASE %s SET search_path TO "$user", lift_simulator, public' % db)
    cluster.psql("ALTER DATABASE %s SET statement_timeout TO '5min'" % db)
    made = backup(cluster, os.path.join(workdir, "b"), database=db)
    before = attributes(cluster, db)
    restore(cluster, made["path"], database=db, strategy=strategy, force=True)
    assert attributes(cluster, db) == before
    # The application's unqualified queries work again (the list came back as a list).
    assert as_owner(cluster, "SHOW search_path", db) == '"$user", lift_simulator, public'
    assert int(as_owner(cluster, "SELECT count(*) FROM lift_system", db)) == made["row_counts"][
        "lift_simulator.lift_system"]
    drop_databases(cluster, db)


def test_a_new_machine_gets_the_roles_the_backup_needs(workdir):
    """Backups made by a read-only backup role's setup grant to it; a new machine has no such role."""
    with own_cluster(size_mb=2, seed=9, admin_password=LIFT_ADMIN_PASSWORD) as source:
        source.psql("CREATE ROLE backup_user LOGIN PASSWORD 'backup-pw' CREATEDB")
        source.psql("GRANT CONNECT ON DATABASE lift_simulator TO backup_user")
        source.psql("GRANT USAGE ON SCHEMA lift_simulator, public TO backup_user; "
                    "GRANT SELECT ON ALL TABLES IN SCHEMA lift_simulator, public TO backup_user; "
                    "ALTER DEFAULT PRIVILEGES FOR ROLE lift_admin IN SCHEMA lift_simulator "
                    "GRANT SELECT ON TABLES TO backup_user", database="lift_simulator")
        made = backup(source, os.path.join(workdir, "b"), format="custom")
        assert made["roles"]["backup_user"] == ["privileges"]
        expected = fingerprint(source, "lift_simulator")
        with own_cluster(size_mb=1, seed=1) as target:
            target.psql("DROP DATABASE lift_simulator")
            names = databases(target)
            # Refused before anything is created when it may not create the role...
            refused = restore(target, made["path"], strategy="create", create_roles=False, expect_ok=False)
            assert '"backup_user"' in refused["msg"] and "privileges: skip" in refused["msg"]
            assert databases(target) == names
            # ... verified without the grants (creating nothing)...
            checked = verify(target, made["path"], level="restore")
            assert {c["name"]: c["skipped"] for c in checked["checks"]}["roles"] is True
            assert target.psql("SELECT count(*) FROM pg_roles WHERE rolname = 'backup_user'") == "0"
            # ... and restored with the role made from the backup's role definitions, without
            # the rights only an operator gives.
            result = restore(target, made["path"], strategy="create")
            assert result["created_roles"] == ["backup_user"]
            assert target.psql("SELECT rolcanlogin, rolcreatedb, rolsuper FROM pg_roles WHERE rolname = "
                               "'backup_user'") == "t|f|f"
            assert fingerprint(target, "lift_simulator") == expected
            assert target.psql("SELECT has_table_privilege('backup_user', 'lift_simulator.lift_system', 'SELECT')",
                               database="lift_simulator") == "t"
            # privileges: skip restores without them.
            skipped = restore(target, made["path"], database="no_grants", strategy="create", privileges="skip")
            assert skipped["changed"] is True
            assert target.psql("SELECT count(*) FROM aclexplode((SELECT relacl FROM pg_class WHERE oid = "
                               "'lift_simulator.lift_system'::regclass))", database="no_grants") == "0"


def test_a_backup_only_a_superuser_may_load_needs_load_as_superuser(cluster, workdir):
    """An event trigger (a superuser's object): loaded with the owner's rights it is refused, the
    error names the opt-in; with ``load_as: superuser`` it restores."""
    db = clone_database(cluster, "event_trigger")
    cluster.psql("CREATE FUNCTION public.lift_ddl_noted() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$; "
                 "CREATE EVENT TRIGGER lift_ddl_noted ON ddl_command_end EXECUTE FUNCTION public.lift_ddl_noted()",
                 database=db)
    made = backup(cluster, os.path.join(workdir, "b"), database=db)
    expected = fingerprint(cluster, db)
    cluster.psql("DELETE FROM lift_simulator.simulation_run", database=db)
    before, names = fingerprint(cluster, db), databases(cluster)
    for strategy in ("swap", "replace"):
        refused = restore(cluster, made["path"], database=db, strategy=strategy, force=True, expect_ok=False)
        assert 'permission denied to create event trigger "lift_ddl_noted"' in refused["msg"]
        assert "load_as: superuser" in refused["msg"] and "load_as: owner" in refused["msg"]
        if strategy == "swap":
            assert databases(cluster) == names and fingerprint(cluster, db) == before
    # Replace dropped the live database before the load failed (it says so); swap kept it.
    assert "no longer exists" in refused["msg"]
    restored = restore(cluster, made["path"], database=db, strategy="create", load_as="superuser")
    assert restored["changed"] is True
    assert fingerprint(cluster, db) == expected
    assert cluster.psql("SELECT evtname || ' ' || pg_get_userbyid(evtowner) FROM pg_event_trigger",
                        database=db) == "lift_ddl_noted postgres"
    assert cluster.psql("SELECT rolsuper FROM pg_roles WHERE rolname = 'lift_admin'") == "f"
    drop_databases(cluster, db)


# --- previous databases: bounded, and true reports after the swap --------------------------------

def test_keep_previous_keeps_the_newest_n_and_never_an_unrecorded_database(cluster, workdir):
    db = clone_database(cluster, "keep_n")
    made = backup(cluster, os.path.join(workdir, "b"), database=db)
    lookalike = clone_database(cluster, "keep_n_pre_restore_20200101000000")
    previous = []
    for _round in range(3):
        result = restore(cluster, made["path"], database=db, force=True, keep_previous=2)
        previous.append(result["previous_database"])
        time.sleep(1.1)  # a new name each second
    assert result["removed_previous"] == [previous[0]]
    assert set(n for n in databases(cluster) if n.startswith("keep_n_pre_restore_")) == {lookalike} | set(previous[1:])
    # keep_previous false drops the one just replaced, and the older ones.
    last = restore(cluster, made["path"], database=db, force=True, keep_previous=False)
    assert last["previous_dropped"] is True
    assert set(n for n in databases(cluster) if n.startswith("keep_n_pre_restore_")) == {lookalike}
    drop_databases(cluster, "keep_n")


def test_a_previous_database_that_cannot_be_dropped_is_a_warning_not_a_failed_restore(cluster, workdir):
    db = clone_database(cluster, "subscribed")
    made = backup(cluster, os.path.join(workdir, "b"), database=db)
    cluster.psql("CREATE SUBSCRIPTION lift_sub CONNECTION 'dbname=postgres' PUBLICATION nothing "
                 "WITH (connect = false)", database=db)
    cluster.psql("DELETE FROM lift_simulator.simulation_run", database=db)
    result = restore(cluster, made["path"], database=db, keep_previous=False)
    assert result["changed"] is True and result["previous_dropped"] is False
    assert any("could not be dropped" in w and result["previous_database"] in w for w in result["warnings"])
    assert row_counts(fingerprint(cluster, db)) == made["row_counts"]
    assert result["previous_database"] in databases(cluster)
    assert provenance_of(cluster, result["previous_database"])["kind"] == "previous"
    # Once the subscription is gone, a later restore drops it.
    cluster.psql("ALTER SUBSCRIPTION lift_sub SET (slot_name = NONE); DROP SUBSCRIPTION lift_sub",
                 database=result["previous_database"])
    later = restore(cluster, made["path"], database=db, force=True, keep_previous=False)
    assert result["previous_database"] in later["removed_previous"]
    drop_databases(cluster, db)


def test_replace_that_cannot_drop_the_live_database_lets_it_serve_again_and_says_so(cluster, workdir):
    """strategy replace stops the live database's connections, then drops it: when the drop fails
    (a logical replication subscription in it), the database serves again, unchanged, and the
    error says so."""
    db = clone_database(cluster, "replace_subscribed")
    made = backup(cluster, os.path.join(workdir, "b"), database=db)
    cluster.psql("CREATE SUBSCRIPTION lift_sub_replace CONNECTION 'dbname=postgres' PUBLICATION nothing "
                 "WITH (connect = false)", database=db)
    cluster.psql("DELETE FROM lift_simulator.simulation_run", database=db)
    before, names = fingerprint(cluster, db), databases(cluster)
    refused = restore(cluster, made["path"], database=db, strategy="replace", force=True, expect_ok=False)
    assert 'strategy replace could not drop "%s"' % db in refused["msg"]
    assert "used by logical replication subscription" in refused["msg"]
    assert "it accepts connections again, unchanged" in refused["msg"]
    assert cluster.psql("SELECT datallowconn FROM pg_database WHERE datname = '%s'" % db) == "t"
    # A new connection works (the owner's, as the application's), and sees the data as it was.
    assert as_owner(cluster, "SELECT count(*) FROM lift_simulator.simulation_run", db) == "0"
    assert fingerprint(cluster, db) == before and databases(cluster) == names
    cluster.psql("ALTER SUBSCRIPTION lift_sub_replace SET (slot_name = NONE); DROP SUBSCRIPTION lift_sub_replace",
                 database=db)
    drop_databases(cluster, db)


def test_prepared_transactions_are_refused_before_anything_changes(workdir):
    pg = PgCluster()
    pg.settings = {"max_prepared_transactions": "5"}
    try:
        pg.start_fresh()
        pg.psql("CREATE ROLE lift_admin LOGIN")
        load_fixture(pg, "lift_simulator", size_mb=1, seed=4)
        made = backup(pg, os.path.join(workdir, "b"))
        pg.psql("BEGIN; INSERT INTO lift_simulator.lift_system (system_key, display_name) VALUES ('p', 'p'); "
                "PREPARE TRANSACTION 'operator_gid'", database="lift_simulator")
        names = databases(pg)
        for strategy in ("replace", "swap"):
            refused = restore(pg, made["path"], strategy=strategy, force=True, expect_ok=False)
            assert "prepared transactions" in refused["msg"] and '"operator_gid"' in refused["msg"]
            assert "nothing was changed" in refused["msg"]
        assert databases(pg) == names
        assert pg.psql("SELECT datallowconn FROM pg_database WHERE datname = 'lift_simulator'") == "t"
        pg.psql("ROLLBACK PREPARED 'operator_gid'", database="lift_simulator")
    finally:
        pg.destroy()


def test_a_login_that_may_not_restore_is_refused_at_once(cluster, workdir):
    made = backup(cluster, os.path.join(workdir, "b"))
    names = databases(cluster)
    for name, extra in (("restore", {}), ("verify", {"level": "restore"})):
        result = run_module(name, dict(cluster.tcp_vars(), path=made["path"], **extra), expect_ok=False)
        assert "need a superuser login" in result["msg"]
        assert '"lift_admin" is not a superuser and has no CREATEDB' in result["msg"]
    assert databases(cluster) == names


# --- bounded waits, no leftovers ---------------------------------------------------------------

def test_a_role_without_rights_holding_the_restore_lock_is_named(cluster, workdir):
    db = clone_database(cluster, "lock_squatter")
    made = backup(cluster, os.path.join(workdir, "b"), database=db)
    cluster.psql("DROP ROLE IF EXISTS squatter; CREATE ROLE squatter LOGIN PASSWORD 'squat-pw'")
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=cluster.port, user="squatter", password="squat-pw",
                            dbname="postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0)), pg_backend_pid()",
                        ("lift_simulator.postgresql:" + db,))
            pid = cur.fetchone()[1]
        refused = restore(cluster, made["path"], database=db, force=True, expect_ok=False)
        assert '"squatter"' in refused["msg"] and str(pid) in refused["msg"]
        assert "pg_terminate_backend(%d)" % pid in refused["msg"]
    finally:
        conn.close()
    assert restore(cluster, made["path"], database=db, force=True)["changed"] is True
    cluster.psql("DROP ROLE squatter")
    drop_databases(cluster, db)


@pytest.fixture(scope="module")
def stall_db(cluster):
    load_fixture(cluster, "stall_src", size_mb=30, seed=8)
    cluster.psql("GRANT ALL PRIVILEGES ON DATABASE stall_src TO lift_admin")
    yield "stall_src"
    drop_databases(cluster, "stall_src")


def start(playbook, extra):
    holder = {}
    thread = threading.Thread(target=lambda: holder.update(run=run_playbook(playbook, extra)))
    thread.start()
    return thread, holder


def test_a_stopped_pg_dump_is_stopped_and_named(cluster, workdir, stall_db):
    dest = os.path.join(workdir, "b")
    args = dict(cluster.connection_vars(), dest_dir=dest, database=stall_db, stall_timeout=3)
    thread, holder = start("backup_module.yml", {"backup_args": args})
    pid = processes.wait_for(lambda: (processes.find("pg_dump", stall_db) or [None])[0], what="pg_dump")
    os.kill(pid, signal.SIGSTOP)
    started = time.monotonic()
    thread.join(120)
    result = holder["run"].task("Backup")
    assert result["failed"] and "pg_dump made no progress for 3 s" in result["msg"]
    assert time.monotonic() - started < 30
    assert [e for e in os.listdir(dest) if e != "logs"] == []
    assert not processes.alive(pid)


def test_a_table_lock_held_elsewhere_fails_the_backup_in_bounded_time(cluster, workdir, stall_db):
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=cluster.port, user="postgres",
                            password=SUPERUSER_PASSWORD, dbname=stall_db)
    try:
        with conn.cursor() as cur:
            cur.execute("BEGIN; LOCK TABLE lift_simulator.scenario IN ACCESS EXCLUSIVE MODE")
        dest = os.path.join(workdir, "b")
        result = backup(cluster, dest, expect_ok=False, database=stall_db, lock_wait_timeout="2s")
        assert "holds a lock the backup needs, and it did not come within lock_wait_timeout (2s)" in result["msg"]
        assert [e for e in os.listdir(dest) if e != "logs"] == []
    finally:
        conn.close()


def test_a_stopped_psql_is_stopped_and_the_live_database_kept(cluster, workdir, stall_db):
    made = backup(cluster, os.path.join(workdir, "b"), database=stall_db)
    target = clone_database(cluster, "stall_target", template=stall_db)
    before, names = fingerprint(cluster, target), databases(cluster)
    # jobs: 1 - the one psql that loads all of the dump (the parallel load's first psql may be done
    # before it is found).
    args = dict(cluster.connection_vars(), path=made["path"], database=target, force=True, stall_timeout=3, jobs=1)
    thread, holder = start("restore_module.yml", {"restore_args": args})
    pid = processes.wait_for(lambda: (processes.find_matching("psql", lambda p: any(
        e.startswith(b"PGDATABASE=stall_target_staging_") for e in processes.environ(p))) or [None])[0], what="psql")
    os.kill(pid, signal.SIGSTOP)
    thread.join(120)
    result = holder["run"].task("Restore")
    assert result["failed"] and "psql made no progress for 3 s" in result["msg"]
    assert fingerprint(cluster, target) == before and databases(cluster) == names
    drop_databases(cluster, "stall_target")


def test_a_psql_stopped_after_the_whole_dump_reached_it_is_stopped_too(cluster, workdir, stall_db):
    """The end of the dump sits in the pipe long before psql has run it (the indexes and keys come
    last): a psql stopped then is watched as well, never waited for forever."""
    made = backup(cluster, os.path.join(workdir, "b"), database=stall_db)
    size = os.path.getsize(made["path"])
    target = clone_database(cluster, "stall_tail", template=stall_db)
    before, names = fingerprint(cluster, target), databases(cluster)
    # jobs: 1 - the one psql that reads all of the dump (the parallel load's psql phases go through
    # the same watched function, backup_load._run_psql).
    args = dict(cluster.connection_vars(), path=made["path"], database=target, force=True, stall_timeout=3, jobs=1)
    thread, holder = start("restore_module.yml", {"restore_args": args})

    def near_the_end():
        for pid in processes.find_matching("psql", lambda p: not processes.version_probe(p) and any(
                e.startswith(b"PGDATABASE=stall_tail_staging_") for e in processes.environ(p))):
            if processes.bytes_read(pid) >= size - 48 * 1024:
                return pid
        return None
    pid = processes.wait_for(near_the_end, interval=0.0005, what="psql reading the end of the dump")
    os.kill(pid, signal.SIGSTOP)
    try:
        thread.join(120)
        assert not thread.is_alive(), "the restore still waits for the stopped psql"
    finally:
        if processes.alive(pid):
            os.kill(pid, signal.SIGKILL)
    result = holder["run"].task("Restore")
    assert result["failed"] and "psql made no progress for 3 s" in result["msg"]
    assert fingerprint(cluster, target) == before and databases(cluster) == names
    drop_databases(cluster, "stall_tail")


def test_a_stopped_pg_restore_is_stopped_and_the_live_database_kept(cluster, workdir, stall_db):
    """A custom-format backup: pg_restore stopped (SIGSTOP) while it loads the staging database."""
    made = backup(cluster, os.path.join(workdir, "b"), database=stall_db, format="custom")
    target = clone_database(cluster, "stall_archive", template=stall_db)
    before, names = fingerprint(cluster, target), databases(cluster)
    # jobs: 1 - with --jobs, pg_restore's workers may outlive a stopped leader for a while, and the
    # transient role they log in as is then dropped by the next run, not this one.
    args = dict(cluster.connection_vars(), path=made["path"], database=target, force=True, stall_timeout=3, jobs=1)
    thread, holder = start("restore_module.yml", {"restore_args": args})

    def loading():
        for pid in processes.find_matching("pg_restore", lambda p: any(
                e.startswith(b"PGDATABASE=stall_archive_staging_") for e in processes.environ(p))):
            if processes.bytes_read(pid) > 256 * 1024:
                return pid
        return None
    pid = processes.wait_for(loading, what="pg_restore loading the staging database")
    os.kill(pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        thread.join(120)
        assert not thread.is_alive(), "the restore still waits for the stopped pg_restore"
    finally:
        if processes.alive(pid):
            os.kill(pid, signal.SIGKILL)
    result = holder["run"].task("Restore")
    assert result["failed"] and "pg_restore made no progress for 3 s" in result["msg"]
    assert time.monotonic() - stopped < 30
    processes.wait_for(lambda: not processes.alive(pid), timeout=10, what="pg_restore to be stopped")
    # Nothing left: no staging database, no loading role; the live database as it was.
    assert databases(cluster) == names
    assert cluster.psql("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'lift\\_simulator\\_restore\\_%'") == "0"
    assert fingerprint(cluster, target) == before
    drop_databases(cluster, "stall_archive")


# What another session holds, where, and what of the restore it blocks.
HELD_LOCKS = {
    # An operator's transaction in the maintenance database that changed the database's comment:
    # the swap's renames need the database's own lock.
    "swap": ("postgres", "COMMENT ON DATABASE {db} IS 'an operator, mid-transaction'", {}),
    # A table locked in the live database: the "already restored" proof counts its rows.
    "already-restored proof": ("{db}", "LOCK TABLE lift_simulator.scenario IN ACCESS EXCLUSIVE MODE", {}),
    # ... and a selective restore loads into it.
    "selective": ("{db}", "LOCK TABLE lift_simulator.scenario IN ACCESS EXCLUSIVE MODE",
                  {"tables": ["lift_simulator.scenario"]}),
}


@pytest.mark.parametrize("case", sorted(HELD_LOCKS))
def test_a_lock_held_elsewhere_fails_the_restore_within_lock_timeout_and_changes_nothing(cluster, workdir, case):
    import psycopg2

    where, statement, options = HELD_LOCKS[case]
    db = clone_database(cluster, "locked_" + case.split()[0].replace("-", "_"))
    made = backup(cluster, os.path.join(workdir, "b"), database=db)
    if case == "already-restored proof":
        restore(cluster, made["path"], database=db, force=True, keep_previous=False)
    else:
        cluster.psql("DELETE FROM lift_simulator.simulation_run", database=db)  # a restore would change it
    before, names = fingerprint(cluster, db), databases(cluster)
    conn = psycopg2.connect(host="127.0.0.1", port=cluster.port, user="postgres", password=SUPERUSER_PASSWORD,
                            dbname=where.format(db=db))
    thread = None
    try:
        with conn.cursor() as cur:
            cur.execute(statement.format(db=db))  # psycopg2 opens a transaction: the lock stays held
        args = dict(cluster.connection_vars(), path=made["path"], database=db, lock_timeout=3, **options)
        started = time.monotonic()
        thread, holder = start("restore_module.yml", {"restore_args": args})
        # Well under the default lock_timeout (60 s): the option bounds the wait, not the default.
        thread.join(45)
        assert not thread.is_alive(), "the restore still waits for the lock after 45 s"
        elapsed = time.monotonic() - started
        # The restore waited, and did not take the lock by ending the session that holds it.
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
    finally:
        conn.close()
        if thread is not None:
            thread.join(300)
    result = holder["run"].task("Restore")
    assert result["failed"]
    assert "another session holds a lock the restore needs" in result["msg"]
    assert "did not come within lock_timeout (3 s)" in result["msg"]
    assert "nothing was changed" in result["msg"] or "was left as it was" in result["msg"]
    assert elapsed >= 3
    assert databases(cluster) == names
    assert cluster.psql("SELECT datallowconn FROM pg_database WHERE datname = '%s'" % db) == "t"
    assert fingerprint(cluster, db) == before
    drop_databases(cluster, db)


def test_no_passfile_outlives_a_killed_module(cluster, workdir, stall_db):
    """A backup with a password, SIGKILLed while pg_dump runs: no file anywhere holds the password."""
    dest = os.path.join(workdir, "b")
    args = dict(cluster.tcp_vars(), dest_dir=dest, database=stall_db)
    thread, holder = start("backup_module.yml", {"backup_args": args})
    pid = processes.wait_for(lambda: (processes.find("pg_dump", stall_db) or [None])[0], what="pg_dump")
    module = processes.parent(pid)
    os.kill(module, signal.SIGKILL)
    thread.join(120)
    processes.wait_for(lambda: not processes.alive(pid), timeout=10, what="pg_dump to die")
    found = subprocess.run(["grep", "-rlsF", LIFT_ADMIN_PASSWORD, "/tmp", "/var/tmp", os.path.expanduser("~postgres")],
                           stdout=subprocess.PIPE, universal_newlines=True, check=False).stdout.split()
    assert found == []
