# -*- coding: utf-8 -*-
"""Faults injected into backups: each test asserts that nothing was lost and nothing half-made remains.

pg_dump and the module are killed with SIGKILL at several points (pg_dump is frozen with SIGSTOP and
let run in small steps until it has written the wanted amount, so the point is reached
deterministically); the disk fills up; the server stops; backups run concurrently; the password is
watched for in every process's argv and environment while they run.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import signal
import subprocess
import threading
import time

import pytest

import processes
from helpers import backup, listing, verify
from pglab import LIFT_ADMIN_PASSWORD, load_fixture, own_cluster, postgres_owned_dir, run_playbook

FORMATS = [("plain", "none"), ("plain", "zstd"), ("custom", "gzip"), ("directory", "gzip")]
FORMAT_IDS = ["%s-%s" % f for f in FORMATS]


@pytest.fixture(scope="module")
def fault_db(cluster):
    """A 40 MB lift_simulator database: big enough to catch pg_dump in the middle of its work."""
    load_fixture(cluster, "fault_src", size_mb=40, seed=11)
    yield "fault_src"
    cluster.psql("DROP DATABASE fault_src WITH (FORCE)")


@pytest.fixture(scope="module")
def full_sizes(cluster, fault_db):
    """How many bytes pg_dump writes for a whole backup in each format (to aim at its end)."""
    base = postgres_owned_dir("lift-fault-sizes-")
    sizes = {}
    for fmt, compression in FORMATS:
        made = backup(cluster, base, database=fault_db, format=fmt, compression=compression,
                      name_template="%s_%s" % (fmt, compression))
        sizes[(fmt, compression)] = made["size_bytes"]
    subprocess.run(["rm", "-rf", base], check=True)
    return sizes


def start_backup(cluster, dest, env=None, **options):
    """Run the backup module in a thread; returns (thread, holder with the run when done)."""
    args = dict(cluster.connection_vars(), dest_dir=dest)
    args.update(options)
    holder = {}
    extra = {"backup_args": args}
    if env:
        extra["module_env"] = env
    thread = threading.Thread(target=lambda: holder.update(run=run_playbook("backup_module.yml", extra)))
    thread.start()
    return thread, holder


def freeze_after(pid, wanted_bytes):
    """Freeze ``pid`` once it has written ``wanted_bytes`` (stepping it with SIGCONT/SIGSTOP)."""
    os.kill(pid, signal.SIGSTOP)
    while processes.bytes_written(pid) < wanted_bytes and processes.alive(pid):
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.001)
        os.kill(pid, signal.SIGSTOP)
    return processes.bytes_written(pid)


def nothing_but_logs(directory):
    return [entry for entry in listing(directory) if entry != "logs"] == []


POINTS = {"start": 0.0, "middle": 0.4, "end": 0.9}


@pytest.mark.parametrize("point", sorted(POINTS))
@pytest.mark.parametrize("fmt, compression", FORMATS, ids=FORMAT_IDS)
def test_pg_dump_killed_at_any_point(cluster, workdir, fault_db, full_sizes, fmt, compression, point):
    dest = os.path.join(workdir, "b")
    logs = os.path.join(workdir, "logs")
    thread, holder = start_backup(cluster, dest, database=fault_db, format=fmt, compression=compression,
                                  log_dir=logs)
    pid = processes.wait_for(lambda: (processes.find("pg_dump", fault_db) or [None])[0], what="pg_dump")
    # pg_dump writes a plain dump raw into the pipe: aim at a share of the uncompressed output.
    aim = int(POINTS[point] * full_sizes[("plain", "none") if fmt == "plain" else (fmt, compression)])
    written = freeze_after(pid, aim)
    os.kill(pid, signal.SIGKILL)
    thread.join(300)
    result = holder["run"].task("Backup")
    assert holder["run"].rc != 0, "the backup survived pg_dump's death (written %d)" % written
    assert "pg_dump was killed by SIGKILL" in result["msg"]
    assert nothing_but_logs(dest)
    with open(os.path.join(logs, os.listdir(logs)[0])) as handle:
        assert "FAILED: the dump failed: pg_dump was killed by SIGKILL" in handle.read()


def parent_python(pid):
    return processes.parent(pid)


@pytest.mark.parametrize("fmt, compression", [("plain", "none"), ("plain", "zstd"), ("custom", "gzip")],
                         ids=["plain-none", "plain-zstd", "custom-gzip"])
def test_module_killed_mid_dump_leaves_nothing_and_no_pg_dump(cluster, workdir, fault_db, fmt, compression):
    dest = os.path.join(workdir, "b")
    thread, holder = start_backup(cluster, dest, database=fault_db, format=fmt, compression=compression)
    pid = processes.wait_for(lambda: (processes.find("pg_dump", fault_db) or [None])[0], what="pg_dump")
    freeze_after(pid, 1024 * 1024)
    module = parent_python(pid)
    assert processes.comm(module).startswith("python"), processes.comm(module)
    os.kill(module, signal.SIGKILL)
    os.kill(pid, signal.SIGCONT)
    thread.join(300)
    assert holder["run"].rc != 0
    # pg_dump dies with the module (PR_SET_PDEATHSIG), and the O_TMPFILE vanished with it.
    processes.wait_for(lambda: not processes.alive(pid), timeout=10, what="pg_dump to die")
    assert nothing_but_logs(dest)


def test_module_killed_during_a_directory_dump_is_cleaned_by_the_next_run(cluster, workdir, fault_db):
    dest = os.path.join(workdir, "b")
    # One job: the leader writes the data itself (with jobs, its workers would).
    thread, holder = start_backup(cluster, dest, database=fault_db, format="directory")
    pid = processes.wait_for(lambda: (processes.find("pg_dump", fault_db) or [None])[0], what="pg_dump")
    freeze_after(pid, 1024 * 1024)
    module = parent_python(pid)
    os.kill(module, signal.SIGKILL)
    os.kill(pid, signal.SIGCONT)
    thread.join(300)
    processes.wait_for(lambda: not processes.find("pg_dump", fault_db), timeout=10, what="pg_dump to die")
    partials = [e for e in listing(dest) if ".partial-" in e]
    assert len(partials) == 1 and partials[0].startswith(".") and len(listing(dest)) == 1
    made = backup(cluster, dest, database=fault_db, format="directory", jobs=2)
    assert made["removed_partials"] == [os.path.join(dest, partials[0])]
    name = os.path.basename(made["path"])
    assert listing(dest) == sorted([name, name + ".globals.sql", name + ".manifest.json"])


@pytest.mark.parametrize("fmt, compression", FORMATS, ids=FORMAT_IDS)
def test_module_killed_just_before_publishing_leaves_nothing(cluster, workdir, fault_db, fmt, compression):
    dest = os.path.join(workdir, "b")
    marks = postgres_owned_dir("lift-fault-marks-")
    env = {"LIFT_PG_FAILPOINTS": "backup-before-publish", "LIFT_PG_FAILPOINT_DIR": marks}
    thread, holder = start_backup(cluster, dest, env=env, database=fault_db, format=fmt, compression=compression)
    module = processes.wait_for_marker(marks, "backup-before-publish")
    os.kill(module, signal.SIGKILL)
    thread.join(300)
    assert holder["run"].rc != 0
    if fmt == "directory":
        # pg_dump wrote the folder itself under a hidden partial name: the next run removes it.
        assert all(e.startswith(".") and ".partial-" in e for e in listing(dest))
        made = backup(cluster, dest, database=fault_db, format=fmt, compression=compression)
        assert len(made["removed_partials"]) == 1
        assert [e for e in listing(dest) if ".partial-" in e] == []
    else:
        assert nothing_but_logs(dest)


def test_module_killed_between_backup_and_manifest_leaves_a_complete_backup(cluster, workdir, fault_db):
    """The backup is on disk, complete; without its manifest it is not counted as good."""
    dest = os.path.join(workdir, "b")
    marks = postgres_owned_dir("lift-fault-marks-")
    env = {"LIFT_PG_FAILPOINTS": "backup-before-manifest", "LIFT_PG_FAILPOINT_DIR": marks}
    thread, holder = start_backup(cluster, dest, env=env, database=fault_db)
    module = processes.wait_for_marker(marks, "backup-before-manifest")
    os.kill(module, signal.SIGKILL)
    thread.join(300)
    assert holder["run"].rc != 0
    entries = listing(dest)
    # The backup and its role definitions are published; the manifest, last, is not.
    assert len(entries) == 2 and entries[0].endswith(".sql") and entries[1] == entries[0] + ".globals.sql"
    checked = verify(cluster, os.path.join(dest, entries[0]))
    assert {c["name"]: c["passed"] for c in checked["checks"]}["structure"] is True
    # Without a manifest it can only pass for an earlier process's backup, never for one of ours.
    run = run_playbook("backup_info_module.yml", {"info_args": {"path": dest, "database": fault_db,
                                                                "include_legacy": False}, "run_as": "postgres"})
    info = run.task("Backup info")
    assert run.rc == 0, info
    assert info["newest_good"] is None


@pytest.mark.parametrize("fmt, compression", FORMATS, ids=FORMAT_IDS)
def test_disk_full_during_backup(cluster, fault_db, fmt, compression):
    path = postgres_owned_dir("lift-fault-tmpfs-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755,uid=%d" % os.stat(path).st_uid, "tmpfs", path],
                   check=True)
    try:
        result = backup(cluster, path, expect_ok=False, database=fault_db, format=fmt, compression=compression,
                        check_free_space=False)
        assert "No space left on device" in result["msg"] + result.get("stderr_tail", "") \
            or "no space left on the device" in result["msg"]
        assert listing(path) == []
        used = subprocess.run(["df", "--output=used", path], stdout=subprocess.PIPE, check=True,
                              universal_newlines=True).stdout.split()[1]
        assert used == "0"
    finally:
        subprocess.run(["umount", path], check=True)
        os.rmdir(path)


def test_server_stopped_during_backup(workdir):
    with own_cluster(size_mb=40, seed=13) as pg:
        dest = os.path.join(workdir, "b")
        thread, holder = start_backup(pg, dest, log_dir=os.path.join(workdir, "logs"))
        pid = processes.wait_for(lambda: (processes.find("pg_dump", "lift_simulator") or [None])[0], what="pg_dump")
        freeze_after(pid, 1024 * 1024)
        pg.stop("fast")
        os.kill(pid, signal.SIGCONT)
        thread.join(300)
        result = holder["run"].task("Backup")
        assert holder["run"].rc != 0
        assert "pg_dump failed" in result["msg"] or "the backup failed" in result["msg"]
        assert nothing_but_logs(dest)


def test_concurrent_backups_never_clobber_each_other(cluster, workdir, fault_db):
    dest = os.path.join(workdir, "b")
    runs = [start_backup(cluster, dest, database=fault_db, format="custom") for _i in range(3)]
    for thread, _holder in runs:
        thread.join(300)
    outcomes = [holder["run"].task("Backup") for _thread, holder in runs]
    made = [o for o in outcomes if not o.get("failed")]
    refused = [o for o in outcomes if o.get("failed")]
    assert made, "no backup succeeded"
    for outcome in refused:
        assert "refusing to overwrite" in outcome["msg"] and "already exists" in outcome["msg"]
    names = sorted(os.path.basename(o["path"]) for o in made)
    assert listing(dest) == sorted(names + [n + suffix for n in names for suffix in (".globals.sql", ".manifest.json")])
    for outcome in made:
        assert verify(cluster, outcome["path"])["failed_checks"] == []


def test_the_password_is_never_visible_while_a_backup_runs(cluster, workdir, fault_db):
    """Every process's argv and environment is read every few ms during a password-authenticated
    backup; afterwards the result at -vvv, the logs, the manifest and the files left are searched."""
    cluster.psql("GRANT CONNECT ON DATABASE fault_src TO lift_admin; ALTER DATABASE fault_src OWNER TO lift_admin")
    secret = LIFT_ADMIN_PASSWORD.encode()
    dest = os.path.join(workdir, "b")
    logs = os.path.join(workdir, "logs")
    args = dict(cluster.tcp_vars(), dest_dir=dest, database=fault_db, log_dir=logs, compression="zstd")
    holder = {}
    thread = threading.Thread(target=lambda: holder.update(
        run=run_playbook("backup_module.yml", {"backup_args": args}, verbosity=3, json_output=False)))
    before = set(os.listdir("/tmp"))
    thread.start()
    leaks, seen = processes.watch_for_secret(thread, secret, ("pg_dump",))
    assert holder["run"].rc == 0, holder["run"].stdout[-2000:]
    assert seen == {"pg_dump"}
    assert leaks == []
    texts = [holder["run"].stdout, holder["run"].stderr]
    for root in (workdir,):
        for folder, _dirs, files in os.walk(root):
            for entry in files:
                with open(os.path.join(folder, entry), "rb") as handle:
                    texts.append(handle.read().decode("utf-8", "replace"))
    for entry in set(os.listdir("/tmp")) - before:
        assert not entry.startswith("lift-pg-"), "a passfile directory was left behind: %s" % entry
    assert all(LIFT_ADMIN_PASSWORD not in text for text in texts)
