# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL's client programs (pg_dump, pg_dumpall, pg_restore, psql): finding the right one for
a server, and reading their versions. Pure Python.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os
import re
import shutil
import subprocess

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.connection import PgError


_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


def parse_client_version(text):
    """Parse `pg_dump --version` output into (major, minor, text). 9.6 style is (9, 6)."""
    match = _VERSION_RE.search(text or "")
    if not match:
        raise PgError("cannot read the version from %r" % (text or "").strip())
    major = int(match.group(1))
    minor = int(match.group(2) or 0)
    full = text.strip().split("(PostgreSQL)", 1)[1].strip()
    return major, minor, full


def server_major(version_num):
    """Major version from server_version_num (150018 -> 15, 90624 -> 9)."""
    return int(version_num) // 10000


def client_version(binary):
    try:
        out = subprocess.run([binary, "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             check=False, timeout=30).stdout.decode("utf-8", "replace")
    except OSError as exc:
        raise PgError("cannot run %s: %s" % (binary, exc))
    return parse_client_version(out)


def find_client_binary(name, bin_dir=None, min_major=None, search_dirs=None):
    """Locate a PostgreSQL client program and return (path, major, version_text).

    With ``bin_dir`` only that directory is used. Otherwise the newest
    /usr/lib/postgresql/<major>/bin (Debian's layout) is used, PATH only when none there is new
    enough. A client older than ``min_major`` (the server's major version) is refused: pg_dump
    refuses to dump a newer server, and restoring with an old client loses features.
    """
    candidates = []
    if bin_dir:
        candidates.append(os.path.join(bin_dir, name))
    else:
        pattern_dirs = search_dirs if search_dirs is not None else sorted(
            glob.glob("/usr/lib/postgresql/*/bin"), key=_dir_major, reverse=True)
        candidates.extend(os.path.join(d, name) for d in pattern_dirs)
    best = _newest_client([c for c in candidates if os.path.isfile(c) and os.access(c, os.X_OK)])
    if not bin_dir and (best is None or (min_major is not None and best[1] < min_major)):
        # PATH only as the fallback: on Debian it holds pg_wrapper, a Perl script that costs a
        # start-up per --version and mostly points back into /usr/lib/postgresql.
        on_path = shutil.which(name)
        if on_path:
            best = _newest_client([on_path], best)
    if best is None:
        where = bin_dir or "/usr/lib/postgresql/*/bin or PATH"
        raise PgError("%s was not found in %s; install the PostgreSQL client programs "
                      "(Debian: postgresql-client) or set bin_dir" % (name, where))
    if min_major is not None and best[1] < min_major:
        raise PgError("%s %s (%s) is older than the server (major version %s); install the client "
                      "programs of version %s or later (Debian: postgresql-client-%s) or set bin_dir"
                      % (name, best[1], best[0], min_major, min_major, min_major))
    return best


def _newest_client(paths, best=None):
    """(path, major, version_text) of the newest of ``paths`` (and ``best``), or None."""
    for path in paths:
        major, _minor, text = client_version(path)
        if best is None or major > best[1]:
            best = (path, major, text)
    return best


def _dir_major(path):
    try:
        return int(path.rstrip("/").split("/")[-2])
    except (ValueError, IndexError):
        return -1
