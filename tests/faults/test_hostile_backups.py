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


@pytest.mark.parametrize("loud", [False, True], ids=["silent", "loud"])
def test_an_owner_trigger_runs_with_the_owner_s_rights_in_a_selective_restore(cluster, workdir, loud):
    db = clone_database(cluster, "owner_trigger_%s" % ("loud" if loud else "silent"))
    made = backup(cluster, os.path.join(workdir, "b"), database=db)
    plant(cluster, db, LOUD if loud else SILENT, "trigger")
    rights = owner_rights(cluster)
    result = restore(cluster, made["path"], database=db, tables=["lift_simulator.simulation_run"], truncate=True,
                     expect_ok=not loud)
    if loud:
        # The trigger ran, and as the transient loading role: never as superuser.
        assert re.search(r"escalation refused: ran as lift_simulator_restore_[0-9a-f]{16}", result["msg"])
    else:
        table = "lift_simulator.simulation_run"
        assert result["row_counts"] == {table: made["row_counts"][table]}
    assert owner_rights(cluster) == rights == "f|f|f|f|f|0"
    drop_databases(cluster, db)


@pytest.mark.parametrize("level", ["verify", "swap", "replace"])
def test_an_owner_check_function_never_runs_as_superuser(cluster, workdir, level):
    """A CHECK constraint of the owner's runs for every row a restore loads."""
    db = clone_database(cluster, "owner_check_%s" % level)
    plant(cluster, db, LOUD, "check")
    made = backup(cluster, os.path.join(workdir, "b"), database=db, format="custom")
    rights, names, before = owner_rights(cluster), databases(cluster), fingerprint(cluster, db)
    if level == "verify":
        result = verify(cluster, made["path"], level="restore", database=db, expect_ok=False)
    else:
        result = restore(cluster, made["path"], database=db, strategy=level, force=True, expect_ok=False)
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
