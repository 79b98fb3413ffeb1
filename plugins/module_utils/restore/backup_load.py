# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Loading a backup into an empty database, and opening a backup's data as dump text.

Plain dumps go to psql through plain_dump.psql_input: psql runs restricted by a random key of
ours (it refuses every meta-command), with ON_ERROR_STOP in one transaction, and the reader stops
at the first line pg_dump would not have written before psql sees it. With jobs > 1, a plain dump
file that plain_split.py can split with proof loads in three phases, as pg_restore --jobs loads an
archive: its pre-data part through psql as above, the tables' data in parallel sessions
(parallel_copy.py), its post-data part through psql again; each phase commits before the next
begins. Archives go to pg_restore.
Both connect with the parameters they are given (the loading role: loader_role.py). Errors say
what failed in the clients' own words, except a full disk, which is recognised whatever the
wording and named with its file system. Pure Python (the PostgreSQL client programs; no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import subprocess
import tempfile

from ansible_collections.lift_simulator.postgresql.plugins.module_utils import process
from ansible_collections.lift_simulator.postgresql.plugins.module_utils import stall_watch
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import decoding
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import plain_dump
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import plain_split
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import clients
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import connection as pg_connection
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.connection import PgError
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore import parallel_copy

# The first release of each major version whose psql knows \restrict (August 2025).
_RESTRICT_SINCE = {13: 22, 14: 19, 15: 14, 16: 10, 17: 6}
_VERSION_RE = re.compile(r"^(\d+)(?:\.(\d+))?")
# How PostgreSQL and its clients say that a disk is full (the wording varies with where it happens).
_DISK_FULL_RE = re.compile(r"No space left on device|could not extend file|wrote only \d+ of \d+ bytes|"
                           r"Check free disk space|could not write to file .*: No space", re.IGNORECASE)


class LoadError(Exception):
    """Loading failed; ``stderr`` holds the tail of the failing program's output."""

    def __init__(self, message, stderr="", disk_full=False):
        Exception.__init__(self, message)
        self.stderr = stderr
        self.disk_full = disk_full


def client(name, bin_dir, server_major):
    """(path, major, version text) of a client program, refused when older than the server."""
    try:
        return clients.find_client_binary(name, bin_dir, min_major=server_major)
    except PgError as exc:
        raise LoadError(str(exc))


def psql_can_restrict(version_text):
    """Whether this psql version knows \\restrict (released in 13.22, 14.19, 15.14, 16.10, 17.6)."""
    match = _VERSION_RE.match(version_text or "")
    if not match:
        return False
    major, minor = int(match.group(1)), int(match.group(2) or 0)
    return major >= 18 or major in _RESTRICT_SINCE and minor >= _RESTRICT_SINCE[major]


def restricted_psql(bin_dir, server_major):
    path, _major, version = client("psql", bin_dir, server_major)
    if not psql_can_restrict(version):
        raise LoadError("psql %s (%s) cannot refuse meta-commands (\\restrict arrived in 13.22, 14.19, 15.14, "
                        "16.10 and 17.6), so it is not safe for running a plain dump; install current PostgreSQL "
                        "client programs or set bin_dir" % (version.split()[0], path))
    return path


def first_error(tail):
    """The first error line of a client's stderr, with PostgreSQL's DETAIL and HINT lines after it."""
    lines = tail.strip().splitlines()
    for index, line in enumerate(lines):
        if "ERROR" in line or "error:" in line or "FATAL" in line:
            extra = [l.strip() for l in lines[index + 1:index + 3] if l.lstrip().startswith(("DETAIL:", "HINT:"))]
            return " ".join([line.strip()] + extra)
    return lines[-1] if lines else "no message"


def is_disk_full(text):
    return bool(_DISK_FULL_RE.search(text or ""))


def _failure(what, tail, params):
    tail = pg_connection.stderr_tail(tail, params)
    return LoadError("%s: %s" % (what, first_error(tail)), tail, disk_full=is_disk_full(tail))


def load(backup, params, jobs=1, bin_dir=None, server_major=None, skip_privileges=False, skip_ownership=False,
         stall=None, identity=None, room=None):
    """Restore ``backup`` into the existing, empty database of ``params``. With ``skip_ownership``
    the objects are owned by the role that loads them (pg_restore --no-owner). ``stall`` (a
    stall_watch.Stall) stops a client that makes no progress. ``jobs`` > 1 loads an archive with
    pg_restore --jobs and a plain dump file in three phases (_load_plain_parallel) when it can be
    split with proof (plain_split.py), else serially. Returns how it loaded (one line). Raises
    LoadError."""
    with pg_connection.ClientEnvironment(params) as env:
        if backup.format == "plain":
            psql = restricted_psql(bin_dir, server_major)
            plan, why_not = parallel_plan(backup, jobs)
            # One table's data goes parallel only when it is big enough to be cut in parts.
            if plan is not None and (len(plan.blocks) > 1 or plan.blocks[0].size >= 2 * parallel_copy.MIN_PIECE):
                # A big table is cut in parts only with room to spare: the rows of a failed part
                # stay in the table's file until it is dropped, which a full disk may not allow
                # (a table in one part is truncated in its transaction: a failure frees it).
                cut = room is not None and room >= 2 * sum(b.size for b in plan.blocks)
                copies, builds = _load_plain_parallel(backup, plan, params, env, psql, jobs, skip_privileges,
                                                      skip_ownership, stall, cut)
                return "parallel: %d sessions for the data of %d tables in %d parts, %s" % (
                    min(jobs, copies), len(plan.blocks), copies,
                    "%d for %d key and index builds" % (min(jobs, builds), builds) if builds
                    else "indexes in one session")
            _load_plain(backup, params, env, psql, skip_privileges, skip_ownership, stall, identity)
            return "serial: %s" % (why_not or "one table holds data, too little to cut in parts")
        if backup.encryption != "none":
            # pg_restore reads a decrypted archive from its stdin: one job (--jobs needs a file).
            _load_archive_stream(backup, params, env, client("pg_restore", bin_dir, server_major)[0],
                                 skip_privileges, skip_ownership, stall, identity)
            return "pg_restore --single-transaction (an encrypted archive is read as one stream)"
        pg_restore = client("pg_restore", bin_dir, server_major)[0]
        argv = [pg_restore, "--exit-on-error", "--no-password", "-d", pg_connection.conninfo_dbname(params.database)]
        argv += ["--jobs=%d" % jobs] if jobs and jobs > 1 else ["--single-transaction"]
        if skip_privileges:
            argv.append("--no-privileges")
        if skip_ownership:
            argv.append("--no-owner")
        argv.append(backup.path)
        try:
            process.run_program(argv, env=env, stall=stall)
        except process.ProgramError as exc:
            raise _failure(str(exc), exc.stderr, params)
        return "pg_restore --jobs=%d" % jobs if jobs and jobs > 1 else "pg_restore --single-transaction"


class DumpText(object):
    """A backup's content as plain dump text, readable from ``stream``: the backup decoded
    (artifact/decoding.py: decrypted with ``identity``, decompressed), or for an archive
    ``pg_restore --data-only -f -`` reading it. ``close()`` reaps the programs and raises
    LoadError when one failed."""

    def __init__(self, backup, bin_dir=None, server_major=None, data_only=False, identity=None):
        self.proc = None
        self.argv = None
        self.err = None
        self.killed = False
        self.decoded = None
        encrypted = backup.encryption != "none"
        if backup.format == "plain" or encrypted:
            try:
                self.decoded = decoding.DecodedStream(backup, identity).__enter__()
            except decoding.DecodeError as exc:
                raise LoadError(str(exc))
        if backup.format == "plain":
            self.stream = self.decoded.stdout
            return
        self.argv = [client("pg_restore", bin_dir, server_major)[0]] + (["--data-only"] if data_only else []) + [
            "-f", "-"] + ([] if encrypted else [backup.path])
        self.err = tempfile.TemporaryFile()
        try:
            self.proc = process.spawn(self.argv, stdin=self.decoded.stdout if encrypted else subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=self.err, env=dict(os.environ, LC_MESSAGES="C"))
        except OSError as exc:
            self.err.close()
            if self.decoded is not None:
                self.decoded.__exit__(None, None, None)
            raise LoadError("cannot start %s: %s" % (self.argv[0], exc.strerror))
        if encrypted:
            self.decoded.stdout.close()  # pg_restore's now
            self.decoded.stdout = None
        self.stream = self.proc.stdout

    def kill(self):
        """Stop reading (after a failure elsewhere): ``close`` then reports nothing."""
        self.killed = True
        for proc in [self.proc] + (self.decoded.procs if self.decoded is not None else []):
            if proc is not None and proc.poll() is None:
                proc.kill()

    def close(self):
        """Reap the programs (once); raise LoadError when one failed (the first on the way)."""
        if self.stream.closed:
            return
        self.stream.close()
        failure = None
        if self.decoded is not None:
            found = self.decoded.finish()
            self.decoded.__exit__(None, None, None)
            failure = found[1] if found else None
        if self.proc is not None:
            code = self.proc.wait()
            if code != 0 and failure is None:
                failure = "%s: %s" % (process.describe_exit(self.argv[0], code), first_error(process.read_tail(self.err)))
            self.err.close()
        if failure and not self.killed:
            raise LoadError("reading the backup failed: %s" % failure)


def _load_archive_stream(backup, params, env, pg_restore, skip_privileges, skip_ownership, stall, identity):
    argv = [pg_restore, "--exit-on-error", "--no-password", "--single-transaction",
            "-d", pg_connection.conninfo_dbname(params.database)]
    argv += (["--no-privileges"] if skip_privileges else []) + (["--no-owner"] if skip_ownership else [])
    try:
        with decoding.DecodedStream(backup, identity) as decoded:
            try:
                process.run_program(argv, env=env, stdin=decoded.stdout, stall=stall,
                                    on_started=decoded.stdout.close)
            except process.ProgramError as exc:
                failure = decoded.finish(reader_stopped_early=True)
                if failure:
                    raise LoadError("reading the backup failed: %s" % failure[1])
                raise _failure(str(exc), exc.stderr, params)
            failure = decoded.finish(reader_stopped_early=True)
    except decoding.DecodeError as exc:
        raise LoadError(str(exc))
    if failure:
        raise LoadError("reading the backup failed: %s" % failure[1])


def _load_plain(backup, params, env, psql, skip_privileges, skip_ownership, stall, identity=None):
    text = DumpText(backup, identity=identity)
    pieces = plain_dump.psql_input(text.stream, plain_dump.new_restrict_key(), skip_privileges, skip_ownership)
    _run_psql(psql, params, env, pieces, stall, text)


def _run_psql(psql, params, env, pieces, stall, text=None):
    """Give ``pieces`` (plain_dump.psql_input) to psql, ON_ERROR_STOP in one transaction; ``text``
    (a DumpText, or None for a part of a dump file) is stopped and reaped with it."""
    with tempfile.TemporaryFile() as psql_err:
        argv = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f", "-"]
        try:
            consumer = process.spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=psql_err,
                                     env=env)
        except OSError as exc:
            if text is not None:
                text.kill()
                text.close()
            raise LoadError("cannot start %s: %s" % (psql, exc.strerror))
        watch = stall_watch.StallWatch(stall.timeout if stall else None,
                                       lambda: [p for p in (consumer, text and text.proc) if p is not None],
                                       stall.busy if stall else None)
        try:
            try:
                with watch:
                    for piece in pieces:
                        consumer.stdin.write(piece)
                    consumer.stdin.close()
                    # Watched to the end: the last part of the input sits in the pipe long before
                    # psql has run it, and a psql that stops then would be waited for forever.
                    consumer.wait()
            except BrokenPipeError:
                if text is not None:
                    text.kill()  # psql stopped reading: it failed, and says why below
            except plain_dump.PlainDumpError as exc:
                consumer.kill()
                if text is not None:
                    text.kill()
                raise LoadError("the backup was refused, it holds what pg_dump never writes (nothing of it ran "
                                "outside the database): %s" % exc)
            except BaseException:
                consumer.kill()
                if text is not None:
                    text.kill()
                raise
        finally:
            code = consumer.wait()
            if text is not None:
                try:
                    text.close()
                except LoadError:
                    if code == 0:
                        raise
        if watch.stalled:
            raise LoadError(stall_watch.message("psql", stall.timeout), process.read_tail(psql_err))
        if code != 0:
            raise _failure(process.describe_exit(psql, code), process.read_tail(psql_err), params)


def parallel_plan(backup, jobs):
    """The plan of a parallel load of a plain dump (plain_split.Plan), or (None, why not): only
    with ``jobs`` > 1, for a plain dump that is a file as pg_dump wrote it (neither compressed nor
    encrypted: its parts are read by offset). Raises LoadError for a dump pg_dump did not write."""
    if not jobs or jobs < 2:
        return None, "jobs is 1"
    if backup.encryption != "none" or backup.compression not in (None, "none"):
        return None, "the dump is compressed or encrypted (read as one stream)"
    if backup.split is not None:
        return backup.split  # planned by the quick verification's read (verify/quick.py)
    try:
        with open(backup.path, "rb") as handle:
            return plain_split.plan(handle), None
    except plain_split.Unsplittable as exc:
        return None, str(exc)
    except plain_dump.PlainDumpError as exc:
        raise LoadError("the backup was refused, it holds what pg_dump never writes (nothing of it ran): %s" % exc)
    except OSError as exc:
        raise LoadError("cannot read %s: %s" % (backup.path, exc.strerror))


def _load_plain_parallel(backup, plan, params, env, psql, jobs, skip_privileges, skip_ownership, stall, cut=True):
    """The three phases of a parallel load (docs/restore.md): pre-data in one psql session, the
    tables' data in ``jobs`` sessions (a big table's in pieces), post-data - its opening key
    constraints, then its indexes, in ``jobs`` sessions when there are two builds or more, the
    rest in one psql session; each phase commits before the next starts, and a failure anywhere
    stops the load (the caller drops the database). Returns (data tasks, key and index tasks run
    in parallel)."""
    key = plain_dump.new_restrict_key()
    with open(backup.path, "rb") as handle:
        part = plain_split.FilePart(handle, 0, plan.pre_end)
        _run_psql(psql, params, env, plain_dump.psql_input(part, key, skip_privileges, skip_ownership), stall)
    try:
        copies = parallel_copy.copy_tasks(backup.path, plan.blocks, jobs, cut=cut)
        parallel_copy.Phase(params, copies, jobs, plan.prologue, stall).run()
        keys, indexes = parallel_copy.index_phases(plan.wave, parallel_copy.inheritance_roots(params), dict(
            (b.header.name, b.size) for b in plan.blocks)) if plan.wave else ([], [])
        if len(keys) + len(indexes) > 1:
            for tasks in (keys, indexes):
                if tasks:
                    parallel_copy.Phase(params, tasks, jobs, plan.prologue, stall).run()
        else:
            keys, indexes = [], []
    except parallel_copy.CopyFailure as exc:
        raise LoadError(str(exc), exc.detail, disk_full=is_disk_full(exc.detail))
    except (PgError, pg_connection.DatabaseError) as exc:
        raise LoadError("reading the loaded tables' inheritance failed: %s" % exc)
    except OSError as exc:
        raise LoadError("cannot read %s: %s" % (backup.path, exc.strerror))
    wave = bool(keys or indexes)
    start, toc = (plan.wave_end, plan.wave_toc_type) if wave else (plan.post_start, plan.post_toc_type)
    with open(backup.path, "rb") as handle:
        part = plain_split.FilePart(handle, start)
        _run_psql(psql, params, env, plain_dump.psql_input(part, key, skip_privileges, skip_ownership,
                                                           preamble=plan.post_preamble(wave=wave),
                                                           dump_key=plan.restrict_key, toc_type=toc), stall)
    return len(copies), len(keys) + len(indexes)
