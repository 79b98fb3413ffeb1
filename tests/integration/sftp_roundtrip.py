# -*- coding: utf-8 -*-
"""A helper the SFTP storage tests run as a separate process (not a test): with the system Python
(/usr/bin/python3, Debian's paramiko) or the venv's, it imports the driver from this checkout and

- ``roundtrip SETTINGS``: writes a stream of ``size_mb`` random MiB, reads it back and prints one
  JSON line (paramiko's version, the sha256 written, read back and digested, the entry);
- ``hold SETTINGS NAME BYTES``: starts writing NAME, writes BYTES, prints the temporary's name
  and waits on stdin: the test kills it mid-upload.

SETTINGS is a JSON file of SFTPStorage's arguments (keys as files: nothing secret on argv).
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, ".cache", "collections"))  # tests/conftest.py makes the link

import paramiko  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.sftp import SFTPStorage  # noqa: E402  pylint: disable=wrong-import-position

MIB = 1024 * 1024


def storage(settings_path):
    with open(settings_path) as handle:
        settings = json.load(handle)
    size_mb = settings.pop("size_mb", 1)
    return SFTPStorage(**settings), size_mb


def roundtrip(settings_path):
    store, size_mb = storage(settings_path)
    store.ensure()
    written = hashlib.sha256()
    with store.create("roundtrip.sql") as writer:
        for _block in range(size_mb):
            block = os.urandom(MIB)
            written.update(block)
            writer.write(block)
        writer.commit()
    read = hashlib.sha256()
    with store.open_read("roundtrip.sql") as stream:
        while True:
            chunk = stream.read(256 * 1024)
            if not chunk:
                break
            read.update(chunk)
    entry = store.stat("roundtrip.sql")
    result = dict(paramiko=paramiko.__version__, python=sys.executable, written=written.hexdigest(),
                  read=read.hexdigest(), digest=store.digest("roundtrip.sql"), kind=entry.kind, size=entry.size,
                  free_bytes=store.free_bytes())
    store.close()
    print(json.dumps(result))


def hold(settings_path, name, count):
    store, _size_mb = storage(settings_path)
    writer = store.create(name)
    writer.write(b"x" * count)
    print(writer.temp_name)
    sys.stdout.flush()
    sys.stdin.read()  # until the test kills this process


if __name__ == "__main__":
    if sys.argv[1] == "roundtrip":
        roundtrip(sys.argv[2])
    elif sys.argv[1] == "hold":
        hold(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit("usage: sftp_roundtrip.py roundtrip SETTINGS | hold SETTINGS NAME BYTES")
