# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The roles a backup needs on the machine it is restored to, and creating the missing ones.

pg_dump never carries roles: a backup made by a read-only backup role carries GRANTs to it, and a
new machine may not have it. Each backup records the roles its objects refer to (manifest
``roles``: as owner, in privileges, in policies) and the cluster's role definitions (the globals
file, ``pg_dumpall --globals-only``). Before anything is created, a restore works out which
missing roles it needs (``needed``) and either creates them from the globals file or stops with
an error that names them. The globals file is as untrusted as the backup: it is read, never run.
A role is created with its LOGIN/INHERIT/CONNECTION LIMIT attributes and, when the backup was
made with passwords, its password verifier (never a plain password) - but never as SUPERUSER,
CREATEDB, CREATEROLE, REPLICATION or BYPASSRLS, and without memberships: those are rights that
only an operator grants. The globals file is used only when its sha256 and size match the
manifest's (``provide_roles``). Pure Python (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import os
import re

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import checksums
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import plain_dump
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.connection import pg_sql, quote_for_message
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.request import RestoreError
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import path_trust

_IDENT = rb'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_CREATE_RE = re.compile(rb"^CREATE ROLE (?P<name>" + _IDENT + rb");$")
_ALTER_RE = re.compile(rb"^ALTER ROLE (?P<name>" + _IDENT + rb") WITH (?P<attributes>.*);$")
_ATTRIBUTE_RE = re.compile(rb"\s*(?:CONNECTION LIMIT (?P<limit>-?\d+)|PASSWORD '(?P<password>(?:[^']|'')*)'|"
                           rb"VALID UNTIL '(?P<until>(?:[^']|'')*)'|(?P<word>[A-Z]+))")
_KEPT = frozenset((b"LOGIN", b"NOLOGIN", b"INHERIT", b"NOINHERIT"))
_REFUSED = frozenset((b"SUPERUSER", b"CREATEDB", b"CREATEROLE", b"REPLICATION", b"BYPASSRLS"))
_VERIFIER_RE = re.compile(r"^(?:SCRAM-SHA-256\$\d+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+|md5[0-9a-f]{32})$")


class RoleDefinitionsError(Exception):
    pass


class RoleDefinition(object):
    def __init__(self, name):
        self.name = name
        self.attributes = []   # kept, as SQL words: LOGIN, NOINHERIT...
        self.connection_limit = None
        self.password = None   # a verifier
        self.left_out = []     # what was not taken, for the warning


def needed(referenced, load_as_owner=True, skip_privileges=False):
    """The roles of the manifest's ``referenced`` ({role: [owner|privileges|policies]}) that must
    exist for the restore. Loading as the owner leaves the dump's ownership out (everything goes to
    the owner), so roles that only own objects are not needed then."""
    result = []
    for role, kinds in sorted(referenced.items()):
        if "policies" in kinds or "other" in kinds or ("privileges" in kinds and not skip_privileges) or (
                "owner" in kinds and not load_as_owner):
            result.append(role)
    return result


def parse(data):
    """{role: RoleDefinition} from the text of a globals file. Raises RoleDefinitionsError."""
    found = {}
    try:
        for kind, _raw, detail in plain_dump.PlainDumpReader(io.BytesIO(data)).events():
            if kind != plain_dump.STATEMENT:
                continue
            create = _CREATE_RE.match(detail.text)
            if create:
                name = plain_dump.parse_identifier(create.group("name"))
                found.setdefault(name, RoleDefinition(name))
                continue
            alter = _ALTER_RE.match(detail.text)
            if alter:
                name = plain_dump.parse_identifier(alter.group("name"))
                _attributes(found.setdefault(name, RoleDefinition(name)), alter.group("attributes"))
    except plain_dump.PlainDumpError as exc:
        raise RoleDefinitionsError("the role definitions file is not what pg_dumpall writes: %s" % exc)
    return found


def _attributes(role, text):
    pos = 0
    while pos < len(text):
        match = _ATTRIBUTE_RE.match(text, pos)
        if not match or match.end() == pos:
            role.left_out.append(text[pos:].decode("utf-8", "replace").strip())
            return
        pos = match.end()
        word = match.group("word")
        if word in _KEPT:
            role.attributes.append(word.decode("ascii"))
        elif word in _REFUSED:
            role.left_out.append(word.decode("ascii"))
        elif match.group("limit") is not None:
            role.connection_limit = int(match.group("limit"))
        elif match.group("password") is not None:
            password = match.group("password").replace(b"''", b"'").decode("utf-8", "replace")
            if _VERIFIER_RE.match(password):
                role.password = password
            else:
                role.left_out.append("a password that is not a verifier")
        elif match.group("until") is not None:
            role.left_out.append("VALID UNTIL")


def create_statements(role):
    """CREATE ROLE (and its comment) for a missing role, with only the attributes kept."""
    words = ["NOSUPERUSER", "NOCREATEDB", "NOCREATEROLE", "NOREPLICATION", "NOBYPASSRLS"] + role.attributes
    statement = pg_sql.SQL("CREATE ROLE {} WITH {}").format(pg_sql.Identifier(role.name), pg_sql.SQL(" ".join(words)))
    if role.connection_limit is not None:
        statement += pg_sql.SQL(" CONNECTION LIMIT {}").format(pg_sql.Literal(role.connection_limit))
    if role.password:
        statement += pg_sql.SQL(" PASSWORD {}").format(pg_sql.Literal(role.password))
    return [statement, pg_sql.SQL("COMMENT ON ROLE {} IS {}").format(pg_sql.Identifier(role.name), pg_sql.Literal(
        "created by lift_simulator.postgresql from a backup's role definitions"))]


def describe(role):
    """What was created, in words, for the result and the warning."""
    text = "%s (%s%s)" % (quote_for_message(role.name), " ".join(role.attributes) or "NOLOGIN",
                          ", with its password verifier" if role.password else ", no password")
    if role.left_out:
        text += ", left out: %s" % ", ".join(sorted(set(role.left_out)))
    return text


# --- what a restore does about them -----------------------------------------------------------

def missing_roles(request, admin, backup):
    """The roles the backup needs here (manifest ``roles``) that do not exist; [] when unknown."""
    referenced = (backup.manifest or {}).get("roles")
    if not referenced:
        return []
    needs = needed(referenced, load_as_owner=request.load_as != "superuser",
                   skip_privileges=request.privileges == "skip")
    return sorted(set(needs) - admin.existing_roles(needs))


def definitions_file(backup):
    """The backup's role definitions, checked against its manifest: {role: RoleDefinition}, or
    (None, why not)."""
    entry = (backup.manifest or {}).get("globals")
    if not entry:
        return None, ("the backup has no role definitions (made before they were written, or with "
                      "role_definitions: false)")
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
            return parse(handle.read()), None
        except RoleDefinitionsError as exc:
            return None, str(exc)


def provide_roles(request, admin, backup, result, check_mode):
    """Before anything is created: create the missing roles the backup needs from its role
    definitions, or stop naming them."""
    missing = missing_roles(request, admin, backup)
    if not missing:
        return
    names = ", ".join(quote_for_message(r) for r in missing)
    definitions, why = definitions_file(backup) if request.create_roles else (None, "create_roles is false")
    lacking = [r for r in missing if definitions is not None and r not in definitions]
    if definitions is None or lacking:
        raise RestoreError(
            "the backup grants to (or has policies for) roles that do not exist here: %s, and %s; nothing was "
            "changed. Create those roles first, or set privileges: skip to restore without the backup's GRANTs"
            % (names, why if definitions is None else "its role definitions lack %s" % ", ".join(lacking)))
    created = []
    for role in missing:
        if not check_mode:
            admin.in_transaction(create_statements(definitions[role]))
        created.append(describe(definitions[role]))
    result["created_roles"] = missing
    result["warnings"].append("%s the roles %s from the backup's role definitions, without superuser-like "
                              "attributes or memberships; give them passwords and rights as needed"
                              % ("would create" if check_mode else "created", "; ".join(created)))
