# -*- coding: utf-8 -*-
"""An off-site target's settings are checked against one table before any driver is opened."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.offsite import targets

SFTP = dict(type="sftp", host="backup.example.net", user="lift", directory="copies", private_key_file="/k",
            known_hosts="backup.example.net ssh-ed25519 AAAA")
S3 = dict(type="s3", bucket="lift", prefix="db1", endpoint_url="http://127.0.0.1:8333", access_key="AK",
          secret_key="SECRET")


@pytest.mark.parametrize("target, words", [
    (dict(SFTP, type="ftp"), "is not one of sftp, s3"),
    (dict(SFTP, bucket="x"), "does not take bucket"),
    (dict(SFTP, host=None), "needs host"),
    (dict(SFTP, private_key_file=None), "private_key or private_key_file"),
    (dict(SFTP, known_hosts=None), "never accepted blindly"),
    (dict(S3, secret_key=None), "access_key and secret_key together"),
    (dict(S3, host="h"), "does not take host"),
])
def test_bad_settings_are_named(target, words):
    with pytest.raises(targets.TargetError) as info:
        targets.settings_of(target)
    assert words in str(info.value)


def test_descriptions_name_the_place_and_never_a_secret():
    assert targets.describe(SFTP) == "sftp://lift@backup.example.net:22/~/copies"
    assert targets.describe(dict(SFTP, directory="/srv/copies", port=2222)) == "sftp://lift@backup.example.net:2222/srv/copies"
    assert targets.describe(S3) == "s3://lift/db1 (http://127.0.0.1:8333)"
    assert "SECRET" not in targets.describe(S3)
