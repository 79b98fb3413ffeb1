# -*- coding: utf-8 -*-
"""The scheduled job copies every verified backup off-site: to a real sshd and a real SeaweedFS on
127.0.0.1 (tests/lib/sftpserver.py, tests/lib/s3server.py), as the postgres OS user with the system
Python and Debian's paramiko and boto3, from the layout the role installs. A failed copy fails the
run, keeps the local backup and shows in the log and the metrics; the targets file must be private."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import shutil
import tempfile

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.offsite import targets, transfer
from lift_job import Job, chown_postgres, log_of, make_layout, new_backup
from s3server import s3_server  # noqa: F401 pylint: disable=unused-import
from sftpserver import TEST_USER, sftp_server_fixture  # noqa: F401 pylint: disable=unused-import

METRIC = "lift_simulator_backup_"


@pytest.fixture(scope="module")
def layout():
    base = tempfile.mkdtemp(prefix="lift-it-job-", dir="/tmp")
    yield make_layout(base)
    shutil.rmtree(base, ignore_errors=True)


def write_targets(path, entries, mode=0o600):
    with open(path, "w") as handle:
        json.dump(entries, handle)
    chown_postgres(path)
    os.chmod(path, mode)


def target_metrics(job):
    """{(metric, target): value} of the per-target samples of the job's metrics file."""
    found = {}
    with open(job.metrics_file) as handle:
        for line in handle:
            match = re.match(r'^%s(offsite_\w+)\{[^}]*target="([^"]+)"\} (\S+)$' % METRIC, line.strip())
            if match:
                found[(match.group(1), match.group(2))] = float(match.group(3))
    return found


def test_every_verified_backup_goes_off_site_and_a_failed_copy_fails_the_run(
        layout, workdir, cluster, sftp_server, s3_server):
    job = Job(layout, workdir, cluster)
    sftp = dict(name="nas", type="sftp", host=sftp_server.host, port=sftp_server.port, user=TEST_USER,
                directory=os.path.join(sftp_server.root, "job-copies"), private_key=sftp_server.private(),
                known_hosts=sftp_server.known_hosts)
    s3 = dict(s3_server.target_settings(), name="bucket", prefix="job-copies")
    path = os.path.join(workdir, "offsite.json")
    write_targets(path, [sftp, s3])
    job.write_config(offsite_targets_file=path)

    before = job.backups()
    run = job.run()
    assert run.returncode == 0, run.stdout + run.stderr
    name = new_backup(job, before)
    _log, text = log_of(job, "RESULT: success")
    assert "offsite nas: copied %s" % name in text and "offsite bucket: copied %s" % name in text
    assert "the backup is not encrypted" in text
    assert sftp_server.private().splitlines()[1] not in text and s3["secret_key"] not in text
    for entry in (sftp, s3):
        settings = dict((k, v) for k, v in entry.items() if k != "name")
        store = targets.open_target(settings)
        try:
            assert all(passed for _n, passed, _d in transfer.check_copy(store, name)), entry["name"]
        finally:
            store.close()
    first = target_metrics(job)
    for target in ("nas", "bucket"):
        assert first[("offsite_last_run_success", target)] == 1
        assert first[("offsite_last_success_timestamp_seconds", target)] > 0
        assert first[("offsite_newest_copy_timestamp_seconds", target)] > 0

    # The SFTP server goes away: the run fails, its backup stays, the bucket still gets its copy.
    sftp_server.stop()
    try:
        before = job.backups()
        failed = job.run()
        assert failed.returncode == 1, failed.stdout + failed.stderr
        second = new_backup(job, before)
        _log, text = log_of(job, "RESULT: FAILED (offsite)")
        assert "offsite nas FAILED" in text and "offsite bucket: copied %s" % second in text
        assert "verification passed" in text and os.path.exists(os.path.join(job.dest, second))
        metrics = target_metrics(job)
        assert metrics[("offsite_last_run_success", "nas")] == 0
        assert metrics[("offsite_last_success_timestamp_seconds", "nas")] == \
            first[("offsite_last_success_timestamp_seconds", "nas")]
        assert metrics[("offsite_last_run_success", "bucket")] == 1
        assert job.status()["stage"] == "offsite"
    finally:
        sftp_server.start(port=sftp_server.port)


def test_a_targets_file_others_can_read_fails_the_run_and_keeps_the_backup(layout, workdir, cluster, s3_server):
    job = Job(layout, workdir, cluster)
    path = os.path.join(workdir, "offsite.json")
    write_targets(path, [dict(s3_server.target_settings(), name="bucket")], mode=0o644)
    job.write_config(offsite_targets_file=path)
    before = job.backups()
    run = job.run()
    assert run.returncode == 1
    name = new_backup(job, before)
    _log, text = log_of(job, "RESULT: FAILED (offsite)")
    assert "can be read by others" in text and "chmod 0600" in text
    assert s3_server.secret_key not in text and os.path.exists(os.path.join(job.dest, name))
