# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restoring backups without ever losing the live database, and without running anything from a
backup or from the database owner with more rights than the owner has: the engine behind
``restore`` and ``verify`` (level restore). Pure Python (psycopg2 and the PostgreSQL client programs).

- The superuser login only creates, renames and drops databases and roles and reads catalogs
  (cluster_admin.py). Loading the backup and every check that reads restored content run as a
  transient loading role with the owner's rights (loader_role.py); a staging or scratch database
  belongs to that role and accepts no other connection while it loads.
- A restore goes into a staging database; the checks run there; only then, in one short critical
  section, the live database stops taking connections, its sessions end, and one transaction
  renames live -> previous and staging -> live and gives the new live database the old one's owner,
  comment, privileges and settings. A failure (or SIGKILL) anywhere rolls back to the old live database.
- The collection's own records (bookkeeping.py) say which databases are its staging, scratch,
  restored and previous ones; a later run drops the temporary ones of killed runs, and keeps at
  most ``keep_previous`` previous databases. Restoring the backup a database was restored from is a
  no-op only while that database provably still holds what the backup holds (provenance.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os
import socket
import time

from ansible_collections.lift_simulator.postgresql.plugins.module_utils import backup_files
from ansible_collections.lift_simulator.postgresql.plugins.module_utils import backup_load
from ansible_collections.lift_simulator.postgresql.plugins.module_utils import bookkeeping
from ansible_collections.lift_simulator.postgresql.plugins.module_utils import checklist
from ansible_collections.lift_simulator.postgresql.plugins.module_utils import checksums
from ansible_collections.lift_simulator.postgresql.plugins.module_utils import cluster_admin
from ansible_collections.lift_simulator.postgresql.plugins.module_utils import failpoints
from ansible_collections.lift_simulator.postgresql.plugins.module_utils import loader_role
from ansible_collections.lift_simulator.postgresql.plugins.module_utils import path_trust
from ansible_collections.lift_simulator.postgresql.plugins.module_utils import pg_connection
from ansible_collections.lift_simulator.postgresql.plugins.module_utils import provenance
from ansible_collections.lift_simulator.postgresql.plugins.module_utils import restore_checks
from ansible_collections.lift_simulator.postgresql.plugins.module_utils import role_definitions
from ansible_collections.lift_simulator.postgresql.plugins.module_utils import stall_watch
from ansible_collections.lift_simulator.postgresql.plugins.module_utils import table_restore
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.cluster_admin import (
    ClusterAdmin, ClusterError, DatabaseAttributes)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg_connection import (
    DatabaseError, PgError, quote_for_message)

NAMEDATALEN = 63
TEMPORARY_COMMENT = "lift_simulator.postgresql: temporary database of a %s of %s; dropped automatically"


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


def is_staging_name(database, name):
    """Whether ``name`` has the shape of a staging database that the stage phase makes for ``database``."""
    stamp = timestamp()
    prefix = derived_name(database, "staging", stamp)[:-len(stamp)]
    rest = name[len(prefix):] if name.startswith(prefix) else ""
    return len(rest) == len(stamp) and rest.isdigit()


def keep_previous_count(value):
    """``keep_previous`` as a number of previous databases: true is 1, false is 0."""
    if isinstance(value, bool):
        return 1 if value else 0
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "false", "no", "off"):
        return 1 if value.strip().lower() in ("true", "yes", "on") else 0
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise RestoreError("keep_previous must be true, false or a number of previous databases, not %r" % (value,))
    if count < 0:
        raise RestoreError("keep_previous must not be negative")
    return count


class RestoreRequest(object):
    def __init__(self, connection, backup_path, database="lift_simulator", owner="lift_admin", strategy="swap",
                 keep_previous=1, force=False, jobs=1, bin_dir=None, tables=None, truncate=False, checks=None,
                 app_schema=checklist.DEFAULT_APP_SCHEMA, maintenance_db="postgres", phase="full",
                 staging_database=None, load_as="owner", load_host=None, privileges="keep", lock_timeout=60,
                 directory_checks="strict", stall_timeout=300, create_roles=True, rollback_to="newest"):
        self.connection = connection
        self.phase = phase
        self.rollback_to = rollback_to
        self.staging_database = staging_database
        self.backup_path = backup_path
        self.database = database
        self.owner = owner
        self.strategy = strategy
        self.keep_previous = keep_previous_count(keep_previous)
        self.force = force
        self.jobs = jobs
        self.bin_dir = bin_dir
        self.tables = tables or []
        self.truncate = truncate
        self.checks = checks or []
        self.app_schema = app_schema
        self.maintenance_db = maintenance_db
        self.load_as = load_as
        self.load_host = load_host
        self.privileges = privileges
        self.lock_timeout = lock_timeout
        self.directory_checks = directory_checks
        self.stall_timeout = stall_timeout
        self.create_roles = create_roles


# --- opening and cleaning up ------------------------------------------------------------------

def _connect(request):
    """The superuser's admin connection, checked to be one (before anything is read or created)."""
    try:
        admin = ClusterAdmin(request.connection, request.maintenance_db, lock_timeout_s=request.lock_timeout)
    except PgError as exc:
        raise RestoreError(str(exc))
    user, superuser, createdb, _createrole = admin.login()
    if not superuser:
        admin.close()
        raise RestoreError(
            "restores and restore-level verification need a superuser login (they create, rename and drop databases "
            "and a transient loading role, and keep their records in the maintenance database); %s is not a "
            "superuser%s. Connect as postgres (become_user: postgres over the local socket)"
            % (quote_for_message(user), "" if createdb else " and has no CREATEDB either"))
    return admin


def _open(request, check_mode=False):
    """Inspect the backup and connect to the cluster: (backup, admin, server major)."""
    try:
        backup = backup_files.inspect(request.backup_path, request.directory_checks)
    except backup_files.BackupFileError as exc:
        raise RestoreError(str(exc))
    admin = _connect(request)
    try:
        if not check_mode:
            bookkeeping.ensure(admin)
        return backup, admin, admin.server_major()
    except BaseException:
        admin.close()
        raise


def _verify_quickly(backup, request, major):
    pg_restore = backup_load.client("pg_restore", request.bin_dir, major)[0] if backup.format != "plain" else None
    checks = backup_files.quick_checks(backup, pg_restore)
    if checklist.failing(checks):
        raise RestoreError("the backup failed verification, nothing was changed: %s" % checklist.summary(checks),
                           checks=checks)
    return checks


def backup_warnings(backup):
    warnings = list(backup.warnings)
    if backup.manifest is None and not backup.manifest_error:
        warnings.append("%s has no manifest (a backup of an earlier process?): its checksum and row counts cannot "
                        "be compared; only its structure and the checklist were checked" % backup.name)
    return warnings


def _unlock_quietly(admin, name):
    try:
        admin.unlock(name)
    except DatabaseError:
        pass  # the session is gone, and its locks with it


def drop_stale(admin, for_database, kinds=("staging", "staged", "verify")):
    """Drop the temporary databases of killed runs (recorded, their lock free; or owned by a
    loading role whose run is gone), then those runs' loading roles. Returns (dropped, warnings).

    ``staged`` databases are left on purpose between the two phases of a restore; only a
    restore (not a verification) treats them as leftovers."""
    dropped, warnings = [], []
    if not bookkeeping.present(admin):
        return dropped, warnings
    for record in bookkeeping.databases(admin, for_database, kinds):
        if record.exists and admin.try_lock(record.name):
            try:
                admin.drop_database(record.name)
                bookkeeping.forget_database(admin, record.oid)
                dropped.append(record.name)
            finally:
                admin.unlock(record.name)
    roles = bookkeeping.roles(admin)
    if roles:
        # A run killed between CREATE DATABASE and its record leaves a database owned by its role.
        for name, role in admin.query("SELECT datname, pg_get_userbyid(datdba) FROM pg_database "
                                      "WHERE pg_get_userbyid(datdba) = ANY(%s)", (roles,)):
            if admin.try_lock(role):
                try:
                    admin.drop_database(name)
                    dropped.append(name)
                finally:
                    admin.unlock(role)
    _gone, problems = loader_role.drop_stale(admin)
    return dropped, warnings + problems


# --- the roles a backup needs -----------------------------------------------------------------

def _missing_roles(request, admin, backup):
    """The roles the backup needs here (manifest ``roles``) that do not exist; [] when unknown."""
    referenced = (backup.manifest or {}).get("roles")
    if not referenced:
        return []
    needs = role_definitions.needed(referenced, load_as_owner=request.load_as != "superuser",
                                    skip_privileges=request.privileges == "skip")
    return sorted(set(needs) - admin.existing_roles(needs))


def _role_file(backup):
    """The backup's role definitions, checked against its manifest: {role: RoleDefinition}, or
    (None, why not)."""
    entry = (backup.manifest or {}).get("globals")
    if not entry:
        return None, "the backup has no role definitions (made before they were written, or with role_definitions: false)"
    path = os.path.join(os.path.dirname(backup.path.rstrip("/")), entry["name"])
    try:
        path_trust.check([path], backup.directory_checks)
        digest, size = checksums.sha256_file(path)
    except (OSError, path_trust.UntrustedPathError) as exc:
        return None, "its role definitions %s cannot be used: %s" % (path, exc)
    if digest != entry.get("sha256") or size != entry.get("size_bytes"):
        return None, "its role definitions %s do not match the manifest's sha256" % path
    with open(path, "rb") as handle:
        try:
            return role_definitions.parse(handle.read()), None
        except role_definitions.RoleDefinitionsError as exc:
            return None, str(exc)


def _provide_roles(request, admin, backup, result, check_mode):
    """Before anything is created: create the missing roles the backup needs from its role
    definitions, or stop naming them."""
    missing = _missing_roles(request, admin, backup)
    if not missing:
        return
    names = ", ".join(quote_for_message(r) for r in missing)
    definitions, why = _role_file(backup) if request.create_roles else (None, "create_roles is false")
    lacking = [r for r in missing if definitions is not None and r not in definitions]
    if definitions is None or lacking:
        raise RestoreError(
            "the backup grants to (or has policies for) roles that do not exist here: %s, and %s; nothing was "
            "changed. Create those roles first, or set privileges: skip to restore without the backup's GRANTs"
            % (names, why if definitions is None else "its role definitions lack %s" % ", ".join(lacking)))
    created = []
    for role in missing:
        if not check_mode:
            admin.in_transaction(role_definitions.create_statements(definitions[role]))
        created.append(role_definitions.describe(definitions[role]))
    result["created_roles"] = missing
    result["warnings"].append("%s the roles %s from the backup's role definitions, without superuser-like "
                              "attributes or memberships; give them passwords and rights as needed"
                              % ("would create" if check_mode else "created", "; ".join(created)))


# --- loading into a private database ----------------------------------------------------------

class _Load(object):
    """A database being loaded: the admin connection, the loading role (None with load_as
    superuser), and the parameters to load and read it with."""

    def __init__(self, request, admin, owner):
        self.request = request
        self.admin = admin
        self.login = admin.login()[0]
        self.role = None
        if request.load_as != "superuser":
            if not admin.role_exists(owner):
                raise RestoreError("the owner role %s does not exist; create it first (for example with the server "
                                   "role)" % quote_for_message(owner))
            try:
                self.role = loader_role.create(admin, owner, request.connection, request.load_host)
            except (loader_role.LoaderError, DatabaseError) as exc:
                raise RestoreError("cannot create the transient loading role: %s" % exc)

    @property
    def database_owner(self):
        """Who owns a database while it loads: the loading role, so it alone can connect."""
        return self.role.name if self.role else self.login

    def params(self, database):
        params = self.role.params(database) if self.role else self.request.connection.with_database(database)
        # Lock waits are bounded; the run's sessions are findable for the stall watch.
        params.options = "-c lock_timeout=%ds" % int(self.request.lock_timeout)
        return params.with_application(pg_connection.run_application_name("restore"))

    def stall(self):
        """Stops a psql or pg_restore that makes no progress (stall_watch.py)."""
        if not self.request.stall_timeout:
            return None
        name = pg_connection.run_application_name("restore")
        return stall_watch.Stall(self.request.stall_timeout,
                                 lambda: self.admin.query(pg_connection.busy_sessions_sql(), (name,))[0][0] > 0)

    def create(self, name, kind, for_database, like=None):
        """Create the private database ``name`` and record it. The caller holds its lock."""
        self.admin.create_private_database(name, self.database_owner, like=like)
        facts = self.admin.database(name)
        bookkeeping.put_database(self.admin, facts["oid"], name, kind, for_database,
                                 {"host": socket.gethostname(), "pid": os.getpid()})
        self.admin.set_comment(name, TEMPORARY_COMMENT % ({"verify": "verification"}.get(kind, "restore"),
                                                          for_database))
        if self.role:
            try:
                self.role.probe(name)
            except loader_role.LoaderError as exc:
                raise RestoreError(str(exc))
        return facts["oid"]

    def load_and_check(self, backup, target, owner, major, result):
        """Load ``backup`` into ``target``, give ``owner`` its objects, run the checks; add them and
        the row counts to ``result``. Returns (checks, row counts)."""
        request = self.request
        try:
            # The loading role owns what it creates; the superuser gives it all to the owner afterwards
            # (no CREATE right on the schema needed, as ALTER ... OWNER TO would need from the role).
            backup_load.load(backup, self.params(target), request.jobs, request.bin_dir, major,
                             skip_privileges=request.privileges == "skip", skip_ownership=self.role is not None,
                             stall=self.stall())
        except backup_load.LoadError as exc:
            raise _load_error(exc, self.admin, target)
        failpoints.reached("restore-staging-loaded")
        conn = pg_connection.connect(request.connection.with_database(target), autocommit=True)
        try:
            restore_checks.set_ownership(conn, owner)
        finally:
            conn.close()
        checks, counts = restore_checks.database_checks(self.params(target), target, backup, request.app_schema,
                                                        request.checks)
        if result is not None:
            result["checks"] = result["checks"] + checks
            result["row_counts"] = counts
        return checks, counts

    def hand_over(self, target, owner):
        """After loading: the database becomes the superuser's, everything the loading role still
        owns becomes ``owner``'s, and the role goes. Nobody else can connect yet."""
        self.admin.set_owner(target, self.login)
        if self.role is None:
            return
        conn = pg_connection.connect(self.request.connection.with_database(target), autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(cluster_admin.pg_sql.SQL("REASSIGN OWNED BY {} TO {}; DROP OWNED BY {}").format(
                    cluster_admin.pg_sql.Identifier(self.role.name), cluster_admin.pg_sql.Identifier(owner),
                    cluster_admin.pg_sql.Identifier(self.role.name)))
        finally:
            conn.close()
        self.drop_role()

    def drop_role(self):
        if self.role is not None:
            role, self.role = self.role, None
            try:
                loader_role.drop(self.admin, role.name)
            except DatabaseError as exc:
                raise RestoreError("cannot drop the transient loading role %s: %s" % (role.name, exc))

    def drop_role_quietly(self):
        role, self.role = self.role, None
        loader_role.drop_quietly(self.admin, role)


def _load_error(exc, admin, target):
    message = str(exc)
    if exc.disk_full:
        where = _data_directory(admin)
        message = ("the disk is full: the file system of the database cluster (%s) ran out of space while the "
                   "backup was loaded into %s. PostgreSQL said: %s" % (where, quote_for_message(target), message))
    return RestoreError(message, exc.stderr)


def _data_directory(admin):
    try:
        path = admin.query("SELECT current_setting('data_directory')")[0][0]
        stat = os.statvfs(path)
        return "%s, %d MiB free now" % (path, stat.f_bavail * stat.f_frsize // (1024 * 1024))
    except (DatabaseError, OSError, IndexError):
        return "the data directory"


def _discard(admin, name):
    """Drop a temporary database after a failure, best effort: when the server is gone the
    database stays, recorded, and the next run drops it. Never masks the original error."""
    try:
        facts = admin.database(name)
        if facts is not None:
            admin.drop_database(name)
            bookkeeping.forget_database(admin, facts["oid"])
    except (DatabaseError, PgError, ClusterError):
        pass


# --- verify level restore ----------------------------------------------------------------------

def run_verify_restore(request):
    """verify level restore: restore into a scratch database, check it, always drop it."""
    started = time.monotonic()
    backup, admin, major = _open(request)
    try:
        quick = _verify_quickly(backup, request, major)
        missing = _missing_roles(request, admin, backup)
        if missing:
            # A verification creates nothing lasting: without those roles, it restores without GRANTs.
            request.privileges = "skip"
            still = _missing_roles(request, admin, backup)
            if still:
                raise RestoreError("the backup needs roles that do not exist here (its row-security policies name "
                                   "them): %s; create them first" % ", ".join(quote_for_message(r) for r in still))
            quick.append(checklist.check("roles", True, "the backup grants to roles that do not exist here (%s): "
                                         "restored without its GRANTs" % ", ".join(missing), skipped=True))
        database = (backup.manifest or {}).get("database") or request.database
        drop_stale(admin, database, kinds=("verify",))
        scratch = derived_name(database, "verify", timestamp())
        admin.try_lock(scratch)
        load = _Load(request, admin, request.owner)
        try:
            load.create(scratch, "verify", database)
            checks, counts = load.load_and_check(backup, scratch, request.owner, major, None)
        finally:
            _discard(admin, scratch)
            _unlock_quietly(admin, scratch)
            load.drop_role_quietly()
        return backup, quick + checks, counts, scratch, round(time.monotonic() - started, 3)
    finally:
        admin.close()


# --- restore ------------------------------------------------------------------------------------

def run_restore(request, check_mode=False):
    """The restore module's job. Returns a result dict; raises RestoreError (nothing changed)."""
    started = time.monotonic()
    if request.phase == "swap":
        return _swap_phase(request, check_mode, started)
    if request.phase == "rollback":
        return _rollback_phase(request, check_mode, started)
    backup, admin, major = _open(request, check_mode)
    db = request.database
    result = dict(database=db, strategy=request.strategy, backup=backup.path, format=backup.format,
                  previous_database=None, staging_database=None, downtime_s=0.0, changed=False,
                  warnings=backup_warnings(backup), tables=list(request.tables), removed_previous=[],
                  previous_dropped=False)
    try:
        checks = _verify_quickly(backup, request, major)
        result.update(sha256=backup.sha256, checks=checks)
        live = admin.database(db)
        if request.tables:
            return _restore_selected(request, backup, admin, major, live, result, check_mode, started)
        if not admin.role_exists(request.owner):
            raise RestoreError("the owner role %s does not exist; create it first (for example with the server "
                               "role)" % quote_for_message(request.owner))
        if live is not None:
            prepared = admin.prepared_transactions(db)
            if prepared:
                raise RestoreError("database %s has prepared transactions (%s); a restore would wait for them or fail "
                                   "half-way. COMMIT PREPARED or ROLLBACK PREPARED them first; nothing was changed"
                                   % (quote_for_message(db), ", ".join(quote_for_message(g) for g in prepared)))
            if _already_restored(request, admin, backup, live, result):
                return _finish(result, started)
        if request.strategy == "create" and live is not None:
            raise RestoreError("database %s exists; strategy create is for a machine without it (use swap)"
                               % quote_for_message(db))
        _provide_roles(request, admin, backup, result, check_mode)
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
        try:
            admin.lock_or_explain(db, "another restore of %s" % quote_for_message(db))
        except ClusterError as exc:
            raise RestoreError(str(exc))
        dropped, warnings = drop_stale(admin, db)
        result["removed_leftovers"] = dropped
        result["warnings"].extend(warnings)
        live = admin.database(db)
        if dropped and live is not None and not live["allow_connections"]:
            # An earlier run was killed inside its swap: the live database is intact, let it serve again.
            admin.set_allow_connections(db, True)
        if request.strategy == "replace":
            _replace(request, backup, admin, major, live, result)
        else:
            _restore_via_staging(request, backup, admin, major, live, staging, previous, result)
        return _finish(result, started)
    finally:
        admin.close()


def _already_restored(request, admin, backup, live, result):
    """True (and the message set) when ``live`` was restored from this backup and provably still
    holds what it holds; a database changed since is restored again."""
    record = bookkeeping.database(admin, live["oid"], request.database) if not request.force else None
    if record is None or record.kind != "restored" or record.record.get("sha256") != backup.sha256:
        return False
    conn = pg_connection.connect(request.connection.with_database(request.database), autocommit=True)
    try:
        same, why = provenance.unchanged(conn, record.record.get("proof"))
    finally:
        conn.close()
    if not same:
        result["warnings"].append("%s was restored from this backup on %s, but %s: restoring it again"
                                  % (quote_for_message(request.database), record.record.get("restored_at"), why))
        return False
    result.update(msg="%s was already restored from this backup (sha256 %s) on %s and is unchanged since; force: true "
                      "restores it again" % (quote_for_message(request.database), backup.sha256,
                                             record.record.get("restored_at")))
    return True


def _finish(result, started):
    result["duration_s"] = round(time.monotonic() - started, 3)
    return result


def _plan(request, db, staging, previous, live):
    if request.strategy == "replace":
        return "would drop %s, create it again and restore into it (downtime: the whole restore)" % db
    if live is None:
        return "would restore into %s, check it and rename it to %s" % (staging, db)
    keep = request.keep_previous
    return ("would restore into %s, check it, then rename %s to %s and %s to %s%s"
            % (staging, db, previous, staging, db,
               " and drop %s" % previous if keep == 0 else ", keeping at most %d previous database%s"
               % (keep, "" if keep == 1 else "s")))


def _provenance(backup, strategy, proof):
    return {"backup": backup.name, "sha256": backup.sha256, "strategy": strategy, "host": socket.gethostname(),
            "restored_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "proof": proof}


def _capture_proof(request, target, counts):
    conn = pg_connection.connect(request.connection.with_database(target), autocommit=True)
    try:
        return provenance.capture(conn, counts)
    finally:
        conn.close()


def _stage(request, backup, admin, major, live, staging, result):
    """Restore into ``staging`` and check it; on success it is the superuser's, with its record
    (kind staged) holding the provenance. On any failure it is dropped. The caller holds its lock."""
    db = request.database
    admin.try_lock(staging)
    load = _Load(request, admin, request.owner)
    try:
        oid = load.create(staging, "staging", db, like=live)
        checks, counts = load.load_and_check(backup, staging, request.owner, major, result)
        if checklist.failing(checks):
            raise RestoreError("the restored database failed its checks; the live database was not touched: %s"
                               % checklist.summary(checks), checks=result["checks"])
        load.hand_over(staging, request.owner)
        record = _provenance(backup, request.strategy, _capture_proof(request, staging, counts))
        bookkeeping.put_database(admin, oid, staging, "staged", db, record)
        return oid, record
    except BaseException:
        _discard(admin, staging)
        _unlock_quietly(admin, staging)
        load.drop_role_quietly()
        raise


def _wanted_attributes(request, live_attributes):
    """The attributes the restored database takes: the live database's, or a new one's."""
    if live_attributes is not None:
        return live_attributes
    return DatabaseAttributes(request.owner, None, None, [])


def _swap_in(request, admin, staging, staging_oid, previous, record, wanted, result):
    """The critical section (or a plain rename when there is no live database)."""
    db = request.database
    current = admin.attributes(staging)
    live = admin.database(db)
    steps = [cluster_admin.rename_sql(staging, db)]
    steps += admin.attribute_statements(db, wanted, current)
    steps += [cluster_admin.allow_sql(db, True), bookkeeping.put_database_sql(staging_oid, db, "restored", db, record)]
    try:
        if previous is not None and live is not None:
            steps.append(bookkeeping.put_database_sql(live["oid"], previous, "previous", db, {
                "replaced_at": record["restored_at"], "replaced_by": record["backup"]}))
            result["downtime_s"] = round(_swap_databases(admin, db, staging, previous, steps), 4)
        else:
            admin.set_allow_connections(staging, False)
            admin.end_sessions([staging])
            admin.in_transaction(steps)
    except BaseException:
        _discard(admin, staging)
        raise
    finally:
        _unlock_quietly(admin, staging)
    _apply_keep_previous(request, admin, previous, result)


def _swap_databases(admin, live, staging, previous, steps):
    """Replace ``live`` by ``staging``; returns seconds the live name could not be connected to.

    Only the two ALLOW_CONNECTIONS changes and the wait for sessions to end happen outside the
    renaming transaction; a failure anywhere restores the old state."""
    started = time.monotonic()
    admin.set_allow_connections(live, False)
    try:
        admin.set_allow_connections(staging, False)
        admin.end_sessions([live, staging])
        failpoints.reached("restore-swap-before-rename")
        admin.in_transaction([cluster_admin.rename_sql(live, previous),
                              lambda: failpoints.reached("restore-swap-between-renames")] + steps)
    except BaseException:
        # Whatever failed, the live database is still there under its name: let it serve again
        # (best effort: when the server is gone, the next run does it).
        try:
            facts = admin.database(live)
            if facts is not None and not facts["allow_connections"]:
                admin.set_allow_connections(live, True)
        except DatabaseError:
            pass
        raise
    downtime = time.monotonic() - started
    failpoints.reached("restore-swap-committed")
    admin.set_allow_connections(previous, True)
    return downtime


def _apply_keep_previous(request, admin, previous, result):
    """Keep the newest ``keep_previous`` previous databases of this database, drop older ones.
    The swap has committed: a failure here is a warning, never a failed restore."""
    keep = request.keep_previous
    records = [r for r in bookkeeping.databases(admin, request.database, ("previous",)) if r.exists]
    for record in records[keep:]:
        try:
            admin.drop_database(record.name)
            bookkeeping.forget_database(admin, record.oid)
            result["removed_previous"].append(record.name)
            if record.name == previous:
                result["previous_dropped"] = True
        except DatabaseError as exc:
            result["warnings"].append(
                "the restore is complete, but the previous database %s could not be dropped: %s. It is kept, "
                "recorded as previous, and a later restore drops it; DROP DATABASE it by hand once that is fixed"
                % (quote_for_message(record.name), str(exc).strip().splitlines()[0]))


def _restore_via_staging(request, backup, admin, major, live, staging, previous, result):
    live_attributes = admin.attributes(request.database) if live is not None else None
    oid, record = _stage(request, backup, admin, major, live, staging, result)
    if request.phase == "stage":
        admin.unlock(staging)
        result["msg"] = "restored and checked in %s; the swap phase puts it in place" % staging
        return
    _swap_in(request, admin, staging, oid, previous, record, _wanted_attributes(request, live_attributes), result)


def _swap_phase(request, check_mode, started):
    """Second phase: put a database restored and checked by the stage phase in place."""
    db = request.database
    staging = request.staging_database
    admin = _connect(request)
    try:
        facts = admin.database(staging or "")
        if facts is None and check_mode and is_staging_name(db, staging or ""):
            # The stage phase in check mode names the database it would make; it does not exist.
            live = admin.database(db)
            result = dict(database=db, strategy=request.strategy, backup=request.backup_path,
                          previous_database=derived_name(db, "pre_restore", timestamp()) if live is not None else None,
                          staging_database=staging, downtime_s=0.0, changed=True, checks=[], warnings=[], tables=[],
                          removed_previous=[], previous_dropped=False, sha256=None,
                          msg="would swap in the database the stage phase would restore and check (%s) as %s"
                          % (staging, db))
            return _finish(result, started)
        record = bookkeeping.database(admin, facts["oid"], staging) if facts else None
        if record is None or record.kind != "staged" or record.for_database != db:
            raise RestoreError("%s is not a database staged for %s by the stage phase"
                               % (quote_for_message(staging or ""), quote_for_message(db)))
        live = admin.database(db)
        previous = derived_name(db, "pre_restore", timestamp()) if live is not None else None
        result = dict(database=db, strategy=request.strategy, backup=request.backup_path, previous_database=previous,
                      staging_database=staging, downtime_s=0.0, changed=True, checks=[], warnings=[], tables=[],
                      removed_previous=[], previous_dropped=False, sha256=record.record.get("sha256"))
        if check_mode:
            result["msg"] = "would swap %s in as %s" % (staging, db)
            return _finish(result, started)
        try:
            admin.lock_or_explain(db, "another restore of %s" % quote_for_message(db))
        except ClusterError as exc:
            raise RestoreError(str(exc))
        if not admin.try_lock(staging):
            raise RestoreError("%s is in use by another run" % quote_for_message(staging))
        wanted = _wanted_attributes(request, admin.attributes(db) if live is not None else None)
        _swap_in(request, admin, staging, facts["oid"], previous, record.record, wanted, result)
        return _finish(result, started)
    finally:
        admin.close()


def _rollback_phase(request, check_mode, started):
    """Put a previous database (kept by an earlier swap) back in place of the live one, which is
    kept in turn as ``<database>_pre_rollback_<time>``: the same renaming transaction as a swap,
    so the application sees the same fraction of a second of downtime. Nothing is dropped."""
    db = request.database
    admin = _connect(request)
    try:
        previous = [r for r in bookkeeping.databases(admin, db, ("previous",)) if r.exists]
        names = ", ".join(quote_for_message(r.name) for r in previous) or "none"
        if request.rollback_to == "newest":
            chosen = previous[0] if previous else None
            if chosen is None:
                raise RestoreError("there is no previous database of %s to roll back to (a swap restore keeps one "
                                   "unless keep_previous is false); nothing was changed" % quote_for_message(db))
        else:
            chosen = next((r for r in previous if r.name == request.rollback_to), None)
            if chosen is None:
                raise RestoreError("%s is not a previous database of %s kept by a restore; the previous databases "
                                   "are: %s. Nothing was changed" % (quote_for_message(request.rollback_to),
                                                                     quote_for_message(db), names))
        live = admin.database(db)
        kept = derived_name(db, "pre_rollback", timestamp()) if live is not None else None
        result = dict(database=db, strategy="rollback", backup=None, previous_database=kept,
                      rolled_back_to=chosen.name, staging_database=None, downtime_s=0.0, changed=True, checks=[],
                      warnings=[], tables=[], removed_previous=[], previous_dropped=False, sha256=None)
        if check_mode:
            result["msg"] = ("would rename %s to %s and %s to %s" % (db, kept, chosen.name, db) if kept
                             else "would rename %s to %s" % (chosen.name, db))
            return _finish(result, started)
        try:
            admin.lock_or_explain(db, "another restore of %s" % quote_for_message(db))
        except ClusterError as exc:
            raise RestoreError(str(exc))
        if not admin.try_lock(chosen.name):
            raise RestoreError("%s is in use by another run" % quote_for_message(chosen.name))
        try:
            # The database put back is live again: its "previous" record goes; the one it
            # replaces becomes previous, so that a rollback of the rollback is possible too.
            steps = [cluster_admin.rename_sql(chosen.name, db), cluster_admin.allow_sql(db, True),
                     bookkeeping.forget_database_sql(chosen.oid)]
            if live is not None:
                steps.append(bookkeeping.put_database_sql(live["oid"], kept, "previous", db, {
                    "replaced_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "replaced_by": "rollback to %s" % chosen.name}))
                result["downtime_s"] = round(_swap_databases(admin, db, chosen.name, kept, steps), 4)
            else:
                admin.in_transaction(steps)
        finally:
            _unlock_quietly(admin, chosen.name)
        kept_note = "; the replaced one is kept as %s" % kept if kept else ""
        result["msg"] = "rolled back: %s is %s again%s" % (chosen.name, db, kept_note)
        return _finish(result, started)
    finally:
        admin.close()


def _replace(request, backup, admin, major, live, result):
    """The strategy document's procedure: drop, create, restore. Downtime is the whole restore."""
    db = request.database
    wanted = _wanted_attributes(request, admin.attributes(db) if live is not None else None)
    started = time.monotonic()
    if live is not None:
        admin.set_allow_connections(db, False)
        try:
            admin.end_sessions([db])
            admin.drop_database(db)
        except BaseException as exc:
            try:
                admin.set_allow_connections(db, True)
                state = "it accepts connections again, unchanged"
            except DatabaseError:
                state = "it may still refuse connections: ALTER DATABASE ... WITH ALLOW_CONNECTIONS true"
            raise RestoreError("strategy replace could not drop %s (%s); %s" % (
                quote_for_message(db), str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                state))
    # The restore's own lock on the name protects the half-loaded database from drop_stale.
    load = _Load(request, admin, request.owner)
    try:
        oid = load.create(db, "staging", db, like=live)
        checks, counts = load.load_and_check(backup, db, request.owner, major, result)
        load.hand_over(db, request.owner)
        record = _provenance(backup, "replace", _capture_proof(request, db, counts))
        admin.in_transaction(admin.attribute_statements(db, wanted, admin.attributes(db))
                             + [bookkeeping.put_database_sql(oid, db, "restored", db, record)])
    except BaseException as exc:
        if not isinstance(exc, Exception):
            raise  # killed: the next run drops the half-loaded database (recorded as staging)
        _discard(admin, db)
        load.drop_role_quietly()
        raise RestoreError("strategy replace failed after the old database was dropped: %s. Database %s no longer "
                           "exists; restore a good backup with strategy create" % (exc, quote_for_message(db)),
                           getattr(exc, "stderr", ""), result["checks"])
    result["downtime_s"] = round(time.monotonic() - started, 4)
    if checklist.failing(checks):
        raise RestoreError("the restored database failed its checks (strategy replace: the old database is gone): "
                           "%s" % checklist.summary(checks), checks=result["checks"])


def _restore_selected(request, backup, admin, major, live, result, check_mode, started):
    db = request.database
    if live is None:
        raise RestoreError("database %s does not exist; a selective restore loads tables into an existing "
                           "database" % quote_for_message(db))
    result.update(strategy="tables", changed=True)
    backup_tables = sorted(backup.expected_rows) if backup.expected_rows is not None else None
    if check_mode:
        result["msg"] = "would %srestore the data of %s into %s in one transaction" % (
            "truncate and " if request.truncate else "", ", ".join(request.tables), db)
        return _finish(result, started)
    load = _Load(request, admin, request.owner)
    try:
        text = backup_load.DumpText(backup, request.bin_dir, major, data_only=True)
        try:
            conn = pg_connection.connect(load.params(db), autocommit=False)
            try:
                result["row_counts"] = table_restore.restore_tables(
                    conn, text.stream, request.tables, request.truncate, backup_tables, request.lock_timeout,
                    before_commit=text.close)
            finally:
                conn.close()
        except (table_restore.TableRestoreError, backup_load.LoadError) as exc:
            text.kill()
            raise RestoreError("%s; nothing was changed" % exc)
        except backup_load.plain_dump.PlainDumpError as exc:
            text.kill()
            raise RestoreError("the backup was refused, it holds what pg_dump never writes (nothing of it ran): %s; "
                               "nothing was changed" % exc)
        except DatabaseError as exc:
            text.kill()
            raise RestoreError("restoring the tables failed, nothing was changed: %s"
                               % str(exc).strip().replace("\n", " "))
        except BaseException:
            text.kill()
            raise
        finally:
            text.close()
        load.drop_role()
    except BaseException:
        load.drop_role_quietly()
        raise
    return _finish(result, started)
