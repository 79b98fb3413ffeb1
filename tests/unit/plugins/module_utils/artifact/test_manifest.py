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


PENDING = dict(sha256="b" * 64, size_bytes=12, recipients=[{"type": "X25519", "recipient": "age1new"}])


def with_pending(**pending):
    return dict(GOOD, manifest_version=1, recipients=[{"type": "X25519", "recipient": "age1old"}],
                rekey_pending=dict(PENDING, **pending))


@pytest.mark.parametrize("change, message", [
    (dict(sha256="xyz"), "rekey_pending.sha256"),
    (dict(size_bytes=-3), "rekey_pending.size_bytes"),
    (dict(recipients="age1new"), "rekey_pending"),
])
def test_a_malformed_pending_rotation_is_named(change, message):
    with pytest.raises(mf.ManifestError) as info:
        mf.validate_manifest(with_pending(**change))
    assert message in str(info.value)


def test_a_pending_rotation_describes_both_files():
    manifest = mf.validate_manifest(with_pending())
    assert mf.file_versions(manifest) == [("a" * 64, 10), ("b" * 64, 12)]
    assert mf.file_versions(dict(GOOD)) == [("a" * 64, 10)]


def test_settled_takes_the_file_for_whichever_version_it_is():
    manifest = with_pending()
    new = mf.settled(manifest, "b" * 64)
    assert (new["sha256"], new["size_bytes"], new["recipients"]) == ("b" * 64, 12, PENDING["recipients"])
    old = mf.settled(manifest, "a" * 64)
    assert (old["sha256"], old["size_bytes"], old["recipients"][0]["recipient"]) == ("a" * 64, 10, "age1old")
    for settled in (new, old):
        assert "rekey_pending" not in settled
    assert "rekey_pending" in manifest  # the manifest read is left as it is
    assert mf.settled(dict(GOOD), "c" * 64) == dict(GOOD) and mf.settled(None, "c" * 64) is None


@pytest.mark.parametrize("entry, words", [
    ("x", "globals entry does not name"),
    (dict(name="db_backup_1.sql.manifest.json", sha256="a" * 64, size_bytes=1), "globals entry does not name"),
    (dict(name="../db_backup_1.sql.globals.sql", sha256="a" * 64, size_bytes=1), "globals entry does not name"),
    (dict(name=".db_backup_1.sql.globals.sql", sha256="a" * 64, size_bytes=1), "globals entry does not name"),
    (dict(name="db_backup_20261124_080001.sql.globals.sql", sha256="zz", size_bytes=1), "globals.sha256"),
    (dict(name="db_backup_20261124_080001.sql.globals.sql", sha256="a" * 64), "globals.size_bytes"),
])
def test_a_globals_entry_must_name_a_role_definitions_file_beside_the_backup(entry, words):
    with pytest.raises(mf.ManifestError) as info:
        mf.validate_manifest(dict(GOOD, manifest_version=1, globals=entry))
    assert words in str(info.value)
    for name in ("db_backup_20261124_080001.sql.globals.sql", "renamed_by_hand.sql.globals.sql"):
        good = dict(name=name, sha256="a" * 64, size_bytes=1)
        assert mf.validate_manifest(dict(GOOD, manifest_version=1, globals=good))
