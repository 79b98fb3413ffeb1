# -*- coding: utf-8 -*-
"""age and SSH key pairs for the encryption tests (real age-keygen and ssh-keygen), owned by
postgres, 0600 in a 0700 directory."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import pwd
import shutil
import subprocess

import pytest

from helpers import backup
from pglab import postgres_owned_dir


def own_by_postgres(path, mode):
    pw = pwd.getpwnam("postgres")
    os.chown(path, pw.pw_uid, pw.pw_gid)
    os.chmod(path, mode)


@pytest.fixture(scope="module")
def keys():
    """Age key pairs ``ops``, ``new`` and ``stranger`` (identity_file, identity, recipient) and an
    SSH ed25519 pair ``escrow`` (identity_file, recipients_file)."""
    base = postgres_owned_dir("lift-it-keys-")
    os.chmod(base, 0o700)
    found = {}
    for name in ("ops", "new", "stranger"):
        path = os.path.join(base, name + ".key")
        subprocess.run(["age-keygen", "-o", path], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        own_by_postgres(path, 0o600)
        public = subprocess.run(["age-keygen", "-y", path], check=True, stdout=subprocess.PIPE,
                                universal_newlines=True).stdout.strip()
        with open(path) as handle:
            found[name] = dict(identity_file=path, identity=handle.read(), recipient=public)
    ssh = os.path.join(base, "escrow")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "escrow", "-f", ssh], check=True)
    for path in (ssh, ssh + ".pub"):
        own_by_postgres(path, 0o600)
    found["escrow"] = dict(identity_file=ssh, recipients_file=ssh + ".pub")
    yield found
    shutil.rmtree(base, ignore_errors=True)


def decrypt(path, identity_file):
    return subprocess.run(["age", "-d", "-i", identity_file, path], check=True, stdout=subprocess.PIPE).stdout


def encrypted_backup(cluster, workdir, db, keys, **options):
    """A backup of ``db`` in ``workdir``/b encrypted to the ops key and the escrow SSH key."""
    recipients = [keys["ops"]["recipient"], keys["escrow"]["recipients_file"]]
    return backup(cluster, os.path.join(workdir, "b"), database=db, encryption="age",
                  encryption_recipients=recipients, **options)
