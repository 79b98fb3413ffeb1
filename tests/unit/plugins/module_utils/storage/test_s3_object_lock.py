# -*- coding: utf-8 -*-
"""The pure parts of the s3 driver's Object Lock (storage/s3.py): the server's clock read from its
Date header, the retain-until date asked for, an object's lock judged from a HEAD answer by the
server's clock, a lock that falls short of the request, and the settings a storage refuses before it
reaches any server. The behaviour against a real server is in tests/integration/test_storage_s3.py
and test_offsite_object_lock.py."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import errno

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.offsite import targets
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import s3
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.base import StorageError

UTC = datetime.timezone.utc
T0 = datetime.datetime(2026, 12, 1, 11, 24, 19, tzinfo=UTC)


def answer(date=None, **fields):
    """A boto3 answer as the driver gets it: fields, and the HTTP headers the server sent."""
    headers = {"date": date} if date else {}
    return dict(fields, ResponseMetadata={"HTTPHeaders": headers})


def test_the_servers_time_is_its_date_header():
    assert s3.server_time(answer("Tue, 01 Dec 2026 11:24:19 GMT")) == T0
    assert s3.server_time(answer("Tue, 01 Dec 2026 12:24:19 +0100")) == T0
    assert s3.server_time(answer()) is None
    assert s3.server_time(answer("not a date")) is None
    assert s3.server_time({}) is None


def test_retain_until_is_whole_seconds_never_shorter_than_asked():
    assert s3.retain_until(T0, 3) == T0 + datetime.timedelta(days=3)
    later = s3.retain_until(T0 + datetime.timedelta(microseconds=1), 1)
    assert later == T0 + datetime.timedelta(days=1, seconds=1) and later.microsecond == 0
    naive = s3.retain_until(T0.replace(tzinfo=None), 1)  # a naive time is UTC, as listings' are
    assert naive == T0 + datetime.timedelta(days=1) and naive.tzinfo is not None


def test_an_objects_lock_is_judged_by_the_servers_clock_not_this_hosts():
    until = T0 + datetime.timedelta(days=2)
    head = answer("Tue, 01 Dec 2026 11:24:19 GMT", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until,
                  ObjectLockLegalHoldStatus="OFF")
    lock = s3.lock_of(head, now=until + datetime.timedelta(days=365))  # this host's clock, far ahead: not used
    assert lock == dict(mode="COMPLIANCE", retain_until=until, legal_hold=False, server_time=T0, retained=True)
    # The server's clock past the date (beyond the margin): no longer retained, the date still reported.
    expired = s3.lock_of(answer("Thu, 03 Dec 2026 11:24:25 GMT", ObjectLockMode="GOVERNANCE",
                                ObjectLockRetainUntilDate=until))
    assert expired["retained"] is False and expired["retain_until"] == until and expired["mode"] == "GOVERNANCE"
    # Within the margin after the date: still judged retained (the server may not agree yet).
    assert s3.lock_of(answer("Thu, 03 Dec 2026 11:24:22 GMT", ObjectLockRetainUntilDate=until))["retained"] is True
    # Without a Date header, the given time.
    assert s3.lock_of(dict(ObjectLockRetainUntilDate=until), now=until + datetime.timedelta(hours=1))["retained"] is False


def test_a_legal_hold_retains_without_a_date_and_nothing_is_no_lock():
    held = s3.lock_of(answer("Tue, 01 Dec 2026 11:24:19 GMT", ObjectLockLegalHoldStatus="ON"))
    assert held["retained"] is True and held["retain_until"] is None and held["legal_hold"] is True
    assert s3.describe_lock(held) == "a legal hold"
    assert s3.lock_of(answer("Tue, 01 Dec 2026 11:24:19 GMT", ObjectLockLegalHoldStatus="OFF")) is None
    assert s3.lock_of(answer("Tue, 01 Dec 2026 11:24:19 GMT")) is None
    both = dict(held, mode="COMPLIANCE", retain_until=T0)
    assert s3.describe_lock(both) == "COMPLIANCE until 2026-12-01T11:24:19Z and a legal hold"


def test_a_lock_that_falls_short_of_the_request_is_named():
    until = T0 + datetime.timedelta(days=3)
    asked = dict(ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until)
    assert s3.lock_problems(dict(ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until), asked) == []
    # Sub-second rounding by the server is not a problem; a longer retention is not either.
    assert s3.lock_problems(dict(ObjectLockMode="COMPLIANCE",
                                 ObjectLockRetainUntilDate=until - datetime.timedelta(milliseconds=500)), asked) == []
    assert s3.lock_problems(dict(ObjectLockMode="COMPLIANCE",
                                 ObjectLockRetainUntilDate=until + datetime.timedelta(days=1)), asked) == []
    ignored = s3.lock_problems({}, asked)
    assert len(ignored) == 1 and "reports no Object Lock" in ignored[0] and "2026-12-04T11:24:19Z" in ignored[0]
    weaker = s3.lock_problems(dict(ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until), asked)
    assert "it reports GOVERNANCE until 2026-12-04T11:24:19Z" in weaker[0]
    shorter = s3.lock_problems(dict(ObjectLockMode="COMPLIANCE",
                                    ObjectLockRetainUntilDate=until - datetime.timedelta(days=1)), asked)
    assert "COMPLIANCE until 2026-12-03T11:24:19Z" in shorter[0]


@pytest.mark.parametrize("days", [0, -1, True, 1.5, "3"])
def test_object_lock_days_must_be_a_whole_number_of_days(days):
    with pytest.raises(StorageError) as info:
        s3.S3Storage("bucket", object_lock_days=days)
    assert info.value.errno == errno.EINVAL and "object_lock_days" in str(info.value)


def test_object_lock_mode_is_one_of_s3s_modes():
    with pytest.raises(StorageError) as info:
        s3.S3Storage("bucket", object_lock_days=1, object_lock_mode="compliance")
    assert "COMPLIANCE, GOVERNANCE" in str(info.value)
    store = s3.S3Storage("bucket", object_lock_days=7)
    assert (store.object_lock_days, store.object_lock_mode) == (7, "COMPLIANCE")
    assert s3.S3Storage("bucket").lock_request() is None  # without days: no request, no server asked


def test_the_settings_table_takes_object_lock_for_s3_only():
    s3_target = dict(type="s3", bucket="lift", object_lock_days=30, object_lock_mode="GOVERNANCE")
    assert targets.settings_of(s3_target)[1] == dict(bucket="lift", object_lock_days=30, object_lock_mode="GOVERNANCE")
    sftp = dict(type="sftp", host="h", user="u", directory="d", private_key_file="/k", known_hosts="h ssh-ed25519 AAAA",
                object_lock_days=30)
    with pytest.raises(targets.TargetError) as info:
        targets.settings_of(sftp)
    assert "does not take object_lock_days" in str(info.value)
