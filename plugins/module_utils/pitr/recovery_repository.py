# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pgBackRest commands a recovery runs, as argv lists, and what they answer.

``repo-ls`` of the archive (every WAL segment the repository holds, for recovery_wal.py; ``info``
is info_query.py's, read by info.py), ``restore``, ``archive-get`` of one segment
into a private directory (to quote pgBackRest's own words about a segment a recovery could not
get), ``archive-push`` of a history file. They run as the OS user of the module (postgres):
pgBackRest reads its configuration, with the repository's secrets, from its own file; no secret is
ever on a command line or in a result (pgBackRest shows secure options as <redacted>, and the
``command begin`` lines are dropped all the same). No Ansible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import shutil
import subprocess
import tempfile
import time

from ansible_collections.lift_simulator.postgresql.plugins.module_utils import process

PROGRAM = "pgbackrest"
_BACKUP_SET_RE = re.compile(r"restore backup set (\S+?),?(?: recovery will start at (.+?))?\s*$")
_NOISE_RE = re.compile(r"command (begin|end)\b")
_LINE_PREFIX_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3} P\d+\s+")


class RepositoryError(Exception):
    """pgBackRest failed; the message quotes what it said (never a secret)."""


def _base(stanza, config):
    argv = [PROGRAM]
    if config:
        argv.append("--config=%s" % config)
    argv.append("--stanza=%s" % stanza)
    return argv


def run(argv, timeout=None, cwd=None):
    """Run one pgBackRest command: (exit code, stdout, stderr) as text."""
    try:
        proc = process.spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
    except OSError as exc:
        raise RepositoryError("cannot start %s: %s (is the pgbackrest package installed? the role "
                              "lift_simulator.postgresql.pitr installs it)" % (argv[0], exc.strerror))
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RepositoryError("pgbackrest %s did not finish within %d s" % (_command_of(argv), timeout))
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def _command_of(argv):
    return next((a for a in reversed(argv) if not a.startswith("-")), "?")


def said(*texts):
    """pgBackRest's messages from its output, one per line, without timestamps and without the
    ``command begin``/``end`` lines (they list options)."""
    lines = []
    for text in texts:
        for line in (text or "").splitlines():
            line = _LINE_PREFIX_RE.sub("", line).rstrip()
            if line.strip() and not _NOISE_RE.search(line):
                lines.append(line.strip())
    return lines


def _fail(argv, code, out, err, what):
    message = " ".join(said(err, out)[-8:]) or "no message"
    raise RepositoryError("%s failed (pgbackrest %s, exit code %d): %s" % (what, _command_of(argv), code, message))


def archive_listing(stanza, config=None, timeout=300):
    """``repo-ls archive/<stanza> --recurse --output=json``: {relative path: entry}."""
    argv = _base(stanza, config) + ["--recurse", "--output=json", "repo-ls", "archive/%s" % stanza]
    code, out, err = run(argv, timeout)
    if code != 0:
        _fail(argv, code, out, err, "listing the repository's WAL")
    try:
        return json.loads(out)
    except ValueError:
        raise RepositoryError("pgbackrest repo-ls printed no JSON: %s" % " ".join(said(out, err)[-5:]))


def probe_segment(stanza, segment, config=None, timeout=300):
    """Fetch one WAL segment with ``archive-get`` into a private directory, and remove it again:
    (exit code, pgBackRest's words). 0 means the segment can be read now; 1 that pgBackRest did not
    find it; anything else that it failed to read it (corrupt, wrong passphrase...)."""
    work = tempfile.mkdtemp(prefix="lift-pitr-probe-")
    try:
        argv = _base(stanza, config) + ["--log-level-console=info", "--log-level-stderr=off", "archive-get",
                                        segment, os.path.join(work, "segment")]
        code, out, err = run(argv, timeout, cwd=work)
        return code, " ".join(line for line in said(out, err) if segment in line or "ERROR" in line) or \
            " ".join(said(out, err)[-3:])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def restore(argv, timeout=None):
    """Run a restore (restore_argv): (backup set, where recovery starts, seconds, pgBackRest's lines)."""
    started = time.time()
    code, out, err = run(argv, timeout)
    elapsed = time.time() - started
    if code != 0:
        _fail(argv, code, out, err, "the restore")
    backup_set = starts = None
    for line in said(out, err):
        match = _BACKUP_SET_RE.search(line)
        if match:
            backup_set, starts = match.group(1), match.group(2)
    return backup_set, starts, elapsed, [line for line in said(out, err) if "WARN" in line or "ERROR" in line]


def push_history(stanza, data_dir, timeline, config=None, timeout=300):
    """``archive-push`` of the timeline's history file from ``data_dir``/pg_wal: PostgreSQL does not
    archive the history file of a promotion made while archiving was off. Returns True when pushed,
    False when the file is not there (timeline 1 has none)."""
    name = "%08X.history" % int(timeline)
    path = os.path.join(data_dir, "pg_wal", name)
    if not os.path.exists(path):
        return False
    argv = _base(stanza, config) + ["archive-push", path]
    code, out, err = run(argv, timeout, cwd=data_dir)
    if code != 0:
        _fail(argv, code, out, err, "pushing %s" % name)
    return True
