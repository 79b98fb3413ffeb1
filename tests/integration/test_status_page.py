# -*- coding: utf-8 -*-
"""The status page in a real browser: the scheduled job (tests/lib/lift_job.py, as the postgres OS
user with the system Python) backs up the test cluster, copies to a real SFTP server (OpenSSH's sshd
on 127.0.0.1) and runs a restore drill; the page it writes (plugins/module_utils/report) is loaded
by headless Chromium (Debian's `chromium` package): its screenshot must be a real rendering (the PNG
decodes, many colours, the chart's bar and line colours drawn) and its DOM must show the backup, its
size, the drill's restore times, the off-site target and no alert. The fleet page of
playbooks/report.yml is checked the same way. A page that cannot be written does not fail the run.

LIFT_STATUS_PAGE_SCREENSHOT=<path> keeps a copy of the job page's screenshot (docs/images/status-page.png
is made that way)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import zlib

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import manifest as mf
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.units import human_bytes
from lift_job import Job, chown_postgres, make_layout, new_backup, old_backups
from sftpserver import TEST_USER, sftp_server_fixture  # noqa: F401 pylint: disable=unused-import

CHROMIUM = shutil.which("chromium")
WIDTH, HEIGHT = 1200, 1300
SIZE_COLOUR = (0x3b, 0x7d, 0xd8)       # report/svg_chart.py's bars
DURATION_COLOUR = (0xe0, 0x7b, 0x24)   # and its line


@pytest.fixture(scope="module")
def layout():
    base = tempfile.mkdtemp(prefix="lift-it-page-", dir="/tmp")
    yield make_layout(base)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def browser_dir():
    path = tempfile.mkdtemp(prefix="lift-it-chromium-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def chromium(browser_dir, url, *options):
    """Headless Chromium with a private profile (--no-sandbox only as root, where it refuses to start
    without); returns its stdout."""
    assert CHROMIUM, "Debian's chromium package is not installed (scripts/bootstrap_host.sh installs it)"
    profile = tempfile.mkdtemp(dir=browser_dir)
    argv = [CHROMIUM, "--headless", "--disable-gpu", "--user-data-dir=%s" % profile, "--hide-scrollbars",
            "--window-size=%d,%d" % (WIDTH, HEIGHT), "--no-first-run", "--disable-extensions",
            "--disable-background-networking"]
    if os.geteuid() == 0:
        argv.append("--no-sandbox")
    run = subprocess.run(argv + list(options) + [url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, stdin=subprocess.DEVNULL, timeout=180, check=False)
    assert run.returncode == 0, run.stderr
    return run.stdout


def screenshot(browser_dir, url):
    path = os.path.join(browser_dir, "shot.png")
    chromium(browser_dir, url, "--screenshot=%s" % path)
    with open(path, "rb") as handle:
        return handle.read()


def decode_png(data):
    """(width, height, rows of (r, g, b) tuples) of an 8-bit RGB or RGBA PNG, decoded with zlib."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        assert zlib.crc32(kind + chunk) & 0xffffffff == struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat.append(chunk)
        elif kind == b"IEND":
            break
        pos += 12 + length
    width, height, depth, colour, _comp, _filter, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    channels = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    previous = bytearray(stride)
    rows = []
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if kind == 1:
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 0xff
        elif kind == 2:
            for i in range(stride):
                line[i] = (line[i] + previous[i]) & 0xff
        elif kind == 3:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xff
        elif kind == 4:
            for i in range(stride):
                a = line[i - channels] if i >= channels else 0
                b = previous[i]
                c = previous[i - channels] if i >= channels else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xff
        else:
            assert kind == 0, kind
        rows.append([tuple(line[x:x + 3]) for x in range(0, stride, channels)])
        previous = line
    return width, height, rows


def assert_real_rendering(png):
    """The screenshot is the page drawn: the size asked for, many colours, most of it not one plain
    background, and the chart's bars and line in their colours."""
    width, height, rows = decode_png(png)
    assert (width, height) == (WIDTH, HEIGHT)
    counts = {}
    for row in rows:
        for pixel in row:
            counts[pixel] = counts.get(pixel, 0) + 1
    background, most = max(counts.items(), key=lambda item: item[1])
    assert len(counts) > 100, "only %d colours: a blank or broken rendering" % len(counts)
    assert most < 0.9 * width * height, "%.0f%% of the picture is %r" % (100.0 * most / (width * height), background)
    assert counts.get(SIZE_COLOUR, 0) > 2000, "the chart's size bars are not drawn"
    assert counts.get(DURATION_COLOUR, 0) > 30, "the chart's duration line is not drawn"


def visible_text(dom):
    """The text of the DOM Chromium dumped: tags out, entities as they are."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


def sftp_target(workdir, sftp_server):
    target = dict(name="nas", type="sftp", host=sftp_server.host, port=sftp_server.port, user=TEST_USER,
                  directory=os.path.join(sftp_server.root, "page-copies"), private_key=sftp_server.private(),
                  known_hosts=sftp_server.known_hosts)
    path = os.path.join(workdir, "offsite.json")
    with open(path, "w") as handle:
        json.dump([target], handle)
    chown_postgres(path)
    os.chmod(path, 0o600)
    pulls = os.path.join(workdir, "pulls")
    os.mkdir(pulls, 0o700)
    chown_postgres(pulls)
    return target, path, pulls


def hostile_drill_report(job):
    """An old drill report whose message is markup, as an untrusted file could hold."""
    path = os.path.join(job.state_dir, "drills", "it_job-20000101T000000Z.json")
    with open(path, "w") as handle:
        json.dump(dict(name="it_job", database="lift_simulator", started="2000-01-01T00:00:00Z",
                       finished="2000-01-01T00:01:00Z", success=False,
                       message="<script>document.title='pwned'</script>",
                       sources=[dict(source="<img src=x onerror=alert(1)>", backup="<script>x</script>",
                                     restore_seconds=1.0, success=False, message="<b>bold</b>")]), handle)
    chown_postgres(path)


def test_the_job_page_in_a_browser(layout, workdir, cluster, sftp_server, browser_dir):
    pages = os.path.join(workdir, "status")
    job = Job(layout, workdir, cluster, keep_last=6, status_page_dir=pages)
    _target, targets_file, pulls = sftp_target(workdir, sftp_server)
    job.write_config(offsite_targets_file=targets_file, drill_pull_dir=pulls)
    old_backups(job, ages_days=(21, 14, 7))
    before = job.backups()
    run = job.run()
    assert run.returncode == 0, run.stdout + run.stderr
    first = new_backup(job, before)
    drill = job.run("--drill")
    assert drill.returncode == 0, drill.stdout + drill.stderr
    before = job.backups()
    run = job.run()  # the page after the run shows the drill before it
    assert run.returncode == 0, run.stdout + run.stderr
    newest = new_backup(job, before)
    page = os.path.join(pages, "index.html")
    assert oct(os.stat(page).st_mode & 0o777) == "0o644"
    assert sorted(os.listdir(pages)) == ["index.html"]  # no temporary left behind

    dom = chromium(browser_dir, "file://" + page, "--dump-dom")
    text = visible_text(dom)
    manifest = mf.load_manifest(os.path.join(job.dest, newest + ".manifest.json"))
    rows = re.findall(r'<tr class="backup">(.*?)</tr>', dom, re.S)
    assert newest in rows[0] and first in rows[1] and len(rows) == 5, rows
    assert human_bytes(manifest["size_bytes"]) in visible_text(rows[0])
    # The run hashed its backup against the manifest; the older ones are listed by their sizes.
    assert "good" in rows[0] and "verified by the run" in rows[0] and "size matches" in rows[1]
    [report_path] = os.listdir(os.path.join(job.state_dir, "drills"))
    with open(os.path.join(job.state_dir, "drills", report_path)) as handle:
        report = json.load(handle)
    drills = re.findall(r'<tr class="drill">(.*?)</tr>', dom, re.S)
    restore_times = [visible_text(re.search(r'class="num restore-time">(.*?)</td>', d).group(1)).strip()
                     for d in drills]
    expected = ["%.1f s" % s["restore_seconds"] for s in report["sources"]]
    assert [s["source"] for s in report["sources"]] == ["local", "offsite:nas"]
    assert restore_times == expected and first in drills[0], (restore_times, expected)
    target = re.search(r'<tr class="target">(.*?)</tr>', dom, re.S).group(1)
    assert "nas" in target and "sftp://" in target and "ok" in target
    assert "No alert would fire now." in text

    png = screenshot(browser_dir, "file://" + page)
    assert_real_rendering(png)
    keep = os.environ.get("LIFT_STATUS_PAGE_SCREENSHOT")
    if keep:
        with open(keep, "wb") as handle:
            handle.write(png)


def test_the_fleet_page_of_report_yml_in_a_browser(layout, workdir, cluster, sftp_server, ansible, browser_dir):
    job = Job(layout, workdir, cluster, keep_last=6)
    target, targets_file, pulls = sftp_target(workdir, sftp_server)
    job.write_config(offsite_targets_file=targets_file, drill_pull_dir=pulls)
    old_backups(job, ages_days=(3, 2))
    before = job.backups()
    assert job.run().returncode == 0
    newest = new_backup(job, before)
    assert job.run("--drill").returncode == 0
    hostile_drill_report(job)
    dest = os.path.join(workdir, "fleet.html")
    result = ansible("playbooks/report.yml", extra_vars=dict(
        lift_backup_dir=job.dest, lift_report_dest=dest, lift_report_job="it_job",
        lift_report_metrics_dir=job.metrics_dir, lift_report_state_dir=job.state_dir,
        lift_report_title="Fleet <lab>", lift_report_verify_checksums=True, lift_report_targets=[target]))
    assert result.rc == 0, result.stdout + result.stderr
    assert target["private_key"].splitlines()[1] not in result.stdout + result.stderr
    assert oct(os.stat(dest).st_mode & 0o777) == "0o644"
    with open(dest) as handle:
        assert target["private_key"].splitlines()[1] not in handle.read()
    dom = chromium(browser_dir, "file://" + dest, "--dump-dom")
    assert "<title>Fleet &lt;lab&gt;</title>" in dom
    rows = re.findall(r'<tr class="backup">(.*?)</tr>', dom, re.S)
    assert len(rows) == 3 and newest in rows[0], rows
    assert "verified" in rows[0] and "nas" in rows[0] and "local" in rows[0]  # hashed here and on the target
    assert "not on nas" in rows[1]  # the older synthetic backups were never copied
    manifest = mf.load_manifest(os.path.join(job.dest, newest + ".manifest.json"))
    assert human_bytes(manifest["size_bytes"]) in visible_text(rows[0])
    drills = re.findall(r'<tr class="drill">(.*?)</tr>', dom, re.S)
    assert len(drills) == 3 and "passed" in drills[0] and re.search(r'restore-time">\d+\.\d s<', drills[0])
    # The hostile report is text on the page, not markup: no script ran, no element was made.
    assert "FAILED" in drills[2] and "pwned" not in dom.split("</title>")[0]
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in drills[2]
    assert "<script" not in dom and "<img" not in dom and "<b>bold" not in dom
    assert "No alert would fire now." in visible_text(dom)
    assert_real_rendering(screenshot(browser_dir, "file://" + dest))


def test_a_page_that_cannot_be_written_does_not_fail_the_run(layout, workdir, cluster):
    job = Job(layout, workdir, cluster, status_page_dir="/nonexistent/lift-status")
    run = job.run()
    assert run.returncode == 0, run.stdout + run.stderr
    assert "cannot write the status page in /nonexistent/lift-status" in run.stderr
    assert job.status()["status"] == "success" and job.metrics()["last_run_success"] == 1
