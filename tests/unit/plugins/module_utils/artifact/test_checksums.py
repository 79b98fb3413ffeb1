# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import checksums


def test_sha256_file(tmp_path):
    data = b"x" * (3 * checksums.CHUNK + 17)
    (tmp_path / "f").write_bytes(data)
    assert checksums.sha256_file(str(tmp_path / "f")) == (hashlib.sha256(data).hexdigest(), len(data))


def test_hash_directory_matches_sha256sum_listing(tmp_path):
    (tmp_path / "toc.dat").write_bytes(b"toc")
    (tmp_path / "3001.dat.gz").write_bytes(b"data")
    files, total, digest = checksums.hash_directory(str(tmp_path))
    assert total == 7
    listing = "".join("%s  %s\n" % (hashlib.sha256(content).hexdigest(), name)
                      for name, content in sorted([("3001.dat.gz", b"data"), ("toc.dat", b"toc")]))
    assert digest == hashlib.sha256(listing.encode()).hexdigest()
    assert files["toc.dat"]["sha256"] == hashlib.sha256(b"toc").hexdigest()


def test_backup_digest_of_file_and_directory(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "toc.dat").write_bytes(b"toc")
    (tmp_path / "f").write_bytes(b"abc")
    assert checksums.backup_digest(str(tmp_path / "f")) == (hashlib.sha256(b"abc").hexdigest(), 3)
    assert checksums.backup_digest(str(tmp_path / "d"))[1] == 3
