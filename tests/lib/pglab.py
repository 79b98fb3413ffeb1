# -*- coding: utf-8 -*-
"""The PostgreSQL test lab shared by tests/integration and tests/faults: a real PostgreSQL cluster
started by the test run, and a runner that drives the collection's modules and playbooks through
ansible-playbook. The conftest.py files of those folders import its fixtures.

The cluster runs as the `postgres` OS user (peer authentication on its private socket directory,
scram-sha-256 over TCP on 127.0.0.1). Modules run on localhost with the system Python
(/usr/bin/python3 with Debian's python3-psycopg2), as they would on a database host.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE_DIR = os.path.join(ROOT, "tests", "fixtures", "lift_simulator")
# Playbooks that run one module with its options from extra vars (shared by both suites).
PLAYBOOK_DIR = os.path.join(ROOT, "tests", "integration", "playbooks")
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
SYSTEM_PYTHON = "/usr/bin/python3"
SUPERUSER_PASSWORD = "pg-super-Secr3t"
LIFT_ADMIN_PASSWORD = "lift-Adm1n:pa\\ss'word"
FIXTURE_SIZE_MB = int(os.environ.get("LIFT_FIXTURE_SIZE_MB", "3"))


def pg_bin_dir():
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    if not dirs:
        raise RuntimeError("PostgreSQL server binaries are missing: run `make host` (apt-get install postgresql)")
    return dirs[-1]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def as_postgres(argv, **kwargs):
    return subprocess.run(["runuser", "-u", "postgres", "--"] + argv, check=True, **kwargs)


def postgres_owned_dir(prefix):
    path = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(path, 0o755)
    pw = pwd.getpwnam("postgres")
    os.chown(path, pw.pw_uid, pw.pw_gid)
    return path


class PgCluster(object):
    """A throwaway PostgreSQL cluster."""

    def __init__(self):
        self.bin = pg_bin_dir()
        self.base = postgres_owned_dir("lift-it-pg-")
        self.data = os.path.join(self.base, "data")
        self.socket_dir = os.path.join(self.base, "sock")
        os.mkdir(self.socket_dir)
        pw = pwd.getpwnam("postgres")
        os.chown(self.socket_dir, pw.pw_uid, pw.pw_gid)
        self.port = free_port()
        self.log = os.path.join(self.base, "server.log")

    def start_fresh(self, extra_initdb=None):
        pwfile = os.path.join(self.base, "pw")
        with open(pwfile, "w") as handle:
            handle.write(SUPERUSER_PASSWORD + "\n")
        os.chmod(pwfile, 0o644)
        as_postgres([os.path.join(self.bin, "initdb"), "-D", self.data, "-U", "postgres", "--pwfile", pwfile,
                     "--auth-local=peer", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"]
                    + list(extra_initdb or []),
                    stdout=subprocess.DEVNULL)
        os.unlink(pwfile)
        self.start()

    # Test clusters skip fsync (speed; crash safety of the server is not under test). The benchmark
    # passes durable=True: it measures what a real server does.
    durable = False
    settings = {}

    def start(self):
        options = "-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=50" % (self.port, self.socket_dir)
        if not self.durable:
            options += " -c fsync=off"
        for key, value in sorted(self.settings.items()):
            options += " -c %s=%s" % (key, value)
        as_postgres([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-l", self.log, "-w", "-t", "60", "-o",
                     options, "start"], stdout=subprocess.DEVNULL)

    def stop(self, mode="fast"):
        subprocess.run(["runuser", "-u", "postgres", "--", os.path.join(self.bin, "pg_ctl"), "-D", self.data,
                        "-m", mode, "-w", "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False)

    def destroy(self):
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)

    def env(self, user="postgres", password=SUPERUSER_PASSWORD):
        env = dict(os.environ, PGHOST="127.0.0.1", PGPORT=str(self.port), PGUSER=user, PGPASSWORD=password,
                   PGCONNECT_TIMEOUT="10")
        env.pop("PGDATABASE", None)
        return env

    def psql(self, sql, database="postgres", user="postgres", password=SUPERUSER_PASSWORD):
        """Run SQL as the superuser over TCP; return stdout (unaligned, tuples only)."""
        return subprocess.run([os.path.join(self.bin, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                               "-d", database, "-c", sql], env=self.env(user, password), check=True,
                              stdout=subprocess.PIPE, universal_newlines=True).stdout.strip()

    def psql_file(self, path, database, stdin=None):
        return subprocess.run([os.path.join(self.bin, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", database,
                               "-f", path], env=self.env(), check=True, stdin=stdin, stdout=subprocess.DEVNULL)

    def bin_path(self, name):
        return os.path.join(self.bin, name)

    def connection_vars(self):
        """Module options for the postgres OS user over the private socket (peer auth)."""
        return {"login_unix_socket": self.socket_dir, "login_port": self.port, "login_user": "postgres"}

    def tcp_vars(self, user="lift_admin", password=LIFT_ADMIN_PASSWORD):
        return {"login_host": "127.0.0.1", "login_port": self.port, "login_user": user, "login_password": password}


def load_fixture(cluster, database, size_mb=FIXTURE_SIZE_MB, seed=42):
    cluster.psql("CREATE DATABASE %s OWNER lift_admin" % database)
    cluster.psql("REVOKE ALL ON DATABASE %s FROM PUBLIC; GRANT ALL PRIVILEGES ON DATABASE %s TO lift_admin"
                 % (database, database))
    cluster.psql_file(os.path.join(FIXTURE_DIR, "schema.sql"), database)
    gen = subprocess.Popen([SYSTEM_PYTHON, os.path.join(FIXTURE_DIR, "generate_data.py"), "--size-mb", str(size_mb),
                            "--seed", str(seed)], stdout=subprocess.PIPE)
    cluster.psql_file("-", database, stdin=gen.stdout)
    gen.stdout.close()
    assert gen.wait() == 0
    cluster.psql("ANALYZE", database=database)


@contextlib.contextmanager
def own_cluster(size_mb=FIXTURE_SIZE_MB, seed=42, admin_password=None):
    """A fresh cluster with lift_admin and a lift_simulator database, destroyed afterwards."""
    pg = PgCluster()
    try:
        pg.start_fresh()
        password = " PASSWORD '%s'" % admin_password.replace("'", "''") if admin_password else ""
        pg.psql("CREATE ROLE lift_admin LOGIN" + password)
        load_fixture(pg, "lift_simulator", size_mb=size_mb, seed=seed)
        yield pg
    finally:
        pg.destroy()


@pytest.fixture(scope="session")
def cluster():
    with own_cluster(admin_password=LIFT_ADMIN_PASSWORD) as pg:
        yield pg


@pytest.fixture
def workdir():
    path = postgres_owned_dir("lift-it-work-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


class PlaybookRun(object):
    def __init__(self, proc, results):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.results = results

    def task(self, name, host="localhost"):
        """The result of the last task named ``name`` (or of its loop items)."""
        for task in reversed(self.results):
            if task["task"]["name"] == name:
                return task["hosts"].get(host)
        raise KeyError("no task named %r in %s" % (name, [t["task"]["name"] for t in self.results]))


def run_playbook(playbook, extra_vars=None, check=False, verbosity=0, json_output=True, inventory=None,
                 timeout=900, wrapper=(), diff=False):
    """Run a playbook on localhost; extra vars go through a 0600 file, never argv. ``wrapper``: argv
    ansible-playbook runs under (strace ...)."""
    if not os.path.isabs(playbook):
        candidate = os.path.join(PLAYBOOK_DIR, playbook)
        playbook = candidate if os.path.exists(candidate) else os.path.join(ROOT, playbook)
    tmp = tempfile.mkdtemp(prefix="lift-it-run-")
    try:
        vars_file = os.path.join(tmp, "vars.json")
        with open(os.open(vars_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
            json.dump(extra_vars or {}, handle)
        inventory_file = inventory or os.path.join(tmp, "inventory.ini")
        if inventory is None:
            with open(inventory_file, "w") as handle:
                handle.write("[lift_db]\nlocalhost ansible_connection=local ansible_python_interpreter=%s\n"
                             % SYSTEM_PYTHON)
        argv = list(wrapper) + [os.path.join(VENV_BIN, "ansible-playbook"), "-i", inventory_file, "-e", "@" + vars_file,
                                playbook]
        if check:
            argv.append("--check")
        if diff:
            argv.append("--diff")
        if verbosity:
            argv.append("-" + "v" * verbosity)
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
                   ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".cache", "collections"),
                   ANSIBLE_BECOME_METHOD="su", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
                   ANSIBLE_LOCAL_TEMP=os.path.join(tmp, "local"))
        if json_output:
            env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.posix.json"
        proc = subprocess.run(argv, env=env, check=False, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, stdin=subprocess.DEVNULL, timeout=timeout, cwd=tmp)
        results = []
        if json_output:
            try:
                data = json.loads(proc.stdout)
            except ValueError:
                raise AssertionError("ansible-playbook did not print JSON:\n%s\n%s" % (proc.stdout, proc.stderr))
            for play in data.get("plays", []):
                results.extend(play.get("tasks", []))
        return PlaybookRun(proc, results)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def ansible():
    return run_playbook
