# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing a backup's files into its storage: pg_dump (and the compressor) streamed into the
backup's final name, a directory archive published whole, the role definitions (pg_dumpall
--globals-only) beside it; nothing partial is ever left under a final name. backup/run.py runs
the backup around these. Pure Python (the PostgreSQL client programs; no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import time

from ansible_collections.lift_simulator.postgresql.plugins.module_utils import codecs
from ansible_collections.lift_simulator.postgresql.plugins.module_utils import failpoints
from ansible_collections.lift_simulator.postgresql.plugins.module_utils import process
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import checksums
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import naming
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.backup import dump_pipeline
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import clients
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import connection as pg_connection
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.backup.timings import PhaseClock


class BackupError(Exception):
    """A backup failed. The message names the problem; ``stderr`` is the failing program's tail."""

    def __init__(self, message, stderr=""):
        Exception.__init__(self, message)
        self.stderr = stderr
        self.log_path = None


# How big the dump will be, as a share of the dumped tables' on-disk size (heap + TOAST, no
# indexes). A plain dump of the lift_simulator fixture is about 0.6 of it; compressed dumps far
# less. Deliberately generous: the check exists to refuse hopeless runs, not to predict sizes.
_SIZE_FACTOR_UNCOMPRESSED = 1.0
_SIZE_FACTOR_COMPRESSED = 0.35


def estimate_dump_bytes(tables, compression):
    """About how many bytes the dump of ``tables`` will take (encryption adds a few bytes per 64 KiB)."""
    table_bytes = sum(t.table_bytes for t in tables)
    compressed = compression != "none"
    return int(table_bytes * (_SIZE_FACTOR_COMPRESSED if compressed else _SIZE_FACTOR_UNCOMPRESSED))


def take_role_definitions(request, server_major, name, on_started=None):
    """The cluster's role definitions (pg_dumpall --globals-only; passwords only when asked), in a
    0600 file not yet under its name: (AtomicFile, stream result, with passwords). ``on_started``
    is called once pg_dumpall runs."""
    try:
        pg_dumpall = clients.find_client_binary("pg_dumpall", request.bin_dir, min_major=server_major)[0]
    except pg_connection.PgError as exc:
        raise BackupError(str(exc))
    argv = [pg_dumpall, "--globals-only", "--no-password", "-l",
            pg_connection.conninfo_dbname(request.connection.database)]
    if not request.role_passwords:
        argv.append("--no-role-passwords")
    target = request.storage.create(naming.globals_name(name))
    try:
        with pg_connection.ClientEnvironment(request.connection) as env:
            stream = dump_pipeline.Pipeline([argv], env=env).run(target, on_started)
    except process.ProgramError as exc:
        target.abort()
        raise BackupError("writing the role definitions failed (pg_dumpall --globals-only; role_definitions: false "
                          "leaves them out): %s" % exc, pg_connection.stderr_tail(exc.stderr, request.connection))
    except BaseException:
        target.abort()
        raise
    return target, stream, bool(request.role_passwords)


def publish_role_definitions(role_file, path):
    """Give the role definitions their name beside the published backup; their manifest entry."""
    if role_file is None:
        return None
    target, stream, passwords = role_file
    try:
        target.commit()
    except OSError as exc:
        raise BackupError("the backup %s was written but its role definitions could not be: %s" % (path, exc))
    return {"name": target.name, "sha256": stream.sha256, "size_bytes": stream.size, "role_passwords": passwords}


def dump(request, pg_dump, dump_major, snapshot, name, path, progress, before_publish, on_started, stall, clock=None):
    """Run pg_dump (and the compressor, and the encryption) into the backup's final name; nothing
    partial remains. ``clock`` (timings.PhaseClock) is lapped at the phases: dump (and checksum
    for a directory archive), row_counts_wait, fsync_publish."""
    clock = clock or PhaseClock()
    params = request.connection.with_application(pg_connection.run_application_name("pg_dump"))
    try:
        compress = codecs.archive_compress_option(request.format, request.compression, request.compression_level,
                                                  dump_major)
    except codecs.CodecError as exc:
        raise BackupError(str(exc))
    with pg_connection.ClientEnvironment(params) as env:
        if request.format == "directory":
            return _dump_directory(request, pg_dump, snapshot, compress, name, path, env, before_publish, on_started,
                                   stall, clock)
        commands = [dump_pipeline.pg_dump_argv(pg_dump, request.format, snapshot=snapshot, compress=compress,
                                               lock_wait_timeout=request.lock_wait_timeout)]
        if request.format == "plain" and request.compression != "none":
            try:
                commands.append(codecs.get(request.compression).encode_argv(request.compression_level))
            except codecs.CodecError as exc:
                raise BackupError(str(exc))
        if request.encryption != "none":
            # Encrypted in the stream: what reaches the storage (and its sha256) is the ciphertext.
            commands.append(request.encoder_argv)
        target = request.storage.create(name)
        with target:
            try:
                pipeline = dump_pipeline.Pipeline(commands, env=env, progress=progress, stall=stall)
                stream = pipeline.run(target, on_started)
            except process.ProgramError as exc:
                raise BackupError("the dump failed: %s" % exc, pg_connection.stderr_tail(exc.stderr, params))
            clock.lap("dump")
            if stream.size == 0:
                raise BackupError("pg_dump produced no output")
            before_publish()
            clock.lap("row_counts_wait")
            failpoints.reached("backup-before-publish")
            try:
                target.commit()
            except OSError as exc:
                raise BackupError("cannot publish the backup %s: %s" % (path, exc.strerror or exc))
            clock.lap("fsync_publish")
        return stream


def _dump_directory(request, pg_dump, snapshot, compress, name, path, env, before_publish, on_started, stall, clock):
    params = request.connection
    temp_dir = request.storage.partial_tree(name)
    argv = dump_pipeline.pg_dump_argv(pg_dump, "directory", snapshot=snapshot, compress=compress,
                                      jobs=request.jobs, file_path=temp_dir,
                                      lock_wait_timeout=request.lock_wait_timeout)
    started = time.monotonic()
    try:
        process.run_program(argv, env=env, on_started=on_started, stall=stall)
        clock.lap("dump")
        os.chmod(temp_dir, 0o700)
        for root, _dirs, files in os.walk(temp_dir):
            for entry in files:
                os.chmod(os.path.join(root, entry), 0o600)
        # pg_dump writes the files itself, so the digests need a pass over them afterwards.
        files, size, digest = checksums.hash_directory(temp_dir)
        elapsed = time.monotonic() - started
        clock.lap("checksum")
        before_publish()
        clock.lap("row_counts_wait")
        failpoints.reached("backup-before-publish")
        request.storage.publish_tree(temp_dir, name)
        clock.lap("fsync_publish")
    except process.ProgramError as exc:
        _discard(temp_dir)
        raise BackupError("the dump failed: %s" % exc, pg_connection.stderr_tail(exc.stderr, params))
    except BaseException:
        _discard(temp_dir)
        raise
    return dump_pipeline.StreamResult(size, digest, elapsed, files=files)


def _discard(path):
    if path and os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
