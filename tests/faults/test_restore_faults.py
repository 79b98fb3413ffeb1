# -*- coding: utf-8 -*-
"""Faults injected into restores: the live database is always either the old one or the new one,
complete; staging leftovers are cleaned by the next run."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shutil
import signal
import subprocess
import threading

import pytest

import processes
from helpers import backup, clone_database, databases, drop_databases, listing, provenance_of, restore
from pgcompare import fingerprint
from pglab import SUPERUSER_PASSWORD, PgCluster, load_fixture, postgres_owned_dir, run_playbook


@pytest.fixture(scope="module")
def source(cluster):
    """A 40 MB database and one backup of it in each format, made once."""
    load_fixture(cluster, "restore_src", size_mb=40, seed=21)
    cluster.psql("GRANT ALL PRIVILEGES ON DATABASE restore_src TO lift_admin")
    base = postgres_owned_dir("lift-fault-restore-")
    made = {
        "plain": backup(cluster, base, database="restore_src"),
        "custom": backup(cluster, base, database="restore_src", format="custom", name_template="c_%Y%m%d_%H%M%S"),
    }
    made["fingerprint"] = fingerprint(cluster, "restore_src")
    yield made
    shutil.rmtree(base, ignore_errors=True)
    cluster.psql("DROP DATABASE restore_src WITH (FORCE)")


def fresh_target(cluster, name):
    """A copy of the source, changed after the backup: (name, its fingerprint)."""
    clone_database(cluster, name, template="restore_src")
    cluster.psql("INSERT INTO lift_simulator.lift_system (system_key, display_name) VALUES ('after', 'x'); "
                 "DELETE FROM lift_simulator.simulation_run WHERE status = 'FAILED'", database=name)
    return name, fingerprint(cluster, name)


def start_restore(cluster, path, env=None, **options):
    args = dict(cluster.connection_vars(), path=path)
    args.update(options)
    extra = {"restore_args": args}
    if env:
        extra["module_env"] = env
    holder = {}
    thread = threading.Thread(target=lambda: holder.update(run=run_playbook("restore_module.yml", extra)))
    thread.start()
    return thread, holder


def staging_of(cluster, name):
    return sorted(n for n in databases(cluster) if n.startswith(name + "_staging_"))


def allows_connections(cluster, name):
    return cluster.psql("SELECT datallowconn FROM pg_database WHERE datname = '%s'" % name) == "t"


def client_of(staging_prefix, program):
    def find():
        for pid in processes.find_matching(program, lambda p: any(
                e.startswith(b"PGDATABASE=" + staging_prefix.encode()) for e in processes.environ(p))):
            if processes.bytes_read(pid) > 1024 * 1024:
                return pid
        return None
    return find


@pytest.mark.parametrize("kind, program", [("plain", "psql"), ("custom", "pg_restore")])
def test_restore_client_killed_mid_load(cluster, source, kind, program):
    target, before = fresh_target(cluster, "kill_client_%s" % kind)
    names = databases(cluster)
    # One client that loads everything (jobs: 1); the parallel load's sessions: test_parallel_restore.py.
    thread, holder = start_restore(cluster, source[kind]["path"], database=target, jobs=1)
    pid = processes.wait_for(client_of(target + "_staging_", program), what=program)
    os.kill(pid, signal.SIGKILL)
    thread.join(300)
    result = holder["run"].task("Restore")
    assert holder["run"].rc != 0 and "%s was killed by SIGKILL" % program in result["msg"]
    assert fingerprint(cluster, target) == before
    assert databases(cluster) == names
    drop_databases(cluster, target)


POINTS = [
    # (failpoint, the live database afterwards: old or new)
    ("mid-load", "old"),
    ("restore-staging-loaded", "old"),
    ("restore-swap-before-rename", "old"),
    ("restore-swap-between-renames", "old"),
    ("restore-swap-committed", "new"),
]


@pytest.mark.parametrize("point, outcome", POINTS, ids=[p for p, _o in POINTS])
def test_module_killed_during_a_restore(cluster, source, point, outcome):
    target, before = fresh_target(cluster, "kill_module_%s" % point.replace("-", "_"))
    marks = postgres_owned_dir("lift-fault-marks-")
    env = None if point == "mid-load" else {"LIFT_PG_FAILPOINTS": point, "LIFT_PG_FAILPOINT_DIR": marks}
    # jobs: 1 - mid-load is found by the one psql that loads all of the dump.
    thread, holder = start_restore(cluster, source["plain"]["path"], env=env, database=target, jobs=1)
    if point == "mid-load":
        psql = processes.wait_for(client_of(target + "_staging_", "psql"), what="psql")
        module = processes.parent(psql)
    else:
        module = processes.wait_for_marker(marks, point)
    os.kill(module, signal.SIGKILL)
    thread.join(300)
    assert holder["run"].rc != 0
    if point == "mid-load":
        processes.wait_for(lambda: not processes.alive(psql), timeout=10, what="psql to die with the module")
    # The live name holds one complete database: the old one or the restored one. A swap killed
    # inside its critical section leaves it refusing connections until the next run: look inside
    # anyway, then put that state back for the next run to repair.
    refusing = not allows_connections(cluster, target)
    assert refusing == (point in ("restore-swap-before-rename", "restore-swap-between-renames"))
    if refusing:
        cluster.psql('ALTER DATABASE "%s" WITH ALLOW_CONNECTIONS true' % target)
    expected = before if outcome == "old" else source["fingerprint"]
    assert fingerprint(cluster, target) == expected
    if refusing:
        cluster.psql('ALTER DATABASE "%s" WITH ALLOW_CONNECTIONS false' % target)
    if outcome == "old":
        assert len(staging_of(cluster, target)) == 1
        result = restore(cluster, source["plain"]["path"], database=target)
        assert len(result["removed_leftovers"]) == 1
        assert staging_of(cluster, target) == []
        assert fingerprint(cluster, target) == source["fingerprint"]
    else:
        assert staging_of(cluster, target) == []
        again = restore(cluster, source["plain"]["path"], database=target)
        assert again["changed"] is False
    assert allows_connections(cluster, target)
    drop_databases(cluster, target)
    shutil.rmtree(marks, ignore_errors=True)


def test_a_module_killed_after_the_swap_commit_leaves_its_previous_database_recorded(cluster, source):
    """SIGKILL right after the swap's commit (failpoint restore-swap-committed), before keep_previous
    runs: the replaced database is there, recorded as previous by the swap's own transaction, so
    the next run's keep_previous drops it like any other."""
    target, before = fresh_target(cluster, "kill_recorded")
    marks = postgres_owned_dir("lift-fault-marks-")
    env = {"LIFT_PG_FAILPOINTS": "restore-swap-committed", "LIFT_PG_FAILPOINT_DIR": marks}
    thread, holder = start_restore(cluster, source["plain"]["path"], env=env, database=target, keep_previous=False)
    os.kill(processes.wait_for_marker(marks, "restore-swap-committed"), signal.SIGKILL)
    thread.join(300)
    assert holder["run"].rc != 0
    left = sorted(n for n in databases(cluster) if n.startswith(target + "_pre_restore_"))
    assert len(left) == 1, left  # keep_previous: false never ran
    previous = left[0]
    assert provenance_of(cluster, previous)["kind"] == "previous"
    assert cluster.psql("SELECT for_database FROM lift_simulator_postgresql.databases b JOIN pg_database d "
                        "ON d.oid = b.database_oid AND d.datname = b.database_name WHERE d.datname = '%s'"
                        % previous) == target
    # It holds the replaced database (killed before it could accept connections again: look inside).
    cluster.psql('ALTER DATABASE "%s" WITH ALLOW_CONNECTIONS true' % previous)
    assert fingerprint(cluster, previous) == before
    assert fingerprint(cluster, target) == source["fingerprint"]
    # The next run keeps the newest previous database (its own) and drops the killed run's.
    again = restore(cluster, source["plain"]["path"], database=target, force=True, keep_previous=1)
    assert again["removed_previous"] == [previous]
    assert sorted(n for n in databases(cluster) if n.startswith(target + "_pre_restore_")) == [
        again["previous_database"]]
    drop_databases(cluster, target)
    shutil.rmtree(marks, ignore_errors=True)


def test_disk_full_during_restore(workdir):
    """The data directory on a tmpfs with room for the live database but not for a second copy."""
    data_fs = postgres_owned_dir("lift-fault-datafs-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400m,mode=0755,uid=%d" % os.stat(data_fs).st_uid,
                    "tmpfs", data_fs], check=True)
    pg = PgCluster()
    pg.data = os.path.join(data_fs, "data")
    wal = os.path.join(pg.base, "wal")  # WAL elsewhere: a full pg_wal would stop the server
    try:
        pg.start_fresh(extra_initdb=["--waldir", wal])
        pg.psql("CREATE ROLE lift_admin LOGIN")
        load_fixture(pg, "lift_simulator", size_mb=20, seed=23)
        made = backup(pg, os.path.join(workdir, "b"))
        before = fingerprint(pg, "lift_simulator")
        used_kb = int(subprocess.run(["df", "--output=used", "-k", data_fs], stdout=subprocess.PIPE, check=True,
                                     universal_newlines=True).stdout.split()[1])
        size_kb = int(pg.psql("SELECT pg_database_size('lift_simulator')")) // 1024
        subprocess.run(["mount", "-o", "remount,size=%dk" % (used_kb + size_kb // 2), data_fs], check=True)
        names = databases(pg)
        result = restore(pg, made["path"], expect_ok=False)
        # PostgreSQL words it differently from run to run ("No space left on device", "could not
        # extend file ... wrote only 4096 of 8192 bytes ... Check free disk space"): the module names
        # the condition and the file system whatever the wording.
        assert "the disk is full: the file system of the database cluster (%s" % pg.data in result["msg"]
        assert " MiB free now)" in result["msg"]
        assert databases(pg) == names
        # Room again for the checksum queries' own sorting, then compare.
        subprocess.run(["mount", "-o", "remount,size=400m", data_fs], check=True)
        assert fingerprint(pg, "lift_simulator") == before
    finally:
        pg.destroy()
        subprocess.run(["umount", data_fs], check=False)
        os.rmdir(data_fs)


def damaged(source_path, directory, how):
    target = os.path.join(directory, os.path.basename(source_path))
    with open(source_path, "rb") as handle:
        data = handle.read()
    if how == "truncated":
        data = data[:len(data) // 2]
    elif how == "flipped":
        data = data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 0x04]) + data[len(data) // 2 + 1:]
    elif how == "empty":
        data = b""
    elif how == "foreign":
        data = b"<html>not a dump</html>\n" * 100
    with open(target, "wb") as handle:
        handle.write(data)
    shutil.copy(source_path + ".manifest.json", target + ".manifest.json")
    os.chmod(target, 0o644)
    os.chmod(target + ".manifest.json", 0o644)
    return target


@pytest.mark.parametrize("how", ["truncated", "flipped", "empty", "foreign"])
@pytest.mark.parametrize("kind", ["plain", "custom"])
def test_damaged_backups_are_refused_and_nothing_changes(cluster, source, workdir, kind, how):
    target, before = fresh_target(cluster, "refuse_%s_%s" % (kind, how))
    names = databases(cluster)
    path = damaged(source[kind]["path"], workdir, how)
    result = restore(cluster, path, database=target, expect_ok=False)
    assert "nothing was changed" in result["msg"] or "is empty" in result["msg"] or "not a PostgreSQL dump" in \
        result["msg"]
    assert databases(cluster) == names
    assert fingerprint(cluster, target) == before
    drop_databases(cluster, target)


def test_a_backup_running_during_a_swap_fails_cleanly_or_completes(cluster, source, workdir):
    """pg_dump holds a session on the live database; the swap ends it; the backup leaves nothing."""
    target, _before = fresh_target(cluster, "backup_during_swap")
    dest = os.path.join(workdir, "b")
    holder = {}
    args = dict(cluster.connection_vars(), dest_dir=dest, database=target)
    thread = threading.Thread(target=lambda: holder.update(run=run_playbook("backup_module.yml",
                                                                            {"backup_args": args})))
    thread.start()
    pid = processes.wait_for(lambda: (processes.find("pg_dump", target) or [None])[0], what="pg_dump")
    os.kill(pid, signal.SIGSTOP)
    result = restore(cluster, source["custom"]["path"], database=target)
    os.kill(pid, signal.SIGCONT)
    thread.join(300)
    assert fingerprint(cluster, target) == source["fingerprint"]
    assert result["downtime_s"] < 1
    outcome = holder["run"].task("Backup")
    if outcome.get("failed"):
        assert [e for e in listing(dest) if e != "logs"] == []
    else:
        assert os.path.exists(outcome["manifest_path"])
    drop_databases(cluster, target)


def test_two_restores_of_one_database_do_not_overlap(cluster, source):
    target, _before = fresh_target(cluster, "two_restores")
    marks = postgres_owned_dir("lift-fault-marks-")
    env = {"LIFT_PG_FAILPOINTS": "restore-staging-loaded", "LIFT_PG_FAILPOINT_DIR": marks}
    # jobs: 1 - mid-load is found by the one psql that loads all of the dump.
    thread, holder = start_restore(cluster, source["plain"]["path"], env=env, database=target, jobs=1)
    first = processes.wait_for_marker(marks, "restore-staging-loaded")
    second = restore(cluster, source["custom"]["path"], database=target, expect_ok=False)
    assert "another restore of \"%s\" is running" % target in second["msg"]
    os.kill(first, signal.SIGKILL)
    thread.join(300)
    third = restore(cluster, source["custom"]["path"], database=target)
    assert len(third["removed_leftovers"]) == 1
    assert fingerprint(cluster, target) == source["fingerprint"]
    drop_databases(cluster, target)
    shutil.rmtree(marks, ignore_errors=True)


@pytest.mark.parametrize("module", ["restore", "verify"])
def test_the_password_is_never_visible_while_a_restore_or_verify_runs(cluster, source, module):
    secret = SUPERUSER_PASSWORD.encode()
    tcp = {"login_host": "127.0.0.1", "login_port": cluster.port, "login_user": "postgres",
           "login_password": SUPERUSER_PASSWORD}
    if module == "restore":
        target, _before = fresh_target(cluster, "secret_restore")
        extra = {"restore_args": dict(tcp, path=source["plain"]["path"], database=target)}
        playbook = "restore_module.yml"
    else:
        extra = {"verify_args": dict(tcp, path=source["custom"]["path"], level="restore")}
        playbook = "verify_module.yml"
    holder = {}
    thread = threading.Thread(target=lambda: holder.update(run=run_playbook(playbook, extra, verbosity=3,
                                                                            json_output=False)))
    before = set(os.listdir("/tmp"))
    thread.start()
    leaks, clients = processes.watch_for_secret(thread, secret, ("psql", "pg_restore"))
    assert holder["run"].rc == 0, holder["run"].stdout[-2000:]
    assert clients and leaks == []
    assert SUPERUSER_PASSWORD not in holder["run"].stdout + holder["run"].stderr
    assert [e for e in set(os.listdir("/tmp")) - before if e.startswith("lift-pg-")] == []
    if module == "restore":
        assert SUPERUSER_PASSWORD not in json.dumps(cluster.psql(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '%s'" % target))
        drop_databases(cluster, target)
