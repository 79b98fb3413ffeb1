# -*- coding: utf-8 -*-
"""Encrypted backups: the backup, verify and restore modules with real age and a real PostgreSQL
cluster. The stream is encrypted before it is written; verify checks the header against the
manifest's recipients without a key and reads the whole dump with an identity; restores decrypt
in the stream, and without the right identity change nothing."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import subprocess
import threading

import pytest

import processes
from agekeys import decrypt, encrypted_backup, keys  # noqa: F401 pylint: disable=unused-import
from pglab import run_playbook
from helpers import DECOMPRESS, backup, clone_database, databases, drop_databases, restore, verify
from pgcompare import fingerprint

PREFIX = "enc_"
AGE_MAGIC = b"age-encryption.org/v1\n"
PLAIN_HEADER = b"-- PostgreSQL database dump"


@pytest.fixture
def db(cluster):
    name = clone_database(cluster, PREFIX + "src")
    yield name
    drop_databases(cluster, PREFIX)


# Every format and compression encryption supports with this pg_dump (15: custom archives compress
# with gzip only; zstd and lz4 inside archives need 16), with the name each gets.
EVERY_KIND = [("plain", "none", ".sql.age"), ("plain", "gzip", ".sql.gz.age"), ("plain", "zstd", ".sql.zst.age"),
              ("plain", "lz4", ".sql.lz4.age"), ("custom", "none", ".dump.age"), ("custom", "gzip", ".dump.age")]


@pytest.mark.parametrize("fmt, compression, suffix", EVERY_KIND)
def test_backup_is_encrypted_in_the_stream_and_verifies(cluster, workdir, db, keys, fmt, compression, suffix):
    options = dict(format=fmt)
    if compression:
        options["compression"] = compression
    made = encrypted_backup(cluster, workdir, db, keys, **options)
    assert made["path"].endswith(suffix) and made["encryption"] == "age"
    with open(made["path"], "rb") as handle:
        assert handle.read(len(AGE_MAGIC)) == AGE_MAGIC
    with open(made["manifest_path"]) as handle:
        manifest = json.load(handle)
    assert manifest["encryption"] == "age" and manifest["format"] == fmt and manifest["compression"] == compression
    kinds = sorted(r["type"] for r in manifest["recipients"])
    assert kinds == ["X25519", "ssh-ed25519"]
    escrow = [r for r in manifest["recipients"] if r["type"] == "ssh-ed25519"][0]
    assert escrow["fingerprint"].startswith("SHA256:") and "PRIVATE" not in json.dumps(manifest)
    assert "AGE-SECRET-KEY" not in json.dumps(manifest) and manifest["row_counts"]
    # Both recipients can read it; it is pg_dump's output inside.
    for identity_file in (keys["ops"]["identity_file"], keys["escrow"]["identity_file"]):
        inner = decrypt(made["path"], identity_file)
        if fmt == "plain" and compression != "none":
            inner = subprocess.run(DECOMPRESS[compression], input=inner, check=True, stdout=subprocess.PIPE).stdout
        assert (PLAIN_HEADER in inner[:1024]) if fmt == "plain" else inner.startswith(b"PGDMP")

    quick = verify(cluster, made["path"])
    checks = dict((c["name"], c) for c in quick["checks"])
    assert quick["encryption"] == "age"
    assert checks["sha256"]["passed"] and checks["encryption"]["passed"] and not checks["encryption"]["skipped"]
    assert checks["structure"]["skipped"] and "identity" in checks["structure"]["detail"]
    for identity in (dict(identity=keys["ops"]["identity"]), dict(identity_file=keys["escrow"]["identity_file"])):
        full = verify(cluster, made["path"], **identity)
        checks = dict((c["name"], c) for c in full["checks"])
        assert checks["structure"]["passed"] and not checks["structure"]["skipped"], checks["structure"]
        assert ("completion trailer" in checks["structure"]["detail"] if fmt == "plain"
                else "table of contents" in checks["structure"]["detail"])


def test_a_wrong_identity_is_refused_and_names_the_recipients(cluster, workdir, db, keys):
    made = encrypted_backup(cluster, workdir, db, keys, compression="zstd")
    wrong = verify(cluster, made["path"], expect_ok=False, identity=keys["stranger"]["identity"])
    structure = [c for c in wrong["checks"] if c["name"] == "structure"][0]
    assert not structure["passed"] and "cannot decrypt it with the identity given" in structure["detail"]
    assert keys["ops"]["recipient"] in structure["detail"] and "SHA256:" in structure["detail"]
    assert keys["stranger"]["identity"].strip() not in json.dumps(wrong)


def test_the_identity_is_never_shown_even_at_vvv(cluster, workdir, db, keys):
    made = encrypted_backup(cluster, workdir, db, keys)
    secret = keys["ops"]["identity"].strip().splitlines()[-1]
    assert secret.startswith("AGE-SECRET-KEY-")
    run = run_playbook("verify_module.yml", dict(verify_args=dict(cluster.connection_vars(), path=made["path"],
                                                                  identity=keys["ops"]["identity"])),
                       verbosity=3, json_output=False)
    assert run.rc == 0, run.stdout[-3000:]
    assert secret not in run.stdout and secret not in run.stderr


@pytest.mark.parametrize("module", ["restore", "rekey"])
def test_the_identity_is_in_no_process_file_or_log_while_a_restore_or_a_rekey_runs(
        cluster, workdir, db, keys, module):
    """Every process's argv and environment is read every millisecond while a restore (psql fed
    through age) or a key rotation (age into age) runs at -vvv; then its output, the files it left
    in the backup directory and what it left in /tmp are searched."""
    made = encrypted_backup(cluster, workdir, db, keys, compression="zstd")
    secret = keys["ops"]["identity"].strip().splitlines()[-1]
    assert secret.startswith("AGE-SECRET-KEY-")
    if module == "restore":
        damage(cluster, db)
        extra = {"restore_args": dict(cluster.connection_vars(), path=made["path"], database=db,
                                      identity=keys["ops"]["identity"])}
    else:
        extra = {"rekey_args": dict(path=made["path"], identity=keys["ops"]["identity"],
                                    encryption_recipients=[keys["new"]["recipient"]])}
    holder = {}
    thread = threading.Thread(target=lambda: holder.update(
        run=run_playbook("%s_module.yml" % module, extra, verbosity=3, json_output=False)))
    before = set(os.listdir("/tmp"))
    thread.start()
    leaks, seen = processes.watch_for_secret(thread, secret.encode(), ("age", "psql"))
    assert holder["run"].rc == 0, holder["run"].stdout[-2000:]
    assert "age" in seen and leaks == []
    texts = [holder["run"].stdout, holder["run"].stderr]
    for folder, _dirs, files in os.walk(workdir):
        for entry in files:
            with open(os.path.join(folder, entry), "rb") as handle:
                texts.append(handle.read().decode("utf-8", "replace"))
    assert all(secret not in text for text in texts)
    assert [e for e in set(os.listdir("/tmp")) - before if e.startswith("lift-pg-")] == []


def test_a_damaged_encrypted_backup_fails_verification(cluster, workdir, db, keys):
    made = encrypted_backup(cluster, workdir, db, keys, format="custom")
    size = os.path.getsize(made["path"])
    with open(made["path"], "r+b") as handle:  # flip a bit in the payload, after the header
        handle.seek(size - 100)
        byte = handle.read(1)
        handle.seek(size - 100)
        handle.write(bytes([byte[0] ^ 0x01]))
    quick = verify(cluster, made["path"], expect_ok=False)
    assert "sha256" in quick["failed_checks"]
    full = verify(cluster, made["path"], expect_ok=False, identity=keys["ops"]["identity"])
    assert "structure" in full["failed_checks"] and "sha256" in full["failed_checks"]


def test_refused_clearly_before_anything_is_written(cluster, workdir, db, keys):
    dest = os.path.join(workdir, "refused")
    directory = backup(cluster, dest, expect_ok=False, database=db, format="directory", encryption="age",
                       encryption_recipients=[keys["ops"]["recipient"]])
    assert "directory archive cannot be encrypted" in directory["msg"]
    none = backup(cluster, dest, expect_ok=False, database=db, encryption="age")
    assert "needs encryption_recipients" in none["msg"]
    identity = backup(cluster, dest, expect_ok=False, database=db, encryption="age",
                      encryption_recipients=[keys["ops"]["identity"].strip().splitlines()[-1]])
    assert "holds a private key" in identity["msg"] and "AGE-SECRET-KEY" not in identity["msg"]
    assert not os.path.exists(dest) or not [n for n in os.listdir(dest) if n != "logs"]


def damage(cluster, database):
    cluster.psql("INSERT INTO lift_simulator.lift_system (system_key, display_name) VALUES ('after-backup', 'x'); "
                 "DELETE FROM lift_simulator.simulation_run WHERE status = 'FAILED'", database=database)


@pytest.mark.parametrize("fmt, compression", [kind[:2] for kind in EVERY_KIND])
def test_swap_restore_decrypts_in_the_stream(cluster, workdir, db, keys, fmt, compression):
    options = dict(format=fmt)
    if compression:
        options["compression"] = compression
    made = encrypted_backup(cluster, workdir, db, keys, **options)
    before = fingerprint(cluster, db)
    damage(cluster, db)
    result = restore(cluster, made["path"], database=db, identity=keys["ops"]["identity"], jobs=2)
    assert result["changed"] is True and fingerprint(cluster, db) == before
    checked = verify(cluster, made["path"], level="restore", database=db,
                     identity_file=keys["escrow"]["identity_file"])
    assert not checked["failed_checks"] and checked["row_counts"] == made["row_counts"]


def test_selective_restore_from_an_encrypted_plain_dump(cluster, workdir, db, keys):
    made = encrypted_backup(cluster, workdir, db, keys, compression="zstd")
    table = "lift_simulator.simulation_run"
    expected = made["row_counts"][table]
    cluster.psql("DELETE FROM %s" % table, database=db)
    result = restore(cluster, made["path"], database=db, tables=[table], truncate=True,
                     identity=keys["ops"]["identity"])
    assert result["row_counts"][table] == expected
    assert int(cluster.psql("SELECT count(*) FROM %s" % table, database=db)) == expected


def test_restore_without_the_right_identity_changes_nothing(cluster, workdir, db, keys):
    made = encrypted_backup(cluster, workdir, db, keys)
    damage(cluster, db)
    before, damaged = databases(cluster), fingerprint(cluster, db)
    missing = restore(cluster, made["path"], expect_ok=False, database=db)
    assert "is encrypted with age: give the identity" in missing["msg"] and "nothing was changed" in missing["msg"]
    wrong = restore(cluster, made["path"], expect_ok=False, database=db, identity=keys["stranger"]["identity"])
    assert "cannot decrypt it with the identity given" in wrong["msg"] and keys["ops"]["recipient"] in wrong["msg"]
    assert keys["stranger"]["identity"].strip().splitlines()[-1] not in json.dumps(wrong)
    unreadable = restore(cluster, made["path"], expect_ok=False, database=db, identity_file="/root/nope.key")
    assert "identity_file" in unreadable["msg"] and "nothing was changed" in unreadable["msg"]
    assert databases(cluster) == before and fingerprint(cluster, db) == damaged


# pid write(fd<path>, "data"..., n); a file written through O_TMPFILE shows as <dir/#inode>(deleted).
WRITE_RE = re.compile(r'^\d+\s+(?:write|pwrite64|writev)\((\d+)<([^>]*)>(?:\(deleted\))?,\s*(.*)$')


def plaintext_writes(log_path):
    """Writes into files (not pipes or sockets) whose data holds pg_dump's text, from an strace log."""
    found = []
    with open(log_path, errors="replace") as handle:
        for line in handle:
            match = WRITE_RE.match(line)
            if not match or not match.group(2).startswith("/") or match.group(2).startswith("/dev/"):
                continue
            if "PostgreSQL database dump" in match.group(3) or "COPY lift_simulator." in match.group(3):
                found.append(match.group(2))
    return found


def traced_backup(cluster, workdir, db, log_path, **options):
    args = dict(cluster.connection_vars(), dest_dir=os.path.join(workdir, "traced"), database=db, **options)
    run = run_playbook("backup_module.yml", dict(backup_args=args, run_as="postgres"),
                       wrapper=["strace", "-f", "-qq", "-yy", "-s", "512", "-e", "trace=write,pwrite64,writev",
                                "-e", "signal=none", "-o", log_path])
    assert run.rc == 0, run.stdout[-2000:]
    return run.task("Backup")


def test_no_unencrypted_byte_reaches_a_file(cluster, workdir, db, keys, tmp_path):
    """Every write of the whole run (Ansible, the module, pg_dump, zstd, age and their children),
    traced: with encryption no write into any file carries dump text; without it (the control,
    so that the test can fail) the backup file's writes do."""
    made = traced_backup(cluster, workdir, db, str(tmp_path / "encrypted.log"), compression="zstd", format="plain",
                         encryption="age", encryption_recipients=[keys["ops"]["recipient"]])
    assert made["path"].endswith(".sql.zst.age")
    assert plaintext_writes(str(tmp_path / "encrypted.log")) == []
    traced_backup(cluster, workdir, db, str(tmp_path / "plain.log"), format="plain")
    assert plaintext_writes(str(tmp_path / "plain.log")), "the control run shows no dump text: the trace is blind"


def test_the_restore_playbook_takes_the_identity(cluster, workdir, db, keys):
    made = encrypted_backup(cluster, workdir, db, keys, format="custom")
    before = fingerprint(cluster, db)
    damage(cluster, db)
    connection = {"lift_pg_login_unix_socket": cluster.socket_dir, "lift_pg_login_port": cluster.port}
    run = run_playbook("playbooks/restore.yml", dict(connection, lift_restore_backup=made["path"],
                                                     lift_restore_database=db,
                                                     lift_restore_identity=keys["ops"]["identity"]),
                       json_output=False, verbosity=3)
    assert run.rc == 0, run.stdout[-3000:]
    assert fingerprint(cluster, db) == before and "restored (swap)" in run.stdout
    secret = keys["ops"]["identity"].strip().splitlines()[-1]
    assert secret not in run.stdout and secret not in run.stderr


def test_a_minimal_manifest_keeps_only_what_retention_needs(cluster, workdir, db, keys):
    made = encrypted_backup(cluster, workdir, db, keys, manifest_detail="minimal")
    with open(made["manifest_path"]) as handle:
        manifest = json.load(handle)
    assert manifest["detail"] == "minimal" and manifest["row_counts"] == {}
    assert manifest["checklist"] is None and manifest["flyway"] == [] and manifest["flyway_version"] is None
    text = json.dumps(manifest)
    assert "simulation_run" not in text and "lift_system" not in text
    assert manifest["sha256"] and manifest["size_bytes"] and manifest["started_at"] and manifest["recipients"]
    checked = verify(cluster, made["path"], level="restore", database=db, identity=keys["ops"]["identity"])
    rows = [c for c in checked["checks"] if c["name"] == "row counts"][0]
    assert rows["skipped"] and not checked["failed_checks"]
