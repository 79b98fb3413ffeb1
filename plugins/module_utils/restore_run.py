# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restoring backups without ever losing the live database: the engine behind ``restore`` and
``verify`` (level restore). Pure Python (psycopg2 and the PostgreSQL client programs).

- Every database this code creates for its own use (staging, verification scratch) carries a
  marker comment and is protected by a session advisory lock held by the process that uses it.
  A later run drops such databases whose lock is free: their process is gone (killed, crashed).
- A restore goes into a staging database; the checks run there; only then, in one short critical
  section, the live database stops taking connections, its sessions end, and one transaction
  renames live -> previous and staging -> live. Database renames are transactional, so a failure
  (or SIGKILL) in the middle rolls back to the old live database, complete.
- Provenance: the restored database's comment records which backup (sha256) it came from;
  restoring the same backup again is a no-op unless forced.
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

from ansible_collections.lift_simulator.postgresql.plugins.module_utils import backup_files
from ansible_collections.lift_simulator.postgresql.plugins.module_utils import checklist
from ansible_collections.lift_simulator.postgresql.plugins.module_utils import dump_pipeline
from ansible_collections.lift_simulator.postgresql.plugins.module_utils import dump_sql
from ansible_collections.lift_simulator.postgresql.plugins.module_utils import failpoints
from ansible_collections.lift_simulator.postgresql.plugins.module_utils import pg_catalog
from ansible_collections.lift_simulator.postgresql.plugins.module_utils import pg_connection
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg_connection import (
    DatabaseError, PgError, pg_sql, quote_for_message)

MARKER_PREFIX = "lift_simulator.postgresql temporary database "
PROVENANCE_PREFIX = "lift_simulator.postgresql restore "
NAMEDATALEN = 63
# How long the critical section may wait for the live database's sessions to end.
SESSION_END_TIMEOUT_S = 5.0


class RestoreError(Exception):
    def __init__(self, message, stderr="", checks=None):
        Exception.__init__(self, message)
        self.stderr = stderr
        self.checks = checks or []


def timestamp():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d%H%M%S")


def derived_name(base, kind, stamp):
    """``<base>_<kind>_<stamp>`` within PostgreSQL's 63-byte limit (the base is shortened)."""
    suffix = "_%s_%s" % (kind, stamp)
    room = NAMEDATALEN - len(suffix.encode("utf-8"))
    encoded = base.encode("utf-8")
    if len(encoded) > room:
        base = encoded[:room].decode("utf-8", "ignore")
    return base + suffix


def _lock_key(name):
    return "lift_simulator.postgresql:" + name


class Catalog(object):
    """Cluster-level operations over one autocommit connection to the maintenance database."""

    def __init__(self, params, maintenance_db="postgres"):
        self.params = params.with_database(maintenance_db)
        self.conn = pg_connection.connect(self.params, autocommit=True)

    def close(self):
        self.conn.close()

    def query(self, sql, args=None):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else None

    def execute(self, sql, args=None):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)

    def database(self, name):
        """Facts about a database, or None."""
        rows = self.query(
            "SELECT d.oid, d.datallowconn, pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, "
            "shobj_description(d.oid, 'pg_database'), pg_get_userbyid(d.datdba) "
            "FROM pg_database d WHERE d.datname = %s", (name,))
        if not rows:
            return None
        oid, allow, encoding, collate, ctype, comment, owner = rows[0]
        return dict(oid=oid, allow_connections=allow, encoding=encoding, collate=collate, ctype=ctype,
                    comment=comment, owner=owner)

    def role_exists(self, name):
        return bool(self.query("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)))

    def try_lock(self, name):
        return self.query("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (_lock_key(name),))[0][0]

    def unlock(self, name):
        self.query("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (_lock_key(name),))

    def create_database(self, name, owner, like=None, marker=None):
        options = [pg_sql.SQL("OWNER {}").format(pg_sql.Identifier(owner)), pg_sql.SQL("TEMPLATE template0")]
        if like:
            options.append(pg_sql.SQL("ENCODING {} LC_COLLATE {} LC_CTYPE {}").format(
                pg_sql.Literal(like["encoding"]), pg_sql.Literal(like["collate"]), pg_sql.Literal(like["ctype"])))
        self.execute(pg_sql.SQL("CREATE DATABASE {} ").format(pg_sql.Identifier(name))
                     + pg_sql.SQL(" ").join(options))
        if marker is not None:
            self.set_comment(name, MARKER_PREFIX + json.dumps(marker, sort_keys=True))

    def set_comment(self, name, text):
        self.execute(_comment_sql(name, text))

    def drop_database(self, name):
        self.execute(pg_sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pg_sql.Identifier(name)))

    def set_allow_connections(self, name, allow):
        self.execute(_allow_sql(name, allow))

    def in_transaction(self, steps):
        """Run composed statements (and callables, e.g. failpoints) in one transaction; any failure,
        or the death of this process, rolls all of it back."""
        with self.conn.cursor() as cur:
            cur.execute("BEGIN")
            try:
                for step in steps:
                    if callable(step):
                        step()
                    else:
                        cur.execute(step)
                cur.execute("COMMIT")
            except BaseException:
                try:
                    cur.execute("ROLLBACK")
                except DatabaseError:
                    pass  # the connection is gone: the server rolls back by itself
                raise

    def end_sessions(self, names, timeout=SESSION_END_TIMEOUT_S):
        """Terminate every other session on these databases and wait until they are gone."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.query("SELECT pid FROM pg_stat_activity WHERE datname = ANY(%s) AND pid <> pg_backend_pid()",
                              (list(names),))
            if not rows:
                return
            if time.monotonic() > deadline:
                raise RestoreError("sessions on %s did not end within %.0f s"
                                   % (", ".join(quote_for_message(n) for n in names), timeout))
            self.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE datname = ANY(%s) AND pid <> pg_backend_pid()", (list(names),))
            time.sleep(0.005)

    def temporary_databases(self, for_database):
        """Databases marked as ours for ``for_database``: [(name, marker)]."""
        found = []
        for name, comment in self.query("SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
                                        "WHERE shobj_description(oid, 'pg_database') LIKE %s",
                                        (MARKER_PREFIX.replace("_", "\\_") + "%",)):
            try:
                marker = json.loads(comment[len(MARKER_PREFIX):])
            except ValueError:
                continue
            if marker.get("for") == for_database:
                found.append((name, marker))
        return found

    def drop_stale_temporaries(self, for_database, kinds=("staging", "staged", "verify")):
        """Drop our temporary databases for ``for_database`` whose process is gone (lock free).

        ``staged`` databases are left on purpose between the two phases of a restore; only a
        restore (not a verification) treats them as leftovers.
        """
        dropped = []
        for name, marker in self.temporary_databases(for_database):
            if marker.get("kind") not in kinds:
                continue
            if self.try_lock(name):
                try:
                    self.drop_database(name)
                    dropped.append(name)
                finally:
                    self.unlock(name)
        return dropped

    def database_access(self, source):
        """The database-level privileges and settings of ``source`` as statements for another name.

        Returns a function of the target name giving the composed statements.
        """
        grants = self.query(
            "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END, a.privilege_type, "
            "a.is_grantable FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = %s", (source,)) or []
        public_connect_revoked = self.query(
            "SELECT d.datacl IS NOT NULL AND NOT EXISTS (SELECT 1 FROM aclexplode(d.datacl) a "
            "WHERE a.grantee = 0 AND a.privilege_type = 'CONNECT') FROM pg_database d WHERE d.datname = %s",
            (source,))[0][0]
        settings = self.query(
            "SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END, s.setconfig "
            "FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = %s",
            (source,)) or []

        def statements(target):
            db = pg_sql.Identifier(target)
            out = []
            if public_connect_revoked:
                out.append(pg_sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(db))
            for grantee, privilege, grantable in grants:
                who = pg_sql.SQL("PUBLIC") if grantee == "PUBLIC" else pg_sql.Identifier(grantee)
                out.append(pg_sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
                    pg_sql.SQL(privilege), db, who, pg_sql.SQL(" WITH GRANT OPTION" if grantable else "")))
            for role, config in settings:
                for setting in config:
                    key, _sep, value = setting.partition("=")
                    prefix = (pg_sql.SQL("ALTER ROLE {} IN DATABASE {}").format(pg_sql.Identifier(role), db) if role
                              else pg_sql.SQL("ALTER DATABASE {}").format(db))
                    assignment = pg_sql.SQL(" SET {} = {}").format(pg_sql.Identifier(key), pg_sql.Literal(value))
                    out.append(prefix + assignment)
            return out

        return statements

    def apply(self, statements):
        for statement in statements:
            self.execute(statement)

    def grant_all(self, database, role):
        self.execute(pg_sql.SQL("GRANT ALL PRIVILEGES ON DATABASE {} TO {}").format(
            pg_sql.Identifier(database), pg_sql.Identifier(role)))

    def swap(self, live, staging, previous, comment):
        """Replace ``live`` by ``staging``; returns seconds the live name could not be connected to.

        Only the two ALLOW_CONNECTIONS changes and the wait for sessions to end happen outside
        the renaming transaction; a failure anywhere restores the old state.
        """
        started = time.monotonic()
        self.set_allow_connections(live, False)
        try:
            self.set_allow_connections(staging, False)
            self.end_sessions([live, staging])
            failpoints.reached("restore-swap-before-rename")
            self.in_transaction([
                _rename_sql(live, previous),
                lambda: failpoints.reached("restore-swap-between-renames"),
                _rename_sql(staging, live),
                _allow_sql(live, True),
                _comment_sql(live, comment),
            ])
        except BaseException:
            # Whatever failed, the live database is still there under its name: let it serve again
            # (best effort: when the server is gone, the next run does it).
            try:
                facts = self.database(live)
                if facts is not None and not facts["allow_connections"]:
                    self.set_allow_connections(live, True)
            except DatabaseError:
                pass
            raise
        downtime = time.monotonic() - started
        failpoints.reached("restore-swap-committed")
        self.set_allow_connections(previous, True)
        return downtime


def _rename_sql(name, new_name):
    return pg_sql.SQL("ALTER DATABASE {} RENAME TO {}").format(pg_sql.Identifier(name), pg_sql.Identifier(new_name))


def _allow_sql(name, allow):
    return pg_sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}").format(
        pg_sql.Identifier(name), pg_sql.SQL("true" if allow else "false"))


def _comment_sql(name, text):
    return pg_sql.SQL("COMMENT ON DATABASE {} IS {}").format(pg_sql.Identifier(name), pg_sql.Literal(text))


def rename_into_place(catalog, staging, live, comment):
    """Give a verified staging database the live name (no live database exists)."""
    catalog.set_allow_connections(staging, False)
    try:
        catalog.end_sessions([staging])
        catalog.in_transaction([_rename_sql(staging, live), _comment_sql(live, comment)])
    finally:
        try:
            catalog.set_allow_connections(live if catalog.database(live) is not None else staging, True)
        except DatabaseError:
            pass  # the server is gone; the next run drops the staging database


def discard(catalog, name):
    """Drop a temporary database after a failure, best effort: when the server is gone the
    database stays, marked, and the next run drops it. Never masks the original error."""
    try:
        if catalog.database(name) is not None:
            catalog.drop_database(name)
    except (DatabaseError, PgError, RestoreError):
        pass


def provenance(backup, strategy):
    return PROVENANCE_PREFIX + json.dumps({
        "backup": backup.name, "sha256": backup.sha256,
        "restored_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "strategy": strategy, "host": socket.gethostname()}, sort_keys=True)


def read_provenance(comment):
    if not comment or not comment.startswith(PROVENANCE_PREFIX):
        return None
    try:
        return json.loads(comment[len(PROVENANCE_PREFIX):])
    except ValueError:
        return None


# --- loading a backup into a database ---------------------------------------------------------

def _conninfo_dbname(name):
    """A libpq connection string naming only the database, safe for any name (pg_restore -d)."""
    return "dbname='%s'" % name.replace("\\", "\\\\").replace("'", "\\'")


def load_backup(backup, params, database, jobs=1, bin_dir=None, server_major=None):
    """Restore ``backup`` into the existing, empty ``database``. Raises RestoreError."""
    target = params.with_database(database)
    with pg_connection.ClientEnvironment(target) as env:
        if backup.format == "plain":
            psql = _client("psql", bin_dir, server_major)
            argv = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f", "-"]
            commands = []
            if backup.compression != "none":
                commands.append(dump_pipeline.decompressor_argv(backup.compression) + [backup.path])
            _run_feeding(argv, env, backup.path if not commands else None, commands, params)
        else:
            pg_restore = _client("pg_restore", bin_dir, server_major)
            argv = [pg_restore, "--exit-on-error", "--no-password", "-d", _conninfo_dbname(database)]
            argv += ["--jobs=%d" % jobs] if jobs and jobs > 1 else ["--single-transaction"]
            argv.append(backup.path)
            _run(argv, env, params)


def _client(name, bin_dir, server_major):
    try:
        return pg_connection.find_client_binary(name, bin_dir, min_major=server_major)[0]
    except PgError as exc:
        raise RestoreError(str(exc))


def _run(argv, env, params, stdin=subprocess.DEVNULL):
    try:
        dump_pipeline.run_program(argv, env=env, stdin=stdin)
    except dump_pipeline.DumpError as exc:
        tail = pg_connection.stderr_tail(exc.stderr, params)
        raise RestoreError("%s: %s" % (exc, _first_error(tail)), tail)


def _first_error(tail):
    """The first error line of a client's stderr, with PostgreSQL's DETAIL and HINT lines after it."""
    lines = tail.strip().splitlines()
    for index, line in enumerate(lines):
        if "ERROR" in line or "error:" in line or "FATAL" in line:
            extra = [l.strip() for l in lines[index + 1:index + 3] if l.lstrip().startswith(("DETAIL:", "HINT:"))]
            return " ".join([line.strip()] + extra)
    return lines[-1] if lines else "no message"


def _run_feeding(argv, env, path, producers, params):
    """Run ``argv`` with stdin from ``path`` or from the pipeline of ``producers``."""
    if path is not None:
        with open(path, "rb") as source:
            _run(argv, env, params, stdin=source)
        return
    pipeline = dump_pipeline.Pipeline(producers, env=env)
    with tempfile.TemporaryFile() as err:
        consumer = dump_pipeline.spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err, env=env)
        try:
            pipeline.run(_PipeSink(consumer.stdin))
            consumer.stdin.close()
            code = consumer.wait()
        except dump_pipeline.DumpError as exc:
            consumer.kill()
            consumer.wait()
            tail = pg_connection.stderr_tail(dump_pipeline.read_tail(err), params)
            raise RestoreError("reading the backup failed: %s" % exc, exc.stderr or tail)
        except BaseException:
            consumer.kill()
            consumer.wait()
            raise
        if code != 0:
            tail = pg_connection.stderr_tail(dump_pipeline.read_tail(err), params)
            raise RestoreError("%s: %s" % (dump_pipeline.describe_exit(argv[0], code), _first_error(tail)), tail)


class _PipeSink(object):
    def __init__(self, pipe):
        self.pipe = pipe

    def write(self, chunk):
        try:
            self.pipe.write(chunk)
        except BrokenPipeError:
            raise dump_pipeline.DumpError("the restore program stopped reading")


# --- after a load -----------------------------------------------------------------------------

_OWNERSHIP_QUERIES = (
    # Tables first: their owned sequences follow them.
    ("SELECT 'ALTER ' || CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' "
     "WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END || ' ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) "
     "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
     "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {user} AND c.relowner <> {owner} AND {not_ext}"),
    ("SELECT 'ALTER SEQUENCE ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) "
     "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
     "WHERE c.relkind = 'S' AND {user} AND c.relowner <> {owner} AND {not_ext}"),
    ("SELECT 'ALTER SCHEMA ' || quote_ident(n.nspname) FROM pg_namespace n "
     "WHERE {user} AND n.nspname <> 'public' AND n.nspowner <> {owner}"),
    ("SELECT 'ALTER ' || CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END "
     "|| ' ' || p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
     "WHERE {user} AND p.proowner <> {owner} AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = "
     "'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')"),
    ("SELECT 'ALTER ' || CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END || ' ' || quote_ident(n.nspname) "
     "|| '.' || quote_ident(t.typname) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
     "WHERE {user} AND t.typowner <> {owner} AND t.typtype IN ('d', 'e', 'r') "
     "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid "
     "AND d.deptype = 'e')"),
)
_USER_NS = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'"


def set_ownership(conn, owner):
    """Make ``owner`` own every object in the user schemas (the dump's owners may differ)."""
    changed = 0
    with conn.cursor() as cur:
        owner_oid = "(SELECT oid FROM pg_roles WHERE rolname = %s)"
        for template in _OWNERSHIP_QUERIES:
            query = template.format(user=_USER_NS, owner=owner_oid,
                                    not_ext="NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = "
                                            "'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')")
            cur.execute(query, (owner,))
            for (statement,) in cur.fetchall():
                cur.execute(pg_sql.SQL(statement) + pg_sql.SQL(" OWNER TO {}").format(pg_sql.Identifier(owner)))
                changed += 1
    return changed


def database_checks(params, database, backup, app_schema=checklist.DEFAULT_APP_SCHEMA, user_checks=None):
    """Row counts against the manifest, the strategy's checklist and the operator's checks.

    Returns (checks, row_counts found)."""
    conn = pg_connection.connect(params.with_database(database), autocommit=True)
    try:
        with conn.cursor() as cur:
            checks = []
            counts = {}
            if backup.expected_rows is not None:
                row_checks, counts = checklist.row_count_checks(cur, backup.expected_rows)
                checks.extend(row_checks)
            else:
                checks.append(checklist.check("row counts", True, "no manifest to compare with", skipped=True))
            manifest = backup.manifest or {}
            if manifest.get("checklist") or checklist.capture(cur, app_schema) is not None:
                checks.append(checklist.flyway_check(cur, app_schema, manifest.get("flyway_version")))
            checks.extend(checklist.checklist_checks(cur, manifest.get("checklist"), app_schema))
            checks.extend(checklist.user_checks(cur, user_checks))
            if not counts:
                tables = pg_catalog.dumped_tables(cur)
                counts = pg_catalog.row_counts(cur, tables)
        return checks, counts
    finally:
        conn.close()


# --- selective restore of tables --------------------------------------------------------------

def resolve_tables(conn, requested):
    """Map each requested ``schema.table`` to its canonical quoted name in the target database,
    with its foreign-key references among the database's tables. Raises RestoreError."""
    resolved = {}
    references = {}
    with conn.cursor() as cur:
        for name in requested:
            try:
                cur.execute("SELECT c.oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c "
                            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s) "
                            "AND c.relkind IN ('r', 'p')", (name,))
                row = cur.fetchone()
            except Exception as exc:
                reason = str(exc).strip().splitlines()[0]
                raise RestoreError("%s is not a valid table name: %s" % (quote_for_message(name), reason))
            if row is None:
                raise RestoreError("table %s does not exist in the target database" % quote_for_message(name))
            resolved[row[1]] = row[0]
        for table, oid in resolved.items():
            cur.execute("SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_constraint k "
                        "JOIN pg_class c ON c.oid = k.confrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE k.contype = 'f' AND k.conrelid = %s", (oid,))
            references[table] = set(r[0] for r in cur.fetchall())
    return resolved, references


def owned_sequences(conn, tables):
    """Canonical names of the sequences owned by (serial/identity columns of) these tables."""
    with conn.cursor() as cur:
        cur.execute("SELECT quote_ident(sn.nspname) || '.' || quote_ident(s.relname) FROM pg_depend d "
                    "JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' "
                    "JOIN pg_namespace sn ON sn.oid = s.relnamespace "
                    "WHERE d.classid = 'pg_class'::regclass AND d.refobjid = ANY(%s::oid[]) "
                    "AND d.deptype IN ('a', 'i')", (list(tables.values()),))
        return set(r[0] for r in cur.fetchall())


def _data_stream_argv(backup, bin_dir, server_major):
    """The command that prints the backup's data sections as plain SQL text."""
    if backup.format == "plain":
        if backup.compression == "none":
            return None
        return dump_pipeline.decompressor_argv(backup.compression) + [backup.path]
    return [_client("pg_restore", bin_dir, server_major), "--data-only", "-f", "-", backup.path]


def restore_tables(backup, params, database, requested, truncate=False, bin_dir=None, server_major=None):
    """Restore only the data of ``requested`` tables into the existing ``database``, in one transaction.

    Returns {table: rows loaded}. The dump is read once; a table whose referenced tables are not
    loaded yet is spooled to a private temporary file until they are.
    """
    conn = pg_connection.connect(params.with_database(database), autocommit=True)
    try:
        tables, references = resolve_tables(conn, requested)
        sequences = owned_sequences(conn, tables)
    finally:
        conn.close()
    try:
        order = dump_sql.dependency_order(list(tables), references)
    except dump_sql.DumpFormatError as exc:
        raise RestoreError(str(exc))
    if backup.expected_rows is not None:
        missing = [t for t in order if t not in backup.expected_rows]
        if missing:
            raise RestoreError("the backup has no table %s; it has: %s" % (
                ", ".join(missing), ", ".join(sorted(backup.expected_rows))))
    psql = _client("psql", bin_dir, server_major)
    producer = _data_stream_argv(backup, bin_dir, server_major)
    spool_dir = tempfile.mkdtemp(prefix="lift-restore-")
    loaded = {}
    try:
        with pg_connection.ClientEnvironment(params.with_database(database)) as env:
            with tempfile.TemporaryFile() as psql_err:
                consumer = dump_pipeline.spawn([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"],
                                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=psql_err,
                                               env=env)
                try:
                    _feed_tables(consumer.stdin, backup, producer, env, order, truncate, sequences, spool_dir, loaded)
                    consumer.stdin.close()
                except BrokenPipeError:
                    # psql stopped reading: it failed; its stderr says why (reported below).
                    pass
                except _MissingTables as exc:
                    consumer.kill()
                    consumer.wait()
                    raise RestoreError("the backup has no table %s; it has: %s"
                                       % (", ".join(exc.missing), ", ".join(sorted(exc.seen)) or "no table data"))
                except BaseException:
                    consumer.kill()
                    consumer.wait()
                    raise
                code = consumer.wait()
                if code != 0:
                    tail = pg_connection.stderr_tail(dump_pipeline.read_tail(psql_err), params)
                    raise RestoreError("restoring the tables failed, nothing was changed: %s" % _first_error(tail),
                                       tail)
    finally:
        shutil.rmtree(spool_dir, ignore_errors=True)
    return loaded


class _MissingTables(Exception):
    def __init__(self, missing, seen):
        Exception.__init__(self, "missing tables")
        self.missing = missing
        self.seen = seen


def _feed_tables(out, backup, producer, env, order, truncate, sequences, spool_dir, loaded):
    """Write the restoring SQL to ``out`` (psql's stdin)."""
    wanted = set(order)
    out.write(b"BEGIN;\n")
    if truncate:
        out.write(("TRUNCATE ONLY %s;\n" % ", ".join(order)).encode("utf-8"))
    done = set()
    spooled = {}
    setvals = []
    seen = []
    position = {t: i for i, t in enumerate(order)}

    def ready(table):
        return all(t in done for t in order[:position[table]])

    def flush_spooled():
        progressed = True
        while progressed:
            progressed = False
            for table in [t for t in order if t in spooled and ready(t)]:
                path, copy_line, rows = spooled.pop(table)
                out.write(copy_line)
                with open(path, "rb") as handle:
                    for block in iter(lambda: handle.read(dump_pipeline.CHUNK), b""):
                        out.write(block)
                out.write(dump_sql.END_OF_COPY)
                os.unlink(path)
                loaded[table] = rows
                done.add(table)
                progressed = True

    proc = None
    with tempfile.TemporaryFile() as err:
        if producer is None:
            source = open(backup.path, "rb")
        else:
            proc = dump_pipeline.spawn(producer, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                                       env=env)
            source = proc.stdout
        try:
            current = None
            spool = None
            rows = 0
            for event, value in dump_sql.DumpReader(source).events():
                if event == "copy":
                    seen.append(value.table)
                    if value.table in wanted:
                        current = value
                        rows = 0
                        if ready(value.table):
                            out.write(value.copy_line)
                        else:
                            spool = open(os.path.join(spool_dir, "%d.copy" % position[value.table]), "wb")
                elif event == "row" and current is not None:
                    (spool or out).write(value)
                    rows += 1
                elif event == "end" and current is not None:
                    if spool is not None:
                        spool.close()
                        spooled[current.table] = (spool.name, current.copy_line, rows)
                        spool = None
                    else:
                        out.write(dump_sql.END_OF_COPY)
                        loaded[current.table] = rows
                        done.add(current.table)
                        flush_spooled()
                    current = None
                elif event == "setval" and value[0] in sequences:
                    setvals.append(value[1])
        except dump_sql.DumpFormatError as exc:
            raise RestoreError(str(exc))
        finally:
            source.close()
            if proc is not None:
                code = proc.wait()
                if code != 0:
                    raise RestoreError("reading the backup failed: %s: %s" % (
                        dump_pipeline.describe_exit(producer[0], code), _first_error(dump_pipeline.read_tail(err))))
    missing = [t for t in order if t not in seen]
    if missing:
        raise _MissingTables(missing, seen)
    flush_spooled()
    for statement in setvals:
        out.write(statement)
    out.write(b"COMMIT;\n")
    return seen


# --- the two jobs -----------------------------------------------------------------------------

class RestoreRequest(object):
    def __init__(self, connection, backup_path, database="lift_simulator", owner="lift_admin", strategy="swap",
                 keep_previous=True, force=False, jobs=1, bin_dir=None, tables=None, truncate=False, checks=None,
                 app_schema=checklist.DEFAULT_APP_SCHEMA, maintenance_db="postgres", phase="full",
                 staging_database=None):
        self.connection = connection
        self.phase = phase
        self.staging_database = staging_database
        self.backup_path = backup_path
        self.database = database
        self.owner = owner
        self.strategy = strategy
        self.keep_previous = keep_previous
        self.force = force
        self.jobs = jobs
        self.bin_dir = bin_dir
        self.tables = tables or []
        self.truncate = truncate
        self.checks = checks or []
        self.app_schema = app_schema
        self.maintenance_db = maintenance_db


def _open(request):
    """Inspect the backup and connect to the cluster: (backup, catalog, server major)."""
    try:
        backup = backup_files.inspect(request.backup_path)
    except backup_files.BackupFileError as exc:
        raise RestoreError(str(exc))
    try:
        catalog = Catalog(request.connection, request.maintenance_db)
    except PgError as exc:
        raise RestoreError(str(exc))
    major = pg_connection.server_major(catalog.query("SELECT current_setting('server_version_num')")[0][0])
    return backup, catalog, major


def _verify_quickly(backup, request, major):
    pg_restore = _client("pg_restore", request.bin_dir, major) if backup.format != "plain" else None
    checks = backup_files.quick_checks(backup, pg_restore)
    if checklist.failing(checks):
        raise RestoreError("the backup failed verification, nothing was changed: %s" % checklist.summary(checks),
                           checks=checks)
    return checks


def backup_warnings(backup):
    if backup.manifest is None and not backup.manifest_error:
        return ["%s has no manifest (a backup of an earlier process?): its checksum and row counts cannot be "
                "compared; only its structure and the checklist were checked" % backup.name]
    return []


def run_verify_restore(request, scratch_owner=None):
    """verify level restore: restore into a scratch database, check it, always drop it."""
    started = time.monotonic()
    backup, catalog, major = _open(request)
    try:
        quick = _verify_quickly(backup, request, major)
        database = (backup.manifest or {}).get("database") or request.database
        catalog.drop_stale_temporaries(database, kinds=("verify",))
        scratch = derived_name(database, "verify", timestamp())
        owner = scratch_owner or catalog.query("SELECT current_user")[0][0]
        catalog.try_lock(scratch)
        catalog.create_database(scratch, owner, marker={"kind": "verify", "for": database,
                                                        "host": socket.gethostname(), "pid": os.getpid()})
        try:
            load_backup(backup, request.connection, scratch, request.jobs, request.bin_dir, major)
            checks, counts = database_checks(request.connection, scratch, backup, request.app_schema, request.checks)
        finally:
            discard(catalog, scratch)
            _unlock_quietly(catalog, scratch)
        return backup, quick + checks, counts, scratch, round(time.monotonic() - started, 3)
    finally:
        catalog.close()


def run_restore(request, check_mode=False):
    """The restore module's job. Returns a result dict; raises RestoreError (nothing changed)."""
    started = time.monotonic()
    if request.phase == "swap":
        return _swap_phase(request, check_mode, started)
    backup, catalog, major = _open(request)
    db = request.database
    result = dict(database=db, strategy=request.strategy, backup=backup.path, format=backup.format,
                  previous_database=None, staging_database=None, downtime_s=0.0, changed=False,
                  warnings=backup_warnings(backup), tables=list(request.tables))
    try:
        checks = _verify_quickly(backup, request, major)
        result.update(sha256=backup.sha256, checks=checks)
        live = catalog.database(db)
        if request.tables:
            return _restore_selected(request, backup, catalog, major, live, result, check_mode, started)
        if not catalog.role_exists(request.owner):
            raise RestoreError("the owner role %s does not exist; create it first (for example with the server "
                               "role)" % quote_for_message(request.owner))
        origin = read_provenance(live["comment"]) if live else None
        if origin and origin.get("sha256") == backup.sha256 and not request.force:
            result.update(msg="%s was already restored from this backup (sha256 %s) on %s; force: true restores "
                              "it again" % (quote_for_message(db), backup.sha256, origin.get("restored_at")))
            return _finish(result, started)
        if request.strategy == "create" and live is not None:
            raise RestoreError("database %s exists; strategy create is for a machine without it (use swap)"
                               % quote_for_message(db))
        if request.strategy == "replace" and not request.force:
            raise RestoreError("strategy replace drops the live database before restoring (downtime for the whole "
                               "restore, data lost if the restore fails); it needs force: true")
        stamp = timestamp()
        staging = derived_name(db, "staging", stamp)
        previous = derived_name(db, "pre_restore", stamp) if live is not None and request.strategy == "swap" else None
        result.update(changed=True, staging_database=staging if request.strategy != "replace" else None,
                      previous_database=previous)
        if check_mode:
            result["msg"] = _plan(request, db, staging, previous, live)
            return _finish(result, started)
        if not catalog.try_lock(db):
            raise RestoreError("another restore of %s is running" % quote_for_message(db))
        dropped = catalog.drop_stale_temporaries(db)
        result["removed_leftovers"] = dropped
        if dropped and live is not None and not live["allow_connections"]:
            # An earlier run was killed inside its swap: the live database is intact, let it serve again.
            catalog.set_allow_connections(db, True)
        if request.strategy == "replace":
            _replace(request, backup, catalog, major, live, result)
        else:
            _swap(request, backup, catalog, major, live, staging, previous, result)
        return _finish(result, started)
    finally:
        catalog.close()


def _unlock_quietly(catalog, name):
    try:
        catalog.unlock(name)
    except DatabaseError:
        pass  # the session is gone, and its locks with it


def _finish(result, started):
    result["duration_s"] = round(time.monotonic() - started, 3)
    return result


def _plan(request, db, staging, previous, live):
    if request.strategy == "replace":
        return "would drop %s, create it again and restore into it (downtime: the whole restore)" % db
    if live is None:
        return "would restore into %s, check it and rename it to %s" % (staging, db)
    return ("would restore into %s, check it, then rename %s to %s and %s to %s%s"
            % (staging, db, previous, staging, db, "" if request.keep_previous else " and drop " + previous))


def _load_and_check(request, backup, catalog, major, target):
    load_backup(backup, request.connection, target, request.jobs, request.bin_dir, major)
    failpoints.reached("restore-staging-loaded")
    conn = pg_connection.connect(request.connection.with_database(target), autocommit=True)
    try:
        set_ownership(conn, request.owner)
    finally:
        conn.close()
    checks, counts = database_checks(request.connection, target, backup, request.app_schema, request.checks)
    return checks, counts


def _stage(request, backup, catalog, major, live, staging, result):
    """Restore into ``staging`` and check it; on any failure drop it. The caller holds its lock."""
    db = request.database
    catalog.try_lock(staging)
    catalog.create_database(staging, request.owner, like=live, marker={
        "kind": "staging", "for": db, "host": socket.gethostname(), "pid": os.getpid()})
    try:
        checks, counts = _load_and_check(request, backup, catalog, major, staging)
        result["checks"] = result["checks"] + checks
        result["row_counts"] = counts
        if checklist.failing(checks):
            raise RestoreError("the restored database failed its checks; the live database was not touched: %s"
                               % checklist.summary(checks), checks=result["checks"])
        if live is not None:
            catalog.apply(catalog.database_access(db)(staging))
        else:
            catalog.grant_all(staging, request.owner)
    except BaseException:
        discard(catalog, staging)
        _unlock_quietly(catalog, staging)
        raise


def _swap_in(request, catalog, staging, previous, comment, result):
    """The critical section (or a plain rename when there is no live database)."""
    db = request.database
    try:
        if previous is not None:
            result["downtime_s"] = round(catalog.swap(db, staging, previous, comment), 4)
        else:
            rename_into_place(catalog, staging, db, comment)
    except BaseException:
        discard(catalog, staging)
        raise
    finally:
        _unlock_quietly(catalog, staging)
    if previous and not request.keep_previous:
        catalog.drop_database(previous)
        result["previous_dropped"] = True


def _swap(request, backup, catalog, major, live, staging, previous, result):
    if request.phase == "stage":
        _stage(request, backup, catalog, major, live, staging, result)
        # Left for the swap phase: marked as staged, with what it was made from.
        catalog.set_comment(staging, MARKER_PREFIX + json.dumps({
            "kind": "staged", "for": request.database, "host": socket.gethostname(),
            "comment": provenance(backup, request.strategy)}, sort_keys=True))
        catalog.unlock(staging)
        result["msg"] = "restored and checked in %s; the swap phase puts it in place" % staging
        return
    _stage(request, backup, catalog, major, live, staging, result)
    _swap_in(request, catalog, staging, previous, provenance(backup, request.strategy), result)


def _swap_phase(request, check_mode, started):
    """Second phase: put a database restored and checked by the stage phase in place."""
    db = request.database
    staging = request.staging_database
    try:
        catalog = Catalog(request.connection, request.maintenance_db)
    except PgError as exc:
        raise RestoreError(str(exc))
    try:
        markers = dict(catalog.temporary_databases(db))
        marker = markers.get(staging)
        if not marker or marker.get("kind") != "staged":
            raise RestoreError("%s is not a database staged for %s by the stage phase"
                               % (quote_for_message(staging or ""), quote_for_message(db)))
        live = catalog.database(db)
        stamp = timestamp()
        previous = derived_name(db, "pre_restore", stamp) if live is not None else None
        result = dict(database=db, strategy=request.strategy, backup=request.backup_path, previous_database=previous,
                      staging_database=staging, downtime_s=0.0, changed=True, checks=[], warnings=[],
                      tables=[])
        if check_mode:
            result["msg"] = "would swap %s in as %s" % (staging, db)
            return _finish(result, started)
        if not catalog.try_lock(db):
            raise RestoreError("another restore of %s is running" % quote_for_message(db))
        if not catalog.try_lock(staging):
            raise RestoreError("%s is in use by another run" % quote_for_message(staging))
        _swap_in(request, catalog, staging, previous, marker["comment"], result)
        return _finish(result, started)
    finally:
        catalog.close()


def _replace(request, backup, catalog, major, live, result):
    """The strategy document's procedure: drop, create, restore. Downtime is the whole restore."""
    db = request.database
    access = catalog.database_access(db) if live is not None else None
    started = time.monotonic()
    if live is not None:
        catalog.set_allow_connections(db, False)
        catalog.end_sessions([db])
        catalog.drop_database(db)
    catalog.create_database(db, request.owner, like=live)
    catalog.apply(access(db) if access else [])
    catalog.grant_all(db, request.owner)
    checks, counts = _load_and_check(request, backup, catalog, major, db)
    result["checks"] = result["checks"] + checks
    result["row_counts"] = counts
    catalog.set_comment(db, provenance(backup, "replace"))
    result["downtime_s"] = round(time.monotonic() - started, 4)
    if checklist.failing(checks):
        raise RestoreError("the restored database failed its checks (strategy replace: the old database is gone): "
                           "%s" % checklist.summary(checks), checks=result["checks"])


def _restore_selected(request, backup, catalog, major, live, result, check_mode, started):
    db = request.database
    if live is None:
        raise RestoreError("database %s does not exist; a selective restore loads tables into an existing "
                           "database" % quote_for_message(db))
    result.update(strategy="tables", changed=True)
    if check_mode:
        result["msg"] = "would %srestore the data of %s into %s in one transaction" % (
            "truncate and " if request.truncate else "", ", ".join(request.tables), db)
        return _finish(result, started)
    loaded = restore_tables(backup, request.connection, db, request.tables, request.truncate, request.bin_dir, major)
    result["row_counts"] = loaded
    return _finish(result, started)
