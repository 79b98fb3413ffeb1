# -*- coding: utf-8 -*-
"""The age header read without a key, against real age output, and the recipients' descriptions."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import subprocess

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import age_header


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    base = tmp_path_factory.mktemp("age")
    identity = str(base / "id.key")
    subprocess.run(["age-keygen", "-o", identity], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    recipient = subprocess.run(["age-keygen", "-y", identity], check=True, stdout=subprocess.PIPE,
                               universal_newlines=True).stdout.strip()
    ssh = str(base / "ssh")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", ssh], check=True)
    with open(ssh + ".pub") as handle:
        ssh_public = handle.read().strip()
    data = subprocess.run(["age", "-e", "-r", recipient, "-r", ssh_public], input=b"x" * 70000, check=True,
                          stdout=subprocess.PIPE).stdout
    return dict(recipient=recipient, ssh_public=ssh_public, data=data)


def test_real_headers_are_read_and_match_their_recipients(made):
    stanzas = age_header.read_stanzas(made["data"][:4096])
    assert [kind for kind, _args in stanzas] == ["X25519", "ssh-ed25519"]
    recipients = [age_header.describe_recipient(made["recipient"]), age_header.describe_recipient(made["ssh_public"])]
    assert age_header.header_problems(stanzas, recipients) == []
    blob = base64.b64decode(made["ssh_public"].split()[1])
    assert recipients[1]["fingerprint"] == "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    assert stanzas[1][1][0] == recipients[1]["tag"]


def test_other_recipients_are_noticed(made):
    stanzas = age_header.read_stanzas(made["data"][:4096])
    only_one = [age_header.describe_recipient(made["recipient"])]
    assert age_header.header_problems(stanzas, only_one) == [
        "SSH recipient stanzas ssh-ed25519 %s, the manifest lists none" % stanzas[1][1][0]]
    other_ssh = dict(age_header.describe_recipient(made["ssh_public"]), tag="AAAAAA")
    assert "the manifest lists ssh-ed25519 AAAAAA" in age_header.header_problems(stanzas, only_one + [other_ssh])[0]
    assert "1 X25519 recipient stanza(s), the manifest lists 0" in age_header.header_problems(stanzas, [])[0]


@pytest.mark.parametrize("cut, message", [
    (lambda d: b"AGE" + d[3:], "version line"),
    (lambda d: d[:d.index(b"\n-> ssh") + 1], "cut short"),
    (lambda d: d.replace(b"-> X25519", b"=> X25519", 1), "neither a stanza nor the MAC line"),
    (lambda d: d.replace(b"\n---", b"\n-- -", 1), "neither a stanza nor the MAC line"),
])
def test_malformed_headers_are_refused(made, cut, message):
    with pytest.raises(age_header.AgeHeaderError) as info:
        age_header.read_stanzas(cut(made["data"])[:4096])
    assert message in str(info.value)


def test_identities_are_never_taken_for_recipients_nor_repeated():
    secret = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"
    assert age_header.looks_like_identity(secret) and age_header.looks_like_identity("-----BEGIN OPENSSH PRIVATE KEY")
    with pytest.raises(age_header.AgeHeaderError) as info:
        age_header.describe_recipient(secret)
    assert "a private key" in str(info.value) and "QQQQ" not in str(info.value)
    with pytest.raises(age_header.AgeHeaderError):
        age_header.describe_recipient("ssh-ed25519 not*base64")
