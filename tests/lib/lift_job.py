# -*- coding: utf-8 -*-
"""The scheduled job (roles/scheduled_backup) laid out as the role installs it, and a runner for it;
shared by tests/integration/test_scheduled_job.py and tests/faults/test_job_faults.py."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os
import pwd
import re
import shutil
import socket
import subprocess

import yaml

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import checksums
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import manifest as mf
from pglab import ROOT, SYSTEM_PYTHON

ROLE = os.path.join(ROOT, "roles", "scheduled_backup")
UTC = datetime.timezone.utc
PREFIX = "lift_simulator"
METRIC = "lift_simulator_backup_"


# --- the installed layout ---------------------------------------------------------------------

def role_vars():
    with open(os.path.join(ROLE, "vars", "main.yml")) as handle:
        return yaml.safe_load(handle)


def module_utils_files(variables=None):
    """The module_utils the role copies (relative paths): every *.py, subpackages included, but
    those with a line that imports Ansible (tasks/install.yml finds them with the same pattern)."""
    variables = variables or role_vars()
    imports_ansible = re.compile(variables["__scheduled_backup_ansible_import_re"])
    source = os.path.join(ROOT, "plugins", "module_utils")
    found = []
    for directory, dirs, files in os.walk(source):
        dirs[:] = [d for d in dirs if not d.startswith((".", "__pycache__"))]
        for name in files:
            path = os.path.join(directory, name)
            if name.endswith(".py") and not name.startswith("."):
                with open(path) as handle:
                    if not any(imports_ansible.match(line) for line in handle):
                        found.append(os.path.relpath(path, source))
    return sorted(found)


def install_layout(base):
    """The command and its module_utils, laid out as the role installs them; returns the command."""
    variables = role_vars()
    lib = os.path.join(base, "lib")
    for directory in variables["__scheduled_backup_packages_dirs"]:
        os.makedirs(os.path.join(lib, directory), exist_ok=True)
        with open(os.path.join(lib, directory, "__init__.py"), "w"):
            pass
    target = os.path.join(lib, variables["__scheduled_backup_packages_dirs"][-1])
    for name in module_utils_files(variables):
        os.makedirs(os.path.dirname(os.path.join(target, name)), exist_ok=True)
        shutil.copy(os.path.join(ROOT, "plugins", "module_utils", name), os.path.join(target, name))
    command = os.path.join(base, "lift-pg-backup")
    with open(os.path.join(ROLE, "files", "lift_pg_backup.py")) as source:
        with open(command, "w") as target:
            target.write("#!%s\n%s" % (variables["__scheduled_backup_interpreter"], source.read()))
    os.chmod(command, 0o755)
    return command, lib


class Job(object):
    """One job set-up: directories owned by postgres, a configuration file, and runners."""

    def __init__(self, layout, workdir, cluster, **settings):
        self.command, self.lib = layout
        self.workdir = workdir
        self.dest = os.path.join(workdir, "backups")
        self.logs = os.path.join(self.dest, "logs")
        self.metrics_dir = os.path.join(workdir, "metrics")
        self.state_dir = os.path.join(workdir, "state")
        for path in (self.dest, self.metrics_dir, self.state_dir):
            os.mkdir(path, 0o700)
            chown_postgres(path)
        self.settings = dict(name="it_job", database="lift_simulator", dest_dir=self.dest,
                             metrics_dir=self.metrics_dir, state_dir=self.state_dir,
                             login_unix_socket=cluster.socket_dir, login_port=cluster.port, keep_last=2)
        self.settings.update(settings)
        self.config = os.path.join(workdir, "job.json")
        self.write_config()

    def write_config(self, **changes):
        self.settings.update(changes)
        with open(self.config, "w") as handle:
            json.dump(self.settings, handle)
        os.chmod(self.config, 0o644)

    def argv(self, *options, **environment):
        env = ["LIFT_PG_BACKUP_LIB=%s" % self.lib] + ["%s=%s" % item for item in sorted(environment.items())]
        python = [SYSTEM_PYTHON, "-I", self.command, "--config", self.config]
        return ["runuser", "-u", "postgres", "--", "env"] + env + python + list(options)

    def run(self, *options, **kwargs):
        return subprocess.run(self.argv(*options), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, stdin=subprocess.DEVNULL, timeout=kwargs.get("timeout", 300),
                              check=False)

    def start(self, *options, **kwargs):
        environment = kwargs.pop("environment", {})
        return subprocess.Popen(self.argv(*options, **environment), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                universal_newlines=True, stdin=subprocess.DEVNULL, **kwargs)

    @property
    def metrics_file(self):
        return os.path.join(self.metrics_dir, "lift_pg_backup_%s.prom" % self.settings["name"])

    def metrics(self):
        values = {}
        with open(self.metrics_file) as handle:
            text = handle.read()
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            sample, value = line.rsplit(" ", 1)
            name, labels = sample.split("{", 1)
            assert labels == 'database="lift_simulator",backup_job="%s"}' % self.settings["name"], line
            values[name[len(METRIC):]] = float(value)
        assert "# TYPE %slast_run_success gauge" % METRIC in text and "# HELP %slast_size_bytes" % METRIC in text
        return values

    def status(self):
        with open(os.path.join(self.state_dir, "%s.last-run.json" % self.settings["name"])) as handle:
            return json.load(handle)

    def backups(self):
        return sorted(n for n in os.listdir(self.dest) if n.startswith(PREFIX + "_backup_"))

    def log_files(self):
        return sorted(os.listdir(self.logs)) if os.path.isdir(self.logs) else []

    def read_log(self, path):
        with open(path) as handle:
            return handle.read()


def chown_postgres(path):
    pw = pwd.getpwnam("postgres")
    os.chown(path, pw.pw_uid, pw.pw_gid)


def write_old_backup(directory, when):
    """A synthetic but valid backup of `lift_simulator`, named and with a manifest as the backup
    module writes them (so that retention counts it as a good backup)."""
    name = "%s_backup_%s.sql" % (PREFIX, when.strftime("%Y%m%d_%H%M%S"))
    path = os.path.join(directory, name)
    with open(path, "wb") as handle:
        handle.write(b"-- PostgreSQL database dump\n-- old\n" + os.urandom(256)
                     + b"\n-- PostgreSQL database dump complete\n")
    digest, size = checksums.sha256_file(path)
    document = mf.build_manifest(
        backup_name=name, database=PREFIX, host=socket.getfqdn(),
        server={"host": "local socket", "port": 5432, "version": "15.18", "version_num": 150018},
        pg_dump_version="15.18", format="plain", compression="none", compression_level=None,
        started_at=mf.utc_iso(when), finished_at=mf.utc_iso(when + datetime.timedelta(seconds=2)), duration_s=2.0,
        size_bytes=size, sha256=digest, sha256_scope="file", files=None,
        row_counts={"lift_simulator.lift_system": 1}, flyway_version="13", flyway=[], checklist=None,
        snapshot="00000003-0000001B-1", collection="lift_simulator.postgresql", collection_version="0.1.0")
    with open(path + ".manifest.json", "wb") as handle:
        handle.write(mf.dumps(document))
    for entry in (path, path + ".manifest.json"):
        os.chmod(entry, 0o600)
        chown_postgres(entry)
        os.utime(entry, (when.timestamp(), when.timestamp()))
    return name


def old_backups(job, ages_days=(30, 20, 10)):
    now = datetime.datetime.now(UTC).replace(microsecond=0)
    return [write_old_backup(job.dest, now - datetime.timedelta(days=d)) for d in ages_days]


def log_of(job, outcome_text):
    """The one log whose text contains ``outcome_text``."""
    found = [os.path.join(job.logs, n) for n in job.log_files() if outcome_text in job.read_log(os.path.join(job.logs, n))]
    assert len(found) == 1, (outcome_text, job.log_files())
    return found[0], job.read_log(found[0])


def new_backup(job, before):
    made = [n for n in job.backups() if n not in before and not n.endswith((".manifest.json", ".globals.sql"))]
    assert len(made) == 1, made
    return made[0]


def make_layout(base):
    os.chmod(base, 0o755)  # root's, readable by postgres, as /usr/local is
    return install_layout(base)
