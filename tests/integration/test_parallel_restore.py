# -*- coding: utf-8 -*-
"""The parallel load of a plain dump (jobs > 1: pre-data, the tables' data in parallel sessions,
post-data), driven through ansible-playbook against a real PostgreSQL cluster: the result is the
serial restore's, object for object, and a failing session fails the whole restore with the live
database untouched."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import subprocess
import threading
import time

from helpers import backup, clone_database, databases, drop_databases, restore
from pgcompare import fingerprint

# Privileges and default privileges, which pgcompare's fingerprint does not read. An ACL equal to the
# owner's default (acldefault) means the same as none (NULL) and pg_dump writes neither, so both read
# as '' (a grant later revoked leaves the default spelled out: test_backup_module's read-only role does
# that to the shared fixture database).
ACLS = ("SELECT coalesce(json_agg(x ORDER BY x), '[]') FROM ("
        "SELECT n.nspname || '.' || c.relname || ' ' || coalesce(nullif(c.relacl, "
        "acldefault((CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END)::\"char\", c.relowner))::text, '') AS x FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg\\_%' UNION ALL "
        "SELECT 'schema ' || nspname || ' ' || coalesce(nullif(nspacl, acldefault('n', nspowner))::text, '') "
        "FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' UNION ALL "
        "SELECT 'function ' || p.oid::regprocedure::text || ' ' || "
        "coalesce(nullif(p.proacl, acldefault('f', p.proowner))::text, '') FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "UNION ALL SELECT 'default ' || defaclobjtype::text || ' ' || defaclacl::text FROM pg_default_acl) s")

# Names that must be quoted everywhere: a schema and tables with quotes, dots, semicolons, non-ASCII.
HOSTILE_SCHEMA = '"we""ird. sch;"'
HOSTILE_PARENT = HOSTILE_SCHEMA + '."pa""rent\'; DROP TABLE x; --"'
HOSTILE_CHILD = HOSTILE_SCHEMA + '."chi"" ld Ü;"'  # (pgcompare reads names line by line: no newline)


def everything(cluster, database):
    found = fingerprint(cluster, database)
    found["acls"] = cluster.psql(ACLS, database=database)
    return found


def add_objects(cluster, database):
    """Beyond the fixture: hostile names, a foreign key between them, a trigger, a unique index with
    a comment, a view, a partitioned table with its key and an index, privileges and default
    privileges, a sequence moved by hand."""
    cluster.psql("DO $$ BEGIN CREATE ROLE lift_parallel_reader; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    cluster.psql(
        "SET ROLE lift_admin; "
        "CREATE SCHEMA %(s)s; "
        "CREATE TABLE %(p)s (id int PRIMARY KEY, \"na;me\" text UNIQUE); "
        "CREATE TABLE %(c)s (id bigserial PRIMARY KEY, parent int REFERENCES %(p)s, v jsonb, t text); "
        "INSERT INTO %(p)s SELECT g, 'n' || g FROM generate_series(1, 300) g; "
        "INSERT INTO %(c)s (parent, v, t) SELECT 1 + g %% 300, jsonb_build_object('g', g, 'q', E'it''s \\\\ \\t'), "
        "  repeat(E'x\\\\.y', g %% 7) FROM generate_series(1, 5000) g; "
        "CREATE UNIQUE INDEX \"ix;\"\"u\" ON %(c)s (t, id); "
        "COMMENT ON INDEX %(s)s.\"ix;\"\"u\" IS 'a comment; on an index'; "
        "CREATE FUNCTION %(s)s.touch() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN NEW.t := NEW.t || '!'; "
        "  RETURN NEW; END $f$; "
        "CREATE TRIGGER \"tr;g\" BEFORE INSERT ON %(c)s FOR EACH ROW EXECUTE FUNCTION %(s)s.touch(); "
        "CREATE VIEW %(s)s.\"v;w\" AS SELECT p.id, count(c.id) AS n FROM %(p)s p LEFT JOIN %(c)s c "
        "  ON c.parent = p.id GROUP BY p.id; "
        "GRANT USAGE ON SCHEMA %(s)s TO lift_parallel_reader; "
        "GRANT SELECT ON %(p)s, %(s)s.\"v;w\" TO lift_parallel_reader; "
        "ALTER DEFAULT PRIVILEGES IN SCHEMA %(s)s GRANT SELECT ON TABLES TO lift_parallel_reader; "
        "CREATE TABLE %(s)s.parted (id int PRIMARY KEY, k text) PARTITION BY RANGE (id); "
        "CREATE TABLE %(s)s.parted_1 PARTITION OF %(s)s.parted FOR VALUES FROM (0) TO (1000); "
        "CREATE TABLE %(s)s.parted_2 PARTITION OF %(s)s.parted FOR VALUES FROM (1000) TO (3000); "
        "INSERT INTO %(s)s.parted SELECT g, md5(g::text) FROM generate_series(0, 2999) g; "
        "CREATE INDEX parted_k ON %(s)s.parted (k); "
        "SELECT setval(pg_get_serial_sequence('%(cq)s', 'id'), 90000)"
        % dict(s=HOSTILE_SCHEMA, p=HOSTILE_PARENT, c=HOSTILE_CHILD, cq=HOSTILE_CHILD.replace("'", "''")),
        database=database)


def test_a_parallel_restore_equals_the_serial_one(cluster, workdir):
    db = clone_database(cluster, "parallel_equal")
    add_objects(cluster, db)
    made = backup(cluster, os.path.join(workdir, "b"), database=db, format="plain")
    before = everything(cluster, db)
    cluster.psql("DELETE FROM %s WHERE id > 10; DROP VIEW %s.\"v;w\"" % (HOSTILE_CHILD, HOSTILE_SCHEMA), database=db)

    serial = restore(cluster, made["path"], database=db, jobs=1)
    assert serial["load"].startswith("serial: jobs is 1")
    after_serial = everything(cluster, db)
    assert after_serial == before
    cluster.psql("DELETE FROM %s WHERE id > 10" % HOSTILE_CHILD, database=db)

    parallel = restore(cluster, made["path"], database=db, jobs=2, force=True)
    assert parallel["load"].startswith("parallel: 2 sessions for the data of "), parallel["load"]
    # The fixture's one big table (simulation_run) is cut into two pieces: more parts than tables.
    tables, parts = re.match(r"parallel: 2 sessions for the data of (\d+) tables in (\d+) parts, 2 for \d+ key and index builds",
                             parallel["load"]).groups()
    assert int(parts) > int(tables), parallel["load"]
    assert everything(cluster, db) == after_serial
    assert parallel["row_counts"] == serial["row_counts"]
    # The default (the number of cores: 2 on this machine, 1 elsewhere) takes the same path.
    default = restore(cluster, made["path"], database=db, force=True)
    assert default["load"].startswith("parallel" if (os.cpu_count() or 1) > 1 else "serial")
    assert everything(cluster, db) == before
    drop_databases(cluster, db)


def test_a_compressed_plain_dump_loads_serially_and_says_why(cluster, workdir):
    db = clone_database(cluster, "parallel_zstd")
    made = backup(cluster, os.path.join(workdir, "b"), database=db, format="plain", compression="zstd")
    before = everything(cluster, db)
    result = restore(cluster, made["path"], database=db, jobs=2)
    assert result["load"] == "serial: the dump is compressed or encrypted (read as one stream)"
    assert everything(cluster, db) == before
    drop_databases(cluster, db)


def test_a_partitioned_table_loaded_through_its_root_restores_in_parallel(cluster, workdir):
    """pg_dump copies the data of a table hash-partitioned on an enum through its root (since
    15.3): a partitioned table, which holds no rows of its own and cannot be truncated ONLY."""
    db = clone_database(cluster, "parallel_root")
    cluster.psql("SET ROLE lift_admin; CREATE TYPE public.color AS ENUM ('r', 'g'); "
                 "CREATE TABLE public.h (c public.color, n int) PARTITION BY HASH (c); "
                 "CREATE TABLE public.h0 PARTITION OF public.h FOR VALUES WITH (modulus 1, remainder 0); "
                 "INSERT INTO public.h SELECT 'r', g FROM generate_series(1, 50) g", database=db)
    made = backup(cluster, os.path.join(workdir, "b"), database=db, format="plain")
    with open(made["path"], "rb") as handle:
        assert b"COPY public.h (c, n) FROM stdin;" in handle.read()  # through the root
    before = everything(cluster, db)
    result = restore(cluster, made["path"], database=db, jobs=2, force=True)
    assert result["load"].startswith("parallel: 2 sessions"), result["load"]
    assert everything(cluster, db) == before
    assert cluster.psql("SELECT count(*) FROM public.h0", database=db) == "50"
    drop_databases(cluster, db)


def earlier_dump(cluster, workdir, database, mutate):
    """A plain dump of ``database`` as an earlier process made it (no manifest), changed by ``mutate``."""
    good = os.path.join(workdir, "good.sql")
    env = cluster.env()
    env["PGDATABASE"] = database
    subprocess.run([cluster.bin_path("pg_dump"), "-f", good], env=env, check=True)
    with open(good, "rb") as handle:
        text = mutate(handle.read())
    path = os.path.join(workdir, "lift_simulator_backup_20261117_080001.sql")
    with open(path, "wb") as handle:
        handle.write(text)
    os.chmod(path, 0o644)
    return path


def leftover_roles(cluster):
    return cluster.psql("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'lift\\_simulator\\_restore\\_%'")


def test_a_bad_row_in_one_session_fails_the_restore_and_changes_nothing(cluster, workdir):
    db = clone_database(cluster, "parallel_bad_row")

    def bad_row(text):
        # The last row of simulation_run's data (the largest table: the first a session takes) gets
        # a field that is not an integer.
        start = text.index(b"COPY lift_simulator.simulation_run ")
        end = text.index(b"\n\\.\n", start)
        last = text.rindex(b"\n", start, end) + 1
        return text[:last] + b"not-a-number\t" + text[last:]

    path = earlier_dump(cluster, workdir, db, bad_row)
    cluster.psql("INSERT INTO lift_simulator.lift_system (system_key, display_name) VALUES ('after', 'x')", database=db)
    before = everything(cluster, db)
    names = databases(cluster)
    roles = leftover_roles(cluster)
    result = restore(cluster, path, database=db, jobs=2, expect_ok=False)
    # The bad row is the table's last: in the last part of its data (the table is cut in two).
    assert "loading the data of lift_simulator.simulation_run (part 2 of 2) failed" in result["msg"], result["msg"]
    assert "invalid input syntax" in result["msg"] or "extra data" in result["msg"], result["msg"]
    assert databases(cluster) == names
    assert leftover_roles(cluster) == roles
    assert everything(cluster, db) == before
    drop_databases(cluster, db)


def test_a_killed_loader_session_fails_the_restore_and_changes_nothing(cluster, workdir):
    """One of the data sessions is ended by pg_terminate_backend while it loads: the restore
    fails, the other session is cancelled, the live database is as it was."""
    db = clone_database(cluster, "parallel_killed")
    # A table whose CHECK (a function of the owner's) takes a moment per row when a restore loads
    # it, so that its COPY is still running when the test finds it.
    cluster.psql("SET ROLE lift_admin; "
                 "CREATE FUNCTION public.slow_ok(int) RETURNS boolean LANGUAGE plpgsql AS "
                 "$f$ BEGIN IF current_user LIKE 'lift\\_simulator\\_restore\\_%' THEN PERFORM pg_sleep(0.002); "
                 "END IF; RETURN true; END $f$; "
                 "CREATE TABLE public.slow_table (id int CHECK (public.slow_ok(id))); "
                 "INSERT INTO public.slow_table SELECT generate_series(1, 20000)", database=db)
    path = earlier_dump(cluster, workdir, db, lambda text: text)
    before = everything(cluster, db)
    names = databases(cluster)
    outcome = {}

    def run():
        outcome["result"] = restore(cluster, path, database=db, jobs=2, expect_ok=False)

    runner = threading.Thread(target=run)
    runner.start()
    killed = ""
    deadline = time.monotonic() + 240
    while not killed and runner.is_alive() and time.monotonic() < deadline:
        killed = cluster.psql("SELECT string_agg(pg_terminate_backend(pid)::text, ',') FROM pg_stat_activity "
                              "WHERE usename LIKE 'lift\\_simulator\\_restore\\_%' AND query LIKE 'COPY %slow_table%'")
        if not killed:
            time.sleep(0.05)
    runner.join(300)
    assert killed == "true", "the loading session of slow_table was not found"
    result = outcome["result"]
    assert "loading the data of public.slow_table failed" in result["msg"], result["msg"]
    assert databases(cluster) == names
    assert everything(cluster, db) == before
    drop_databases(cluster, db)
