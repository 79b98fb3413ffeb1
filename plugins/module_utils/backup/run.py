# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One backup run: preflight, consistent snapshot, streamed dump, atomic publish, manifest.

This is the single implementation behind the ``backup`` module and the host-side scheduled job.
Pure Python (psycopg2 and the PostgreSQL client programs; no Ansible).

Consistency: a REPEATABLE READ transaction exports its snapshot and keeps it open; pg_dump is
started with ``--snapshot`` so it dumps exactly what that transaction sees, and the row counts
recorded in the manifest are taken in the same transaction, concurrently with the dump.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os
import socket
import threading
import time

from ansible_collections.lift_simulator.postgresql.plugins.module_utils import codecs
from ansible_collections.lift_simulator.postgresql.plugins.module_utils import failpoints
from ansible_collections.lift_simulator.postgresql.plugins.module_utils import process
from ansible_collections.lift_simulator.postgresql.plugins.module_utils import stall_watch
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.backup.timings import PhaseClock
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.app import lift_simulator as checklist
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import manifest as manifest_mod
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import naming
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.backup import dump as backup_dump
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.backup import encryption as backup_encryption
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.backup import reuse as backup_reuse
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.backup.options import (
    DEFAULT_LOCK_WAIT_TIMEOUT, DEFAULT_STALL_TIMEOUT)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.backup.run_log import RunLog
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import catalog as pg_catalog
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import clients
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import connection as pg_connection
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import path_trust
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.base import StorageError
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.posix import PosixStorage
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.units import human_bytes
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.version import (
    COLLECTION_NAME, COLLECTION_VERSION)

BackupError = backup_dump.BackupError


# The options (backup/options.py names) a BackupRequest takes as they are, and its argument for each.
REQUEST_OPTIONS = (
    ("format", "fmt"), ("compression", "compression"), ("compression_level", "compression_level"),
    ("jobs", "jobs"), ("name_template", "name_template"), ("bin_dir", "bin_dir"),
    ("check_free_space", "check_free_space"), ("lock_wait_timeout", "lock_wait_timeout"),
    ("log_dir", "log_dir"), ("app_schema", "app_schema"), ("directory_checks", "directory_checks"),
    ("stall_timeout", "stall_timeout"), ("role_definitions", "role_definitions"),
    ("role_passwords", "role_passwords"), ("encryption", "encryption"),
    ("encryption_recipients", "encryption_recipients"), ("manifest_detail", "manifest_detail"))


class BackupRequest(object):
    @classmethod
    def from_options(cls, connection, options, dest_dir, timezone, **extra):
        """The request for the backup module's parameters or the scheduled job's settings: both
        name these options as backup/options.py does. An empty or null lock_wait_timeout waits
        without limit."""
        given = dict((arg, options[name]) for name, arg in REQUEST_OPTIONS)
        given["lock_wait_timeout"] = given["lock_wait_timeout"] or None
        given.update(extra)
        return cls(connection, dest_dir, timezone=timezone, **given)

    def __init__(self, connection, dest_dir, fmt="plain", compression=None, compression_level=None,
                 jobs=None, name_template=naming.DEFAULT_NAME_TEMPLATE, timezone="utc", bin_dir=None,
                 check_free_space=True, lock_wait_timeout=DEFAULT_LOCK_WAIT_TIMEOUT, log_dir=None,
                 app_schema=checklist.DEFAULT_APP_SCHEMA, directory_checks=path_trust.STRICT,
                 stall_timeout=DEFAULT_STALL_TIMEOUT, role_definitions=True, role_passwords=False,
                 reuse_max_age_s=None, encryption="none", encryption_recipients=None, manifest_detail="full"):
        self.connection = connection
        self.dest_dir = os.path.abspath(dest_dir)
        self.storage = PosixStorage(self.dest_dir)
        self.format = fmt
        # Plain dumps are uncompressed unless asked (the strategy's .sql); archives use pg_dump's
        # own default, gzip.
        self.compression = compression or ("none" if fmt == "plain" else "gzip")
        self.compression_level = compression_level
        self.jobs = jobs
        self.name_template = name_template or naming.DEFAULT_NAME_TEMPLATE
        self.timezone = timezone
        self.bin_dir = bin_dir
        self.check_free_space = check_free_space
        self.lock_wait_timeout = lock_wait_timeout
        self.log_dir = os.path.abspath(log_dir) if log_dir else None
        self.app_schema = app_schema
        self.directory_checks = directory_checks
        self.stall_timeout = stall_timeout
        self.role_definitions = role_definitions
        self.role_passwords = role_passwords
        self.reuse_max_age_s = reuse_max_age_s
        self.encryption = encryption or "none"
        self.encryption_recipients = encryption_recipients or []
        self.recipients = []      # the recipients resolved and described (validate)
        self.encryption_warnings = []
        self.manifest_detail = manifest_detail

    def validate(self):
        if self.format not in naming.FORMATS:
            raise BackupError("format must be one of %s" % ", ".join(naming.FORMATS))
        if self.compression not in codecs.NAMES:
            raise BackupError("compression must be one of %s" % ", ".join(codecs.NAMES))
        if self.jobs is not None and self.jobs < 1:
            raise BackupError("jobs must be 1 or more")
        if self.jobs and self.jobs > 1 and self.format != "directory":
            raise BackupError("jobs > 1 needs format directory (pg_dump dumps in parallel only there)")
        if self.jobs is None:
            # As the restore's default: every core for the one format pg_dump parallelises.
            self.jobs = (os.cpu_count() or 1) if self.format == "directory" else 1
        try:
            self.compression_level = codecs.get(self.compression).level(self.compression_level)
            codecs.encryption(self.encryption)
            naming.backup_suffix(self.format, self.compression, self.encryption)
            if self.encryption != "none":
                self.recipients, self.encryption_warnings = backup_encryption.resolve_recipients(
                    self.encryption_recipients, self.directory_checks)
            elif self.encryption_recipients:
                raise BackupError("encryption_recipients is set but encryption is none")
        except (codecs.CodecError, naming.NamingError, backup_encryption.EncryptionError) as exc:
            raise BackupError(str(exc))


def plan_name(request, when=None):
    """The backup's file name and stem for this run."""
    when = when or naming.now(request.timezone)
    suffix = naming.backup_suffix(request.format, request.compression, request.encryption)
    try:
        name = naming.render_name(request.name_template, request.connection.database, when,
                                  host=socket.gethostname(), suffix=suffix)
    except naming.NamingError as exc:
        raise BackupError(str(exc))
    stem = name[:-len(suffix)] if suffix else name
    return name, stem


class _Counter(threading.Thread):
    """Reads what the manifest records of the content (row counts, Flyway history, the
    checklist's figures) in the snapshot transaction while pg_dump runs."""

    def __init__(self, conn, tables, app_schema):
        threading.Thread.__init__(self, name="row-counts")
        self.daemon = True
        self.conn = conn
        self.tables = tables
        self.app_schema = app_schema
        self.counts = None
        self.flyway = None
        self.figures = None
        self.error = None
        self.seconds = {}

    def run(self):
        try:
            with self.conn.cursor() as cur:
                clock = PhaseClock()
                self.counts = pg_catalog.row_counts(cur, self.tables)
                clock.lap("row_counts")
                self.flyway = pg_catalog.flyway_state(cur)
                self.figures = checklist.capture(cur, self.app_schema)
                clock.lap("checklist")
                self.seconds = clock.as_dict()
        except Exception as exc:  # reported by the main thread
            self.error = exc


class _RoleDefinitions(threading.Thread):
    """Takes the role definitions (dump.take_role_definitions) while pg_dump runs. ``start_now``
    returns once pg_dumpall runs (or failed to start), so the snapshot's thread starts after it
    and no program is started while a database session works in another thread."""

    def __init__(self, request, server_major, name):
        threading.Thread.__init__(self, name="role-definitions")
        self.daemon = True
        self.args = (request, server_major, name)
        self.role_file = None
        self.error = None
        self.seconds = None
        self._running = threading.Event()

    def start_now(self):
        self.start()
        self._running.wait()

    def run(self):
        started = time.monotonic()
        try:
            self.role_file = backup_dump.take_role_definitions(*self.args, on_started=self._running.set)
        except BaseException as exc:  # reported by the main thread
            self.error = exc
        finally:
            self._running.set()
            self.seconds = round(time.monotonic() - started, 3)

    def result(self):
        """The role file (dump.take_role_definitions); raises what taking it raised."""
        self.join()
        if self.error is not None:
            raise self.error
        return self.role_file

    def discard(self):
        if self.ident is not None:
            self.join()
        if self.role_file is not None:
            self.role_file[0].abort()


def run_backup(request, check_mode=False, progress=None, log=None):
    """Run one backup; return a result dict. Raises BackupError; leaves nothing half-made."""
    params = request.connection
    log = log if log is not None else RunLog(scrub=params.scrub)
    started = datetime.datetime.now(datetime.timezone.utc)
    clock = PhaseClock()
    request.validate()
    name, stem = plan_name(request)
    path = os.path.join(request.dest_dir, name)
    result = dict(path=path, manifest_path=manifest_mod.manifest_path_for(path), name=name, stem=stem,
                  format=request.format, compression=request.compression,
                  compression_level=request.compression_level, database=params.database,
                  log_path=None, encryption=request.encryption, recipients=request.recipients)
    log.add("backup of database %s to %s (format %s, compression %s) started"
            % (pg_connection.quote_for_message(params.database), path, request.format, request.compression))
    if check_mode:
        result.update(_preflight_check_mode(request))
        return result

    conn = None
    busy_conn = None
    try:
        result["warnings"] = _trust_paths(request) + request.encryption_warnings
        if request.encryption != "none":
            try:  # the program takes these recipients: checked before anything is dumped
                request.encoder_argv = backup_encryption.encoder_argv(request.encryption, request.recipients)
            except backup_encryption.EncryptionError as exc:
                raise BackupError(str(exc))
        result["dest_dir_created"] = _prepare_dest_dir(request.storage)
        result["removed_partials"] = request.storage.remove_partials(request.storage.stale_partials())
        for leftover in result["removed_partials"]:
            log.add("removed an incomplete leftover of an interrupted run: %s" % leftover)
        if request.storage.exists(name):
            raise BackupError("refusing to overwrite %s: it already exists" % path)
        clock.lap("prepare")

        try:
            conn = pg_connection.connect(params, autocommit=False)
        except pg_connection.PgError as exc:
            raise BackupError(str(exc))
        clock.lap("connect")
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True, deferrable=False)
        with conn.cursor() as cur:
            if request.lock_wait_timeout:
                # The snapshot's own queries (table sizes, row counts) wait no longer than pg_dump does.
                cur.execute("SET LOCAL lock_timeout = %s", (request.lock_wait_timeout,))
            # The snapshot's queries run beside pg_dump: no parallel workers taking cores from it.
            cur.execute("SET LOCAL max_parallel_workers_per_gather = 0")
            version_num, version_text = pg_catalog.server_version(cur)
            identifier = backup_reuse.system_identifier(cur)
            if request.reuse_max_age_s:
                clock.lap("catalog")
                reused = backup_reuse.reused_result(request, identifier, result, log)
                clock.lap("reuse_check")
                if reused is not None:
                    return reused
            cur.execute("SELECT pg_export_snapshot()")
            snapshot = cur.fetchone()[0]
            tables = pg_catalog.dumped_tables(cur)
            roles = pg_catalog.referenced_roles(cur)
        clock.lap("catalog")
        server_major = clients.server_major(version_num)
        try:
            pg_dump, dump_major, dump_version = clients.find_client_binary(
                "pg_dump", request.bin_dir, min_major=server_major)
        except pg_connection.PgError as exc:
            raise BackupError(str(exc))
        result.update(server_version=version_text, pg_dump_version=dump_version, pg_dump_path=pg_dump)
        log.add("server %s, %s %s, %d tables, snapshot %s" % (version_text, pg_dump, dump_version,
                                                              len(tables), snapshot))

        estimate = backup_dump.estimate_dump_bytes(tables, request.compression)
        free = request.storage.free_bytes()
        result["estimated_bytes"] = estimate
        if request.check_free_space and estimate > free:
            raise BackupError("not enough free space in %s: %s free, the dump needs about %s "
                              "(estimated from the tables' size; set check_free_space: false to try anyway)"
                              % (request.dest_dir, human_bytes(free), human_bytes(estimate)))
        clock.lap("preflight")

        # The role definitions are taken while pg_dump runs and published after the dump; a
        # failure fails the backup before it is published (it leaves nothing).
        roles_job = _RoleDefinitions(request, server_major, name) if request.role_definitions else None
        counter = _Counter(conn, tables, request.app_schema)
        stall = None
        if request.stall_timeout:
            busy_conn = pg_connection.connect(params, autocommit=True)
            stall = stall_watch.Stall(request.stall_timeout, _busy(busy_conn, pg_connection.run_application_name("pg_dump")))
        clock.lap("connect")

        def dump_started():
            # pg_dumpall, then the snapshot's queries start once pg_dump runs: starting a program
            # while a database session works in another thread is unsafe.
            if roles_job is not None:
                roles_job.start_now()
            counter.start()

        def counts_done():
            # Called before the backup is published: a backup without its row counts, checklist
            # or role definitions is not made.
            counter.join()
            if counter.error is not None:
                raise BackupError("reading the row counts and the checklist in the dump's snapshot failed: %s"
                                  % params.scrub(counter.error))
            if roles_job is not None:
                roles_job.result()

        try:
            stream = backup_dump.dump(request, pg_dump, dump_major, snapshot, name, path, progress, counts_done,
                                      dump_started, stall, clock)
            globals_info = backup_dump.publish_role_definitions(roles_job.role_file if roles_job else None, path)
            clock.lap("publish")
        finally:
            if counter.is_alive():
                conn.cancel()  # the dump failed: do not wait for the counts
                counter.join()
            if roles_job is not None:
                roles_job.discard()
        flyway, figures = counter.flyway, counter.figures
        conn.rollback()
    except BackupError as exc:
        _finish_log(request, log, stem, result, "FAILED: %s" % exc, getattr(exc, "stderr", ""))
        exc.log_path = result["log_path"]
        raise
    except Exception as exc:
        message = params.scrub(exc)
        stderr = getattr(exc, "stderr", "")
        if isinstance(exc, process.ProgramError):
            message = "the dump failed: %s" % message
        elif getattr(exc, "pgcode", None) == "55P03":  # lock_not_available
            message = ("another session holds a lock the backup needs, and it did not come within lock_wait_timeout "
                       "(%s): %s" % (request.lock_wait_timeout, message.strip().splitlines()[0]))
        elif isinstance(exc, OSError):
            message = "the backup failed: %s" % message
        else:
            message = "the backup failed unexpectedly: %s: %s" % (type(exc).__name__, message)
        _finish_log(request, log, stem, result, "FAILED: %s" % message, stderr)
        error = BackupError(message, pg_connection.stderr_tail(stderr, params))
        error.log_path = result["log_path"]
        raise error
    finally:
        if conn is not None:
            conn.close()
        if busy_conn is not None:
            busy_conn.close()

    finished = datetime.datetime.now(datetime.timezone.utc)
    clock.lap("close")
    # The manifest's duration ends with the data (it cannot include its own writing); the result's
    # duration_s is the whole run, the manifest and the run log included.
    duration = round(clock.elapsed(), 3)
    primary_flyway = flyway[0] if flyway else None
    manifest = manifest_mod.build_manifest(
        backup_name=name,
        database=params.database,
        host=socket.getfqdn(),
        server={"host": params.host or "local socket", "port": params.login_port,
                "version": result["server_version"], "version_num": version_num,
                "system_identifier": identifier},
        pg_dump_version=result["pg_dump_version"],
        format=request.format,
        compression=request.compression,
        compression_level=request.compression_level,
        started_at=manifest_mod.utc_iso(started),
        finished_at=manifest_mod.utc_iso(finished),
        duration_s=duration,
        size_bytes=stream.size,
        sha256=stream.sha256,
        sha256_scope="file" if request.format != "directory" else "directory listing",
        files=stream.files,
        **_detail(request.manifest_detail, counter.counts, primary_flyway, flyway, figures),
        snapshot=snapshot,
        roles=roles,
        globals=globals_info,
        collection=COLLECTION_NAME,
        collection_version=COLLECTION_VERSION,
        **(backup_encryption.manifest_record(request.encryption, request.recipients)
           if request.encryption != "none" else {})
    )
    failpoints.reached("backup-before-manifest")
    try:
        request.storage.write(os.path.basename(result["manifest_path"]), manifest_mod.dumps(manifest))
        clock.lap("manifest")
    except OSError as exc:
        # The backup itself is complete and synced; without its manifest it is not "good" for
        # retention, so say so rather than pretend success.
        message = "the backup %s was written but its manifest could not be: %s" % (path, exc)
        _finish_log(request, log, stem, result, "FAILED: %s" % message, "")
        raise BackupError(message)
    result.update(globals_path=os.path.join(request.dest_dir, globals_info["name"]) if globals_info else None,
                  roles=roles)
    result.update(size_bytes=stream.size, sha256=stream.sha256,
                  row_counts=counter.counts, flyway_version=manifest["flyway_version"],
                  started_at=manifest["started_at"], finished_at=manifest["finished_at"],
                  dump_duration_s=round(stream.duration_s, 3))
    log.add("timings: %s" % clock.summary())
    _finish_log(request, log, stem, result,
                "SUCCESS: %s, %d bytes, sha256 %s, %.1f s, %d tables, %d rows"
                % (path, stream.size, stream.sha256, clock.elapsed(), len(counter.counts),
                   sum(counter.counts.values())), "")
    clock.lap("log")
    # What ran beside the dump (included in its time, not in the sum).
    concurrent = dict(counter.seconds, role_definitions=roles_job.seconds if roles_job else None)
    result.update(timings=clock.as_dict(), concurrent_timings=concurrent, duration_s=round(clock.elapsed(), 3))
    return result


def _detail(level, counts, primary_flyway, flyway, figures):
    """What the manifest tells of the content: everything (``full``), or (``minimal``) nothing but
    what retention and monitoring need; a restore then has no row counts to compare with."""
    if level == "minimal":
        return dict(detail="minimal", row_counts={}, flyway_version=None, flyway=[], checklist=None)
    return dict(row_counts=counts, flyway_version=primary_flyway["version"] if primary_flyway else None,
                flyway=flyway, checklist=figures)


def _trust_paths(request):
    """dest_dir and log_dir, checked before anything is written (storage/path_trust.py). Returns warnings."""
    try:
        warnings = path_trust.check([request.dest_dir], request.directory_checks, "the backup directory")
        usable, log_warnings = path_trust.check_log_dir(request.log_dir, request.directory_checks)
    except path_trust.UntrustedPathError as exc:
        request.log_dir = None  # never write a log through what was refused
        raise BackupError(str(exc))
    if not usable:
        request.log_dir = None
    return warnings + log_warnings


def _busy(conn, application_name):
    def busy():
        with conn.cursor() as cur:
            cur.execute(pg_connection.busy_sessions_sql(), (application_name,))
            return cur.fetchone()[0] > 0
    return busy


def _prepare_dest_dir(storage):
    try:
        return storage.ensure()
    except StorageError as exc:
        raise BackupError("dest_dir: %s" % exc.strerror)


def _preflight_check_mode(request):
    """What check mode can say without writing: whether dest_dir is usable or creatable."""
    dest = request.dest_dir
    if os.path.lexists(dest) and not os.path.isdir(dest):
        raise BackupError("dest_dir: %s exists and is not a directory" % dest)
    if os.path.isdir(dest) and not os.access(dest, os.W_OK | os.X_OK):
        raise BackupError("dest_dir: directory %s is not writable by this user (uid %d)" % (dest, os.geteuid()))
    return dict(dest_dir_created=not os.path.isdir(dest))


def _finish_log(request, log, stem, result, outcome, stderr):
    log.add(outcome)
    if stderr:
        log.add("stderr (last lines):\n%s" % pg_connection.stderr_tail(stderr, request.connection))
    if request.log_dir:
        try:
            result["log_path"] = log.write(request.log_dir, stem)
        except OSError as exc:
            result["log_error"] = "cannot write the run log in %s: %s" % (request.log_dir, exc)
