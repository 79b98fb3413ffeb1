# -*- coding: utf-8 -*-
"""Hostile inputs: paths that try to escape, symlinks planted in the backup directory, manifests
that lie. (Hostile database and table names: tests/integration/test_restore_verify.py.)"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import shutil

import pytest

from helpers import backup, clone_database, databases, drop_databases, listing, restore, verify
from pgcompare import fingerprint
from pglab import postgres_owned_dir


def test_dest_dir_with_dotdot_is_resolved_and_nothing_escapes(cluster, workdir):
    made = backup(cluster, os.path.join(workdir, "a", "..", "b"))
    assert os.path.dirname(made["path"]) == os.path.join(workdir, "b")
    assert listing(workdir) == ["b"]


@pytest.mark.parametrize("template", ["../escaped_%Y", "sub/dir_%Y", ".hidden_%Y", "..", "{database}/../x"])
def test_name_templates_that_leave_the_directory_are_refused(cluster, workdir, template):
    result = backup(cluster, os.path.join(workdir, "b"), expect_ok=False, name_template=template)
    assert "name_template" in result["msg"]
    assert listing(workdir) == [] or listing(os.path.join(workdir, "b")) == []
    assert not os.path.exists(os.path.join(workdir, "escaped_2026"))


def test_a_symlink_planted_at_the_backup_name_is_never_written_through(cluster, workdir):
    dest = os.path.join(workdir, "b")
    os.mkdir(dest)
    shutil.chown(dest, "postgres")
    victim = os.path.join(workdir, "victim")
    with open(victim, "w") as handle:
        handle.write("precious\n")
    shutil.chown(victim, "postgres")
    os.symlink(victim, os.path.join(dest, "fixed.sql"))
    result = backup(cluster, dest, expect_ok=False, name_template="fixed")
    assert "refusing to overwrite" in result["msg"]
    with open(victim) as handle:
        assert handle.read() == "precious\n"
    assert sorted(listing(dest)) == ["fixed.sql"]
    # The same for a symlink planted at the manifest's name: the backup is kept, the victim too.
    os.unlink(os.path.join(dest, "fixed.sql"))
    os.symlink(victim, os.path.join(dest, "fixed.sql.manifest.json"))
    result = backup(cluster, dest, expect_ok=False, name_template="fixed")
    assert "its manifest could not be" in result["msg"]
    with open(victim) as handle:
        assert handle.read() == "precious\n"


@pytest.fixture(scope="module")
def honest(cluster):
    base = postgres_owned_dir("lift-fault-lies-")
    made = backup(cluster, base, format="custom")
    yield made
    shutil.rmtree(base, ignore_errors=True)


def lying_copy(made, directory, lie):
    name = os.path.basename(made["path"])
    path = os.path.join(directory, name)
    shutil.copy(made["path"], path)
    with open(made["manifest_path"]) as handle:
        manifest = json.load(handle)
    lie(manifest)
    with open(path + ".manifest.json", "w") as handle:
        if isinstance(manifest, dict):
            json.dump(manifest, handle)
        else:
            handle.write(manifest)
    os.chmod(path, 0o644)
    os.chmod(path + ".manifest.json", 0o644)
    return path


def more_rows(m):
    m["row_counts"]["lift_simulator.lift_system"] += 1


def more_versions(m):
    m["checklist"]["versions_per_system"]["total"] += 1


def flipped(digest):
    return digest[:-1] + ("0" if digest[-1] != "0" else "1")


def moved_versions(m):
    """The same systems and total, but another count per system: only the digest tells."""
    m["checklist"]["versions_per_system"]["sha256"] = flipped(m["checklist"]["versions_per_system"]["sha256"])


def later_flyway(m):
    m["flyway_version"] = "14"


def other_sha(m):
    m["sha256"] = "0" * 64


def other_name(m):
    m["backup_name"] = "lift_simulator_backup_20200101_000000.dump"


def hostile_table(m):
    m["row_counts"]["x'); DROP TABLE lift_simulator.lift_system; --"] = 1


def other_published(m):
    """The same number of published versions per system, but another version number published."""
    m["checklist"]["published_versions"]["sha256"] = flipped(m["checklist"]["published_versions"]["sha256"])


LIES = [
    (more_rows, "restore", "rows lift_simulator.lift_system"),
    (more_versions, "restore", "versions per system"),
    (moved_versions, "restore", "versions per system"),
    (later_flyway, "restore", "flyway history"),
    (other_sha, "quick", "sha256"),
    (other_name, "quick", "manifest"),
    (hostile_table, "restore", "rows x'); DROP TABLE lift_simulator.lift_system; --"),
    (other_published, "restore", "published versions per system"),
]


@pytest.mark.parametrize("lie, level, failing", LIES, ids=[lie.__name__ for lie, _l, _f in LIES])
def test_a_manifest_that_lies_is_caught_and_the_live_database_kept(cluster, honest, workdir, lie, level, failing):
    path = lying_copy(honest, workdir, lie)
    names = databases(cluster)
    result = verify(cluster, path, level=level, expect_ok=False)
    assert failing in result["failed_checks"]
    assert databases(cluster) == names
    target = clone_database(cluster, "lied_to_%s" % lie.__name__)
    before = fingerprint(cluster, target)
    refused = restore(cluster, path, database=target, expect_ok=False)
    assert failing in refused["msg"]
    assert fingerprint(cluster, target) == before
    assert databases(cluster) == names | {target}
    drop_databases(cluster, target)


def previous_format_checklist(cluster, database="lift_simulator"):
    """The checklist as the version before the digests wrote it: full maps, read here with SQL of
    the test's own (not the collection's code)."""
    text = cluster.psql(
        "SELECT json_build_object('schema', 'lift_simulator', 'lift_system_count', count(*), "
        "'versions_per_system', json_object_agg(system_key, versions), "
        "'published_per_system', json_object_agg(system_key, published), "
        "'published_versions', (SELECT json_object_agg(system_key, list) FROM (SELECT s.system_key, "
        "json_agg(json_build_array(v.version_number, v.status, v.is_published) ORDER BY v.version_number) list "
        "FROM lift_simulator.lift_system s JOIN lift_simulator.lift_system_version v ON v.lift_system_id = s.id "
        "WHERE v.is_published OR v.status = 'PUBLISHED' GROUP BY s.system_key) p)) "
        "FROM (SELECT s.system_key, count(v.id) versions, count(v.id) FILTER (WHERE v.is_published) published "
        "FROM lift_simulator.lift_system s LEFT JOIN lift_simulator.lift_system_version v "
        "ON v.lift_system_id = s.id GROUP BY s.system_key) c", database=database)
    return json.loads(text)


def test_a_manifest_in_the_previous_format_is_still_checked_strictly(cluster, honest, workdir):
    old = previous_format_checklist(cluster)
    assert len(old["versions_per_system"]) == old["lift_system_count"] > 1
    path = lying_copy(honest, workdir, lambda m: m.update(checklist=old))
    result = verify(cluster, path, level="restore")
    checks = dict((c["name"], c) for c in result["checks"])
    assert checks["versions per system"]["passed"] and "as in the backup" in checks["versions per system"]["detail"]
    assert checks["published versions per system"]["passed"]
    # Two systems' counts moved (the same total), then one published version's status changed.
    first, second = sorted(old["versions_per_system"])[:2]
    moved = json.loads(json.dumps(old))
    moved["versions_per_system"][first] += 1
    moved["versions_per_system"][second] -= 1
    path = lying_copy(honest, workdir, lambda m: m.update(checklist=moved))
    result = verify(cluster, path, level="restore", expect_ok=False)
    assert result["failed_checks"] == ["versions per system"]
    detail = dict((c["name"], c) for c in result["checks"])["versions per system"]["detail"]
    assert "figures per system differ" in detail
    other = json.loads(json.dumps(old))
    key = sorted(other["published_versions"])[0]
    other["published_versions"][key][0][1] = "ARCHIVED" if other["published_versions"][key][0][1] != "ARCHIVED" else "DRAFT"
    path = lying_copy(honest, workdir, lambda m: m.update(checklist=other))
    result = verify(cluster, path, level="restore", expect_ok=False)
    assert result["failed_checks"] == ["published versions per system"]


HOSTILE_KEYS = ["line\nbreak", "tab\tkey", 'quote"d', "back\\slash", "caf\u00e9", "cafe\u0301", "\U0001f6d7 lift",
                "Z-upper", "a,1", "[\"x\",1]", " "]


def independent_digest(pairs):
    """The documented digest (docs/manifest.md), written here again: sorted rows, compact ASCII JSON, sha256."""
    rows = sorted([key, count] for key, count in pairs)
    text = json.dumps(rows, ensure_ascii=True, separators=(",", ":"))
    return {"systems": len(rows), "total": sum(count for _key, count in rows),
            "sha256": hashlib.sha256(text.encode("ascii")).hexdigest()}


def test_hostile_system_keys_are_digested_as_documented(cluster, workdir):
    db = clone_database(cluster, "hostile_keys")
    keys = ", ".join("(convert_from(decode('%s', 'hex'), 'UTF8'), 'x')" % key.encode("utf-8").hex() for key in HOSTILE_KEYS)
    cluster.psql("INSERT INTO lift_simulator.lift_system (system_key, display_name) VALUES %s; "
                 "INSERT INTO lift_simulator.lift_system_version (lift_system_id, version_number, status, is_published, "
                 "config) SELECT id, 1, 'PUBLISHED', true, '{}' FROM lift_simulator.lift_system WHERE display_name = 'x' "
                 "AND system_key LIKE '%%e%%'" % keys, database=db)
    made = backup(cluster, os.path.join(workdir, "keys"), database=db)
    with open(made["manifest_path"], encoding="utf-8") as handle:
        text = handle.read()
    recorded = json.loads(text)["checklist"]
    old = previous_format_checklist(cluster, db)
    assert all(key in old["versions_per_system"] for key in HOSTILE_KEYS)
    for name in ("versions_per_system", "published_per_system"):
        assert recorded[name] == independent_digest(old[name].items())
    assert "caf\u00e9" not in text and "line\\nbreak" not in text  # the keys are not in the manifest
    result = verify(cluster, made["path"], level="restore")
    assert all(c["passed"] for c in result["checks"])
    path = lying_copy(made, workdir, lambda m: m.update(checklist=old))  # the previous format
    result = verify(cluster, path, level="restore")
    assert "as in the backup" in dict((c["name"], c) for c in result["checks"])["versions per system"]["detail"]
    drop_databases(cluster, db)


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ("[]", "not a JSON object"),
    (json.dumps({"manifest_version": 1}), "has no"),
    (" " * (17 * 1024 * 1024), "larger than"),
])
def test_broken_manifests_are_named(cluster, honest, workdir, content, message):
    path = lying_copy(honest, workdir, lambda m: None)
    with open(path + ".manifest.json", "w") as handle:
        handle.write(content)
    result = verify(cluster, path, expect_ok=False)
    assert result["failed_checks"] == ["manifest"]
    assert message in result["msg"]


# --- directories others can change ------------------------------------------------------------

def test_a_backup_directory_others_can_write_is_refused_before_anything_is_written(cluster, workdir):
    dest = os.path.join(workdir, "shared")
    os.mkdir(dest)
    shutil.chown(dest, "postgres")
    os.chmod(dest, 0o770)
    result = backup(cluster, dest, expect_ok=False)
    assert "writable by its group (mode 0770)" in result["msg"]
    assert listing(dest) == []
    warned = backup(cluster, dest, directory_checks="warn")
    assert any("cannot be trusted" in w for w in warned["warnings"])
    assert os.path.exists(warned["path"])


def test_a_symlinked_log_directory_is_never_followed(cluster, workdir):
    dest = os.path.join(workdir, "b")
    elsewhere = os.path.join(workdir, "elsewhere")
    os.mkdir(elsewhere)
    shutil.chown(elsewhere, "postgres")
    os.mkdir(dest, 0o700)
    shutil.chown(dest, "postgres")
    os.symlink(elsewhere, os.path.join(dest, "logs"))
    refused = backup(cluster, dest, expect_ok=False, log_dir=os.path.join(dest, "logs"))
    assert "is a symlink" in refused["msg"]
    assert listing(dest) == ["logs"]
    made = backup(cluster, dest, log_dir=os.path.join(dest, "logs"), directory_checks="warn")
    assert made["log_path"] is None and any("never followed" in w for w in made["warnings"])
    assert listing(elsewhere) == []


def test_a_backup_another_user_could_replace_is_refused(cluster, workdir, honest):
    """A directory of another user (nobody): whoever owns it could swap the backup and its
    manifest for ones of their own; verify and restore refuse to read from there."""
    theirs = os.path.join(workdir, "nobodys")
    os.mkdir(theirs)
    path = os.path.join(theirs, os.path.basename(honest["path"]))
    shutil.copy(honest["path"], path)
    shutil.copy(honest["manifest_path"], path + ".manifest.json")
    for entry in (theirs, path, path + ".manifest.json"):
        shutil.chown(entry, "nobody")
        os.chmod(entry, 0o755 if entry == theirs else 0o644)
    names = databases(cluster)
    for result in (verify(cluster, path, expect_ok=False), verify(cluster, path, level="restore", expect_ok=False),
                   restore(cluster, path, database="lift_simulator", expect_ok=False)):
        assert "belongs to nobody" in result["msg"] and "cannot be trusted" in result["msg"]
    assert databases(cluster) == names
