# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat
import subprocess

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import clients
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import connection as pc

SECRET = "s3cr:et\\pa'ss"


def params(**kwargs):
    base = dict(database="lift_simulator", login_host="127.0.0.1", login_port=5433, login_user="lift_admin",
                login_password=SECRET)
    base.update(kwargs)
    return pc.ConnectionParams(**base)


def test_passfile_escaping():
    assert pc.escape_passfile_field("a:b\\c") == "a\\:b\\\\c"


def test_client_environment_keeps_the_passfile_in_memory_only():
    env_in = {"PGPASSWORD": "leak", "PATH": "/usr/bin", "PGSERVICE": "x"}
    with pc.ClientEnvironment(params(database="x=y host=evil"), base_env=env_in) as env:
        passfile = env["PGPASSFILE"]
        assert passfile.startswith("/proc/self/fd/")
        fd = int(passfile.rsplit("/", 1)[1])
        # An anonymous memfd: no name in any file system, so nothing to leave behind after SIGKILL.
        assert os.readlink(passfile).startswith("/memfd:lift-pgpass")
        assert stat.S_IMODE(os.fstat(fd).st_mode) == 0o600
        with open(passfile) as handle:
            assert handle.read() == "*:*:*:*:%s\n" % pc.escape_passfile_field(SECRET)
        assert pc.inherited_fds(env) == (fd,)
        assert "PGPASSWORD" not in env and "PGSERVICE" not in env
        assert env["PGDATABASE"] == "x=y host=evil"
        assert env["PGHOST"] == "127.0.0.1" and env["PGPORT"] == "5433" and env["PGUSER"] == "lift_admin"
        assert SECRET not in "".join(v for k, v in env.items())
    with pytest.raises(OSError):
        os.fstat(fd)


def test_a_child_reads_the_in_memory_passfile(tmp_path):
    from ansible_collections.lift_simulator.postgresql.plugins.module_utils import process

    with pc.ClientEnvironment(params(), base_env={"PATH": "/usr/bin:/bin"}) as env:
        child = process.spawn(["cat", env["PGPASSFILE"]], stdout=subprocess.PIPE, env=env)
        assert child.communicate()[0].decode() == "*:*:*:*:%s\n" % pc.escape_passfile_field(SECRET)


def test_client_environment_without_memfd_uses_a_private_directory_and_cleans_up(monkeypatch):
    monkeypatch.delattr(os, "memfd_create")
    env_in = {"PGPASSWORD": "leak", "PATH": "/usr/bin", "PGSERVICE": "x"}
    with pc.ClientEnvironment(params(database="x=y host=evil"), base_env=env_in) as env:
        passfile = env["PGPASSFILE"]
        assert stat.S_IMODE(os.stat(passfile).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(passfile)).st_mode) == 0o700
        with open(passfile) as handle:
            assert handle.read() == "*:*:*:*:%s\n" % pc.escape_passfile_field(SECRET)
        assert pc.inherited_fds(env) == ()
    assert not os.path.exists(passfile)
    assert not os.path.exists(os.path.dirname(passfile))


def test_socket_wins_over_host_and_no_password_means_no_passfile():
    with pc.ClientEnvironment(params(login_host=None, login_unix_socket="/run/pg", login_password=""),
                              base_env={"PGPASSFILE": "/tmp/foreign"}) as env:
        assert env["PGHOST"] == "/run/pg"
        assert "PGPASSFILE" not in env


def test_scrub_and_describe_never_show_the_password():
    p = params()
    assert SECRET not in p.describe()
    assert p.scrub("password %s rejected" % SECRET) == "password ******** rejected"


@pytest.mark.parametrize("message, expected", [
    ('connection to server at "127.0.0.1", port 5433 failed: FATAL:  password authentication failed for user "lift_admin"',
     "authentication failed"),
    ('connection to server at "127.0.0.1", port 5433 failed: Connection refused\n\tIs the server running',
     "not running"),
    ('connection to server on socket "/tmp/.s.PGSQL.5433" failed: No such file or directory', "not running"),
    ('connection to server at "127.0.0.1", port 5433 failed: FATAL:  database "nope" does not exist',
     'database "lift_simulator" does not exist'),
    ('connection to server at "127.0.0.1", port 5433 failed: FATAL:  role "nope" does not exist',
     "login role does not exist"),
    ('connection to server on socket "/x" failed: FATAL:  Peer authentication failed for user "postgres"',
     "peer authentication failed"),
])
def test_connection_errors_name_the_problem(message, expected):
    text = pc.explain_connection_error(params(), Exception(message + " " + SECRET))
    assert expected in text
    assert SECRET not in text


def test_quote_for_message_shows_hostile_names_unambiguously():
    assert pc.quote_for_message('a"b\nc') == '"a\\"b\\nc"'


@pytest.mark.parametrize("text, expected", [
    ("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n", (15, 18, "15.18 (Debian 15.18-0+deb12u1)")),
    ("pg_dump (PostgreSQL) 17.2\n", (17, 2, "17.2")),
    ("psql (PostgreSQL) 18beta1\n", (18, 0, "18beta1")),
])
def test_parse_client_version(text, expected):
    assert clients.parse_client_version(text) == expected


def test_parse_client_version_garbage():
    with pytest.raises(pc.PgError):
        clients.parse_client_version("bash: pg_dump: command not found")


@pytest.mark.parametrize("num, major", [(150018, 15), (170002, 17), (120022, 12)])
def test_server_major(num, major):
    assert clients.server_major(num) == major


def make_fake_client(directory, name, version):
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    with open(path, "w") as handle:
        handle.write("#!/bin/sh\necho '%s (PostgreSQL) %s'\n" % (name, version))
    os.chmod(path, 0o755)
    return path


def test_find_client_binary_prefers_the_newest_and_refuses_old_ones(tmp_path):
    old = make_fake_client(str(tmp_path / "15" / "bin"), "pg_dump", "15.18")
    new = make_fake_client(str(tmp_path / "17" / "bin"), "pg_dump", "17.2")
    dirs = [str(tmp_path / "17" / "bin"), str(tmp_path / "15" / "bin")]
    assert clients.find_client_binary("pg_dump", search_dirs=dirs, min_major=17)[:2] == (new, 17)
    assert clients.find_client_binary("pg_dump", bin_dir=os.path.dirname(old))[:2] == (old, 15)
    with pytest.raises(pc.PgError) as info:
        clients.find_client_binary("pg_dump", bin_dir=os.path.dirname(old), min_major=17)
    assert "older than the server" in str(info.value) and "postgresql-client-17" in str(info.value)


def test_find_client_binary_uses_path_only_as_the_fallback(tmp_path, monkeypatch):
    versioned = make_fake_client(str(tmp_path / "15" / "bin"), "pg_dump", "15.18")
    on_path = make_fake_client(str(tmp_path / "path"), "pg_dump", "17.2")
    monkeypatch.setenv("PATH", str(tmp_path / "path"))
    ran = []
    real = clients.client_version
    monkeypatch.setattr(clients, "client_version", lambda path: (ran.append(path), real(path))[1])
    dirs = [str(tmp_path / "15" / "bin")]
    # Debian's /usr/lib/postgresql/<major>/bin is enough: PATH (pg_wrapper there) is not run.
    assert clients.find_client_binary("pg_dump", search_dirs=dirs, min_major=15)[:2] == (versioned, 15)
    assert ran == [versioned]
    # Too old for the server there: a newer one on PATH is taken.
    assert clients.find_client_binary("pg_dump", search_dirs=dirs, min_major=17)[:2] == (on_path, 17)
    # Nothing there at all: PATH.
    assert clients.find_client_binary("pg_dump", search_dirs=[])[:2] == (on_path, 17)


def test_find_client_binary_missing(tmp_path):
    with pytest.raises(pc.PgError) as info:
        clients.find_client_binary("pg_dump", bin_dir=str(tmp_path))
    assert "pg_dump was not found" in str(info.value)


def test_stderr_tail_is_scrubbed_and_short():
    data = ("noise\n" * 100 + "pg_dump: error: bad password %s\n" % SECRET).encode()
    tail = pc.stderr_tail(data, params(), lines=3)
    assert tail.count("\n") <= 2
    assert "********" in tail and SECRET not in tail


def test_client_certificate_and_connect_params_reach_the_client_programs():
    params = pc.ConnectionParams("db", login_host="db.example.org", ssl_mode="verify-full", ca_cert="/etc/ca.pem",
                                 ssl_cert="/etc/client.crt", ssl_key="/etc/client.key",
                                 connect_params={"target_session_attrs": "read-write", "sslsni": 1})
    with pc.ClientEnvironment(params, base_env={"PGSSLCERT": "/somewhere/else"}) as env:
        assert env["PGSSLCERT"] == "/etc/client.crt" and env["PGSSLKEY"] == "/etc/client.key"
        assert env["PGSSLROOTCERT"] == "/etc/ca.pem" and env["PGSSLMODE"] == "verify-full"
        assert env["PGTARGETSESSIONATTRS"] == "read-write" and env["PGSSLSNI"] == "1"


@pytest.mark.parametrize("name", ["password", "host", "options", "application_name", "passfile", "keepalives"])
def test_connect_params_refuse_what_other_options_set_or_what_cannot_reach_the_programs(name):
    with pytest.raises(pc.PgError) as caught:
        pc.ConnectionParams("db", connect_params={name: "x"})
    assert "connect_params cannot set %s" % name in str(caught.value)
    assert "target_session_attrs" in str(caught.value)


class _Connected(object):
    autocommit = False


def connect_kwargs(monkeypatch, connection_params):
    """The keyword arguments connect() gives psycopg2 (no server needed)."""
    seen = {}
    monkeypatch.setattr(pc, "HAS_PSYCOPG2", True)
    monkeypatch.setattr(pc, "psycopg2", type("FakePsycopg2", (), {
        "Error": Exception, "connect": staticmethod(lambda **kwargs: (seen.update(kwargs), _Connected())[1])}))
    pc.connect(connection_params)
    return seen


def test_every_session_the_collection_opens_has_its_search_path_pinned_from_the_start(monkeypatch):
    """Set at connect time (a startup option), so no statement runs before it and neither the
    database's nor the role's ALTER ... SET search_path overrides it (docs/security.md, 2)."""
    assert pc.PINNED_SEARCH_PATH == "pg_catalog,pg_temp"
    assert connect_kwargs(monkeypatch, params())["options"] == "-c search_path=pg_catalog,pg_temp"
    with_options = params(options="-c lock_timeout=60s")
    assert connect_kwargs(monkeypatch, with_options)["options"] == "-c lock_timeout=60s -c search_path=pg_catalog,pg_temp"
    # Clones keep it: another database, another application name.
    assert connect_kwargs(monkeypatch, params().with_database("x").with_application("y"))["options"] == (
        "-c search_path=pg_catalog,pg_temp")


def test_only_an_explicitly_unpinned_session_keeps_the_database_s_search_path(monkeypatch):
    unpinned = params(options="-c lock_timeout=60s").unpinned()
    assert connect_kwargs(monkeypatch, unpinned)["options"] == "-c lock_timeout=60s"
    assert "options" not in connect_kwargs(monkeypatch, params().unpinned())
    # ... and the original is still pinned.
    original = params()
    original.unpinned()
    assert original.search_path == pc.PINNED_SEARCH_PATH


def test_the_client_programs_never_get_the_pinned_search_path():
    """psql and pg_restore run a dump, which sets its own search_path; PGOPTIONS carries only the
    parameters' own options."""
    with pc.ClientEnvironment(params(options="-c lock_timeout=60s"), base_env={"PGOPTIONS": "-c x=y"}) as env:
        assert env["PGOPTIONS"] == "-c lock_timeout=60s"
    with pc.ClientEnvironment(params(), base_env={"PGOPTIONS": "-c search_path=public"}) as env:
        assert "PGOPTIONS" not in env
