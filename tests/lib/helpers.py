# -*- coding: utf-8 -*-
"""Helpers shared by the integration tests (not tests themselves)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import subprocess

from pglab import run_playbook

DECOMPRESS = {"gzip": ["gzip", "-d", "-c"], "zstd": ["zstd", "-q", "-d", "-c"], "lz4": ["lz4", "-q", "-d", "-c"]}


def backup(cluster, dest, run_as="postgres", expect_ok=True, **options):
    args = dict(cluster.connection_vars() if "login_host" not in options else {}, dest_dir=dest)
    args.update(options)
    run = run_playbook("backup_module.yml", {"backup_args": args, "run_as": run_as})
    result = run.task("Backup")
    if expect_ok:
        assert run.rc == 0, "backup failed: %s\n%s" % (result and result.get("msg"), run.stderr[-3000:])
    else:
        assert run.rc != 0, "backup unexpectedly succeeded"
    return result


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
    args = dict(cluster.connection_vars(), path=path)
    args.update(options)
    run = run_playbook("restore_module.yml", {"restore_args": args})
    result = run.task("Restore")
    if expect_ok:
        assert run.rc == 0, "restore failed: %s\n%s" % (result and result.get("msg"), run.stderr[-3000:])
    else:
        assert run.rc != 0, "restore unexpectedly succeeded: %s" % result
    return result


def verify(cluster, path, expect_ok=True, **options):
    args = dict(cluster.connection_vars(), path=path)
    args.update(options)
    run = run_playbook("verify_module.yml", {"verify_args": args})
    result = run.task("Verify")
    if expect_ok:
        assert run.rc == 0, "verify failed: %s\n%s" % (result and result.get("msg"), run.stderr[-3000:])
    else:
        assert run.rc != 0, "verify unexpectedly succeeded: %s" % result
    return result


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
