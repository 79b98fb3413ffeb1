# -*- coding: utf-8 -*-
"""A database's fingerprint: what a correct restore must reproduce exactly.

Row counts and a content checksum per table, and the definitions of functions, triggers,
indexes, constraints, comments, sequences and ownership, all read from the catalogs.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

USER_SCHEMAS = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"

QUERIES = {
    "tables": """
        SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) || ' owner=' || pg_get_userbyid(c.relowner)
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S') AND {schemas} ORDER BY 1""",
    "schemas": """
        SELECT n.nspname || ' owner=' || pg_get_userbyid(n.nspowner) || ' comment=' || coalesce(obj_description(n.oid, 'pg_namespace'), '')
          FROM pg_namespace n WHERE {schemas} ORDER BY 1""",
    "functions": """
        SELECT pg_get_functiondef(p.oid) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE {schemas} ORDER BY 1""",
    "triggers": """
        SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT t.tgisinternal AND {schemas} ORDER BY 1""",
    "indexes": """
        SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {schemas} ORDER BY 1""",
    "constraints": """
        SELECT quote_ident(n.nspname) || '.' || c.relname || ' ' || k.conname || ' ' || pg_get_constraintdef(k.oid)
          FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE {schemas} ORDER BY 1""",
    # Comments on every user object (schemas, tables, columns, indexes, functions, triggers...).
    "comments": """
        SELECT pg_describe_object(d.classoid, d.objoid, d.objsubid) || ' = ' || d.description
          FROM pg_description d WHERE d.objoid >= 16384 ORDER BY 1""",
    "sequences": """
        SELECT n.nspname || '.' || s.sequencename || ' last=' || coalesce(s.last_value::text, 'null')
          FROM pg_sequences s JOIN pg_namespace n ON n.nspname = s.schemaname WHERE {schemas} ORDER BY 1""",
}


def fingerprint(cluster, database):
    """Everything above plus per-table rows and content md5, as a dict of text lists."""
    result = {}
    for name, sql in QUERIES.items():
        sql = sql.format(schemas=USER_SCHEMAS)
        lines = cluster.psql(" ".join(sql.split()), database=database).splitlines()
        if name == "constraints":
            lines = sorted(normalize_expression(line) for line in lines)
        result[name] = lines
    tables = cluster.psql(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND " + USER_SCHEMAS + " ORDER BY 1",
        database=database).splitlines()
    result["rows"] = {}
    for table in tables:
        count, digest = cluster.psql(
            "SELECT count(*), coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '') FROM %s t" % table,
            database=database).split("|")
        result["rows"][table] = (int(count), digest)
    return result


_CAST_RE = re.compile(r"::[a-z ]+(\[\])?")


def normalize_expression(text):
    """PostgreSQL deparses `status IN ('A', 'B')` on a varchar column differently once the
    definition has been dumped and re-read (where the casts and parentheses go); both mean the
    same. Compare constraint definitions without casts and parentheses."""
    return re.sub(r"[()\s]+", "", _CAST_RE.sub("", text))


def row_counts(fp):
    return {table: count for table, (count, _digest) in fp["rows"].items()}
