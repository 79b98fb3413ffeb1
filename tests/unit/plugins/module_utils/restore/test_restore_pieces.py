# -*- coding: utf-8 -*-
"""Pure pieces of the restore engine: the selective restore's table loading (with a recording
cursor), dependency order, list-valued settings, the loading role's SCRAM verifier, the clients'
version and error handling."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import io
import subprocess

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import plain_dump
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import cluster_admin
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import connection as pg_connection
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import scram
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore import backup_load
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore import names
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore import table_restore
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.request import (
    RestoreError, keep_previous_count)

from test_plain_dump import DUMP


class RecordingCursor(object):
    """Stands in for a psycopg2 cursor: records what a selective restore sends."""

    def __init__(self):
        self.copies = []
        self.executed = []

    def copy_expert(self, sql, source):
        data = b""
        while True:
            block = source.read(8192)
            if not block:
                break
            data += block
        self.copies.append((repr(sql), data))

    def execute(self, sql, args=None):
        self.executed.append((sql, args))


def targets(*specs):
    found = {}
    for schema, name, columns, references in specs:
        target = table_restore.Target(len(found) + 1, schema, name, "%s.%s" % (schema, name), set(columns))
        target.references = set(references)
        found[target.key] = target
    return found


PARENT = ("app", "parent", ["id"], [])
CHILD = ("app", "child", ["id", "parent_id", "note"], [("app", "parent")])


def load(found, sequences=None, dump=DUMP):
    cur = RecordingCursor()
    order = table_restore.dependency_order(list(found), dict((k, t.references) for k, t in found.items()))
    events = plain_dump.PlainDumpReader(io.BytesIO(dump)).events()
    loaded = table_restore._load(cur, events, found, order, sequences or {})
    return cur, loaded


def test_a_child_waits_until_its_parent_is_loaded_and_sequences_are_set():
    cur, loaded = load(targets(CHILD, PARENT), {("app", "parent_id_seq"): 99})
    assert [data for _sql, data in cur.copies] == [b"1\n2\n", b"1\t1\ta\\ttab\n2\t2\t\\\\.\n"]
    assert "Identifier('parent')" in cur.copies[0][0] and "Identifier('child')" in cur.copies[1][0]
    assert "Identifier('note')" in cur.copies[1][0]
    assert loaded == {"app.parent": 2, "app.child": 2}
    # Only the owned sequence's position, with checked values; the other one is not touched.
    assert [args for _sql, args in cur.executed] == [(99, 2, True)]


def test_copy_statements_are_built_from_the_target_not_from_the_file():
    cur, _loaded = load(targets(PARENT))
    sql = cur.copies[0][0]
    assert sql.startswith("Composed([SQL('COPY '), Composed([Identifier('app'), SQL('.'), Identifier('parent')])")
    assert "stdin" not in sql.lower() or "STDIN" in sql


def test_columns_the_table_lacks_are_refused():
    with pytest.raises(table_restore.TableRestoreError) as info:
        load(targets(("app", "child", ["id", "parent_id"], []), PARENT))
    assert '"note"' in str(info.value)


def test_tables_the_backup_lacks_are_named_with_what_it_has():
    with pytest.raises(table_restore.TableRestoreError) as info:
        load(targets(("app", "nope", ["id"], [])))
    assert str(info.value) == 'the backup has no table app.nope; it has: app.child, app.parent, app.we;ird "t'


def test_dependency_order():
    refs = {("a", "child"): {("a", "parent"), ("a", "other")}, ("a", "parent"): {("a", "parent")}, ("a", "x"): set()}
    assert table_restore.dependency_order([("a", "child"), ("a", "parent"), ("a", "x")], refs) == [
        ("a", "parent"), ("a", "x"), ("a", "child")]
    with pytest.raises(table_restore.TableRestoreError):
        table_restore.dependency_order([("a", "a"), ("a", "b")], {("a", "a"): {("a", "b")}, ("a", "b"): {("a", "a")}})


class FakeBackup(object):
    def __init__(self, path, compression="none"):
        self.path = path
        self.name = path.rsplit("/", 1)[-1]
        self.format = "plain"
        self.compression = compression
        self.encryption = "none"


@pytest.mark.parametrize("compression, command", [("none", None), ("zstd", ["zstd", "-q", "-c"]),
                                                  ("gzip", ["gzip", "-c"])])
def test_dump_text_reads_every_plain_compression(tmp_path, compression, command):
    path = tmp_path / "dump.sql"
    if command:
        path.write_bytes(subprocess.run(command, input=DUMP, stdout=subprocess.PIPE, check=True).stdout)
    else:
        path.write_bytes(DUMP)
    text = backup_load.DumpText(FakeBackup(str(path), compression))
    try:
        assert text.stream.read() == DUMP
    finally:
        text.close()


def test_a_failing_decompressor_is_reported():
    text = backup_load.DumpText(FakeBackup("/nonexistent/dump.sql.zst", "zstd"))
    text.stream.read()
    with pytest.raises(backup_load.LoadError) as info:
        text.close()
    assert "reading the backup failed: zstd failed" in str(info.value)


@pytest.mark.parametrize("version, ok", [("15.14 (Debian)", True), ("15.13", False), ("16.10", True), ("16.9", False),
                                         ("17.6", True), ("17.5", False), ("18.0", True), ("14.19", True),
                                         ("13.21", False), ("12.22", False), ("garbage", False)])
def test_psql_versions_that_can_restrict(version, ok):
    assert backup_load.psql_can_restrict(version) is ok


@pytest.mark.parametrize("text", [
    "psql:<stdin>:12: ERROR:  could not extend file \"base/16384/16999\": wrote only 4096 of 8192 bytes at block 7",
    "pg_restore: error: could not execute query: ERROR:  could not extend file \"base/1/2\": No space left on device",
    "HINT:  Check free disk space.",
    "ERROR:  could not write to file \"base/pgsql_tmp/pgsql_tmp1.0\": No space left on device",
])
def test_a_full_disk_is_recognised_in_any_wording(text):
    assert backup_load.is_disk_full(text)
    assert not backup_load.is_disk_full("ERROR:  division by zero")


def test_first_error_keeps_detail_and_hint():
    tail = ("psql:<stdin>:2: ERROR:  cannot truncate a table referenced in a foreign key constraint\n"
            "DETAIL:  Table \"simulation_run\" references \"lift_system\".\nHINT:  Truncate it too.\n")
    text = backup_load.first_error(tail)
    assert "cannot truncate" in text and "DETAIL:  Table" in text and "HINT:" in text


def test_conninfo_dbname_quotes_everything():
    assert pg_connection.conninfo_dbname("a'b\\c d=e") == "dbname='a\\'b\\\\c d=e'"


def test_derived_names_fit_postgresql_limit():
    name = names.derived_name("x" * 70, "staging", "20261124083000")
    assert len(name.encode()) == 63 and name.endswith("_staging_20261124083000")
    name = names.derived_name("ü" * 40, "verify", "20261124083000")
    assert len(name.encode()) <= 63
    name.encode("utf-8").decode("utf-8")
    assert names.derived_name("lift_simulator", "pre_restore", "1") == "lift_simulator_pre_restore_1"


@pytest.mark.parametrize("value, count", [(True, 1), (False, 0), (3, 3), ("2", 2), ("yes", 1), ("false", 0)])
def test_keep_previous_counts(value, count):
    assert keep_previous_count(value) == count


@pytest.mark.parametrize("value", [-1, "many", None])
def test_keep_previous_refuses_nonsense(value):
    with pytest.raises(RestoreError):
        keep_previous_count(value)


@pytest.mark.parametrize("text, items", [
    ("lift_simulator, public", ["lift_simulator", "public"]),
    ('"$user", public', ["$user", "public"]),
    ('"we, ""ird", Mixed', ['we, "ird', "Mixed"]),
    ('""', [""]),
    ("", []),
    ("single", ["single"]),
])
def test_guc_lists_split_as_postgresql_splits_them(text, items):
    assert cluster_admin.split_guc_list(text) == items


def test_list_settings_are_set_element_by_element():
    assert repr(cluster_admin.setting_value_sql("search_path", "lift_simulator, public")) == (
        "Composed([Literal('lift_simulator'), SQL(', '), Literal('public')])")
    assert repr(cluster_admin.setting_value_sql("DateStyle", "ISO, MDY")) == "Literal('ISO, MDY')"
    assert repr(cluster_admin.setting_value_sql("search_path", '"broken')) == "Literal('\"broken')"


# Made by PostgreSQL 15 for this password (CREATE ROLE ... PASSWORD '...').
STORED = ("SCRAM-SHA-256$4096:aGXzkQ1MDqOeM1GYxhUHhA==$wEYtpxYHR9nFYFf/sIgJgU0r/efthuULmvhyUEFTlhQ=:"
          "L5Vxiojf9hD2A6tuVQw6lLJylo6SFS/RwCcNWoKYf0E=")


def test_the_scram_verifier_is_the_one_postgresql_computes():
    salt = base64.b64decode(STORED.split("$")[1].split(":")[1])
    assert scram.verifier("correct horse battery staple", salt=salt) == STORED
    assert scram.verifier("x") != scram.verifier("x")  # a new salt each time


def test_a_stored_verifier_is_kept_only_for_its_own_password():
    assert scram.matches(STORED, "correct horse battery staple")
    assert not scram.matches(STORED, "correct horse battery stapler")
    assert not scram.matches("md5" + "0" * 32, "x") and not scram.matches(None, "x")
    assert scram.for_password("correct horse battery staple", STORED) == STORED
    other = scram.for_password("another one", STORED)
    assert other != STORED and scram.matches(other, "another one")


def test_the_loading_role_s_sessions_keep_the_database_s_search_path_and_the_superuser_s_pin_it():
    """The loading role runs the owner's code with the owner's rights, as the owner wrote it; the
    superuser's sessions (ownership, provenance, the admin connection) pin pg_catalog."""
    from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore import loader_role

    superuser = pg_connection.ConnectionParams("lift_simulator", login_unix_socket="/run/postgresql",
                                               login_user="postgres")
    role = loader_role.LoaderRole("lift_simulator_restore_0123456789abcdef", "pw", superuser, None)
    loading = role.params("lift_simulator_staging_x")
    assert loading.search_path is None and pg_connection.session_options(loading) is None
    assert loading.login_user == "lift_simulator_restore_0123456789abcdef"
    assert superuser.search_path == pg_connection.PINNED_SEARCH_PATH
    assert pg_connection.session_options(superuser.with_database("lift_simulator_staging_x")) == (
        "-c search_path=pg_catalog,pg_temp")


def test_the_superuser_s_catalog_queries_name_pg_catalog_s_functions_themselves():
    """Besides the pinned search_path: no function a public schema could shadow with a better
    match (quote_ident(name), to_regclass) is called unqualified, and oid is compared with
    regclass only through pg_catalog's operator."""
    import ast
    import re

    from ansible_collections.lift_simulator.postgresql.plugins.module_utils.app import lift_simulator
    from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import catalog
    from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore import checks
    from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore import provenance

    texts = list(checks._OWNERSHIP_QUERIES) + [
        catalog.DUMPED_TABLES_SQL, catalog.FLYWAY_TABLES_SQL, catalog._REFERENCED_ROLES_SQL, provenance._catalog_sql(True)]
    for module in (checks, provenance, lift_simulator, catalog):
        with open(module.__file__.replace(".pyc", ".py")) as handle:
            tree = ast.parse(handle.read())
        docstrings = set(id(node.body[0].value) for node in ast.walk(tree)
                         if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body
                         and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant))
        texts.extend(node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
                     and isinstance(node.value, str) and id(node) not in docstrings)
    for text in texts:
        assert not re.search(r"(?<![\w.])(quote_ident|to_regclass|pg_table_size|hashtextextended)\(", text), text
        assert not re.search(r"= '?\w+'?::regclass", text), text
