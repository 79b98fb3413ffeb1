# -*- coding: utf-8 -*-
"""The s3 storage driver's own logic, without a server: botocore's Config for old and new
botocore, keys under a prefix, the names of stale uploads, errors in plain words without secrets,
and how a writer cuts a stream into parts (against a recording stand-in for the client). The
driver against a real server: tests/integration/test_storage_s3.py."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import errno
import hashlib
import os
import subprocess
import sys

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import s3
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.base import Storage, StorageError

botocore_exceptions = pytest.importorskip("botocore.exceptions")
UTC = datetime.timezone.utc
MIB = 1024 * 1024


class NewConfig(object):
    """A botocore >= 1.36 Config: takes the checksum settings."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs


class OldConfig(object):
    """A botocore < 1.36 Config: refuses them as botocore does, with a TypeError."""

    def __init__(self, **kwargs):
        for name in kwargs:
            if name.endswith("_checksum_calculation") or name.endswith("_checksum_validation"):
                raise TypeError("Got unexpected keyword argument '%s'" % name)
        self.kwargs = kwargs


def test_new_botocore_gets_checksums_only_when_required():
    config = s3.client_config(NewConfig, "path", connect_timeout=3, read_timeout=7, max_attempts=2)
    assert config.kwargs["request_checksum_calculation"] == "when_required"
    assert config.kwargs["response_checksum_validation"] == "when_required"
    assert config.kwargs["s3"] == {"addressing_style": "path"}
    assert (config.kwargs["connect_timeout"], config.kwargs["read_timeout"]) == (3, 7)
    assert config.kwargs["retries"] == {"total_max_attempts": 2, "mode": "standard"}


def test_old_botocore_gets_the_rest():
    config = s3.client_config(OldConfig, "virtual")
    assert "request_checksum_calculation" not in config.kwargs and "response_checksum_validation" not in config.kwargs
    assert config.kwargs["s3"] == {"addressing_style": "virtual"} and config.kwargs["signature_version"] == "s3v4"


def test_the_installed_botocore_takes_what_it_knows():
    config_module = pytest.importorskip("botocore.config")
    config = s3.client_config(config_module.Config, "auto")
    assert config.s3 == {"addressing_style": "auto"}


@pytest.mark.parametrize("prefix, key", [("", "b.dump"), ("/", "b.dump"), ("off/site", "off/site/b.dump"),
                                         ("/off/site/", "off/site/b.dump")])
def test_keys_are_the_prefix_and_a_plain_name(prefix, key):
    assert s3.object_key(s3.normalize_prefix(prefix), "b.dump") == key


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "/b"])
def test_only_plain_names_are_keys(name):
    with pytest.raises(StorageError) as info:
        s3.object_key("p/", name)
    assert info.value.errno == errno.EINVAL


@pytest.mark.parametrize("prefix", ["a//b", "a/../b", "./a"])
def test_odd_prefixes_are_refused(prefix):
    with pytest.raises(StorageError):
        s3.normalize_prefix(prefix)


def test_location_names_bucket_and_prefix():
    assert s3.S3Storage("bk", "/off/site/").location == "s3://bk/off/site"
    assert s3.S3Storage("bk").location == "s3://bk"


@pytest.mark.parametrize("options, problem", [
    (dict(addressing_style="dns"), "addressing_style must be one of"),
    (dict(access_key="AK"), "together"),
    (dict(secret_key="SK"), "together"),
    (dict(part_size=MIB), "at least"),
])
def test_bad_options_are_refused(options, problem):
    with pytest.raises(StorageError) as info:
        s3.S3Storage("bk", **options)
    assert problem in str(info.value)


def test_partial_names_carry_the_name_and_the_start():
    started = datetime.datetime(2026, 11, 24, 8, 0, 1, 500000, tzinfo=UTC)
    name = s3.partial_name("b.dump", started)
    assert name == ".b.dump.partial-s3upload-%d" % s3.epoch_seconds(started)
    assert s3.parse_partial_name(name) == ("b.dump", 1795507201)
    assert s3.parse_partial_name(".b.dump.partial-host-123") is None and s3.parse_partial_name("b.dump") is None
    # The local driver's parser reads it too: prune's rules for leftovers apply unchanged.
    from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import atomic_files
    assert atomic_files.partial_target(name) == "b.dump"


def test_times_are_aware_utc():
    assert s3.aware_utc(datetime.datetime(2026, 1, 1)).tzinfo is UTC
    plus_one = datetime.timezone(datetime.timedelta(hours=1))
    assert s3.aware_utc(datetime.datetime(2026, 1, 1, 1, tzinfo=plus_one)) == datetime.datetime(2026, 1, 1, tzinfo=UTC)


def client_error(code, message="", status=400, operation="PutObject"):
    return botocore_exceptions.ClientError({"Error": {"Code": code, "Message": message},
                                            "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


@pytest.mark.parametrize("code, number, words", [
    ("InvalidAccessKeyId", errno.EACCES, "does not know the access key"),
    ("SignatureDoesNotMatch", errno.EACCES, "secret key does not match"),
    ("AccessDenied", errno.EACCES, "access denied"),
    ("403", errno.EACCES, "HTTP 403"),
    ("NoSuchBucket", errno.ENOENT, "bucket does not exist"),
    ("NoSuchKey", errno.ENOENT, "no such object"),
    ("404", errno.ENOENT, "not found"),
    ("PreconditionFailed", errno.EAGAIN, "another writer"),
    ("BadDigest", errno.EIO, "Content-MD5"),
    ("NoSuchUpload", errno.ENOENT, "multipart upload no longer exists"),
    ("NotImplemented", errno.EOPNOTSUPP, "does not implement"),
])
def test_server_errors_in_plain_words(code, number, words):
    assert s3.describe_problem(client_error(code)) == (number, s3.CLIENT_PROBLEMS[code][1])
    assert words in s3.CLIENT_PROBLEMS[code][1]


def test_an_unknown_server_error_keeps_its_code_and_message():
    assert s3.describe_problem(client_error("QuotaExceeded", "the tenant is full")) == (
        errno.EIO, "the server answered QuotaExceeded: the tenant is full")


def test_transport_errors_in_plain_words():
    number, words = s3.describe_problem(botocore_exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:9"))
    assert number == errno.ECONNREFUSED and "cannot reach the endpoint" in words and "127.0.0.1:9" in words
    number, words = s3.describe_problem(botocore_exceptions.NoCredentialsError())
    assert number == errno.EACCES and "AWS_ACCESS_KEY_ID" in words
    number, words = s3.describe_problem(botocore_exceptions.ReadTimeoutError(endpoint_url="http://h"))
    assert number == errno.ETIMEDOUT


def test_messages_name_where_and_never_a_secret():
    store = s3.S3Storage("bk", "p", endpoint_url="https://s3.example", access_key="AK", secret_key="S3cr3t",
                         session_token="T0ken")
    error = store.failure(client_error("SignatureDoesNotMatch", "no S3cr3t here"), "read", store.uri("p/b.dump"))
    assert str(error) == ("[Errno %d] cannot read s3://bk/p/b.dump at https://s3.example: the server refused the "
                          "credentials: the secret key does not match the access key" % errno.EACCES)
    leaky = store.failure(client_error("Odd", "echoed S3cr3t and T0ken"), "read", "s3://bk/p/x")
    assert "S3cr3t" not in str(leaky) and "T0ken" not in str(leaky) and "<hidden>" in str(leaky)
    assert "S3cr3t" not in repr(store) and "S3cr3t" not in repr(vars(store)) and "T0ken" not in repr(vars(store))


def test_without_boto3_the_storage_says_what_to_install(monkeypatch):
    monkeypatch.setattr(s3, "boto3", None)
    with pytest.raises(StorageError) as info:
        s3.S3Storage("bk").ensure()
    assert "needs boto3 (Debian package python3-boto3)" in str(info.value)


def test_the_file_imports_without_boto3():
    code = ("import sys; sys.modules['boto3'] = None; sys.modules['botocore'] = None; "
            "from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import s3; "
            "print(s3.boto3)")
    done = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, check=True,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert done.stdout.strip() == b"None"


def test_the_driver_implements_the_whole_interface():
    wanted = [name for name in vars(Storage) if not name.startswith("_") and callable(getattr(Storage, name))]
    for name in wanted:
        assert getattr(s3.S3Storage, name) is not getattr(Storage, name), name


def test_part_sizes_double_every_2000_parts():
    assert [s3._part_size_for(5, n) for n in (1, 2000, 2001, 4001, 10000)] == [5, 5, 10, 20, 80]
    assert sum(s3._part_size_for(1, n) for n in range(1, s3.MAX_PARTS + 1)) == 62000


class RecordingClient(object):
    """Stands in for boto3's client: records the requests, answers as S3 would, holds nothing."""

    class meta(object):  # pylint: disable=invalid-name
        method_to_api_mapping = {"put_object": "PutObject", "complete_multipart_upload": "CompleteMultipartUpload",
                                 "delete_object": "DeleteObject"}

    def __init__(self):
        self.requests = []
        self.objects = {}

    def __getattr__(self, operation):
        if operation.startswith("_"):
            raise AttributeError(operation)

        def request(**params):
            self.requests.append((operation, params))
            answer = getattr(type(self), "_" + operation, None)
            return answer(self, **params) if answer else {}
        return request

    def _head_object(self, Key, **_):  # pylint: disable=invalid-name
        if Key not in self.objects:
            raise client_error("404", status=404, operation="HeadObject")
        return self.objects[Key]

    def _create_multipart_upload(self, **_):
        return {"UploadId": "u1"}

    def _upload_part(self, PartNumber, Body, ContentMD5, **_):  # pylint: disable=invalid-name
        assert s3.content_md5(bytes(Body)) == ContentMD5
        return {"ETag": '"part%d-%d"' % (PartNumber, len(Body))}

    def _put_object(self, **_):
        return {"ETag": '"put"'}

    def _complete_multipart_upload(self, **_):
        return {"ETag": '"done"'}

    def _copy_object(self, **_):
        return {"CopyObjectResult": {"ETag": "copied"}}


def recording_storage():
    store = s3.S3Storage("bk", "p", part_size=5 * MIB, verify_upload=False)
    store._client = RecordingClient()
    store.supports = lambda operation, parameter: False  # as with botocore < 1.35
    return store


def test_a_writer_sends_whole_parts_and_the_rest_at_commit():
    store = recording_storage()
    writer = store.create("b.dump")
    for _megabyte in range(11):
        writer.write(b"x" * MIB)
    sent = [(op, len(params.get("Body", b""))) for op, params in store._client.requests if op == "upload_part"]
    assert sent == [("upload_part", 5 * MIB), ("upload_part", 5 * MIB)] and len(writer._buffer) == MIB
    store._client.objects["p/b.dump"] = {"ContentLength": 11 * MIB, "Metadata": {}, "ETag": '"copied"'}
    with pytest.raises(StorageError):  # the metadata lacks the sha256 (this stand-in copies nothing)
        writer.commit()
    operations = [op for op, _params in store._client.requests]
    assert operations[operations.index("complete_multipart_upload") - 1] == "upload_part"
    parts = [p for op, p in store._client.requests if op == "complete_multipart_upload"][0]["MultipartUpload"]["Parts"]
    assert [p["PartNumber"] for p in parts] == [1, 2, 3] and parts[2]["ETag"] == '"part3-%d"' % MIB
    assert "copy_object" in operations and "delete_object" in operations  # the failed check removed it


def test_a_small_writer_is_one_put_with_its_sha256():
    store = recording_storage()
    with store.create("m.json") as writer:
        writer.write(b"{}")
        store._client.objects["p/m.json"] = {"ContentLength": 2, "Metadata": {"sha256": hashlib.sha256(b"{}").hexdigest()}}
        writer.commit()
    puts = [params for op, params in store._client.requests if op == "put_object"]
    assert len(puts) == 1 and puts[0]["Metadata"] == {"sha256": hashlib.sha256(b"{}").hexdigest()}
    assert puts[0]["ContentMD5"] == s3.content_md5(b"{}")
    assert not [op for op, _params in store._client.requests if "multipart" in op]


def test_an_aborted_writer_aborts_its_upload():
    store = recording_storage()
    with pytest.raises(RuntimeError):
        with store.create("b.dump") as writer:
            writer.write(b"x" * (5 * MIB))
            raise RuntimeError("the dump failed")
    assert store._client.requests[-1] == ("abort_multipart_upload", {"Bucket": "bk", "Key": "p/b.dump", "UploadId": "u1"})
