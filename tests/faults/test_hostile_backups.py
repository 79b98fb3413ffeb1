# -*- coding: utf-8 -*-
"""Hostile backups and a hostile database owner: nothing in a backup ever runs as a program, and
nothing the owner planted ever runs with more rights than the owner has (docs/security.md).

Each attack is tried through the modules (ansible-playbook) against the real cluster: psql
meta-commands in plain dumps with and without pg_dump's \\restrict line, COPY blocks ended with
"\\.\\r\\n", COPY statements that run programs, a patched custom archive, and triggers, CHECK
functions and index expressions of the owner that try to make it superuser, during restore,
selective restore and restore-level verification, plus an owner racing for the staging database.
In every case: no marker file is created (nothing ran outside the database), the owner gains no
right, and the live database is unchanged where the restore is refused.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os
import re
import subprocess
import threading
import time
import uuid

import pytest

from helpers import backup, clone_database, databases, drop_databases, restore, verify
from pgcompare import fingerprint
from pglab import LIFT_ADMIN_PASSWORD


@pytest.fixture
def marker():
    """A path that an attack would create; it must never exist."""
    path = "/tmp/lift-pwned-%s" % uuid.uuid4().hex
    yield path
    assert not os.path.exists(path), "an attack ran a program: %s exists" % path
    if os.path.exists(path):
        os.unlink(path)


def owner_rights(cluster):
    """What lift_admin may do: must never change."""
    return cluster.psql("SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication, "
                        "(SELECT count(*) FROM pg_auth_members WHERE member = r.oid) FROM pg_roles r "
                        "WHERE rolname = 'lift_admin'")


def as_owner(cluster, sql, database):
    return cluster.psql(sql, database=database, user="lift_admin", password=LIFT_ADMIN_PASSWORD)


@pytest.fixture(scope="module")
def plain_text(cluster):
    """A plain dump of the fixture (with pg_dump's \\restrict line), as bytes."""
    env = cluster.env()
    env["PGDATABASE"] = "lift_simulator"
    return subprocess.run([cluster.bin_path("pg_dump")], env=env, check=True, stdout=subprocess.PIPE).stdout


def restrict_key(text):
    return re.search(rb"^\\restrict (\w+)$", text, re.M).group(1)


def without_restrict(text):
    return re.sub(rb"^\\(un)?restrict \w+\n", b"", text, flags=re.M)


def write_dump(directory, data, name="lift_simulator_backup_20261117_080001.sql"):
    """A backup file with no manifest (as an earlier process, or an attacker, would leave it)."""
    path = os.path.join(directory, name)
    with open(path, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o644)
    return path


def after_settings(text, insert):
    anchor = b"SET row_security = off;\n"
    return text.replace(anchor, anchor + insert, 1)


def in_the_middle(text, insert):
    anchor = b"\n--\n-- Data for Name: lift_system; Type: TABLE DATA;"
    return text.replace(anchor, b"\n" + insert + anchor, 1)


def crlf_copy_then(text, insert):
    """The lift_system data with CRLF line ends, ended by "\\.\\r\\n" (psql ends the block there),
    then ``insert``, then the rest of the block's lines and a proper end: a reader that only ends
    at "\\.\\n" would count the rest as rows and never see the command."""
    start = text.index(b"COPY lift_simulator.lift_system ")
    start = text.index(b"\n", start) + 1
    end = text.index(b"\n\\.\n", start)
    rows = text[start:end].split(b"\n")
    crlf = b"\r\n".join(rows[:2]) + b"\r\n\\.\r\n" + insert + b"\n".join(rows[2:]) + b"\n"
    return text[:start] + crlf + text[end + 1:]


ATTACKS = {
    "shell-without-restrict": lambda t, m: without_restrict(after_settings(t, b"\\! touch %s\n" % m)),
    "shell-mid-line": lambda t, m: without_restrict(after_settings(t, b"SELECT 1; \\! touch %s\n" % m)),
    "write-a-file": lambda t, m: without_restrict(after_settings(t, b"\\o %s\nSELECT 'pwned';\n\\o\n" % m)),
    "unrestrict-with-the-dump-s-key": lambda t, m: in_the_middle(t, b"\\unrestrict %s\n\\! touch %s\n\\restrict %s\n" % (
        restrict_key(t), m, restrict_key(t))),
    "after-a-crlf-copy-end": lambda t, m: crlf_copy_then(t, b"\\! touch %s\n" % m),
    "copy-to-program": lambda t, m: t.replace(b"COPY lift_simulator.lift_system (", b"COPY lift_simulator.lift_system "
                                              b"(id) TO PROGRAM 'touch %s'; COPY lift_simulator.lift_system (" % m, 1),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_a_hostile_plain_dump_never_runs_and_is_refused_before_anything_is_created(cluster, workdir, plain_text,
                                                                                   marker, attack):
    path = write_dump(workdir, ATTACKS[attack](plain_text, marker.encode()))
    target = clone_database(cluster, "hostile_%s" % attack.replace("-", "_"))
    before, names, rights = fingerprint(cluster, target), databases(cluster), owner_rights(cluster)

    quick = verify(cluster, path, expect_ok=False)
    assert quick["failed_checks"] == ["structure"] and "refused" in quick["msg"]
    full = verify(cluster, path, level="restore", expect_ok=False)
    assert "structure" in full["msg"]
    for options in (dict(), dict(tables=["lift_simulator.lift_system"], truncate=True)):
        refused = restore(cluster, path, database=target, expect_ok=False, **options)
        assert "failed verification, nothing was changed" in refused["msg"] and "structure" in refused["msg"]
    assert databases(cluster) == names
    assert fingerprint(cluster, target) == before
    assert owner_rights(cluster) == rights
    drop_databases(cluster, target)


def test_a_patched_custom_archive_runs_nothing(cluster, workdir, marker):
    """The data of a custom archive (no compression) patched, same length, so that the text
    pg_restore prints ends the COPY block early and follows it with a shell command."""
    source = clone_database(cluster, "patched_source")
    filler = "A" * 120
    cluster.psql("CREATE TABLE lift_simulator.notes (id int PRIMARY KEY, body text); "
                 "ALTER TABLE lift_simulator.notes OWNER TO lift_admin; "
                 "INSERT INTO lift_simulator.notes VALUES (1, '%s'), (2, 'second')" % filler, database=source)
    env = cluster.env()
    env["PGDATABASE"] = source
    path = os.path.join(workdir, "lift_simulator_backup_2026-11-17_08-00-01.backup")
    subprocess.run([cluster.bin_path("pg_dump"), "--format=custom", "--compress=0", "-f", path], env=env, check=True)
    payload = b"x\n\\.\r\n\\! touch " + marker.encode() + b"\n"
    with open(path, "rb") as handle:
        data = handle.read()
    assert data.count(filler.encode()) == 1
    with open(path, "wb") as handle:
        handle.write(data.replace(filler.encode(), payload + b"B" * (len(filler) - len(payload))))
    os.chmod(path, 0o644)
    target = clone_database(cluster, "patched_target", template=source)
    before, rights = fingerprint(cluster, target), owner_rights(cluster)
    refused = restore(cluster, path, database=target, tables=["lift_simulator.notes"], truncate=True,
                      expect_ok=False)
    assert "refused" in refused["msg"] and "meta-command" in refused["msg"] and "nothing was changed" in refused["msg"]
    assert fingerprint(cluster, target) == before and owner_rights(cluster) == rights
    drop_databases(cluster, "patched_")


# --- the owner's code ---------------------------------------------------------------------------

ESCALATE = """
CREATE FUNCTION lift_simulator.escalate() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  {body}
END $$;
CREATE FUNCTION lift_simulator.escalate_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM lift_simulator.escalate(); RETURN NEW; END $$;
CREATE FUNCTION lift_simulator.escalate_check(x bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM lift_simulator.escalate(); RETURN true; END $$;
"""
# The owner's code acts only when someone else runs it (a restore). Silent: tries, and hides the
# failure (the restore succeeds). Loud: says as whom it ran (the restore fails).
SILENT = ("IF current_user <> 'lift_admin' THEN EXECUTE 'ALTER ROLE lift_admin SUPERUSER CREATEROLE'; END IF; "
          "EXCEPTION WHEN OTHERS THEN NULL;")
LOUD = ("IF current_user <> 'lift_admin' THEN EXECUTE 'ALTER ROLE lift_admin SUPERUSER CREATEROLE'; END IF; "
        "EXCEPTION WHEN insufficient_privilege THEN RAISE EXCEPTION 'escalation refused: ran as %', current_user;")


def plant(cluster, database, body, where):
    as_owner(cluster, ESCALATE.format(body=body), database)
    if where == "trigger":
        as_owner(cluster, "CREATE TRIGGER escalate BEFORE INSERT ON lift_simulator.simulation_run FOR EACH ROW "
                          "EXECUTE FUNCTION lift_simulator.escalate_trigger()", database)
    elif where == "check":
        as_owner(cluster, "ALTER TABLE lift_simulator.scenario ADD CONSTRAINT escalate "
                          "CHECK (lift_simulator.escalate_check(id))", database)


@pytest.mark.parametrize("fmt,jobs", [("plain", 1), ("custom", 2)], ids=["plain", "custom-jobs2"])
@pytest.mark.parametrize("loud", [False, True], ids=["silent", "loud"])
def test_an_owner_trigger_runs_with_the_owner_s_rights_in_a_selective_restore(cluster, workdir, loud, fmt, jobs):
    """A custom archive's data reaches the selective restore through pg_restore --data-only (jobs
    is accepted and changes nothing there: the rows still go through the loading role's COPY)."""
    db = clone_database(cluster, "owner_trigger_%s_%s" % ("loud" if loud else "silent", fmt))
    made = backup(cluster, os.path.join(workdir, "b"), database=db, format=fmt)
    plant(cluster, db, LOUD if loud else SILENT, "trigger")
    rights = owner_rights(cluster)
    result = restore(cluster, made["path"], database=db, tables=["lift_simulator.simulation_run"], truncate=True,
                     jobs=jobs, expect_ok=not loud)
    if loud:
        # The trigger ran, and as the transient loading role: never as superuser.
        assert re.search(r"escalation refused: ran as lift_simulator_restore_[0-9a-f]{16}", result["msg"])
    else:
        table = "lift_simulator.simulation_run"
        assert result["row_counts"] == {table: made["row_counts"][table]}
    assert owner_rights(cluster) == rights == "f|f|f|f|f|0"
    drop_databases(cluster, db)


@pytest.mark.parametrize("jobs", [1, 2], ids=["jobs1", "jobs2"])
@pytest.mark.parametrize("level", ["verify", "swap", "replace"])
def test_an_owner_check_function_never_runs_as_superuser(cluster, workdir, level, jobs):
    """A CHECK constraint of the owner's runs for every row a restore loads; with jobs 2,
    pg_restore's parallel workers load without one transaction, each its own session."""
    db = clone_database(cluster, "owner_check_%s_%d" % (level, jobs))
    plant(cluster, db, LOUD, "check")
    made = backup(cluster, os.path.join(workdir, "b"), database=db, format="custom")
    rights, names, before = owner_rights(cluster), databases(cluster), fingerprint(cluster, db)
    if level == "verify":
        result = verify(cluster, made["path"], level="restore", database=db, jobs=jobs, expect_ok=False)
    else:
        result = restore(cluster, made["path"], database=db, strategy=level, force=True, jobs=jobs, expect_ok=False)
    assert re.search(r"escalation refused: ran as lift_simulator_restore_[0-9a-f]{16}", result["msg"])
    assert owner_rights(cluster) == rights
    if level != "replace":
        assert databases(cluster) == names and fingerprint(cluster, db) == before
    drop_databases(cluster, db)


def test_an_owner_index_expression_never_runs_as_superuser(cluster, workdir):
    db = clone_database(cluster, "owner_index")
    as_owner(cluster, ESCALATE.format(body=SILENT), db)
    as_owner(cluster, "CREATE FUNCTION lift_simulator.escalate_key(x bigint) RETURNS bigint LANGUAGE plpgsql "
                      "IMMUTABLE AS $$ BEGIN PERFORM lift_simulator.escalate(); RETURN x; END $$; "
                      "CREATE INDEX escalate ON lift_simulator.scenario (lift_simulator.escalate_key(id))", db)
    made = backup(cluster, os.path.join(workdir, "b"), database=db)
    rights = owner_rights(cluster)
    verify(cluster, made["path"], level="restore", database=db)
    restore(cluster, made["path"], database=db, force=True)
    assert owner_rights(cluster) == rights == "f|f|f|f|f|0"
    drop_databases(cluster, db)


@pytest.mark.parametrize("loud", [False, True], ids=["silent", "loud"])
def test_an_owner_index_expression_runs_with_the_owner_s_rights_in_a_selective_restore(cluster, workdir, loud):
    """The index is evaluated for every row the selective restore loads into the live table."""
    db = clone_database(cluster, "owner_index_tables_%s" % ("loud" if loud else "silent"))
    made = backup(cluster, os.path.join(workdir, "b"), database=db)
    as_owner(cluster, ESCALATE.format(body=LOUD if loud else SILENT), db)
    as_owner(cluster, "CREATE FUNCTION lift_simulator.escalate_key(x bigint) RETURNS bigint LANGUAGE plpgsql "
                      "IMMUTABLE AS $$ BEGIN PERFORM lift_simulator.escalate(); RETURN x; END $$; "
                      "CREATE INDEX escalate ON lift_simulator.simulation_run (lift_simulator.escalate_key(id))", db)
    rights, before = owner_rights(cluster), fingerprint(cluster, db)
    table = "lift_simulator.simulation_run"
    result = restore(cluster, made["path"], database=db, tables=[table], truncate=True, expect_ok=not loud)
    if loud:
        # It ran, as the transient loading role, and the restore changed nothing.
        assert re.search(r"escalation refused: ran as lift_simulator_restore_[0-9a-f]{16}", result["msg"])
        assert "nothing was changed" in result["msg"] and fingerprint(cluster, db) == before
    else:
        assert result["row_counts"] == {table: made["row_counts"][table]}
    assert owner_rights(cluster) == rights == "f|f|f|f|f|0"
    drop_databases(cluster, db)


# A volatile column default of the owner's: tries to make the owner superuser (quietly), and
# records as whom it ran in the row it fills.
WHO_DEFAULT = """
CREATE FUNCTION lift_simulator.who_default() RETURNS text LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  BEGIN
    IF current_user <> 'lift_admin' THEN EXECUTE 'ALTER ROLE lift_admin SUPERUSER CREATEROLE'; END IF;
  EXCEPTION WHEN OTHERS THEN NULL;
  END;
  RETURN current_user || ' ' || session_user;
END $$;
"""
LOADER = r"lift_simulator_restore_[0-9a-f]{16}"


def who_filled(cluster, database, table):
    return cluster.psql("SELECT DISTINCT who FROM %s ORDER BY 1" % table, database=database).splitlines()


def test_an_owner_column_default_runs_with_the_owner_s_rights_in_a_selective_restore(cluster, workdir):
    """The owner adds a column after the backup: its default fills it for every row restored."""
    db = clone_database(cluster, "owner_default_tables")
    made = backup(cluster, os.path.join(workdir, "b"), database=db)
    as_owner(cluster, WHO_DEFAULT + "ALTER TABLE lift_simulator.simulation_run ADD COLUMN who text "
                                    "DEFAULT lift_simulator.who_default()", db)
    rights = owner_rights(cluster)
    table = "lift_simulator.simulation_run"
    result = restore(cluster, made["path"], database=db, tables=[table], truncate=True)
    assert result["row_counts"] == {table: made["row_counts"][table]}
    filled = who_filled(cluster, db, table)
    assert len(filled) == 1 and re.match(r"^(%s) \1$" % LOADER, filled[0]), filled
    assert owner_rights(cluster) == rights == "f|f|f|f|f|0"
    drop_databases(cluster, db)


@pytest.mark.parametrize("strategy", ["swap", "replace"])
def test_a_column_default_in_a_backup_runs_with_the_owner_s_rights_in_a_full_restore(
        cluster, workdir, plain_text, strategy):
    """pg_dump names every column in its COPY statements, but a backup anybody could have written
    need not: its COPY leaves the column out, so the default fills it for every row loaded."""
    planted = (WHO_DEFAULT + "CREATE TABLE lift_simulator.planted (id integer NOT NULL, "
               "who text DEFAULT lift_simulator.who_default());\n"
               "COPY lift_simulator.planted (id) FROM stdin;\n1\n2\n3\n\\.\n").encode()
    path = write_dump(workdir, in_the_middle(plain_text, planted))
    db = clone_database(cluster, "default_full_%s" % strategy)
    rights = owner_rights(cluster)
    result = restore(cluster, path, database=db, strategy=strategy, force=True, keep_previous=False)
    assert result["changed"] is True
    assert cluster.psql("SELECT count(*) FROM lift_simulator.planted", database=db) == "3"
    filled = who_filled(cluster, db, "lift_simulator.planted")
    assert len(filled) == 1 and re.match(r"^(%s) \1$" % LOADER, filled[0]), filled
    assert owner_rights(cluster) == rights == "f|f|f|f|f|0"
    drop_databases(cluster, db)


def test_a_racing_owner_cannot_connect_to_the_staging_database(cluster, workdir):
    """With jobs 2 there is no single transaction: the owner tries, all along the load, to connect
    to the staging database and plant a trigger between CREATE TABLE and COPY."""
    db = clone_database(cluster, "racing_owner")
    made = backup(cluster, os.path.join(workdir, "b"), database=db, format="custom")
    plant_sql = ESCALATE.format(body=SILENT) + (
        "CREATE TRIGGER escalate BEFORE INSERT ON lift_simulator.simulation_run FOR EACH ROW "
        "EXECUTE FUNCTION lift_simulator.escalate_trigger()")
    attempts, refusals, planted = [], [], []
    stop = threading.Event()

    def race():
        import psycopg2

        while not stop.is_set():
            for (name,) in [tuple(r.split("|")) for r in cluster.psql(
                    "SELECT datname FROM pg_database WHERE datname LIKE 'racing_owner_staging_%'").splitlines()]:
                attempts.append(name)
                try:
                    conn = psycopg2.connect(host="127.0.0.1", port=cluster.port, user="lift_admin",
                                            password=LIFT_ADMIN_PASSWORD, dbname=name)
                except psycopg2.Error as exc:
                    refusals.append(str(exc))
                    continue
                try:
                    conn.autocommit = True
                    with conn.cursor() as cur:
                        cur.execute(plant_sql)
                    planted.append(name)
                except psycopg2.Error:
                    pass
                finally:
                    conn.close()
            time.sleep(0.005)

    thread = threading.Thread(target=race)
    rights = owner_rights(cluster)
    thread.start()
    try:
        result = restore(cluster, made["path"], database=db, jobs=2)
    finally:
        stop.set()
        thread.join()
    assert result["changed"] is True
    assert attempts, "the race never saw the staging database"
    assert planted == [] and len(refusals) == len(attempts)
    assert all("permission denied for database" in r or "does not exist" in r or "not currently accepting" in r
               for r in refusals)
    assert owner_rights(cluster) == rights
    drop_databases(cluster, db)


# --- catalog functions and operators shadowed in public (CVE-2018-1058) -------------------------

# The backup (or the owner, in the live database's public schema) defines functions and operators
# that match the argument types of the collection's catalog queries exactly, so that they win over
# pg_catalog's in a session whose search_path includes public: quote_ident(name), = (oid, regclass),
# = (oid, integer); and, as the database's owner may, it puts public before pg_catalog in the
# database's search_path, so that even to_regclass(text) is public's. They act only in the collection's superuser sessions (so that the test's own
# psql, which reads the same catalogs, never sets them off) and leave a file naming where they ran.
SHADOW_MARKER = """
CREATE FUNCTION public.lift_shadow(tag text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF pg_catalog.current_setting('application_name') LIKE 'lift_simulator.postgresql%' THEN
    BEGIN
      EXECUTE pg_catalog.format('COPY (SELECT %L) TO %L', tag || ' ran as ' || current_user,
                                '{marker}-' || tag);
      EXECUTE 'ALTER ROLE lift_admin SUPERUSER CREATEROLE';
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
  END IF;
END $$;
"""
# What the proof of an unchanged database meets (provenance.unchanged: c.oid = <an integer>).
SHADOW_OID_EQ_INTEGER = """
CREATE FUNCTION public.lift_oid_eq_integer(oid, integer) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM public.lift_shadow('oid_eq_integer'); RETURN $1 OPERATOR(pg_catalog.=) $2::oid; END $$;
CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = integer, FUNCTION = public.lift_oid_eq_integer);
"""
SHADOWS = SHADOW_MARKER + """
CREATE FUNCTION public.quote_ident(name) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM public.lift_shadow('quote_ident'); RETURN pg_catalog.quote_ident($1::text); END $$;
CREATE FUNCTION public.lift_oid_eq_regclass(oid, regclass) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM public.lift_shadow('oid_eq_regclass'); RETURN $1 OPERATOR(pg_catalog.=) $2::oid; END $$;
CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = regclass, FUNCTION = public.lift_oid_eq_regclass);
CREATE FUNCTION public.to_regclass(text) RETURNS regclass LANGUAGE plpgsql AS $$
BEGIN PERFORM public.lift_shadow('to_regclass'); RETURN pg_catalog.to_regclass($1); END $$;
DO $$ BEGIN
  EXECUTE pg_catalog.format('ALTER DATABASE %I SET search_path = public, pg_catalog', pg_catalog.current_database());
END $$;
""" + SHADOW_OID_EQ_INTEGER


@pytest.fixture
def shadow_marker(cluster):
    """The prefix of the files a shadowed function leaves where it ran as superuser; afterwards
    the owner's rights are put back, whatever happened."""
    prefix = "/tmp/lift-shadow-%s" % uuid.uuid4().hex
    yield prefix
    for path in glob.glob(prefix + "-*"):
        os.unlink(path)
    cluster.psql("ALTER ROLE lift_admin NOSUPERUSER NOCREATEROLE")


def shadows_that_ran(prefix):
    found = []
    for path in sorted(glob.glob(prefix + "-*")):
        with open(path) as handle:
            found.append(handle.read().strip())
    return found


def unpinned_superuser_session(cluster, database, sql):
    """What the collection's superuser sessions did before their search_path was pinned: the
    control that shows the shadows are live (they run, and make the owner superuser)."""
    env = dict(cluster.env(), PGAPPNAME="lift_simulator.postgresql control", PGDATABASE=database)
    subprocess.run([cluster.bin_path("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], env=env, check=True,
                   stdout=subprocess.DEVNULL)


def assert_no_shadow_ran(cluster, prefix, rights, stage):
    ran = shadows_that_ran(prefix)
    assert ran == [], "%s: shadowed catalog functions ran as superuser: %s" % (stage, "; ".join(ran))
    assert owner_rights(cluster) == rights == "f|f|f|f|f|0", stage


def shadowing_dump(directory, plain_text, prefix, shadows=SHADOWS):
    """A plain dump of the fixture that also creates the shadows in its public schema."""
    return write_dump(directory, after_settings(plain_text, shadows.format(marker=prefix).encode()))


@pytest.mark.parametrize("level", ["swap", "already-restored", "replace", "verify"])
def test_catalog_functions_a_backup_shadows_never_run_as_superuser(cluster, workdir, plain_text, shadow_marker,
                                                                   level):
    """The staging (or scratch) database holds what the dump created, public schema included,
    and the superuser's sessions into it (ownership, provenance) must not resolve to it. The
    already-restored case plants only what the proof of an unchanged database meets, so that
    it is that proof, in the live database, which is tried."""
    path = shadowing_dump(workdir, plain_text, shadow_marker,
                          SHADOW_MARKER + SHADOW_OID_EQ_INTEGER if level == "already-restored" else SHADOWS)
    db = clone_database(cluster, "shadow_%s" % level.replace("-", "_"))
    rights = owner_rights(cluster)
    if level == "verify":
        verify(cluster, path, level="restore", database=db)
    else:
        first = restore(cluster, path, database=db, strategy="replace" if level == "replace" else "swap",
                        force=level == "replace", keep_previous=False)
        assert first["changed"] is True
        assert_no_shadow_ran(cluster, shadow_marker, rights, "the restore")
        # The shadows came with the backup and are the owner's now.
        assert cluster.psql("SELECT pg_get_userbyid(proowner) FROM pg_proc WHERE oid = "
                            "'public.lift_shadow(text)'::regprocedure", database=db) == "lift_admin"
        if level == "already-restored":
            # The proof that the database is unchanged reads it as the superuser.
            same = restore(cluster, path, database=db, keep_previous=False)
            assert same["changed"] is False and "unchanged since" in same["msg"]
    assert_no_shadow_ran(cluster, shadow_marker, rights, level)
    if level == "swap":
        # The control: a superuser session without the pinned search_path runs them.
        unpinned_superuser_session(cluster, db, "SELECT quote_ident(nspname) FROM pg_namespace LIMIT 1")
        assert shadows_that_ran(shadow_marker) == ["quote_ident ran as postgres"]
        assert owner_rights(cluster) == "t|t|f|f|f|0"
    drop_databases(cluster, db)


@pytest.mark.parametrize("operation", ["backup", "tables"])
def test_catalog_functions_the_owner_shadows_in_the_live_database_never_run_as_superuser(
        cluster, workdir, shadow_marker, operation):
    """The owner of the live database owns its public schema (PostgreSQL 15+: pg_database_owner)
    and plants the shadows there; then the collection's sessions into it run: the backup's (as
    postgres), and a selective restore's."""
    db = clone_database(cluster, "owner_shadow_%s" % operation)
    rights = owner_rights(cluster)
    if operation == "backup":
        as_owner(cluster, SHADOWS.format(marker=shadow_marker), db)
        made = backup(cluster, os.path.join(workdir, "b"), database=db)
        assert made["row_counts"]
    else:
        made = backup(cluster, os.path.join(workdir, "b"), database=db)
        as_owner(cluster, SHADOWS.format(marker=shadow_marker), db)
        table = "lift_simulator.simulation_run"
        result = restore(cluster, made["path"], database=db, tables=[table], truncate=True)
        assert result["row_counts"] == {table: made["row_counts"][table]}
    assert_no_shadow_ran(cluster, shadow_marker, rights, operation)
    unpinned_superuser_session(cluster, db, "SELECT c.oid FROM pg_class c WHERE c.oid = to_regclass('pg_class')")
    assert shadows_that_ran(shadow_marker) == ["oid_eq_regclass ran as postgres", "to_regclass ran as postgres"]
    drop_databases(cluster, db)
