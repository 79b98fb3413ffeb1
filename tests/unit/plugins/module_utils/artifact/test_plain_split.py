# -*- coding: utf-8 -*-
"""Splitting a plain dump for the parallel load: what pg_dump writes splits at the right bytes,
anything that cannot be split with proof is Unsplittable (loaded serially), and a dump pg_dump
did not write is refused."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import plain_dump
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import plain_split

PROLOGUE = b"""--
-- PostgreSQL database dump
--

\\restrict AbC123

SET statement_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET client_min_messages = warning;

"""

PRE = b"""--
-- Name: app; Type: SCHEMA; Schema: -; Owner: lift_admin
--

CREATE SCHEMA app;
SET default_tablespace = '';
SET default_table_access_method = heap;
CREATE TABLE app.parent (id integer, note text);
CREATE TABLE app."chi
ld" (id integer);
CREATE FUNCTION app.f() RETURNS void LANGUAGE sql AS $$
COPY app.parent (id) FROM stdin;
$$;
SET default_tablespace = 'fast';

"""

PARENT_DATA = b"1\tDROP TABLE app.parent;\n2\ta \\\\. b\n3\t\\.x\n"
CHILD_DATA = b"7\r\n"

DATA = (b"--\n-- Data for Name: parent; Type: TABLE DATA; Schema: app; Owner: lift_admin\n--\n\n"
        b"COPY app.parent (id, note) FROM stdin;\n" + PARENT_DATA + b"\\.\n\n"
        b"COPY app.\"chi\nld\" (id) FROM stdin;\n" + CHILD_DATA + b"\\.\r\n\n"
        b"SELECT pg_catalog.setval('app.parent_id_seq', 3, true);\n")

POST = b"""

--
-- Name: parent parent_pkey; Type: CONSTRAINT; Schema: app; Owner: lift_admin
--

ALTER TABLE ONLY app.parent
    ADD CONSTRAINT parent_pkey PRIMARY KEY (id);
CREATE INDEX ix ON app.parent USING btree (note);

\\unrestrict AbC123
"""

DUMP = PROLOGUE + PRE + DATA + POST


def split(dump):
    return plain_split.plan(io.BytesIO(dump))


def test_a_pg_dump_splits_at_the_right_bytes():
    plan = split(DUMP)
    assert plan.restrict_key == b"AbC123"
    assert plan.prologue == [b"SET statement_timeout = 0;", b"SET client_encoding = 'UTF8';",
                             b"SET standard_conforming_strings = on;",
                             b"SELECT pg_catalog.set_config('search_path', '', false);",
                             b"SET client_min_messages = warning;"]
    # The last of each carried setting, then the sequence positions, after the prologue.
    assert plan.post_preamble() == plan.prologue + [
        b"SET default_table_access_method = heap;", b"SET default_tablespace = 'fast';",
        b"SELECT pg_catalog.setval('app.parent_id_seq', 3, true);"]
    assert DUMP[:plan.pre_end].endswith(b"Owner: lift_admin\n--\n\n")
    assert DUMP[plan.pre_end:].startswith(b"COPY app.parent (id, note) FROM stdin;\n")
    parent, child = plan.blocks
    assert parent.header.name == ("app", "parent") and parent.header.columns == ["id", "note"]
    assert DUMP[parent.start:parent.end] == PARENT_DATA and parent.header.rows == 3
    assert child.header.name == ("app", "chi\nld") and DUMP[child.start:child.end] == CHILD_DATA
    assert DUMP[plan.post_start:] == POST
    assert [b.header.table for b in plan.largest_first()] == ["parent", "chi\nld"]


def test_the_parts_read_back_through_the_reader_with_the_dump_s_key():
    plan = split(DUMP)
    stream = io.BytesIO(DUMP)
    pre = b"".join(plain_dump.psql_input(plain_split.FilePart(stream, 0, plan.pre_end), "k" * 64))
    assert pre.startswith(b"\\restrict " + b"k" * 64 + b"\n") and b"\\restrict AbC123" not in pre
    assert pre.endswith(PRE + DATA[:DATA.index(b"COPY")])
    post = b"".join(plain_dump.psql_input(plain_split.FilePart(stream, plan.post_start), "k" * 64,
                                          preamble=plan.post_preamble(), dump_key=plan.restrict_key))
    assert post == (b"\\restrict " + b"k" * 64 + b"\n" + b"".join(s + b"\n" for s in plan.post_preamble())
                    + POST.replace(b"\\unrestrict AbC123\n", b""))
    # Without the dump's key, its \unrestrict is a meta-command like any other.
    with pytest.raises(plain_dump.PlainDumpError):
        b"".join(plain_dump.psql_input(plain_split.FilePart(stream, plan.post_start), "k" * 64))


def test_a_file_part_that_ends_early_is_an_error():
    part = plain_split.FilePart(io.BytesIO(b"abcdef"), 2, 10)
    assert part.read(3) == b"cde"
    assert part.read(10) == b"f"
    with pytest.raises(plain_dump.PlainDumpError, match="shorter"):
        part.read(10)


@pytest.mark.parametrize("dump, reason", [
    (PROLOGUE + PRE + DATA.replace(b"\\.\n\nCOPY", b"\\.\nSELECT 1/0;\nCOPY") + POST, "table data after other"),
    (PROLOGUE + PRE + DATA + POST.replace(b"CREATE INDEX", b"COPY app.late (x) FROM stdin;\n\\.\nCREATE INDEX"),
     "table data after other"),
    (PROLOGUE.replace(b"SET client_min", b"CREATE TABLE a.b (x int);\nSET client_min") + PRE + DATA + POST,
     "not only session settings"),
    (PROLOGUE + PRE.replace(b"CREATE SCHEMA app;", b"CREATE SCHEMA app;\nSET ROLE other;") + DATA + POST,
     "changes the session's state"),
    (PROLOGUE + PRE.replace(b"CREATE SCHEMA app;", b"CREATE SCHEMA app;\nSET SESSION AUTHORIZATION other;")
     + DATA + POST, "changes the session's state"),
    (PROLOGUE + PRE.replace(b"CREATE SCHEMA app;", b"SELECT pg_catalog.set_config('search_path', 'app', false);")
     + DATA + POST, "changes the session's state"),
    (PROLOGUE.replace(b"'UTF8'", b"'LATIN1'") + PRE + DATA + POST, "client_encoding is not UTF8"),
    (PROLOGUE + PRE + DATA.replace(b"\nCOPY app.parent", b"\nSELECT 1; COPY app.parent") + POST,
     "does not begin its line"),
    (PROLOGUE + PRE + DATA.replace(b"COPY app.\"chi\nld\" (id)", b"COPY app.parent (id)") + POST, "comes twice"),
    (PROLOGUE + PRE + POST, "no table data"),
])
def test_what_cannot_be_split_with_proof_is_unsplittable(dump, reason):
    with pytest.raises(plain_split.Unsplittable, match=reason):
        split(dump)


def test_a_setval_not_alone_on_its_line_goes_with_the_post_data():
    dump = PROLOGUE + PRE + DATA.replace(b"SELECT pg_catalog.setval", b"SELECT 1; SELECT pg_catalog.setval") + POST
    plan = split(dump)
    assert plan.setvals == []
    assert dump[plan.post_start:].startswith(b"\nSELECT 1; SELECT pg_catalog.setval")


@pytest.mark.parametrize("bad", [b"\\! id\n", b"COPY app.parent FROM '/etc/passwd';\n"])
def test_what_pg_dump_never_writes_is_refused(bad):
    with pytest.raises(plain_dump.PlainDumpError):
        split(PROLOGUE + PRE + bad + DATA + POST)


def test_a_truncated_block_is_refused():
    with pytest.raises(plain_dump.PlainDumpError, match="truncated"):
        split(PROLOGUE + PRE + DATA[:DATA.index(b"\\.")])


WAVE_POST = b"""
ALTER TABLE ONLY app.parent
    ADD CONSTRAINT parent_pkey PRIMARY KEY (id);
CREATE INDEX ix ON app.parent USING btree (note);
COMMENT ON INDEX app.ix IS 'on; an index';
SET default_tablespace = 'slow';
CREATE UNIQUE INDEX "u;x" ON ONLY app."chi
ld" USING btree (id);
ALTER TABLE ONLY app."chi
ld"
    ADD CONSTRAINT c_fk FOREIGN KEY (id) REFERENCES app.parent(id);
CREATE INDEX late ON app.parent USING btree (id);

\\unrestrict AbC123
"""


def test_the_post_data_opens_with_the_indexes_and_key_constraints_of_each_table():
    dump = PROLOGUE + PRE + DATA + WAVE_POST
    plan = split(dump)
    assert [(w.table, w.text.split(b" ")[1]) for w in plan.wave] == [
        (("app", "parent"), b"TABLE"), (("app", "parent"), b"INDEX"), (("app", "chi\nld"), b"UNIQUE")]
    # Each keeps the default_tablespace in force before it in the dump.
    assert [w.tablespace for w in plan.wave] == [b"SET default_tablespace = 'fast';"] * 2 + [
        b"SET default_tablespace = 'slow';"]
    assert plan.deferred == [b"COMMENT ON INDEX app.ix IS 'on; an index';"]
    # The rest, from the foreign key on (the index after it too), runs in one session.
    assert dump[plan.wave_end:].startswith(b"ALTER TABLE ONLY app.\"chi\nld\"\n    ADD CONSTRAINT c_fk")
    assert plan.post_preamble(wave=True) == plan.prologue + [
        b"SET default_table_access_method = heap;", b"SET default_tablespace = 'slow';"] + plan.setvals + plan.deferred
    # Without the wave, the post-data part starts after the data with the settings of the pre-data.
    assert dump[plan.post_start:] == WAVE_POST
    assert plan.post_preamble()[-2] == b"SET default_tablespace = 'fast';"


@pytest.mark.parametrize("post, count", [
    # Two statements on one line: the wave ends before them.
    (b"\nCREATE INDEX a ON app.parent USING btree (id); CREATE INDEX b ON app.parent USING btree (id);\n", 0),
    # An index under a TOC entry of privileges (a serial load with privileges: skip leaves it out).
    (b"\n--\n-- Name: x; Type: ACL; Schema: app; Owner: lift_admin\n--\n\n"
     b"CREATE INDEX a ON app.parent USING btree (id);\n", 0),
    # A trigger closes it.
    (b"\nCREATE INDEX a ON app.parent USING btree (id);\nCREATE TRIGGER t AFTER INSERT ON app.parent "
     b"FOR EACH ROW EXECUTE FUNCTION app.f();\nCREATE INDEX b ON app.parent USING btree (id);\n", 1),
])
def test_the_wave_takes_only_what_stands_alone(post, count):
    plan = split(PROLOGUE + PRE + DATA + post)
    assert len(plan.wave) == count


def test_scan_validates_and_plans_in_one_read():
    found, plan, why_not = plain_split.scan(io.BytesIO(DUMP))
    assert found == plain_dump.validate(io.BytesIO(DUMP))
    assert why_not is None
    alone = split(DUMP)
    assert (plan.pre_end, plan.post_start, plan.wave_end) == (alone.pre_end, alone.post_start, alone.wave_end)
    assert [(b.header.name, b.start, b.end) for b in plan.blocks] == [(b.header.name, b.start, b.end) for b in alone.blocks]


@pytest.mark.parametrize("dump, reason", [
    (PROLOGUE + PRE + DATA.replace(b"COPY app.\"chi\nld\" (id)", b"COPY app.parent (id)") + POST, "comes twice"),
    (PROLOGUE.replace(b"'UTF8'", b"'LATIN1'") + PRE + DATA + POST, "client_encoding is not UTF8"),
    (PROLOGUE + PRE + POST, "no table data"),
])
def test_scan_of_what_cannot_be_split_reads_on_and_says_why(dump, reason):
    found, plan, why_not = plain_split.scan(io.BytesIO(dump))
    assert plan is None and reason in why_not
    assert found == plain_dump.validate(io.BytesIO(dump))


def test_scan_refuses_what_pg_dump_never_writes_after_the_point_that_cannot_be_split():
    # Unsplittable early (a table's data twice), a psql meta-command at the end: still refused.
    dump = (PROLOGUE + PRE + DATA.replace(b"COPY app.\"chi\nld\" (id)", b"COPY app.parent (id)") + POST
            ).replace(b"\\unrestrict AbC123", b"\\! id\n\\unrestrict AbC123")
    with pytest.raises(plain_dump.PlainDumpError):
        plain_split.scan(io.BytesIO(dump))
