# -*- coding: utf-8 -*-
"""The status page (plugins/module_utils/report): what it shows, that every value is escaped, that
it is self-contained, and that the job's page is written atomically and never fails a run."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os
import re
import stat
import time

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import checksums
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import manifest as mf
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.settings import SETTING_DEFAULTS
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.report import (
    fleet, html_page, listing, status_page, svg_chart)

UTC = datetime.timezone.utc
HOSTILE = '<script>alert("x")</script>&<img src=x onerror=alert(1)>'


def write_backup(directory, when, size=300, duration=4.5, database="lift_simulator"):
    """A backup and its manifest as the backup module writes them."""
    name = "%s_backup_%s.sql" % (database, when.strftime("%Y%m%d_%H%M%S"))
    path = os.path.join(directory, name)
    with open(path, "wb") as handle:
        handle.write(b"-- PostgreSQL database dump\n" + b"x" * size + b"\n-- PostgreSQL database dump complete\n")
    digest, length = checksums.sha256_file(path)
    document = mf.build_manifest(
        backup_name=name, database=database, host="db1", server={"host": "local socket", "port": 5432},
        pg_dump_version="15.18", format="plain", compression="none", compression_level=None,
        started_at=mf.utc_iso(when), finished_at=mf.utc_iso(when + datetime.timedelta(seconds=duration)),
        duration_s=duration, size_bytes=length, sha256=digest, sha256_scope="file", files=None,
        row_counts={"lift_simulator.lift_system": 1}, flyway_version="13", flyway=[], checklist=None)
    with open(path + ".manifest.json", "wb") as handle:
        handle.write(mf.dumps(document))
    return name, length


def job_settings(tmp_path, **changes):
    settings = dict(SETTING_DEFAULTS)
    settings.update(name="it_job", database="lift_simulator", dest_dir=str(tmp_path / "backups"),
                    state_dir=str(tmp_path / "state"), metrics_dir=str(tmp_path / "metrics"),
                    status_page_dir=str(tmp_path / "status"))
    settings.update(changes)
    for key in ("dest_dir", "state_dir", "metrics_dir"):
        os.makedirs(settings[key], exist_ok=True)
    return settings


def text_of(html):
    """The page's visible text, roughly: tags removed, entities kept."""
    return re.sub(r"<[^>]+>", " ", html)


def test_the_page_shows_backups_sizes_durations_and_checksum_states(tmp_path):
    settings = job_settings(tmp_path)
    now = datetime.datetime.now(UTC).replace(microsecond=0)
    old = write_backup(settings["dest_dir"], now - datetime.timedelta(days=2), size=2000, duration=3.0)[0]
    new, size = write_backup(settings["dest_dir"], now - datetime.timedelta(hours=1), size=5000, duration=75.0)
    # A damaged manifest: listed, not good.
    with open(os.path.join(settings["dest_dir"], old + ".manifest.json"), "w") as handle:
        handle.write("{broken")
    path = status_page.write_for_job(settings)
    assert path == os.path.join(settings["status_page_dir"], "index.html")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    with open(path) as handle:
        html = handle.read()
    assert new in html and old in html
    assert "1:15 min" in html  # the duration of the newest backup, from its manifest
    rows = re.findall(r'<tr class="backup">(.*?)</tr>', html)
    assert len(rows) == 2 and new in rows[0] and "good" in rows[0] and "invalid_manifest" in rows[1]
    assert "size matches (not hashed)" in rows[0] and "no manifest" in rows[1]
    assert "%.1f KiB" % (size / 1024.0) in rows[0]
    # The chart: one size bar per backup with a manifest (not the broken one), one duration point.
    svg = re.search(r"<svg .*?</svg>", html).group(0)
    assert svg.count('class="size-bar"') == 1 and svg.count('class="duration-point"') == 1
    assert "No restore drill yet." in html and "No off-site targets." in html
    # No metrics yet: the alerts are not evaluated (rather than "none would fire").
    assert "Not evaluated" in html


def test_the_page_is_self_contained_without_script(tmp_path):
    settings = job_settings(tmp_path)
    write_backup(settings["dest_dir"], datetime.datetime.now(UTC) - datetime.timedelta(hours=3))
    html = html_page.render(status_page.job_page(settings))
    assert html.startswith("<!DOCTYPE html>")
    assert "<script" not in html.lower()
    assert not re.search(r"\s(src|href|action)\s*=", html, re.I), "an external reference"
    assert "url(" not in html and "@import" not in html
    # A policy that forbids scripts and remote loads even if something slipped through.
    assert "default-src 'none'" in html


def test_hostile_names_are_escaped_everywhere():
    now = time.time()
    backup = dict(name=HOSTILE, time=HOSTILE, good=False, problem=HOSTILE, size_bytes=1, manifest_valid=True,
                  format=HOSTILE, compression=HOSTILE, duration_seconds=2.0, database=HOSTILE)
    info = dict(backups=[backup], copies=[dict(name=HOSTILE, where={HOSTILE: dict(good=False, problem=HOSTILE)},
                                               missing_from=[HOSTILE])],
                targets=[dict(name=HOSTILE, target=HOSTILE, error=HOSTILE, newest_good=dict(time=HOSTILE))],
                anomalies=[HOSTILE])
    drill = dict(started=HOSTILE, finished=HOSTILE, success=False, message=HOSTILE,
                 sources=[dict(source=HOSTILE, backup=HOSTILE, backup_time=HOSTILE, restore_seconds=1.5,
                               success=False, message=HOSTILE)])
    metrics = ['lift_simulator_backup_last_run_success{database="%s",backup_job="j"} 0\n'
               % HOSTILE.replace('"', '\\"')]
    entry = dict(host=HOSTILE, database=HOSTILE, job=HOSTILE, info=info, drills=[drill], metrics=metrics,
                 last_run=dict(status=HOSTILE, stage=HOSTILE, message=HOSTILE, finished_at=HOSTILE))
    html = html_page.render(fleet.fleet_page([entry], title=HOSTILE, now=now))
    assert "<script" not in html and "<img" not in html
    assert html.count("&lt;script&gt;") >= 15
    assert "LiftBackupLastRunFailed" in html  # the alert's summary carries the hostile label, escaped


def test_control_characters_are_replaced():
    html = html_page.render(dict(title="a\x1b[31mb\x00", generated="", sections=[]))
    assert "\x1b" not in html and "\x00" not in html and "\ufffd" in html


def test_the_chart_has_a_bar_per_backup_and_a_point_per_known_duration():
    points = [dict(name="b%d" % i, time="2026-11-%02dT08:00:00Z" % (i + 1), size_bytes=1000 * (i + 1),
                   duration_seconds=None if i == 2 else float(i + 1)) for i in range(5)]
    svg = svg_chart.chart(points)
    assert svg.count('class="size-bar"') == 5 and svg.count('class="duration-point"') == 4
    assert "<polyline" in svg and "2026-11-01 08:00" in svg and "2026-11-05 08:00" in svg
    # The tallest bar is the largest backup.
    heights = [float(h) for h in re.findall(r'class="size-bar" x="[^"]+" y="[^"]+" width="[^"]+" height="([^"]+)"', svg)]
    assert heights == sorted(heights) and heights[-1] > heights[0]
    assert svg_chart.chart([]) == ""


def test_drill_reports_newest_first_of_this_job_only(tmp_path):
    drills = tmp_path / "drills"
    drills.mkdir()
    for stamp, success in (("20261101T010000Z", True), ("20261201T010000Z", False), ("20261115T010000Z", True)):
        (drills / ("it_job-%s.json" % stamp)).write_text(json.dumps(dict(
            name="it_job", started=stamp, success=success, sources=[dict(source="local", restore_seconds=12.5)])))
    (drills / "other-20261231T010000Z.json").write_text(json.dumps(dict(name="other", started="x")))
    (drills / "it_job-20261202T010000Z.json").write_text("{not json")
    reports = status_page.drill_reports(str(tmp_path), "it_job")
    assert [r["started"] for r in reports] == ["20261202T010000Z", "20261201T010000Z", "20261115T010000Z",
                                               "20261101T010000Z"]
    assert reports[0]["success"] is False and "cannot be read" in reports[0]["message"]
    assert status_page.drill_reports(str(tmp_path), "it_job", count=2)[1]["started"] == "20261201T010000Z"
    assert status_page.drill_reports(str(tmp_path / "missing"), "it_job") == []


def test_the_job_page_shows_drills_offsite_targets_and_firing_alerts(tmp_path):
    settings = job_settings(tmp_path)
    now = time.time()
    write_backup(settings["dest_dir"], datetime.datetime.now(UTC) - datetime.timedelta(days=10))
    labels = 'database="lift_simulator",backup_job="it_job"'
    with open(os.path.join(settings["metrics_dir"], "lift_pg_backup_it_job.prom"), "w") as handle:
        handle.write("# TYPE lift_simulator_backup_last_run_success gauge\n"
                     "lift_simulator_backup_last_run_success{%s} 1\n"
                     "lift_simulator_backup_last_success_timestamp_seconds{%s} %d\n"
                     'lift_simulator_backup_offsite_last_run_success{%s,target="s3-eu"} 0\n'
                     'lift_simulator_backup_offsite_last_success_timestamp_seconds{%s,target="s3-eu"} %d\n'
                     'lift_simulator_backup_offsite_newest_copy_timestamp_seconds{%s,target="s3-eu"} %d\n'
                     % (labels, labels, now - 10 * 86400, labels, labels, now - 86400, labels, now - 86400))
    with open(os.path.join(settings["metrics_dir"], "lift_pg_backup_drill_it_job.prom"), "w") as handle:
        handle.write('lift_simulator_backup_restore_drill_success{%s,source="local"} 1\n' % labels)
    os.makedirs(os.path.join(settings["state_dir"], "drills"))
    with open(os.path.join(settings["state_dir"], "drills", "it_job-20261130T010000Z.json"), "w") as handle:
        json.dump(dict(name="it_job", database="lift_simulator", started="2026-11-30T01:00:00Z",
                       finished="2026-11-30T01:02:00Z", success=True, message="ok",
                       sources=[dict(source="local", backup="lift_simulator_backup_20261129_080001.sql",
                                     backup_time="2026-11-29T08:00:01Z", restore_seconds=83.0, success=True,
                                     message="restored and checked", checks=[])]), handle)
    html = html_page.render(status_page.job_page(settings, now))
    alerts = re.findall(r'<li class="alert">(.*?)</li>', html)
    assert len(alerts) == 2, alerts
    assert "LiftBackupTooOld" in alerts[0] and "LiftOffsiteCopyFailed" in alerts[1] and "s3-eu" in alerts[1]
    target = re.search(r'<tr class="target">(.*?)</tr>', html).group(1)
    assert "s3-eu" in target and "FAILED" in target
    drill = re.search(r'<tr class="drill">(.*?)</tr>', html).group(1)
    assert "1:23 min" in drill and "lift_simulator_backup_20261129_080001.sql" in drill and "passed" in drill


def test_a_page_that_cannot_be_written_never_raises(tmp_path):
    warnings = []
    settings = job_settings(tmp_path, status_page_dir=str(tmp_path / "no" / "such" / "dir"))
    assert status_page.write_for_job(settings, warn=warnings.append) is None
    assert len(warnings) == 1 and "cannot write the status page" in warnings[0]
    # A warn callable that fails does not make it raise either.
    assert status_page.write_for_job(settings, warn=lambda text: 1 / 0) is None
    assert status_page.write_for_job(job_settings(tmp_path, status_page_dir=None)) is None


def test_the_page_is_replaced_atomically(tmp_path):
    settings = job_settings(tmp_path)
    first = status_page.write_for_job(settings)
    write_backup(settings["dest_dir"], datetime.datetime.now(UTC) - datetime.timedelta(hours=2))
    second = status_page.write_for_job(settings)
    assert first == second and sorted(os.listdir(settings["status_page_dir"])) == ["index.html"]
    with open(second) as handle:
        assert "lift_simulator_backup_" in handle.read()


def test_listing_is_the_retention_listing(tmp_path):
    now = datetime.datetime.now(UTC).replace(microsecond=0)
    directory = str(tmp_path)
    a = write_backup(directory, now - datetime.timedelta(days=1))[0]
    b = write_backup(directory, now - datetime.timedelta(hours=1))[0]
    (tmp_path / "unrelated.txt").write_text("x")
    entries = listing.local_backups(directory, "lift_simulator", now=now)
    assert [e["name"] for e in entries] == [b, a]
    assert entries[0]["good"] and entries[0]["checksum_ok"] is None and entries[0]["duration_seconds"] == 4.5
    hashed = listing.local_backups(directory, "lift_simulator", verify_checksums=True, now=now)
    assert hashed[0]["checksum_ok"] is True
    with open(os.path.join(directory, b), "r+b") as handle:  # same size, different bytes
        handle.seek(40)
        handle.write(b"Y")
    damaged = listing.local_backups(directory, "lift_simulator", verify_checksums=True, now=now)
    assert damaged[0]["good"] is False and damaged[0]["problem"] == "checksum_mismatch"
    assert "mismatch" in html_page.render(dict(title="t", sections=[dict(host="h", database="d", backups=damaged)]))


def test_fleet_sections_from_backup_info_results():
    backup = dict(name="lift_simulator_backup_20261130_080001.sql", time="2026-11-30T08:00:01Z", good=True,
                  checksum_ok=True, manifest_valid=True, size_bytes=4096, database="lift_simulator", age_days=1.0)
    info = dict(backups=[backup], copies=[dict(name=backup["name"], where={"local": dict(good=True, problem=None)},
                                               missing_from=["sftp-b"])],
                targets=[dict(name="sftp-b", target="sftp://backup@b/srv", error=None, newest_good=None)])
    page = fleet.fleet_page([dict(host="db2", info=info), dict(host="db1", info=dict(backups=[])), "junk"], now=0)
    assert [s["host"] for s in page["sections"]] == ["db1", "db2"]
    html = html_page.render(page)
    assert "not on sftp-b" in html and "sftp://backup@b/srv" in html and "verified" in html
    assert html.count('<section class="db">') == 2 and "No backups." in html


def test_the_page_and_its_directory_are_readable_whatever_the_umask(tmp_path):
    settings = job_settings(tmp_path)
    old = os.umask(0o077)
    try:
        path = status_page.write_for_job(settings)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(settings["status_page_dir"]).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
