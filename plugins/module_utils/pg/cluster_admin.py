# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cluster-level statements over the superuser's connection to the maintenance database.

Creating, renaming and dropping databases, letting them accept connections or not, ending
sessions, advisory locks (naming who holds one), transactions of several statements, and a
database's own attributes (owner, comment, privileges, settings) read from one database and
given to another exactly, list-valued settings such as ``search_path`` included. Nothing here
reads or runs what a database holds: that is the loading role's job (loader_role.py). The
connection's search_path is pinned to pg_catalog (connection.PINNED_SEARCH_PATH), and functions
whose arguments an exact match elsewhere could take over are named with their schema.
Pure Python over psycopg2 (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import clients
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import connection as pg_connection
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.connection import (
    DatabaseError, pg_sql, quote_for_message)

# How long the critical section may wait for a database's sessions to end.
SESSION_END_TIMEOUT_S = 5.0
# Settings whose list elements pg_dump quotes one by one (pg_dump's variable_is_guc_list_quote):
# their stored text is a list of names, and setting it back as one string would make it one name.
GUC_LIST_QUOTE = frozenset(("local_preload_libraries", "search_path", "session_preload_libraries",
                            "shared_preload_libraries", "temp_tablespaces", "unix_socket_directories"))
_PRIVILEGES = {"CONNECT": "c", "CREATE": "C", "TEMPORARY": "T"}


class ClusterError(Exception):
    """A cluster-level step failed; the message says what and in which state it left things."""


def lock_key(name):
    return "lift_simulator.postgresql:" + name


def split_guc_list(text):
    """PostgreSQL's SplitGUCList: a comma-separated list whose elements may be double-quoted
    (``""`` inside); unquoted elements keep their case. Raises ValueError for a broken list."""
    items = []
    i, size = 0, len(text)
    while i < size and text[i].isspace():
        i += 1
    if i == size:
        return items
    while True:
        if text[i] == '"':
            parts, j = [], i + 1
            while True:
                k = text.find('"', j)
                if k < 0:
                    raise ValueError("unterminated quote in %r" % text)
                if text[k + 1:k + 2] == '"':
                    parts.append(text[j:k + 1])
                    j = k + 2
                    continue
                parts.append(text[j:k])
                i = k + 1
                break
            item = "".join(parts)
        else:
            j = i
            while i < size and text[i] != "," and not text[i].isspace():
                i += 1
            item = text[j:i]
        items.append(item)
        while i < size and text[i].isspace():
            i += 1
        if i == size:
            return items
        if text[i] != ",":
            raise ValueError("unexpected %r in the list %r" % (text[i], text))
        i += 1
        while i < size and text[i].isspace():
            i += 1


def setting_value_sql(name, value):
    """The right-hand side of ``SET <name> TO ...`` that stores ``value`` (as pg_db_role_setting
    holds it) again exactly: list-valued settings element by element, like pg_dump does."""
    if name.lower() in GUC_LIST_QUOTE:
        try:
            items = split_guc_list(value)
        except ValueError:
            items = None
        if items is not None:
            return pg_sql.SQL(", ").join(pg_sql.Literal(item) for item in items) if items else pg_sql.Literal("")
    return pg_sql.Literal(value)


class DatabaseAttributes(object):
    """What belongs to a database itself rather than to its contents: owner, comment, privileges
    (None: the default ACL) and settings [(role or None, name, value)]."""

    def __init__(self, owner, comment, acl, settings):
        self.owner = owner
        self.comment = comment
        self.acl = acl
        self.settings = settings


class ClusterAdmin(object):
    """Cluster-level operations over one autocommit connection to the maintenance database."""

    def __init__(self, params, maintenance_db="postgres", lock_timeout_s=None):
        self.params = params.with_database(maintenance_db)
        self.conn = pg_connection.connect(self.params, autocommit=True)
        if lock_timeout_s:
            self.execute(pg_sql.SQL("SET lock_timeout = {}").format(pg_sql.Literal("%ds" % int(lock_timeout_s))))

    def close(self):
        self.conn.close()

    def query(self, sql, args=None):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else None

    def execute(self, sql, args=None):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)

    def login(self):
        """(name, superuser, createdb, createrole) of the role this connection logged in as."""
        return tuple(self.query("SELECT rolname, rolsuper, rolcreatedb, rolcreaterole FROM pg_roles "
                                "WHERE rolname = current_user")[0])

    def server_major(self):
        return clients.server_major(self.query("SELECT current_setting('server_version_num')")[0][0])

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

    def database_name(self, oid):
        rows = self.query("SELECT datname FROM pg_database WHERE oid = %s", (oid,))
        return rows[0][0] if rows else None

    def role_exists(self, name):
        return bool(self.query("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)))

    def existing_roles(self, names):
        return set(r[0] for r in self.query("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (list(names),)))

    def prepared_transactions(self, name):
        return [r[0] for r in self.query("SELECT gid FROM pg_prepared_xacts WHERE database = %s ORDER BY gid",
                                         (name,))]

    # --- advisory locks: held by this session; a run's liveness is its lock -------------------

    def try_lock(self, name):
        return self.query("SELECT pg_catalog.pg_try_advisory_lock(pg_catalog.hashtextextended(%s, 0))",
                          (lock_key(name),))[0][0]

    def unlock(self, name):
        self.query("SELECT pg_catalog.pg_advisory_unlock(pg_catalog.hashtextextended(%s, 0))", (lock_key(name),))

    def lock_holder(self, name):
        """Who holds the advisory lock of ``name`` in this database: dict or None."""
        rows = self.query(
            "SELECT l.pid, a.usename, a.application_name, coalesce(r.rolsuper, false), a.client_addr::text "
            "FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
            "LEFT JOIN pg_roles r ON r.rolname = a.usename "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND ((l.classid::bigint << 32) | l.objid::bigint) = pg_catalog.hashtextextended(%s, 0) AND l.objsubid = 1",
            (lock_key(name),))
        if not rows:
            return None
        pid, user, application, superuser, address = rows[0]
        return dict(pid=pid, user=user, application=application, superuser=superuser, address=address)

    def lock_or_explain(self, name, what):
        """Take the advisory lock of ``name`` or raise ClusterError naming its holder."""
        if self.try_lock(name):
            return
        holder = self.lock_holder(name)
        if holder is None:
            raise ClusterError("%s is running (its lock was taken)" % what)
        if holder["superuser"] or (holder["application"] or "").startswith(pg_connection.APPLICATION_NAME):
            raise ClusterError("%s is running (server process %s, role %s)"
                               % (what, holder["pid"], quote_for_message(holder["user"])))
        raise ClusterError(
            "%s cannot start: its lock is held by server process %s of role %s (application %s), which is not "
            "allowed to restore. End that session, e.g. SELECT pg_terminate_backend(%s), and run again"
            % (what, holder["pid"], quote_for_message(holder["user"] or "?"),
               quote_for_message(holder["application"] or ""), holder["pid"]))

    # --- databases --------------------------------------------------------------------------

    def create_database(self, name, owner, like=None, allow_connections=True):
        options = [pg_sql.SQL("OWNER {}").format(pg_sql.Identifier(owner)), pg_sql.SQL("TEMPLATE template0")]
        if like:
            options.append(pg_sql.SQL("ENCODING {} LC_COLLATE {} LC_CTYPE {}").format(
                pg_sql.Literal(like["encoding"]), pg_sql.Literal(like["collate"]), pg_sql.Literal(like["ctype"])))
        if not allow_connections:
            options.append(pg_sql.SQL("ALLOW_CONNECTIONS false"))
        self.execute(pg_sql.SQL("CREATE DATABASE {} ").format(pg_sql.Identifier(name))
                     + pg_sql.SQL(" ").join(options))

    def create_private_database(self, name, owner, like=None):
        """A database that only ``owner`` (and superusers) can connect to, from its first moment:
        created refusing connections, PUBLIC's rights revoked, then opened."""
        self.create_database(name, owner, like=like, allow_connections=False)
        self.execute(pg_sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(pg_sql.Identifier(name)))
        self.set_allow_connections(name, True)

    def set_comment(self, name, text):
        self.execute(comment_sql(name, text))

    def drop_database(self, name):
        self.execute(pg_sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pg_sql.Identifier(name)))

    def set_allow_connections(self, name, allow):
        self.execute(allow_sql(name, allow))

    def set_owner(self, name, owner):
        self.execute(owner_sql(name, owner))

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
                raise ClusterError("sessions on %s did not end within %.0f s"
                                   % (", ".join(quote_for_message(n) for n in names), timeout))
            self.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE datname = ANY(%s) AND pid <> pg_backend_pid()", (list(names),))
            time.sleep(0.005)

    # --- a database's own attributes ----------------------------------------------------------

    def attributes(self, name):
        """DatabaseAttributes of an existing database."""
        owner, comment, acl = self.query(
            "SELECT pg_get_userbyid(d.datdba), shobj_description(d.oid, 'pg_database'), "
            "CASE WHEN d.datacl IS NULL THEN NULL ELSE (SELECT coalesce(json_agg(json_build_array("
            "CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END, a.privilege_type, "
            "a.is_grantable)), '[]') FROM aclexplode(d.datacl) a) END "
            "FROM pg_database d WHERE d.datname = %s", (name,))[0]
        settings = []
        for role, config in self.query(
                "SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END, s.setconfig "
                "FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = %s "
                "ORDER BY 1 NULLS FIRST", (name,)):
            for item in config or []:
                key, _sep, value = item.partition("=")
                settings.append((role, key, value))
        acl = None if acl is None else [tuple(entry) for entry in acl]
        return DatabaseAttributes(owner, comment, acl, settings)

    def attribute_statements(self, name, wanted, current):
        """Statements that turn database ``name``, whose attributes are ``current``, into one with
        the attributes ``wanted``: owner, comment, privileges and settings, exactly."""
        db = pg_sql.Identifier(name)
        out = []
        if wanted.owner != current.owner:
            out.append(owner_sql(name, wanted.owner))
        # Privileges: take every grant away (the owner's implicit ones stay), then give wanted's.
        for grantee in sorted(set(g for g, _p, _o in (current.acl or []) if g != wanted.owner), key=str):
            out.append(pg_sql.SQL("REVOKE ALL ON DATABASE {} FROM {} CASCADE").format(db, _grantee(grantee)))
        if current.acl is None:
            out.append(pg_sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db))
        if wanted.acl is None:
            out.append(pg_sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO PUBLIC").format(db))
        else:
            owner_has = set(p for g, p, _o in wanted.acl if g == wanted.owner)
            missing = sorted(set(_PRIVILEGES) - owner_has)
            if missing:
                out.append(pg_sql.SQL("REVOKE {} ON DATABASE {} FROM {}").format(
                    pg_sql.SQL(", ").join(pg_sql.SQL(p) for p in missing), db, pg_sql.Identifier(wanted.owner)))
            for grantee, privilege, grantable in wanted.acl:
                if grantee == wanted.owner:
                    continue
                out.append(pg_sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
                    pg_sql.SQL(privilege), db, _grantee(grantee), pg_sql.SQL(" WITH GRANT OPTION" if grantable else "")))
        for role in sorted(set(r for r, _k, _v in current.settings), key=lambda r: (r is not None, r or "")):
            out.append(_setting_prefix(name, role) + pg_sql.SQL(" RESET ALL"))
        for role, key, value in wanted.settings:
            out.append(_setting_prefix(name, role) + pg_sql.SQL(" SET {} TO ").format(pg_sql.Identifier(key))
                       + setting_value_sql(key, value))
        if wanted.comment != current.comment:
            out.append(comment_sql(name, wanted.comment))
        return out

    def apply(self, statements):
        for statement in statements:
            self.execute(statement)


def _grantee(name):
    return pg_sql.SQL("PUBLIC") if name is None else pg_sql.Identifier(name)


def _setting_prefix(database, role):
    if role:
        return pg_sql.SQL("ALTER ROLE {} IN DATABASE {}").format(pg_sql.Identifier(role), pg_sql.Identifier(database))
    return pg_sql.SQL("ALTER DATABASE {}").format(pg_sql.Identifier(database))


def rename_sql(name, new_name):
    return pg_sql.SQL("ALTER DATABASE {} RENAME TO {}").format(pg_sql.Identifier(name), pg_sql.Identifier(new_name))


def allow_sql(name, allow):
    return pg_sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}").format(
        pg_sql.Identifier(name), pg_sql.SQL("true" if allow else "false"))


def owner_sql(name, owner):
    return pg_sql.SQL("ALTER DATABASE {} OWNER TO {}").format(pg_sql.Identifier(name), pg_sql.Identifier(owner))


def comment_sql(name, text):
    return pg_sql.SQL("COMMENT ON DATABASE {} IS {}").format(
        pg_sql.Identifier(name), pg_sql.SQL("NULL") if text is None else pg_sql.Literal(text))
