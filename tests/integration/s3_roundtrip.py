# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drives the s3 storage in a process of its own, for tests/integration/test_storage_s3.py: with
another Python (the system's, with Debian's older boto3) or to be killed mid-upload.

    python s3_roundtrip.py roundtrip ENDPOINT BUCKET PREFIX   # prints a JSON summary
    python s3_roundtrip.py hang ENDPOINT BUCKET PREFIX NAME   # uploads two parts, says so, waits to be killed

Credentials come from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY): boto3's chain.
The driver is imported from the collection path that tests/conftest.py sets up.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, ".cache", "collections"))

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import manifest as manifest_mod  # noqa: E402
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import s3  # noqa: E402

MIB = 1024 * 1024


def pattern(size, seed):
    """``size`` bytes that do not repeat within a part (a misplaced part changes the hash)."""
    out, counter = bytearray(), 0
    while len(out) < size:
        out += hashlib.sha256(b"%s-%d" % (seed, counter)).digest() * 32
        counter += 1
    return bytes(out[:size])


def roundtrip(store):
    summary = {"python": sys.version.split()[0], "boto3": s3.boto3.__version__}
    import botocore
    summary["botocore"] = botocore.__version__
    config = store.client().meta.config
    summary["checksum_setting"] = getattr(config, "request_checksum_calculation", None)
    summary["ensure"] = store.ensure()
    data = pattern(12 * MIB + 3, b"system")
    with store.create("big.bin") as writer:
        for start in range(0, len(data), 777777):
            writer.write(data[start:start + 777777])
        summary["listed_before_commit"] = "big.bin" in store.entries()[1]
        writer.commit()
    head = store.client().head_object(Bucket=store.bucket, Key=store.prefix + "big.bin")
    summary["metadata_sha256"] = head["Metadata"].get("sha256")
    summary["expected_sha256"] = hashlib.sha256(data).hexdigest()
    summary["digest"] = store.digest("big.bin")
    summary["size"] = store.stat("big.bin").size
    manifest = manifest_mod.build_manifest(backup_name="big.bin", database="db", format="custom", compression="none",
                                           size_bytes=len(data), sha256=summary["expected_sha256"],
                                           started_at="2026-01-01T00:00:00.000000Z", finished_at="2026-01-01T00:00:01.000000Z",
                                           row_counts={})
    store.write("big.bin.manifest.json", manifest_mod.dumps(manifest))
    summary["manifest_roundtrip"] = store.read_manifest("big.bin.manifest.json") == manifest
    try:
        store.write("big.bin.manifest.json", b"{}")
        summary["replace_refused"] = False
    except s3.StorageError:
        summary["replace_refused"] = True
    writer = store.create("aborted.bin")
    writer.write(pattern(6 * MIB, b"aborted"))
    writer.abort()
    summary["after_abort"] = sorted(store.entries()[1])
    summary["uploads_after_abort"] = sorted(store.stale_partials(older_than_hours=0))
    _entries, identities = store.entries()
    for name in sorted(identities):
        store.remove(name, identities[name])
    summary["after_remove"] = sorted(store.entries()[1])
    return summary


def hang(store, name):
    writer = store.create(name)
    writer.write(pattern(2 * store.part_size + 1, b"hang"))  # two parts sent, one byte buffered
    print("uploading", flush=True)
    sys.stdin.read()  # until killed (or the test closes stdin)


def main(argv):
    mode, endpoint, bucket, prefix = argv[1:5]
    store = s3.S3Storage(bucket, prefix=prefix, endpoint_url=endpoint, region="us-east-1", addressing_style="path",
                         part_size=5 * MIB, max_attempts=2)
    if mode == "roundtrip":
        print(json.dumps(roundtrip(store)))
    else:
        hang(store, argv[5])
    store.close()


if __name__ == "__main__":
    main(sys.argv)
