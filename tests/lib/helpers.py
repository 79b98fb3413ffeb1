# -*- coding: utf-8 -*-
"""Helpers shared by the integration tests (not tests themselves)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import hashlib
import json
import os
import subprocess

import yaml

from pglab import ROOT, run_playbook

DECOMPRESS = {"gzip": ["gzip", "-d", "-c"], "zstd": ["zstd", "-q", "-d", "-c"], "lz4": ["lz4", "-q", "-d", "-c"]}


# What Ansible itself adds to every module result (not the module's to document).
ANSIBLE_RESULT_KEYS = {"action", "changed", "failed", "msg", "invocation", "warnings", "deprecations", "skipped",
                       "skip_reason", "exception", "diff", "ansible_facts", "attempts", "item", "ansible_loop_var",
                       # AnsibleModule.exit_json adds the file's attributes to a result that has a `path`.
                       "uid", "gid", "owner", "group", "mode", "state", "size", "secontext"}
_RETURNS = {}


def documented_returns(module):
    """The top-level keys of a module's RETURN block."""
    if module not in _RETURNS:
        path = os.path.join(ROOT, "plugins", "modules", module + ".py")
        with open(path) as handle:
            tree = ast.parse(handle.read())
        text = next(node.value.value for node in tree.body if isinstance(node, ast.Assign)
                    and any(getattr(t, "id", None) == "RETURN" for t in node.targets))
        _RETURNS[module] = set(yaml.safe_load(text) or {})
    return _RETURNS[module]


def undocumented_keys(module, result):
    return sorted(k for k in result if not k.startswith("_ansible") and k not in ANSIBLE_RESULT_KEYS
                  and k not in documented_returns(module))


def run_module(name, args, expect_ok=True, check=False, diff=False, **extra_vars):
    """Run ``<name>_module.yml`` with ``<name>_args``; return the task's result, asserting the outcome
    and that every key the module returned is documented in its RETURN block."""
    extra_vars["%s_args" % name] = args
    run = run_playbook("%s_module.yml" % name, extra_vars, check=check, diff=diff)
    result = run.task(name.capitalize())
    if result is not None:
        assert not undocumented_keys(name, result), "%s returned keys its RETURN does not document: %s" % (
            name, undocumented_keys(name, result))
    if expect_ok:
        assert run.rc == 0, "%s failed: %s\n%s" % (name, result and result.get("msg"), run.stderr[-3000:])
    else:
        assert run.rc != 0, "%s unexpectedly succeeded: %s" % (name, result)
    return result


def backup(cluster, dest, run_as="postgres", expect_ok=True, **options):
    args = dict(cluster.connection_vars() if "login_host" not in options else {}, dest_dir=dest)
    args.update(options)
    return run_module("backup", args, expect_ok, run_as=run_as)


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def restore_with_bare_tools(cluster, result, target):
    """Restore a backup into a new database with psql / pg_restore only."""
    cluster.psql('CREATE DATABASE "%s" OWNER lift_admin' % target)
    path = result["path"]
    env = cluster.env()
    env["PGDATABASE"] = target
    if result["format"] == "plain":
        psql = [cluster.bin_path("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction"]
        if result["compression"] == "none":
            subprocess.run(psql + ["-f", path], env=env, check=True, stdout=subprocess.DEVNULL)
        else:
            unpack = subprocess.Popen(DECOMPRESS[result["compression"]] + [path], stdout=subprocess.PIPE)
            subprocess.run(psql + ["-f", "-"], env=env, check=True, stdin=unpack.stdout, stdout=subprocess.DEVNULL)
            unpack.stdout.close()
            assert unpack.wait() == 0
    else:
        subprocess.run([cluster.bin_path("pg_restore"), "--exit-on-error", "--jobs=2", "-d", target, path],
                       env=env, check=True)


def listing(directory):
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


def restore(cluster, path, expect_ok=True, **options):
    return run_module("restore", dict(cluster.connection_vars(), path=path, **options), expect_ok)


def verify(cluster, path, expect_ok=True, **options):
    return run_module("verify", dict(cluster.connection_vars(), path=path, **options), expect_ok)


def databases(cluster):
    """Database names (as JSON: a name may hold a newline)."""
    return set(json.loads(cluster.psql("SELECT json_agg(datname) FROM pg_database")))


def clone_database(cluster, name, template="lift_simulator"):
    """A copy of the fixture database, as the application's setup would grant it."""
    quoted = '"%s"' % name.replace('"', '""')
    cluster.psql("CREATE DATABASE %s TEMPLATE %s OWNER lift_admin" % (quoted, template))
    cluster.psql("GRANT ALL PRIVILEGES ON DATABASE %s TO lift_admin" % quoted)
    return name


def drop_databases(cluster, prefix):
    for name in databases(cluster):
        if name.startswith(prefix):
            cluster.psql('DROP DATABASE "%s" WITH (FORCE)' % name.replace('"', '""'))


def provenance_of(cluster, database):
    """The collection's record of a restored database (kind, backup, sha256...), or None."""
    text = cluster.psql("SELECT jsonb_build_object('kind', kind) || record FROM lift_simulator_postgresql.databases "
                        "b JOIN pg_database d ON d.oid = b.database_oid AND d.datname = b.database_name "
                        "WHERE d.datname = '%s'" % database.replace("'", "''"))
    return json.loads(text) if text else None
