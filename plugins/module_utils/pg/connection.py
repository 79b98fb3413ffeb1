# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connecting to PostgreSQL, and the environment its client programs run in, without leaking secrets.

Pure Python (no Ansible imports): the modules and the host-side scheduled job share it.

Secrets policy: the password is handed to libpq programs through a passfile that exists only in
memory (an inherited memfd, mode 0600) and to psycopg2 as a keyword argument; it never appears
in argv, in the environment of a child process, in a file, or in a message.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.secret_file import FD_PREFIX, SecretFile

try:
    import psycopg2
    import psycopg2.extensions
    from psycopg2 import sql as pg_sql

    HAS_PSYCOPG2 = True
    PSYCOPG2_IMPORT_ERROR = None
    DatabaseError = psycopg2.Error
except ImportError as exc:  # pragma: no cover - depends on the host
    psycopg2 = None
    pg_sql = None
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR = exc

    class DatabaseError(Exception):
        """Stands in for psycopg2.Error where psycopg2 is missing (connect() then fails clearly)."""


APPLICATION_NAME = "lift_simulator.postgresql"

# The search_path of every session the collection opens to run its own SQL: pg_catalog, then
# pg_temp (which, left out, would be searched first for tables). Without it a superuser session
# into a database whose content is not trusted (a staging database loaded from a backup, a live
# database its owner writes) resolves the collection's catalog queries through the database's
# public schema: a public.quote_ident(name) or an operator public.=(oid, regclass) matches the
# argument types exactly and beats pg_catalog's (CVE-2018-1058), and ALTER DATABASE ... SET
# search_path, which the database's owner may do, can even put public first. It is set at
# connect time (libpq "options"): it holds from the first statement, and a startup option
# overrides the database's and the role's own settings. Sessions that run the owner's code on
# purpose (the transient loading role's, loader_role.py) and the client programs keep theirs.
PINNED_SEARCH_PATH = "pg_catalog,pg_temp"


class PgError(Exception):
    """An error whose message is safe to show to an operator (no secrets)."""


# The libpq connection parameters ``connect_params`` may set, with the environment variable that
# carries each to the client programs (psql, pg_dump, pg_restore), so that the module's own
# connection and theirs are the same. Parameters that the modules set themselves, that carry a
# secret, or that have no environment variable are not in the table.
CONNECT_PARAM_ENV = {
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "sslcrl": "PGSSLCRL",
    "sslcrldir": "PGSSLCRLDIR",
    "sslsni": "PGSSLSNI",
    "sslcompression": "PGSSLCOMPRESSION",
    "ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION",
    "ssl_max_protocol_version": "PGSSLMAXPROTOCOLVERSION",
    "gssencmode": "PGGSSENCMODE",
    "krbsrvname": "PGKRBSRVNAME",
    "requirepeer": "PGREQUIREPEER",
    "channel_binding": "PGCHANNELBINDING",
    "require_auth": "PGREQUIREAUTH",
    "load_balance_hosts": "PGLOADBALANCEHOSTS",
}


def check_connect_params(values):
    """``connect_params`` as {name: text}; raises PgError naming what is not accepted."""
    values = values or {}
    unknown = sorted(k for k in values if k not in CONNECT_PARAM_ENV)
    if unknown:
        raise PgError("connect_params cannot set %s: only libpq parameters that reach the client programs too, and "
                      "that the modules do not set from their own options, are accepted (%s); use login_*, ssl_*, "
                      "ca_cert and connect_timeout for the others" % (", ".join(unknown), ", ".join(sorted(
                          CONNECT_PARAM_ENV))))
    return dict((k, str(v)) for k, v in values.items())


class ConnectionParams(object):
    """Where and as whom to connect. ``database`` is the database to work on."""

    def __init__(self, database, login_host=None, login_port=5432, login_user=None,
                 login_password=None, login_unix_socket=None, ssl_mode="prefer",
                 ca_cert=None, connect_timeout=10, application_name=APPLICATION_NAME, options=None,
                 ssl_cert=None, ssl_key=None, connect_params=None, search_path=PINNED_SEARCH_PATH):
        self.database = database
        # Client certificate and key (libpq sslcert / sslkey), e.g. for pg_hba "cert" or
        # clientcert=verify-full.
        self.ssl_cert = ssl_cert or None
        self.ssl_key = ssl_key or None
        self.connect_params = check_connect_params(connect_params)
        self.login_host = login_host or None
        self.login_port = int(login_port or 5432)
        self.login_user = login_user or None
        self.login_password = login_password or None
        self.login_unix_socket = login_unix_socket or None
        self.ssl_mode = ssl_mode or "prefer"
        self.ca_cert = ca_cert or None
        self.connect_timeout = int(connect_timeout or 10)
        self.application_name = application_name
        # Server settings for the session (libpq "options", e.g. "-c lock_timeout=60s").
        self.options = options
        # The search_path ``connect`` pins (PINNED_SEARCH_PATH; None: the session's own). Never
        # given to the client programs (ClientEnvironment): a dump sets its own.
        self.search_path = search_path

    def unpinned(self):
        """The same parameters for a session that keeps the database's and role's search_path:
        only for sessions whose rights are the database owner's (the loading role's)."""
        clone = self.with_database(self.database)
        clone.search_path = None
        return clone

    def with_database(self, database):
        clone = ConnectionParams(database)
        clone.__dict__.update(dict(self.__dict__, database=database))
        return clone

    def with_application(self, name):
        """The same parameters with another application_name (to find a run's own sessions)."""
        clone = self.with_database(self.database)
        clone.application_name = name
        return clone

    @property
    def host(self):
        """The libpq host: a socket directory or a host name (None: libpq's default socket)."""
        return self.login_unix_socket or self.login_host

    def describe(self):
        """Where we connect, for messages (never includes the password)."""
        where = self.host or "the default local socket"
        return "%s port %s as %s" % (where, self.login_port, self.login_user or "the current OS user")

    def scrub(self, text):
        """Remove the password from a text that is about to be shown, whatever its origin."""
        text = "" if text is None else str(text)
        if self.login_password:
            text = text.replace(self.login_password, "********")
        return text


def escape_passfile_field(value):
    """Escape a value for a libpq passfile field (backslash and colon are special)."""
    return value.replace("\\", "\\\\").replace(":", "\\:")


class ClientEnvironment(object):
    """Context manager giving the environment for libpq client programs (pg_dump, psql...).

    The password goes into a passfile that exists only in memory (secret_file.py), which the
    child programs inherit; ``process.spawn`` passes the descriptor on.
    The database name goes into PGDATABASE, never argv: pg_dump treats a --dbname value that
    contains '=' as a connection string, which a hostile database name could abuse.
    """

    def __init__(self, params, base_env=None):
        self.params = params
        self.base_env = dict(os.environ if base_env is None else base_env)
        self._secret = None
        self.env = None

    def __enter__(self):
        env = dict(self.base_env)
        for name in ("PGPASSWORD", "PGPASSFILE", "PGSERVICE", "PGSERVICEFILE", "PGOPTIONS"):
            env.pop(name, None)
        params = self.params
        if params.host:
            env["PGHOST"] = params.host
        else:
            env.pop("PGHOST", None)
        env["PGPORT"] = str(params.login_port)
        if params.login_user:
            env["PGUSER"] = params.login_user
        else:
            env.pop("PGUSER", None)
        env["PGDATABASE"] = params.database
        env["PGSSLMODE"] = params.ssl_mode
        if params.ca_cert:
            env["PGSSLROOTCERT"] = params.ca_cert
        for variable, value in (("PGSSLCERT", params.ssl_cert), ("PGSSLKEY", params.ssl_key)):
            if value:
                env[variable] = value
        for name, value in params.connect_params.items():
            env[CONNECT_PARAM_ENV[name]] = value
        env["PGCONNECT_TIMEOUT"] = str(params.connect_timeout)
        env["PGAPPNAME"] = params.application_name
        if params.options:
            env["PGOPTIONS"] = params.options
        # Messages we parse must not be translated.
        env["LC_MESSAGES"] = "C"
        if params.login_password:
            env["PGPASSFILE"] = self._passfile(params.login_password)
        else:
            # Never pick up a passfile the operator did not ask for, except the user's own ~/.pgpass,
            # which libpq reads by default (the read-only backup role authenticates that way).
            env.pop("PGPASSFILE", None)
        self.env = env
        return env

    def _passfile(self, content):
        self._secret = SecretFile("*:*:*:*:%s\n" % escape_passfile_field(content), "lift-pgpass").__enter__()
        return self._secret.path

    def __exit__(self, *exc_info):
        if self._secret is not None:
            self._secret.__exit__(*exc_info)
            self._secret = None
        return False


PASSFILE_FD_PREFIX = FD_PREFIX


def inherited_fds(env):
    """The descriptors a child started with ``env`` must inherit (the in-memory passfile)."""
    value = (env or {}).get("PGPASSFILE", "")
    if value.startswith(PASSFILE_FD_PREFIX):
        return (int(value[len(PASSFILE_FD_PREFIX):]),)
    return ()


def connect(params, autocommit=True):
    """Open a psycopg2 connection; raise PgError with a clear, secret-free message on failure."""
    if not HAS_PSYCOPG2:
        raise PgError("the Python library psycopg2 is required on the database host "
                      "(Debian: apt-get install python3-psycopg2): %s" % PSYCOPG2_IMPORT_ERROR)
    kwargs = dict(dbname=params.database, port=params.login_port, sslmode=params.ssl_mode,
                  connect_timeout=params.connect_timeout,
                  application_name=params.application_name)
    options = session_options(params)
    if options:
        kwargs["options"] = options
    if params.host:
        kwargs["host"] = params.host
    if params.login_user:
        kwargs["user"] = params.login_user
    if params.login_password:
        kwargs["password"] = params.login_password
    if params.ca_cert:
        kwargs["sslrootcert"] = params.ca_cert
    if params.ssl_cert:
        kwargs["sslcert"] = params.ssl_cert
    if params.ssl_key:
        kwargs["sslkey"] = params.ssl_key
    kwargs.update(params.connect_params)
    try:
        conn = psycopg2.connect(**kwargs)
    except psycopg2.Error as exc:
        raise PgError(explain_connection_error(params, exc))
    conn.autocommit = autocommit
    return conn


def session_options(params):
    """The libpq "options" of the collection's own sessions: the parameters' own server settings
    and, unless the parameters are unpinned, the pinned search_path (PINNED_SEARCH_PATH)."""
    parts = [params.options] if params.options else []
    search_path = getattr(params, "search_path", PINNED_SEARCH_PATH)
    if search_path:
        parts.append("-c search_path=%s" % search_path)
    return " ".join(parts) or None


def run_application_name(program):
    """application_name of one program of this run: findable in pg_stat_activity."""
    return "%s %s %d" % (APPLICATION_NAME, program, os.getpid())


def busy_sessions_sql():
    """Counts a run's sessions that are working (not idle, not waiting for their client or a lock)."""
    return ("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND pid <> pg_backend_pid() "
            "AND state = 'active' AND coalesce(wait_event_type, '') NOT IN ('Client', 'Lock')")


def explain_connection_error(params, exc):
    """Turn a libpq connection error into a message that names the problem."""
    raw = params.scrub(str(exc)).strip()
    low = raw.lower()
    where = params.describe()
    if "password authentication failed" in low or "no password supplied" in low:
        reason = "authentication failed (wrong or missing password for this user)"
    elif "peer authentication failed" in low:
        reason = "peer authentication failed (run as the matching OS user, e.g. become_user: postgres)"
    elif re.search(r'fatal:\s+database ".*" does not exist', low):
        reason = "database %s does not exist" % quote_for_message(params.database)
    elif re.search(r'fatal:\s+role ".*" does not exist', low):
        reason = "the login role does not exist"
    elif "connection refused" in low or "no such file or directory" in low or "could not connect" in low:
        reason = "the server is not running or not accepting connections there"
    elif "timeout expired" in low:
        reason = "the connection timed out"
    elif "no pg_hba.conf entry" in low:
        reason = "pg_hba.conf has no entry allowing this connection"
    else:
        reason = "connection failed"
    return "cannot connect to database %s at %s: %s. PostgreSQL said: %s" % (
        quote_for_message(params.database), where, reason, raw.splitlines()[0] if raw else "")


def conninfo_dbname(name):
    """A libpq connection string naming only the database, safe for any name (pg_restore -d,
    pg_dumpall -l): a name holding '=' is never taken for a connection string of its own."""
    return "dbname='%s'" % name.replace("\\", "\\\\").replace("'", "\\'")


def quote_for_message(name):
    """Show an identifier unambiguously in a message, even with quotes or newlines in it."""
    return '"%s"' % str(name).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")


def ident(*parts):
    """A safely quoted (possibly qualified) SQL identifier for psycopg2."""
    return pg_sql.SQL(".").join(pg_sql.Identifier(part) for part in parts)


def stderr_tail(data, params=None, lines=15, limit=4000):
    """The last lines of a program's stderr, scrubbed of secrets, for an error message."""
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    text = "\n".join((data or "").strip().splitlines()[-lines:])[-limit:]
    return params.scrub(text) if params is not None else text
