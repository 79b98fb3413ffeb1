# -*- coding: utf-8 -*-
"""The backup module, driven through ansible-playbook against a real PostgreSQL cluster.

Every backup is restored with the bare PostgreSQL tools and compared with the source: rows,
content checksums, functions, triggers, indexes, constraints, comments, sequences, owners.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import threading
import time

import pytest

import processes

from pglab import LIFT_ADMIN_PASSWORD, SUPERUSER_PASSWORD, load_fixture, own_cluster, postgres_owned_dir, run_playbook
from helpers import backup, listing, restore_with_bare_tools, sha256_file
from pgcompare import fingerprint, row_counts


@pytest.fixture(scope="module")
def source_fingerprint(cluster):
    return fingerprint(cluster, "lift_simulator")


FORMATS = [
    ("plain", None, ".sql"),
    ("plain", "gzip", ".sql.gz"),
    ("plain", "zstd", ".sql.zst"),
    ("plain", "lz4", ".sql.lz4"),
    ("custom", None, ".dump"),
    ("custom", "none", ".dump"),
    ("directory", None, ""),
]


@pytest.mark.parametrize("fmt, compression, suffix", FORMATS,
                         ids=["%s-%s" % (f, c or "default") for f, c, _s in FORMATS])
def test_every_format_restores_to_an_identical_database(cluster, workdir, source_fingerprint, fmt, compression, suffix):
    dest = os.path.join(workdir, "backups")
    options = dict(format=fmt, log_dir=os.path.join(workdir, "logs"))
    if compression:
        options["compression"] = compression
    if fmt == "directory":
        options["jobs"] = 2
    result = backup(cluster, dest, **options)

    name = os.path.basename(result["path"])
    assert name.startswith("lift_simulator_backup_") and name.endswith(suffix)
    assert len(name) == len("lift_simulator_backup_YYYYMMDD_HHMMSS") + len(suffix)
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o700
    assert listing(dest) == sorted([name, name + ".globals.sql", name + ".manifest.json"])
    assert stat.S_IMODE(os.stat(result["manifest_path"]).st_mode) == 0o600
    with open(result["manifest_path"]) as handle:
        manifest = json.load(handle)
    # The cluster's role definitions travel with the backup (pg_dump never carries roles), 0600,
    # recorded in the manifest, without passwords unless asked.
    globals_path = result["globals_path"]
    assert globals_path == os.path.join(dest, name + ".globals.sql")
    assert stat.S_IMODE(os.stat(globals_path).st_mode) == 0o600
    assert manifest["globals"] == {"name": name + ".globals.sql", "sha256": sha256_file(globals_path),
                                   "size_bytes": os.path.getsize(globals_path), "role_passwords": False}
    with open(globals_path) as handle:
        text = handle.read()
    assert "CREATE ROLE lift_admin;" in text and "PASSWORD" not in text and "SCRAM-SHA-256" not in text
    assert manifest["roles"]["lift_admin"] == ["owner"] or "owner" in manifest["roles"]["lift_admin"]

    if fmt == "directory":
        assert stat.S_IMODE(os.stat(result["path"]).st_mode) == 0o700
        for entry in os.listdir(result["path"]):
            assert stat.S_IMODE(os.stat(os.path.join(result["path"], entry)).st_mode) == 0o600
        listing_text = "".join("%s  %s\n" % (sha256_file(os.path.join(result["path"], f)), f)
                               for f in sorted(os.listdir(result["path"])))
        assert manifest["sha256"] == hashlib.sha256(listing_text.encode()).hexdigest()
    else:
        assert stat.S_IMODE(os.stat(result["path"]).st_mode) == 0o600
        assert manifest["sha256"] == sha256_file(result["path"]) == result["sha256"]
        assert manifest["size_bytes"] == os.path.getsize(result["path"]) == result["size_bytes"]

    # The manifest carries everything the strategy and the verify module need.
    for field in ("manifest_version", "database", "host", "server", "pg_dump_version", "format", "compression",
                  "started_at", "finished_at", "duration_s", "size_bytes", "sha256", "row_counts",
                  "flyway_version", "collection_version"):
        assert field in manifest, field
    assert manifest["database"] == "lift_simulator"
    assert manifest["flyway_version"] == "13"
    assert manifest["server"]["version"].startswith(str(manifest["server"]["version_num"] // 10000))
    assert manifest["row_counts"] == row_counts(source_fingerprint)
    assert result["row_counts"] == manifest["row_counts"]
    assert_timings(result, fmt)

    target = "restored_%s_%s" % (fmt, compression or "default")
    restore_with_bare_tools(cluster, result, target)
    restored = fingerprint(cluster, target)
    assert restored == source_fingerprint
    cluster.psql('DROP DATABASE "%s"' % target)

    log_files = listing(os.path.join(workdir, "logs"))
    assert log_files == [name[:len(name) - len(suffix)] + ".log"]
    with open(os.path.join(workdir, "logs", log_files[0])) as handle:
        text = handle.read()
    assert "SUCCESS: %s" % result["path"] in text
    assert "timings: prepare " in text and ", dump " in text


PHASES = ["prepare", "connect", "catalog", "preflight", "dump", "row_counts_wait", "fsync_publish", "publish",
          "close", "manifest", "log"]


def assert_timings(result, fmt):
    """The phases' timings: each phase once, none negative, adding up to the whole run (each is
    rounded to the millisecond); what ran beside the dump is reported apart."""
    timings = result["timings"]
    expected = PHASES[:5] + ["checksum"] + PHASES[5:] if fmt == "directory" else PHASES
    assert sorted(timings) == sorted(expected)
    assert all(isinstance(value, float) and value >= 0 for value in timings.values()), timings
    assert abs(sum(timings.values()) - result["duration_s"]) <= 0.001 * (len(timings) + 1), timings
    # The dump phase holds pg_dump's whole run (a directory archive's hashing comes after it).
    assert timings["dump"] + timings.get("checksum", 0) >= result["dump_duration_s"] - 0.001
    concurrent = result["concurrent_timings"]
    assert sorted(concurrent) == ["checklist", "role_definitions", "row_counts"]
    assert all(value >= 0 for value in concurrent.values()), concurrent


def test_row_counts_come_from_the_dumped_snapshot(cluster, workdir):
    """Rows inserted while the backup runs are either in both the dump and the counts, or in neither."""
    cluster.psql("CREATE DATABASE busy TEMPLATE lift_simulator OWNER lift_admin")
    stop = threading.Event()
    inserted = [0]

    def writer():
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=cluster.port, user="postgres", password=SUPERUSER_PASSWORD,
                                dbname="busy")
        conn.autocommit = True
        with conn.cursor() as cur:
            while not stop.is_set():
                cur.execute("INSERT INTO lift_simulator.lift_system (system_key, display_name) "
                            "VALUES (%s, 'written during the backup')", ("busy-%d" % inserted[0],))
                inserted[0] += 1
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while inserted[0] < 50:
            time.sleep(0.01)
        before = inserted[0]
        result = backup(cluster, os.path.join(workdir, "b"), database="busy")
        during = inserted[0] - before
    finally:
        stop.set()
        thread.join()
    assert during > 0, "the writer made no rows while the backup ran"
    restore_with_bare_tools(cluster, result, "busy_restored")
    restored = row_counts(fingerprint(cluster, "busy_restored"))
    assert restored == result["row_counts"]
    live = int(cluster.psql("SELECT count(*) FROM lift_simulator.lift_system", database="busy"))
    assert live > result["row_counts"]["lift_simulator.lift_system"]
    cluster.psql("DROP DATABASE busy_restored")
    cluster.psql("DROP DATABASE busy")


def test_backup_playbook_with_password_auth_fetches_and_never_shows_the_password(cluster, workdir):
    """playbooks/backup.yml as lift_admin over TCP, at -vvv, fetching to the controller."""
    fetch_dir = os.path.join(workdir, "fetched")
    extra = {"lift_backup_dir": os.path.join(workdir, "backups"), "lift_backup_become_user": "postgres",
             "lift_pg_login_host": "127.0.0.1", "lift_pg_login_port": cluster.port,
             "lift_pg_login_user": "lift_admin", "lift_pg_login_password": LIFT_ADMIN_PASSWORD,
             "lift_backup_compression": "zstd", "lift_backup_fetch": True, "lift_backup_fetch_dir": fetch_dir}
    run = run_playbook("playbooks/backup.yml", extra, verbosity=3, json_output=False)
    assert run.rc == 0, run.stdout[-4000:] + run.stderr[-2000:]
    backups = listing(os.path.join(workdir, "backups"))
    name = backups[0]
    assert name.endswith(".sql.zst")
    assert backups == [name, name + ".globals.sql", name + ".manifest.json", "logs"]
    assert listing(fetch_dir) == sorted([name, name + ".globals.sql", name + ".manifest.json"])
    # Private on the controller too: a 0700 directory, 0600 files.
    assert stat.S_IMODE(os.stat(fetch_dir).st_mode) == 0o700
    assert [stat.S_IMODE(os.stat(os.path.join(fetch_dir, n)).st_mode) for n in listing(fetch_dir)] == [0o600] * 3
    with open(os.path.join(fetch_dir, name + ".manifest.json")) as handle:
        manifest = json.load(handle)
    assert sha256_file(os.path.join(fetch_dir, name)) == manifest["sha256"]
    assert "sha256:   %s" % manifest["sha256"] in run.stdout
    assert "lift_simulator.lift_system_version: " in run.stdout
    everything = [run.stdout, run.stderr]
    for root in (workdir,):
        for folder, _dirs, files in os.walk(root):
            for entry in files:
                with open(os.path.join(folder, entry), "rb") as handle:
                    everything.append(handle.read().decode("utf-8", "replace"))
    for text in everything:
        assert LIFT_ADMIN_PASSWORD not in text


def test_reuse_takes_only_a_recent_backup_of_this_host_and_server(cluster, workdir):
    """What migrate.yml relies on: a backup of another host, or of another server, in the same
    directory is never reused in this one's place."""
    dest = os.path.join(workdir, "b")
    made = backup(cluster, dest, format="custom")
    again = backup(cluster, dest, format="custom", reuse_max_age_minutes=60)
    assert again["reused"] is True and again["changed"] is False and again["path"] == made["path"]
    assert again["sha256"] == made["sha256"] and again["row_counts"] == made["row_counts"]
    # The same files, said to come from another host: passed over, a new backup is taken.
    with open(made["manifest_path"]) as handle:
        manifest = json.load(handle)
    manifest["host"] = "lift-prov-d12.example"
    with open(made["manifest_path"], "w") as handle:
        json.dump(manifest, handle)
    # The new backup must not get the same name (same second) as the one passed over.
    while time.strftime("%Y%m%d_%H%M%S", time.gmtime()) in made["path"]:
        time.sleep(0.05)
    fresh = backup(cluster, dest, format="custom", reuse_max_age_minutes=60)
    assert fresh["reused"] is False and fresh["changed"] is True and fresh["path"] != made["path"]
    assert any("made on lift-prov-d12.example" in r for r in fresh["reuse_passed_over"])
    # Another server (another system identifier) with the same database name: passed over too.
    with own_cluster(size_mb=1, seed=2) as other:
        foreign = backup(other, os.path.join(workdir, "other"), format="custom")
    shutil.copy(foreign["path"], dest)
    shutil.copy(foreign["manifest_path"], dest)
    for copied in (foreign["path"], foreign["manifest_path"]):
        shutil.chown(os.path.join(dest, os.path.basename(copied)), "postgres")
    # Nor the name of the foreign backup copied in (taken a moment ago on the other server).
    while time.strftime("%Y%m%d_%H%M%S", time.gmtime()) in foreign["path"]:
        time.sleep(0.05)
    latest = backup(cluster, dest, format="custom", reuse_max_age_minutes=60)
    assert latest["reused"] is True and latest["path"] == fresh["path"]
    assert any("server system identifier" in r for r in latest["reuse_passed_over"])


def test_check_mode_reports_the_path_and_writes_nothing(cluster, workdir):
    dest = os.path.join(workdir, "never")
    args = dict(cluster.connection_vars(), dest_dir=dest, format="custom")
    run = run_playbook("backup_module.yml", {"backup_args": args}, check=True)
    result = run.task("Backup")
    assert run.rc == 0 and result["changed"] is True
    assert result["path"].startswith(dest + "/lift_simulator_backup_") and result["path"].endswith(".dump")
    assert not os.path.exists(dest)


def assert_nothing_left(directory):
    """No backup, manifest or temporary: at most an empty directory and the logs folder."""
    leftovers = [e for e in listing(directory) if e != "logs"]
    assert leftovers == []


def read_logs(directory):
    texts = []
    for entry in listing(directory):
        with open(os.path.join(directory, entry)) as handle:
            texts.append(handle.read())
    return "\n".join(texts)


def test_wrong_password_fails_clearly_and_leaves_nothing(cluster, workdir):
    dest = os.path.join(workdir, "b")
    wrong = "not-the-Passw0rd"
    result = backup(cluster, dest, expect_ok=False, log_dir=os.path.join(workdir, "logs"),
                    **cluster.tcp_vars(password=wrong))
    assert "authentication failed" in result["msg"]
    assert wrong not in json.dumps(result)
    assert_nothing_left(dest)
    log = read_logs(os.path.join(workdir, "logs"))
    assert "FAILED: cannot connect" in log and wrong not in log


def test_server_down_fails_clearly(cluster, workdir):
    from pglab import free_port

    result = backup(cluster, os.path.join(workdir, "b"), expect_ok=False, login_host="127.0.0.1",
                    login_port=free_port(), login_user="lift_admin", login_password=LIFT_ADMIN_PASSWORD)
    assert "the server is not running or not accepting connections" in result["msg"]
    assert_nothing_left(os.path.join(workdir, "b"))


def test_missing_database_fails_clearly(cluster, workdir):
    result = backup(cluster, os.path.join(workdir, "b"), expect_ok=False, database="no_such_db")
    assert 'database "no_such_db" does not exist' in result["msg"]


def test_missing_pg_dump_fails_clearly(cluster, workdir):
    empty = postgres_owned_dir("lift-it-nobin-")
    result = backup(cluster, os.path.join(workdir, "b"), expect_ok=False, bin_dir=empty)
    assert "pg_dump was not found in %s" % empty in result["msg"]
    assert_nothing_left(os.path.join(workdir, "b"))
    os.rmdir(empty)


def test_role_definitions_failing_beside_the_dump_fail_the_backup_and_leave_nothing(cluster, workdir):
    # pg_dumpall runs while pg_dump dumps: its failure must still fail the backup before anything
    # is published (the dump itself is real and complete).
    bin_dir = postgres_owned_dir("lift-it-bin-")
    try:
        os.symlink(cluster.bin_path("pg_dump"), os.path.join(bin_dir, "pg_dump"))
        fake = os.path.join(bin_dir, "pg_dumpall")
        with open(fake, "w") as handle:
            handle.write('#!/bin/sh\n[ "$1" = --version ] && exec %s --version\n'
                         'echo "pg_dumpall: error: cannot read the roles" >&2\nexit 3\n' % cluster.bin_path("pg_dumpall"))
        os.chmod(fake, 0o755)
        dest = os.path.join(workdir, "b")
        result = backup(cluster, dest, expect_ok=False, bin_dir=bin_dir)
        assert "writing the role definitions failed" in result["msg"]
        assert "pg_dumpall failed with exit code 3" in result["msg"]
        assert "cannot read the roles" in result["stderr_tail"]
        assert_nothing_left(dest)
        # role_definitions: false does without pg_dumpall.
        result = backup(cluster, dest, bin_dir=bin_dir, role_definitions=False)
        assert result["globals_path"] is None and result["concurrent_timings"]["role_definitions"] is None
        assert listing(dest) == sorted([result["name"], result["name"] + ".manifest.json"])
    finally:
        shutil.rmtree(bin_dir, ignore_errors=True)


def test_dest_dir_that_is_a_file_or_not_writable(cluster, workdir):
    a_file = os.path.join(workdir, "file")
    with open(a_file, "w") as handle:
        handle.write("x")
    result = backup(cluster, a_file, expect_ok=False)
    assert "exists and is not a directory" in result["msg"]
    locked = os.path.join(workdir, "root-only")
    os.mkdir(locked, 0o755)  # owned by root; the module runs as postgres
    result = backup(cluster, locked, expect_ok=False)
    assert "is not writable by this user" in result["msg"]
    assert listing(locked) == []


@pytest.fixture
def small_tmpfs():
    path = postgres_owned_dir("lift-it-tmpfs-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k,mode=0755,uid=%d" % os.stat(path).st_uid,
                    "tmpfs", path], check=True)
    yield path
    subprocess.run(["umount", path], check=True)
    os.rmdir(path)


def test_disk_too_small_is_refused_before_pg_dump_starts(cluster, small_tmpfs):
    result = backup(cluster, small_tmpfs, expect_ok=False)
    assert "not enough free space in %s" % small_tmpfs in result["msg"]
    assert listing(small_tmpfs) == []


def test_disk_filling_up_mid_dump_leaves_nothing(cluster, small_tmpfs):
    result = backup(cluster, small_tmpfs, expect_ok=False, check_free_space=False)
    assert "no space left on the device" in result["msg"]
    assert listing(small_tmpfs) == []
    assert subprocess.run(["df", "--output=used", small_tmpfs], stdout=subprocess.PIPE, check=True,
                          universal_newlines=True).stdout.split()[1] == "0"


def _pg_dump_of(database):
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % entry) as handle:
                if handle.read().strip() != "pg_dump" or processes.version_probe(int(entry)):
                    continue
            with open("/proc/%s/environ" % entry, "rb") as handle:
                # Only this test's own run (a descendant of this process), never another run's pg_dump.
                if b"PGDATABASE=" + database.encode() in handle.read().split(b"\0") \
                        and processes.descends_from(int(entry), os.getpid()):
                    return int(entry)
        except OSError:
            continue
    return None


def _bytes_written(pid):
    with open("/proc/%d/io" % pid) as handle:
        for line in handle:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    return 0


@pytest.fixture(scope="module")
def big_database(cluster):
    load_fixture(cluster, "lift_big", size_mb=40, seed=7)
    yield "lift_big"
    cluster.psql("DROP DATABASE lift_big")


@pytest.mark.parametrize("fmt, compression", [("plain", "none"), ("plain", "zstd"), ("custom", "gzip")])
def test_pg_dump_killed_mid_dump_leaves_nothing(cluster, workdir, big_database, fmt, compression):
    dest = os.path.join(workdir, "b")
    logs = os.path.join(workdir, "logs")
    args = dict(cluster.connection_vars(), dest_dir=dest, database=big_database, format=fmt,
                compression=compression, log_dir=logs)
    holder = {}
    runner = threading.Thread(target=lambda: holder.update(
        run=run_playbook("backup_module.yml", {"backup_args": args})))
    runner.start()
    deadline = time.monotonic() + 120
    pid = None
    while pid is None and time.monotonic() < deadline and runner.is_alive():
        pid = _pg_dump_of(big_database)
    assert pid is not None, "pg_dump never showed up"
    # Freeze it, and let it run in short steps until it has written real data.
    os.kill(pid, signal.SIGSTOP)
    while _bytes_written(pid) < 512 * 1024:
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.002)
        os.kill(pid, signal.SIGSTOP)
    written = _bytes_written(pid)
    os.kill(pid, signal.SIGKILL)
    runner.join(300)
    run = holder["run"]
    result = run.task("Backup")
    assert run.rc != 0 and written >= 512 * 1024
    assert "pg_dump was killed by SIGKILL" in result["msg"]
    assert_nothing_left(dest)
    assert "FAILED: the dump failed: pg_dump was killed by SIGKILL" in read_logs(logs)


def test_read_only_backup_role_over_tcp(cluster, workdir, source_fingerprint):
    """A least-privilege role (CONNECT, USAGE, SELECT) is enough for a complete backup."""
    password = "backup-Only-pw"
    cluster.psql("DROP ROLE IF EXISTS backup_user; CREATE ROLE backup_user LOGIN PASSWORD '%s'" % password)
    cluster.psql("GRANT CONNECT ON DATABASE lift_simulator TO backup_user; "
                 "GRANT USAGE ON SCHEMA lift_simulator, public TO backup_user; "
                 "GRANT SELECT ON ALL TABLES IN SCHEMA lift_simulator, public TO backup_user; "
                 "GRANT SELECT ON ALL SEQUENCES IN SCHEMA lift_simulator, public TO backup_user",
                 database="lift_simulator")
    try:
        result = backup(cluster, os.path.join(workdir, "b"), format="custom",
                        **cluster.tcp_vars(user="backup_user", password=password))
        assert result["row_counts"] == row_counts(source_fingerprint)
        restore_with_bare_tools(cluster, result, "restored_by_backup_role")
        assert fingerprint(cluster, "restored_by_backup_role") == source_fingerprint
        cluster.psql("DROP DATABASE restored_by_backup_role")
        # It can read but not write.
        with pytest.raises(subprocess.CalledProcessError):
            cluster.psql("DELETE FROM lift_simulator.lift_system", database="lift_simulator",
                         user="backup_user", password=password)
    finally:
        cluster.psql("DROP OWNED BY backup_user", database="lift_simulator")
        cluster.psql("DROP ROLE backup_user")


# --- client certificates ----------------------------------------------------------------------

def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _certificates(directory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate for the role lift_cert."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=lift-test-ca", cwd=directory)
    with open(os.path.join(directory, "san.ext"), "w") as handle:
        handle.write("subjectAltName=IP:127.0.0.1\n")
    for name, subject, ext in (("server", "/CN=127.0.0.1", ["-extfile", "san.ext"]), ("client", "/CN=lift_cert", [])):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out", name + ".csr",
                 "-subj", subject, cwd=directory)
        _openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", name + ".crt", "-days", "2", *ext, cwd=directory)
    for entry in os.listdir(directory):
        shutil.chown(os.path.join(directory, entry), "postgres", "postgres")
        os.chmod(os.path.join(directory, entry), 0o600)


def test_backup_over_hostssl_with_a_client_certificate(workdir):
    """pg_hba.conf `hostssl ... cert` (clientcert=verify-full): the module and pg_dump both present the
    client certificate (ssl_cert, ssl_key) and check the server's (ssl_mode verify-full, ca_cert)."""
    with own_cluster(size_mb=1) as pg:
        tls = postgres_owned_dir("lift-it-tls-")
        os.chmod(tls, 0o700)
        try:
            _certificates(tls)
            for setting, value in (("ssl_cert_file", "server.crt"), ("ssl_key_file", "server.key"),
                                   ("ssl_ca_file", "ca.crt")):
                pg.psql("ALTER SYSTEM SET %s = '%s'" % (setting, os.path.join(tls, value)))
            pg.psql("ALTER SYSTEM SET ssl = on")
            hba = os.path.join(pg.data, "pg_hba.conf")
            with open(hba) as handle:
                rules = handle.read()
            with open(hba, "w") as handle:
                handle.write("hostssl all lift_cert 127.0.0.1/32 cert\nhost all lift_cert 127.0.0.1/32 reject\n" + rules)
            pg.psql("SELECT pg_reload_conf()")
            deadline = time.monotonic() + 30
            while pg.psql("SELECT setting FROM pg_settings WHERE name = 'ssl'") != "on":
                assert time.monotonic() < deadline, "the server did not turn ssl on"
                time.sleep(0.1)
            pg.psql("CREATE ROLE lift_cert LOGIN")
            pg.psql("GRANT pg_read_all_data, pg_monitor TO lift_cert")
            pg.psql("GRANT CONNECT ON DATABASE lift_simulator TO lift_cert")
            certified = dict(login_host="127.0.0.1", login_port=pg.port, login_user="lift_cert", ssl_mode="verify-full",
                             ca_cert=os.path.join(tls, "ca.crt"), role_definitions=False)
            made = backup(pg, os.path.join(workdir, "tls"), ssl_cert=os.path.join(tls, "client.crt"),
                          ssl_key=os.path.join(tls, "client.key"),
                          connect_params={"ssl_min_protocol_version": "TLSv1.2"}, **certified)
            assert made["changed"] is True and made["row_counts"] == row_counts(fingerprint(pg, "lift_simulator"))
            # Without the certificate the server says no, and the module says why.
            refused = backup(pg, os.path.join(workdir, "tls-refused"), expect_ok=False, **certified)
            assert "certificate" in refused["msg"], refused["msg"]
            # A connect_params entry that would not reach pg_dump is refused before anything happens.
            bad = backup(pg, os.path.join(workdir, "tls-bad"), expect_ok=False, connect_params={"password": "x"},
                         **certified)
            assert "connect_params cannot set password" in bad["msg"] and not os.path.exists(
                os.path.join(workdir, "tls-bad"))
        finally:
            shutil.rmtree(tls, ignore_errors=True)
