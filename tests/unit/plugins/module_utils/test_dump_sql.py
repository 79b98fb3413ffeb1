# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import os
import subprocess

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils import dump_sql
from ansible_collections.lift_simulator.postgresql.plugins.module_utils import restore_run

# A plain dump as pg_dump writes it, the child's data before its parent's, a function whose body
# contains COPY text, hostile names, and a sequence position.
DUMP = b"""--
-- PostgreSQL database dump
--

CREATE FUNCTION app.f() RETURNS void LANGUAGE sql AS $$
COPY app.parent (id) FROM stdin;
$$;

--
-- Data for Name: child; Type: TABLE DATA; Schema: app; Owner: lift_admin
--

COPY app.child (id, parent_id, note) FROM stdin;
1\t1\ta\\ttab
2\t2\t\\\\.
\\.


--
-- Data for Name: parent; Type: TABLE DATA; Schema: app; Owner: lift_admin
--

COPY app.parent (id) FROM stdin;
1
2
\\.


--
-- Data for Name: we;ird "t; Type: TABLE DATA; Schema: app; Owner: lift_admin
--

COPY app."we;ird ""t" (x) FROM stdin;
\\.


--
-- Name: parent_id_seq; Type: SEQUENCE SET; Schema: app; Owner: lift_admin
--

SELECT pg_catalog.setval('app.parent_id_seq', 2, true);
SELECT pg_catalog.setval('app."it''s_seq"', 7, false);

--
-- PostgreSQL database dump complete
--
"""


def events(data):
    return list(dump_sql.DumpReader(io.BytesIO(data)).events())


def test_reader_finds_data_blocks_rows_and_sequences():
    seen = events(DUMP)
    copies = [v.table for e, v in seen if e == "copy"]
    assert copies == ["app.child", "app.parent", 'app."we;ird ""t"']
    rows = [v for e, v in seen if e == "row"]
    assert rows == [b"1\t1\ta\\ttab\n", b"2\t2\t\\\\.\n", b"1\n", b"2\n"]
    setvals = [v for e, v in seen if e == "setval"]
    assert setvals[0] == ("app.parent_id_seq", b"SELECT pg_catalog.setval('app.parent_id_seq', 2, true);\n")
    assert setvals[1][0] == 'app."it\'s_seq"'


def test_copy_inside_a_function_body_is_not_data():
    assert "app.parent" not in [v.table for e, v in events(DUMP.split(b"--\n-- Data for Name", maxsplit=1)[0]) if e == "copy"]


def test_truncated_data_is_detected():
    with pytest.raises(dump_sql.DumpFormatError) as info:
        events(DUMP.split(b"2\t2\t", maxsplit=1)[0])
    assert "truncated" in str(info.value) and "app.child" in str(info.value)


def test_dependency_order():
    refs = {"app.child": {"app.parent", "app.other"}, "app.parent": {"app.parent"}, "app.x": set()}
    assert dump_sql.dependency_order(["app.child", "app.parent", "app.x"], refs) == ["app.parent", "app.x", "app.child"]
    with pytest.raises(dump_sql.DumpFormatError):
        dump_sql.dependency_order(["a", "b"], {"a": {"b"}, "b": {"a"}})


class FakeBackup(object):
    def __init__(self, path):
        self.path = path
        self.format = "plain"
        self.compression = "none"


def test_feed_spools_a_child_until_its_parent_is_loaded(tmp_path):
    path = tmp_path / "dump.sql"
    path.write_bytes(DUMP)
    out = io.BytesIO()
    loaded = {}
    spool = tmp_path / "spool"
    spool.mkdir()
    restore_run._feed_tables(out, FakeBackup(str(path)), None, os.environ, ["app.parent", "app.child"], True,
                             {"app.parent_id_seq"}, str(spool), loaded)
    text = out.getvalue()
    assert text.startswith(b"BEGIN;\nTRUNCATE ONLY app.parent, app.child;\nCOPY app.parent (id) FROM stdin;\n1\n2\n\\.\n")
    assert text.index(b"COPY app.child") > text.index(b"COPY app.parent")
    assert b"1\t1\ta\\ttab\n2\t2\t\\\\.\n\\.\n" in text
    assert text.endswith(b"SELECT pg_catalog.setval('app.parent_id_seq', 2, true);\nCOMMIT;\n")
    assert b"it''s_seq" not in text
    assert loaded == {"app.parent": 2, "app.child": 2}
    assert os.listdir(str(spool)) == []


def test_feed_reports_tables_the_backup_lacks(tmp_path):
    path = tmp_path / "dump.sql"
    path.write_bytes(DUMP)
    with pytest.raises(restore_run._MissingTables) as info:
        restore_run._feed_tables(io.BytesIO(), FakeBackup(str(path)), None, os.environ, ["app.nope"], False, set(),
                                 str(tmp_path), {})
    assert info.value.missing == ["app.nope"]
    assert info.value.seen == ["app.child", "app.parent", 'app."we;ird ""t"']


def test_derived_names_fit_postgresql_limit():
    name = restore_run.derived_name("x" * 70, "staging", "20261124083000")
    assert len(name.encode()) == 63 and name.endswith("_staging_20261124083000")
    name = restore_run.derived_name("ü" * 40, "verify", "20261124083000")
    assert len(name.encode()) <= 63
    name.encode("utf-8").decode("utf-8")
    assert restore_run.derived_name("lift_simulator", "pre_restore", "1") == "lift_simulator_pre_restore_1"


def test_conninfo_dbname_quotes_everything():
    assert restore_run._conninfo_dbname("a'b\\c d=e") == "dbname='a\\'b\\\\c d=e'"


def test_provenance_round_trip():
    backup = FakeBackup("/b/x.sql")
    backup.name = "x.sql"
    backup.sha256 = "a" * 64
    comment = restore_run.provenance(backup, "swap")
    assert restore_run.read_provenance(comment)["sha256"] == "a" * 64
    assert restore_run.read_provenance("an operator's comment") is None
    assert restore_run.read_provenance(restore_run.PROVENANCE_PREFIX + "{broken") is None


def test_first_error_keeps_detail_and_hint():
    tail = ("psql:<stdin>:2: ERROR:  cannot truncate a table referenced in a foreign key constraint\n"
            "DETAIL:  Table \"simulation_run\" references \"lift_system\".\nHINT:  Truncate it too.\n")
    text = restore_run._first_error(tail)
    assert "cannot truncate" in text and "DETAIL:  Table" in text and "HINT:" in text


def test_feed_reads_compressed_dumps(tmp_path):
    path = tmp_path / "dump.sql.zst"
    subprocess.run(["zstd", "-q", "-o", str(path)], input=DUMP, check=True)
    backup = FakeBackup(str(path))
    backup.compression = "zstd"
    out = io.BytesIO()
    restore_run._feed_tables(out, backup, ["zstd", "-q", "-d", "-c", str(path)], os.environ, ["app.child"], False,
                             set(), str(tmp_path), {})
    assert b"COPY app.child" in out.getvalue()
