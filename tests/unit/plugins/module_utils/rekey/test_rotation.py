# -*- coding: utf-8 -*-
"""The pure parts of a key rotation: what a backup needs, and the manifests of its steps."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import manifest as mf
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.rekey import rotation

OLD = [{"type": "X25519", "recipient": "age1old"},
       {"type": "ssh-ed25519", "recipient": "ssh-ed25519 AAAA", "fingerprint": "SHA256:x", "tag": "abcd"}]
NEW = [{"type": "X25519", "recipient": "age1new"}, OLD[1]]
MANIFEST = mf.build_manifest(backup_name="db_backup_20261124_080001.sql.age", database="db", format="plain",
                             compression="none", size_bytes=10, sha256="a" * 64, started_at="2026-11-24T08:00:01Z",
                             finished_at="2026-11-24T08:00:02Z", row_counts={"s.t": 3}, encryption="age",
                             recipients=OLD)


def test_a_backup_for_other_keys_is_rekeyed_and_one_for_these_keys_is_unchanged():
    assert rotation.decide(MANIFEST, "a" * 64, 10, NEW) == rotation.REKEYED
    assert rotation.decide(MANIFEST, "a" * 64, 10, list(reversed(OLD))) == rotation.UNCHANGED


@pytest.mark.parametrize("sha, size", [("c" * 64, 10), ("a" * 64, 11)])
def test_a_file_that_is_neither_version_is_refused(sha, size):
    with pytest.raises(rotation.RekeyError) as info:
        rotation.decide(MANIFEST, sha, size, NEW)
    assert "does not match the manifest" in str(info.value)


def test_the_steps_manifests_describe_both_files_then_the_new_one():
    pending = rotation.with_pending(MANIFEST, "b" * 64, 12, NEW, "2026-12-01T08:00:00Z")
    assert pending["sha256"] == "a" * 64 and pending["recipients"] == OLD
    # Killed with the old file in place: rotate again (the staged copy is written anew).
    assert rotation.decide(pending, "a" * 64, 10, NEW) == rotation.REKEYED
    # Killed with the new file in place: finish.
    assert rotation.decide(pending, "b" * 64, 12, NEW) == rotation.FINISHED
    done = rotation.finished(pending, "2026-12-01T08:00:05Z")
    assert (done["sha256"], done["size_bytes"], done["recipients"]) == ("b" * 64, 12, NEW)
    assert mf.REKEY_PENDING not in done
    assert done["rotations"] == [{"started_at": "2026-12-01T08:00:00Z", "finished_at": "2026-12-01T08:00:05Z",
                                  "previous_sha256": "a" * 64, "previous_size_bytes": 10, "previous_recipients": OLD}]
    assert rotation.decide(done, "b" * 64, 12, NEW) == rotation.UNCHANGED
    # A second rotation keeps the first one's record.
    again = rotation.finished(rotation.with_pending(done, "d" * 64, 12, OLD, "t1"), "t2")
    assert [r["previous_sha256"] for r in again["rotations"]] == ["a" * 64, "b" * 64]


def test_the_staged_copy_is_hidden_beside_the_backup():
    assert rotation.staged_name("db_backup_1.sql.age") == ".db_backup_1.sql.age.rekey"


def test_one_rotation_at_a_time_per_directory(tmp_path):
    with rotation.directory_locked(str(tmp_path)):
        with pytest.raises(rotation.RekeyError) as info:
            with rotation.directory_locked(str(tmp_path)):
                pass
    assert "another key rotation" in str(info.value)
    with rotation.directory_locked(str(tmp_path)):
        pass
