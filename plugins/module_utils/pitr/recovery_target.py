# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a point-in-time recovery aims at, checked before anything is restored.

A target is ``latest`` (the end of the archived WAL), a ``time`` (with its UTC offset: a time
without one would be read in whatever time zone the host has, and the host's clock and zone are
not to be trusted) or a restore point ``name`` (made with ``pg_create_restore_point``). This file
normalises the target, checks it against the repository's backups (the earliest time a recovery
can reach is the end of the oldest backup), and builds the ``pgbackrest restore`` command.
Pure Python (no I/O, no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re

KINDS = ("latest", "time", "name")
ACTIONS = ("promote", "pause")
UTC = datetime.timezone.utc

_TIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,6}))?\s*"
    r"(Z|UTC|[+-]\d{2}(?::?\d{2})?)$", re.IGNORECASE)
# PostgreSQL's restore point names are at most 63 bytes; quotes and backslashes would need escaping
# in postgresql.auto.conf, control characters have no place in a name.
_NAME_BAD = re.compile(r"['\\\x00-\x1f\x7f]")
_LABEL_RE = re.compile(r"^\d{8}-\d{6}F(_\d{8}-\d{6}[DI])?$")


class TargetError(ValueError):
    pass


class Target(object):
    """A checked target: ``kind``, ``value`` (the normalised time text or the name; None for
    latest), ``epoch`` (time targets), ``action`` (promote or pause; None for latest: PostgreSQL
    promotes at the end of the WAL)."""

    def __init__(self, kind, value=None, epoch=None, action=None):
        self.kind = kind
        self.value = value
        self.epoch = epoch
        self.action = action

    def describe(self):
        if self.kind == "latest":
            return "the end of the archived WAL (latest)"
        if self.kind == "time":
            return "the time %s" % self.value
        return "the restore point %r" % self.value

    def to_dict(self):
        return {"kind": self.kind, "value": self.value, "epoch": self.epoch, "action": self.action,
                "description": self.describe()}


def parse_time(text):
    """A target time as (normalised text 'YYYY-MM-DD HH:MM:SS[.ffffff]+HH:MM', epoch seconds).
    The offset is required."""
    match = _TIME_RE.match((text or "").strip())
    if not match:
        raise TargetError(
            "the target time %r is not 'YYYY-MM-DD HH:MM:SS[.ffffff]+HH[:MM]' (the UTC offset is required, "
            "e.g. '2026-11-24 14:03:00+00', or +01:00 for CET: a time without it would be read in the host's "
            "time zone)" % (text,))
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction = match.group(7) or ""
    zone = match.group(8).upper()
    if zone in ("Z", "UTC"):
        offset_minutes = 0
    else:
        digits = zone[1:].replace(":", "")
        offset_minutes = int(digits[:2]) * 60 + (int(digits[2:4]) if len(digits) > 2 else 0)
        if zone[0] == "-":
            offset_minutes = -offset_minutes
    if not -12 * 60 <= offset_minutes <= 14 * 60:
        raise TargetError("the target time %r has a UTC offset outside -12:00..+14:00" % (text,))
    tz = datetime.timezone(datetime.timedelta(minutes=offset_minutes))
    try:
        moment = datetime.datetime(year, month, day, hour, minute, second,
                                   int(fraction.ljust(6, "0")) if fraction else 0, tzinfo=tz)
    except ValueError as exc:
        raise TargetError("the target time %r is not a valid time: %s" % (text, exc))
    sign = "-" if offset_minutes < 0 else "+"
    normalised = "%04d-%02d-%02d %02d:%02d:%02d%s%s%02d:%02d" % (
        year, month, day, hour, minute, second, ("." + fraction) if fraction else "", sign,
        abs(offset_minutes) // 60, abs(offset_minutes) % 60)
    return normalised, moment.timestamp()


def parse_target(kind, time=None, name=None, action="promote"):
    """The Target of the module's options; raises TargetError naming what is wrong."""
    if kind not in KINDS:
        raise TargetError("the target is one of %s, not %r" % (", ".join(KINDS), kind))
    if action not in ACTIONS:
        raise TargetError("the target action is one of %s, not %r" % (", ".join(ACTIONS), action))
    if kind == "latest":
        if time or name:
            raise TargetError("target latest takes neither a time nor a restore point name")
        return Target("latest")
    if kind == "time":
        if name:
            raise TargetError("target time takes no restore point name")
        if not time:
            raise TargetError("target time needs the time (pitr_restore_time / target_time)")
        value, epoch = parse_time(time)
        return Target("time", value, epoch, action)
    if time:
        raise TargetError("target name takes no time")
    if not name:
        raise TargetError("target name needs the restore point's name (pitr_restore_point / target_name)")
    if len(name.encode("utf-8")) > 63 or _NAME_BAD.search(name):
        raise TargetError("%r is not a restore point name this recovery accepts (at most 63 bytes, no quotes, "
                          "backslashes or control characters)" % (name,))
    return Target("name", name, None, action)


def format_epoch(epoch):
    """An epoch as 'YYYY-MM-DD HH:MM:SS+00:00' (UTC)."""
    if epoch is None:
        return None
    return datetime.datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%d %H:%M:%S+00:00")


def check_backup_set(label):
    if label and not _LABEL_RE.match(label):
        raise TargetError("%r is not a pgBackRest backup label (e.g. 20261124-010002F or "
                          "20261124-010002F_20261125-010003D)" % (label,))
    return label or None


def recoverable_range(backups):
    """(earliest recoverable epoch, the backup that gives it) from pgbackrest info's backups of the
    current database: the end of the oldest backup. (None, None) without backups."""
    done = [b for b in backups or [] if not b.get("error") and (b.get("timestamp") or {}).get("stop")]
    if not done:
        return None, None
    oldest = min(done, key=lambda b: b["timestamp"]["stop"])
    return oldest["timestamp"]["stop"], oldest.get("label")


def check_in_range(target, backups, backup_set=None):
    """Refuse what the repository cannot reach, before anything is restored: no backup at all, a
    named backup set it does not hold, a target time before the end of the oldest backup (or of
    the named set)."""
    usable = [b for b in backups or [] if not b.get("error")]
    if not usable:
        raise TargetError("the repository holds no backup of this stanza: nothing to recover from "
                          "(take one first: systemctl start lift-pitr-backup-full.service)")
    if backup_set:
        chosen = [b for b in usable if b.get("label") == backup_set]
        if not chosen:
            raise TargetError("the repository holds no backup set %s (it holds %s)" % (
                backup_set, ", ".join(b.get("label", "?") for b in usable)))
        usable = chosen
    earliest, label = recoverable_range(usable)
    if target.kind == "time" and earliest is not None and target.epoch < earliest:
        raise TargetError(
            "the target time %s is before the earliest time the repository can recover to, %s (the end of the "
            "oldest backup%s, %s): the repository keeps no older backup (its retention decides how far back a "
            "recovery can go)" % (target.value, format_epoch(earliest), " set named" if backup_set else "", label))
    return earliest, label


def restore_argv(stanza, data_dir, target, tablespace_dir, backup_set=None, config=None, program="pgbackrest"):
    """``pgbackrest restore`` into ``data_dir`` beside the running cluster: archiving off in the
    copy (it must never push WAL into the repository while it runs beside), tablespaces mapped
    under ``tablespace_dir`` (never onto the running cluster's), the target and what to do there."""
    argv = [program]
    if config:
        argv.append("--config=%s" % config)
    argv += ["--stanza=%s" % stanza, "--pg1-path=%s" % data_dir, "--archive-mode=off",
             "--tablespace-map-all=%s" % tablespace_dir, "--log-level-console=info", "--log-level-stderr=off"]
    if backup_set:
        argv.append("--set=%s" % backup_set)
    if target.kind == "latest":
        argv.append("--type=default")
    else:
        argv += ["--type=%s" % target.kind, "--target=%s" % target.value, "--target-action=%s" % target.action]
    argv.append("restore")
    return argv
