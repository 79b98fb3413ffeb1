# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import manifest as mf

GOOD = dict(backup_name="db_backup_20261124_080001.sql", database="db", format="plain", compression="none",
            size_bytes=10, sha256="a" * 64, started_at="2026-11-24T08:00:01.000000Z",
            finished_at="2026-11-24T08:00:02.000000Z", row_counts={"s.t": 3})


def test_build_puts_version_first_and_round_trips(tmp_path):
    manifest = mf.build_manifest(**GOOD)
    assert list(manifest)[0] == "manifest_version"
    path = tmp_path / "m.json"
    path.write_bytes(mf.dumps(manifest))
    assert mf.load_manifest(str(path)) == manifest


@pytest.mark.parametrize("change, message", [
    (dict(sha256="A" * 64), "sha256"),
    (dict(sha256="abc"), "sha256"),
    (dict(size_bytes=-1), "negative"),
    (dict(size_bytes=True), "size_bytes"),
    (dict(row_counts={"s.t": -1}), "row count"),
    (dict(row_counts=[]), "row_counts"),
    (dict(manifest_version=99), "newer"),
])
def test_invalid_manifests_are_named(change, message):
    data = dict(GOOD, manifest_version=1)
    data.update(change)
    with pytest.raises(mf.ManifestError) as info:
        mf.validate_manifest(data)
    assert message in str(info.value)


def test_missing_field():
    data = dict(GOOD, manifest_version=1)
    del data["sha256"]
    with pytest.raises(mf.ManifestError) as info:
        mf.validate_manifest(data)
    assert "'sha256'" in str(info.value)


def test_garbage_files(tmp_path):
    (tmp_path / "a").write_bytes(b"\x00\xffnot json")
    with pytest.raises(mf.ManifestError):
        mf.load_manifest(str(tmp_path / "a"))
    (tmp_path / "b").write_text(json.dumps([1, 2]))
    with pytest.raises(mf.ManifestError):
        mf.load_manifest(str(tmp_path / "b"))
    with pytest.raises(mf.ManifestError):
        mf.load_manifest(str(tmp_path / "missing"))


def test_manifest_path_for_files_and_directories():
    assert mf.manifest_path_for("/b/x.sql") == "/b/x.sql.manifest.json"
    assert mf.manifest_path_for("/b/x_dir/") == "/b/x_dir.manifest.json"
