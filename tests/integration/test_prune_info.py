# -*- coding: utf-8 -*-
"""The prune and backup_info modules, driven through ansible-playbook.

Synthetic trees (backups with genuine-looking manifests written with manifest.build_manifest,
earlier processes' backups, empty files, leftovers, foreign files, planted symlinks, a directory
archive) and a tree of real backups taken with the backup module against the test cluster.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import checksums
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import manifest as mf
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import atomic_files
from pglab import run_playbook
from helpers import undocumented_keys

UTC = datetime.timezone.utc
PREFIX = "lift_simulator"
ROWS = {"lift_simulator.lift_system": 12, "lift_simulator.lift_system_version": 60,
        "lift_simulator.simulation_run": 2400, "public.flyway_schema_history": 13}
SUFFIX_FORMAT = {".sql": ("plain", "none"), ".sql.gz": ("plain", "gzip"), ".sql.zst": ("plain", "zstd"),
                 ".dump": ("custom", "gzip"), "": ("directory", "gzip")}


def stamp(when):
    return when.strftime("%Y%m%d_%H%M%S")


def set_mtime(path, when):
    seconds = when.timestamp()
    os.utime(path, (seconds, seconds), follow_symlinks=False)


def write_backup(directory, when, suffix=".sql", manifest=True, data=None):
    """A backup named as the backup module names it, with a manifest as it writes them."""
    name = "%s_backup_%s%s" % (PREFIX, stamp(when), suffix)
    path = os.path.join(directory, name)
    fmt, compression = SUFFIX_FORMAT[suffix]
    files = None
    if fmt == "directory":
        os.mkdir(path, 0o700)
        for entry, content in (("toc.dat", b"PGDMP toc " * 50), ("3001.dat.gz", os.urandom(700)),
                               ("3002.dat.gz", os.urandom(300))):
            with open(os.path.join(path, entry), "wb") as handle:
                handle.write(content)
        files, size, digest = checksums.hash_directory(path)
    else:
        with open(path, "wb") as handle:
            handle.write(data if data is not None else
                         b"-- PostgreSQL database dump\n" + ("-- %s\n" % name).encode() + os.urandom(512))
        digest, size = checksums.sha256_file(path)
    if manifest:
        started = when
        finished = when + datetime.timedelta(seconds=3.25)
        document = mf.build_manifest(
            backup_name=name, database=PREFIX, host=socket.getfqdn(),
            server={"host": "local socket", "port": 5432, "version": "15.18", "version_num": 150018},
            pg_dump_version="15.18 (Debian 15.18-0+deb12u1)", format=fmt, compression=compression,
            compression_level=None if compression == "none" else 6,
            started_at=mf.utc_iso(started), finished_at=mf.utc_iso(finished), duration_s=3.25,
            size_bytes=size, sha256=digest, sha256_scope="directory listing" if files else "file", files=files,
            row_counts=dict(ROWS), flyway_version="13",
            flyway=[{"schema": "lift_simulator", "version": "13", "description": "add simulation runs",
                     "installed_rank": 13, "rows": 13, "failed": 0}],
            snapshot="00000003-0000001B-1", collection="lift_simulator.postgresql", collection_version="0.1.0")
        with open(path + ".manifest.json", "wb") as handle:
            handle.write(mf.dumps(document))
        set_mtime(path + ".manifest.json", finished)
    set_mtime(path, when)
    return name


def write_file(directory, name, data=b"x", when=None):
    path = os.path.join(directory, name)
    with open(path, "wb") as handle:
        handle.write(data)
    if when is not None:
        set_mtime(path, when)
    return name


def listing(directory):
    return sorted(os.listdir(directory))


def dead_pid():
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def prune(args, check=False, diff=False, run_as="root", expect_ok=True):
    run = run_playbook("prune_module.yml", {"prune_args": args, "run_as": run_as, "prune_diff": diff}, check=check)
    result = run.task("Prune")
    assert result is None or not undocumented_keys("prune", result), undocumented_keys("prune", result)
    if expect_ok:
        assert run.rc == 0, "prune failed: %s\n%s" % (result and result.get("msg"), run.stderr[-3000:])
    return result


def info(args, run_as="root", max_days=None):
    extra = {"info_args": args, "run_as": run_as}
    if max_days is not None:
        extra["max_days"] = max_days
    run = run_playbook("backup_info_module.yml", extra)
    result = run.task("Backup info")
    assert result is None or not undocumented_keys("backup_info", result), undocumented_keys("backup_info", result)
    return run, result


def by_name(entries):
    return dict((os.path.basename(e["path"]), e) for e in entries)


class Tree(object):
    """The synthetic backup directory; names of what the rules will do with each entry."""

    def __init__(self, root):
        self.root = root
        self.dir = os.path.join(root, "backups")
        self.outside = os.path.join(root, "outside")
        os.mkdir(self.dir, 0o700)
        os.mkdir(self.outside)
        now = datetime.datetime.now(UTC).replace(microsecond=0)
        old = now - datetime.timedelta(days=30)
        day = datetime.timedelta(days=1)
        hour = datetime.timedelta(hours=1)
        suffixes = [".sql", ".dump", ".sql.gz", ".sql", ".sql", ".dump", ".sql", ".sql", ".sql", ".sql"]
        self.good = [write_backup(self.dir, now - d * day - hour, suffixes[d]) for d in range(10)]  # newest first
        self.directory_archive = write_backup(self.dir, now - 20 * day, "")
        os.symlink(self.outside, os.path.join(self.dir, self.directory_archive, "planted"))
        self.corrupt = write_backup(self.dir, now - 2 * day - 12 * hour, ".sql")
        with open(os.path.join(self.dir, self.corrupt), "r+b") as handle:  # same size, other bytes
            handle.seek(40)
            handle.write(b"CORRUPTED")
        set_mtime(os.path.join(self.dir, self.corrupt), now - 2 * day - 12 * hour)
        self.no_manifest = write_backup(self.dir, now - 5 * day, ".sql.zst", manifest=False)
        self.empty = write_file(self.dir, "%s_backup_%s.dump" % (PREFIX, stamp(now - 4 * day)), b"", old)
        self.empty_recent = write_file(self.dir, "%s_backup_%s.sql.gz" % (PREFIX, stamp(now - 3 * hour)), b"")
        self.orphan = write_file(self.dir, "%s_backup_%s.sql.manifest.json" % (PREFIX, stamp(now - 6 * day)),
                                 b"{}", old)
        self.legacy_sql = write_file(self.dir, "%s_backup_%s.sql" % (PREFIX, stamp(now - 100 * day)),
                                     b"-- PostgreSQL database dump\n" * 20, old)
        legacy_custom_time = (now - 120 * day).strftime("%Y-%m-%d_%H-%M-%S")
        self.legacy_custom = write_file(self.dir, "%s_backup_%s.backup" % (PREFIX, legacy_custom_time),
                                        b"PGDMP" + b"\0" * 100, old)
        legacy_empty_time = (now - 9 * day).strftime("%Y-%m-%d_%H-%M-%S")
        self.legacy_empty = write_file(self.dir, "%s_backup_%s.backup" % (PREFIX, legacy_empty_time), b"", old)
        host = atomic_files.short_hostname()
        self.stale_partial = write_file(self.dir, ".%s_backup_%s.sql.partial-%s-%d"
                                        % (PREFIX, stamp(now), host, dead_pid()), b"half", old)
        self.live_partial = write_file(self.dir, ".%s_backup_%s.sql.partial-%s-%d"
                                       % (PREFIX, stamp(now), host, os.getpid()), b"half", old)
        # Foreign entries: never touched.
        os.mkdir(os.path.join(self.dir, "logs"), 0o700)
        write_file(os.path.join(self.dir, "logs"), "%s_backup_%s.log" % (PREFIX, stamp(old)), b"SUCCESS", old)
        self.foreign = ["logs", write_file(self.dir, "notes.txt", b"keep", old),
                        write_file(self.dir, "other_backup_%s.sql" % stamp(old), b"other db", old),
                        write_file(self.dir, "%s_backup_latest.sql" % PREFIX, b"x", old),
                        write_file(self.dir, "%s_backup_%s.sql.bak" % (PREFIX, stamp(old)), b"", old)]
        # A symlink planted with an old backup's name (and a valid manifest) pointing outside.
        self.target = os.path.join(self.outside, "precious.sql")
        with open(self.target, "wb") as handle:
            handle.write(b"do not delete")
        self.symlink = "%s_backup_%s.sql" % (PREFIX, stamp(old))
        os.symlink(self.target, os.path.join(self.dir, self.symlink))
        self.symlink_manifest = "%s_backup_%s.dump.manifest.json" % (PREFIX, stamp(old - day))
        os.symlink(self.target, os.path.join(self.dir, self.symlink_manifest))
        self.initial = listing(self.dir)

    # What keep_last 3, max_age_days 7, include_legacy does to the tree.
    def expected_removed(self, verify=True):
        removed = {self.good[7]: "max_age_days", self.good[8]: "max_age_days", self.good[9]: "max_age_days",
                   self.directory_archive: "max_age_days", self.legacy_sql: "max_age_days",
                   self.legacy_custom: "max_age_days", self.legacy_empty: "zero_bytes", self.empty: "zero_bytes",
                   self.no_manifest: "no_manifest", self.orphan: "orphan_manifest",
                   self.stale_partial: "stale_partial"}
        if verify:
            removed[self.corrupt] = "checksum_mismatch"
        return removed

    def expected_kept(self, verify=True):
        kept = dict((name, "keep_last") for name in self.good[:3])
        kept.update((name, "within_max_age") for name in self.good[3:7])
        kept[self.empty_recent] = "zero_bytes_recent"
        if not verify:
            kept[self.corrupt] = "within_max_age"
        return kept

    def gone_after_prune(self, verify=True):
        gone = set()
        for name in self.expected_removed(verify):
            gone.add(name)
            if os.path.exists(os.path.join(self.dir, name + ".manifest.json")):
                gone.add(name + ".manifest.json")
        return gone


@pytest.fixture
def rootdir():
    """A directory only root can change: root runs these modules, and root trusts no directory
    that another user (postgres included) could change (module_utils/storage/path_trust.py)."""
    path = tempfile.mkdtemp(prefix="lift-it-root-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def tree(rootdir):
    return Tree(rootdir)


RULES = dict(keep_last=3, max_age_days=7, include_legacy=True)


def test_prune_check_mode_lists_and_deletes_nothing(tree):
    result = prune(dict(RULES, path=tree.dir), check=True, diff=True)
    assert result["changed"] is True
    assert dict((os.path.basename(e["path"]), e["rule"]) for e in result["removed"]) == tree.expected_removed()
    assert dict((os.path.basename(e["path"]), e["rule"]) for e in result["kept"]) == tree.expected_kept()
    assert listing(tree.dir) == tree.initial
    after = set(result["diff"]["after"].splitlines())
    before = set(result["diff"]["before"].splitlines())
    assert before - after == tree.gone_after_prune()
    assert not any(name in before for name in tree.foreign + [tree.symlink, tree.live_partial])


def test_prune_removes_what_the_rules_say_and_nothing_else(tree):
    gone = tree.gone_after_prune()
    result = prune(dict(RULES, path=tree.dir))
    assert result["changed"] is True
    removed = by_name(result["removed"])
    assert dict((name, e["rule"]) for name, e in removed.items()) == tree.expected_removed()
    assert listing(tree.dir) == sorted(set(tree.initial) - gone)
    # The backup's manifest went with it; the directory archive went without following its symlink.
    entry = removed[tree.good[8]]
    assert entry["manifest_path"] == entry["path"] + ".manifest.json" and not os.path.exists(entry["manifest_path"])
    assert removed[tree.legacy_sql]["legacy"] is True and removed[tree.legacy_sql]["manifest_path"] is None
    assert os.listdir(tree.outside) == ["precious.sql"]
    with open(tree.target, "rb") as handle:
        assert handle.read() == b"do not delete"
    # Foreign entries, symlinks, the live writer's temporary and the logs are all still there.
    for name in tree.foreign + [tree.symlink, tree.symlink_manifest, tree.live_partial]:
        assert os.path.lexists(os.path.join(tree.dir, name)), name
    assert len(os.listdir(os.path.join(tree.dir, "logs"))) == 1
    left_alone = dict((os.path.basename(s["path"]), s["reason"]) for s in result["left_alone"])
    assert "symlink" in left_alone[tree.symlink] and "symlink" in left_alone[tree.symlink_manifest]
    kept = by_name(result["kept"])
    assert kept[tree.good[0]]["rules"] == ["keep_last", "newest_good"]
    assert kept[tree.good[0]]["good"] is True and kept[tree.good[0]]["age_days"] < 1

    again = prune(dict(RULES, path=tree.dir))
    assert again["changed"] is False and again["removed"] == []
    assert dict((os.path.basename(e["path"]), e["rule"]) for e in again["kept"]) == tree.expected_kept()


def test_prune_without_include_legacy_leaves_the_earlier_processes_alone(tree):
    result = prune(dict(RULES, path=tree.dir, include_legacy=False, verify_checksums=False), check=True)
    removed = dict((os.path.basename(e["path"]), e["rule"]) for e in result["removed"])
    expected = tree.expected_removed(verify=False)
    for name in (tree.legacy_sql, tree.legacy_custom, tree.legacy_empty):
        del expected[name]
    assert removed == expected
    left_alone = dict((os.path.basename(s["path"]), s["reason"]) for s in result["left_alone"])
    assert "include_legacy is false" in left_alone[tree.legacy_sql]
    assert "include_legacy is false" in left_alone[tree.legacy_empty]
    assert by_name(result["kept"])[tree.corrupt]["rule"] == "within_max_age"  # not hashed


def test_prune_calendar_rules(tree):
    result = prune(dict(path=tree.dir, keep_last=1, keep_daily=2, keep_weekly=2, keep_monthly=2), check=True)
    kept = by_name(result["kept"])
    labels = [r for e in kept.values() for r in e["rules"]]
    assert len([r for r in labels if r.startswith("keep_daily ")]) == 2
    assert len([r for r in labels if r.startswith("keep_weekly ")]) == 2  # the good backups span 10 days
    assert len([r for r in labels if r.startswith("keep_monthly ")]) in (1, 2)  # 20 days: one or two months
    assert kept[tree.good[0]]["rules"][:2] == ["keep_last", "newest_good"]
    assert set(e["rule"] for e in result["removed"]) <= {
        "not_selected", "zero_bytes", "no_manifest", "checksum_mismatch", "orphan_manifest", "stale_partial"}
    assert by_name(result["removed"])[tree.good[9]]["rule"] in ("not_selected",)
    assert listing(tree.dir) == tree.initial


def test_prune_refuses_bad_rules_and_tolerates_a_missing_directory(workdir):
    result = prune(dict(path=workdir, keep_last=-1), expect_ok=False)
    assert result["failed"] and "keep_last must be a whole number" in result["msg"]
    missing = prune(dict(path=os.path.join(workdir, "none")))
    assert missing["changed"] is False and missing["removed"] == []
    assert any("does not exist" in w for w in missing.get("warnings", []))


def test_backup_info_lists_the_tree(tree):
    run, result = info(dict(path=tree.dir, include_legacy=True))
    assert run.rc == 0 and result["changed"] is False
    backups = by_name(result["backups"])
    expected = set(tree.good + [tree.directory_archive, tree.corrupt, tree.no_manifest, tree.empty,
                                tree.empty_recent, tree.legacy_sql, tree.legacy_custom, tree.legacy_empty])
    assert set(backups) == expected and result["count"] == len(expected)
    names = [e["name"] for e in result["backups"]]
    ages = [e["age_seconds"] for e in result["backups"]]
    assert ages == sorted(ages) and names[:3] == [tree.good[0], tree.empty_recent, tree.good[1]]
    newest = result["newest_good"]
    assert newest["name"] == tree.good[0] and result["newest_good_path"] == os.path.join(tree.dir, tree.good[0])
    assert newest["good"] and newest["checksum_ok"] is True and newest["manifest_valid"] is True
    assert newest["row_counts_total"] == sum(ROWS.values()) and newest["tables"] == len(ROWS)
    assert newest["flyway_version"] == "13" and newest["database"] == PREFIX and newest["format"] == "plain"
    assert newest["sha256"] == checksums.sha256_file(newest["path"])[0] and 0 < newest["age_days"] < 1
    assert backups[tree.corrupt]["good"] is False and backups[tree.corrupt]["checksum_ok"] is False
    assert backups[tree.corrupt]["problem"] == "checksum_mismatch"
    assert backups[tree.no_manifest]["manifest_exists"] is False and backups[tree.no_manifest]["problem"] == "no_manifest"
    assert backups[tree.no_manifest]["format"] == "plain" and backups[tree.no_manifest]["compression"] == "zstd"
    archive = backups[tree.directory_archive]
    assert archive["kind"] == "directory" and archive["good"] and archive["checksum_ok"] is True
    assert archive["format"] == "directory" and 19.9 < archive["age_days"] < 20.1
    legacy = backups[tree.legacy_custom]
    assert legacy["legacy"] and legacy["good"] and legacy["format"] == "custom" and legacy["sha256"] is None
    assert backups[tree.legacy_empty]["problem"] == "zero_bytes"
    assert result["good_count"] == 10 + 1 + 2
    assert result["orphan_manifests"] == [os.path.join(tree.dir, tree.orphan)]
    left_alone = sorted(os.path.basename(s["path"]) for s in result["left_alone"])
    assert left_alone == sorted([tree.symlink, tree.symlink_manifest])
    assert listing(tree.dir) == tree.initial

    # The default, as prune's: this collection's backups only.
    run, quick = info(dict(path=tree.dir, verify_checksums=False))
    backups = by_name(quick["backups"])
    assert backups[tree.corrupt]["good"] is True and backups[tree.corrupt]["checksum_ok"] is None
    assert tree.legacy_sql not in backups and tree.legacy_custom not in backups


def test_backup_info_missed_schedule_alert(tree, rootdir):
    run, _result = info(dict(path=tree.dir), max_days=8)
    assert run.rc == 0
    stale = os.path.join(rootdir, "stale")
    os.mkdir(stale)
    write_backup(stale, datetime.datetime.now(UTC) - datetime.timedelta(days=10))
    run, result = info(dict(path=stale), max_days=8)
    assert result["newest_good"]["age_days"] > 9
    assert run.rc != 0 and "No good backup in the last 8 days" in run.task("The newest good backup is recent")["msg"]
    run, result = info(dict(path=os.path.join(rootdir, "never")), max_days=8)
    assert result["path_exists"] is False and result["newest_good"] is None and result["count"] == 0
    assert run.rc != 0


def test_backup_info_check_mode(tree):
    run = run_playbook("backup_info_module.yml", {"info_args": dict(path=tree.dir)}, check=True)
    assert run.rc == 0 and run.task("Backup info")["count"] > 0
    assert listing(tree.dir) == tree.initial


# --- real backups ----------------------------------------------------------------------------

def real_backup(cluster, dest, **options):
    args = dict(cluster.connection_vars(), dest_dir=dest, log_dir=os.path.join(dest, "logs"))
    args.update(options)
    run = run_playbook("backup_module.yml", {"backup_args": args})
    assert run.rc == 0, run.task("Backup").get("msg")
    return run.task("Backup")


def test_real_backups(cluster, workdir):
    dest = os.path.join(workdir, "real")
    made = []
    for options in (dict(format="custom"), dict(format="directory", jobs=2), dict()):
        made.append(real_backup(cluster, dest, **options))
        time.sleep(1.1)  # names have a one-second resolution
    run, result = info(dict(path=dest), run_as="postgres")
    assert run.rc == 0
    assert [e["path"] for e in result["backups"]] == [m["path"] for m in reversed(made)]
    for entry, backup in zip(result["backups"], reversed(made)):
        assert entry["good"] and entry["checksum_ok"] is True and not entry["legacy"]
        assert entry["sha256"] == backup["sha256"] and entry["size_bytes"] == backup["size_bytes"]
        assert entry["row_counts_total"] == sum(backup["row_counts"].values()) > 0
        assert entry["started_at"] == backup["started_at"] and entry["format"] == backup["format"]
        assert entry["flyway_version"] == backup["flyway_version"]
    assert result["newest_good_path"] == made[-1]["path"]

    preview = prune(dict(path=dest, keep_last=1), check=True, run_as="postgres")
    assert [e["path"] for e in preview["removed"]] == [made[1]["path"], made[0]["path"]]
    assert len(os.listdir(dest)) == 10  # 3 backups, their role definitions and manifests, logs

    # Corrupt the directory archive: it is no longer good, and goes as soon as a newer good one exists.
    with open(os.path.join(made[1]["path"], "toc.dat"), "r+b") as handle:
        handle.seek(10)
        byte = handle.read(1)
        handle.seek(10)
        handle.write(bytes([byte[0] ^ 0xFF]))
    result = prune(dict(path=dest, keep_last=2), run_as="postgres")
    assert dict((e["path"], e["rule"]) for e in result["removed"]) == {made[1]["path"]: "checksum_mismatch"}
    kept = dict((e["path"], e["rule"]) for e in result["kept"])
    assert kept == {made[2]["path"]: "keep_last", made[0]["path"]: "keep_last"}
    assert sorted(os.listdir(dest)) == sorted(
        [os.path.basename(made[i][k]) for i in (0, 2) for k in ("path", "globals_path", "manifest_path")] + ["logs"])
    assert len(os.listdir(os.path.join(dest, "logs"))) == 3
    again = prune(dict(path=dest, keep_last=2), run_as="postgres")
    assert again["changed"] is False

    result = prune(dict(path=dest, keep_last=0, max_age_days=0), run_as="postgres")
    assert [e["path"] for e in result["removed"]] == [made[0]["path"]]
    assert [(e["path"], e["rule"]) for e in result["kept"]] == [(made[2]["path"], "newest_good")]
    run, result = info(dict(path=dest), run_as="postgres", max_days=8)
    assert run.rc == 0 and result["count"] == 1
    assert json.dumps(result)  # plain JSON all the way


# --- a wrong clock, companion files, directories others can change -----------------------------

def test_a_backup_dated_in_the_future_never_displaces_todays(rootdir):
    """A clock that ran three years ahead once: that backup is kept and reported, and counts for
    nothing - not as the newest good backup, not for keep_last."""
    now = datetime.datetime.now(UTC)
    future = write_backup(rootdir, now + datetime.timedelta(days=1096))
    today = write_backup(rootdir, now - datetime.timedelta(hours=1))
    older = write_backup(rootdir, now - datetime.timedelta(days=3))
    run, result = info(dict(path=rootdir), max_days=8)
    assert run.rc == 0
    assert result["newest_good"]["name"] == today and result["future_count"] == 1
    backups = by_name(result["backups"])
    assert backups[future]["future"] is True and backups[future]["age_days"] < -1095
    assert backups[today]["future"] is False
    assert len(result["anomalies"]) == 1 and future in result["anomalies"][0] and "clock" in result["anomalies"][0]
    pruned = prune(dict(path=rootdir, keep_last=1))
    kept = dict((os.path.basename(e["path"]), e["rule"]) for e in pruned["kept"])
    assert kept == {future: "future_dated", today: "keep_last"}
    assert [os.path.basename(e["path"]) for e in pruned["removed"]] == [older]
    assert listing(rootdir) == sorted([future, future + ".manifest.json", today, today + ".manifest.json"])


def test_role_definitions_go_with_their_backup_and_orphans_are_removed(rootdir):
    now = datetime.datetime.now(UTC)
    keep = write_backup(rootdir, now - datetime.timedelta(hours=1))
    old = write_backup(rootdir, now - datetime.timedelta(days=3))
    for name in (keep, old):
        write_file(rootdir, name + ".globals.sql", b"CREATE ROLE lift_admin;\n")
    orphan = write_file(rootdir, "%s_backup_%s.sql.globals.sql" % (PREFIX, stamp(now - datetime.timedelta(days=9))))
    run, result = info(dict(path=rootdir))
    assert by_name(result["backups"])[keep]["globals_path"] == os.path.join(rootdir, keep + ".globals.sql")
    assert result["orphan_globals"] == [os.path.join(rootdir, orphan)]
    pruned = prune(dict(path=rootdir, keep_last=1))
    assert dict((os.path.basename(e["path"]), e["rule"]) for e in pruned["removed"]) == {
        old: "not_selected", orphan: "orphan_globals"}
    assert listing(rootdir) == sorted([keep, keep + ".globals.sql", keep + ".manifest.json"])


def test_root_trusts_no_directory_another_user_can_change(workdir, rootdir):
    """root runs these modules; a directory the postgres OS user (or anyone but root) owns, or one
    that group or others may write, could have its backups replaced under root's feet."""
    now = datetime.datetime.now(UTC)
    theirs = os.path.join(workdir, "backups")  # postgres-owned, as the database host's
    os.mkdir(theirs)
    write_backup(theirs, now)
    for module in ("prune", "info"):
        args = dict(path=theirs, keep_last=1) if module == "prune" else dict(path=theirs)
        if module == "prune":
            result = prune(args, expect_ok=False)
        else:
            result = info(args)[1]
        assert result["failed"] and "belongs to postgres, not to root" in result["msg"]
    shared = os.path.join(rootdir, "shared")
    os.mkdir(shared)
    os.chmod(shared, 0o777)
    write_backup(shared, now)
    refused = prune(dict(path=shared, keep_last=1), expect_ok=False)
    assert "is writable by group and others (mode 0777)" in refused["msg"] and "nothing was removed" in refused["msg"]
    # warn: goes on, and says so.
    warned = prune(dict(path=shared, keep_last=1, directory_checks="warn"))
    assert any("cannot be trusted" in w for w in warned["warnings"])


def test_older_option_names_still_work_with_a_deprecation(cluster, workdir):
    """One name per idea (backup_dir, name_timezone, calendar_timezone, database); the older names are
    deprecated aliases, so playbooks written for them keep working."""
    directory = os.path.join(workdir, "old-names")
    conn = cluster.connection_vars()
    run = run_playbook("old_option_names.yml", {"old": dict(dir=directory, login_unix_socket=conn["login_unix_socket"],
                                                            login_port=conn["login_port"])})
    assert run.rc == 0, run.stdout[-3000:]
    made = run.task("Backup")
    assert made["changed"] is True and made["path"].startswith(directory + "/lift_simulator_backup_")
    info = run.task("Backup_info")
    assert info["newest_good_path"] == made["path"]
    assert run.task("Prune")["changed"] is False
    deprecations = " ".join(d["msg"] for t in (made, info, run.task("Prune")) for d in t.get("deprecations", []))
    for old in ("dest_dir", "timezone", "path", "prefix"):
        assert "Alias '%s' is deprecated" % old in deprecations, deprecations
