# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup file names: rendering the template, suffixes, and recognising backups by name.

Pure Python, shared by the modules and the host-side job.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re

from ansible_collections.lift_simulator.postgresql.plugins.module_utils import codecs

DEFAULT_NAME_TEMPLATE = "{database}_backup_%Y%m%d_%H%M%S"
MANIFEST_SUFFIX = ".manifest.json"
# The cluster's role definitions taken with a backup (pg_dumpall --globals-only), beside it.
GLOBALS_SUFFIX = ".globals.sql"
FORMATS = ("plain", "custom", "directory")

# Plain dumps are compressed in our pipeline, so the suffix says how (".sql" and the codec's
# suffix); custom and directory archives compress inside the archive and pg_restore reads them
# as they are.
_PLAIN_SUFFIXES = dict((name, ".sql" + codecs.get(name).suffix) for name in codecs.NAMES)
_ARCHIVE_SUFFIXES = {"custom": ".dump", "directory": ""}
# An encrypted stream adds its encryption's suffix (".sql.zst.age", ".dump.age"); a directory
# archive is never encrypted (pg_dump writes its files itself, outside our stream).
_ENCRYPTION_SUFFIXES = dict((name, codecs.ENCRYPTIONS[name].suffix) for name in codecs.ENCRYPTIONS)
_STREAM_SUFFIXES = set(_PLAIN_SUFFIXES.values()) | {_ARCHIVE_SUFFIXES["custom"]}
# Every suffix this collection writes, longest first (so ".sql.zst" wins over ".sql").
SUFFIXES = tuple(sorted(set(_PLAIN_SUFFIXES.values()) | set(_ARCHIVE_SUFFIXES.values())
                        | set(stream + extra for stream in _STREAM_SUFFIXES for extra in _ENCRYPTION_SUFFIXES.values()),
                        key=len, reverse=True))

# Names this collection writes (default template) and names of the earlier processes.
_OUR_NAME_RE = re.compile(
    r"^(?P<stem>(?P<prefix>.+)_backup_(?P<ts>\d{8}_\d{6}))"
    r"(?P<suffix>%s)$" % "|".join(re.escape(suffix) for suffix in SUFFIXES))
_LEGACY_CUSTOM_RE = re.compile(
    r"^(?P<stem>(?P<prefix>.+)_backup_(?P<ts>\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}))(?P<suffix>\.backup)$")


class NamingError(ValueError):
    pass


def backup_suffix(fmt, compression, encryption="none"):
    """The file suffix for a format, compression and encryption ('' for a directory archive)."""
    extra = "" if encryption in (None, "none") else _ENCRYPTION_SUFFIXES[encryption]
    if extra and fmt == "directory":
        raise NamingError("a directory archive cannot be encrypted: pg_dump writes its files itself, outside the "
                          "stream the encryption runs in; use format custom or plain")
    if fmt == "plain":
        return _PLAIN_SUFFIXES[compression] + extra
    if fmt in _ARCHIVE_SUFFIXES:
        return _ARCHIVE_SUFFIXES[fmt] + extra
    raise NamingError("unknown format %r" % (fmt,))


def safe_component(text):
    """Make a text usable inside a file name: letters, digits, '.', '_' and '-' only."""
    cleaned = "".join(ch if (ch.isalnum() or ch in "._-") else "_" for ch in str(text))
    cleaned = cleaned.lstrip(".")
    return cleaned or "_"


def render_name(template, database, when, host="localhost", suffix=""):
    """Render a backup name.

    ``template`` takes strftime codes (``%Y%m%d_%H%M%S``) and the placeholders ``{database}``
    and ``{host}``, which are made file-name safe first. ``when`` is the datetime whose codes are
    used (the caller decides UTC or local time). The result must be one plain path component.
    """
    if not template or "/" in template or "\x00" in template:
        raise NamingError("name_template must be a non-empty file name without '/': %r" % (template,))
    text = template.replace("{database}", safe_component(database).replace("%", "%%"))
    text = text.replace("{host}", safe_component(host).replace("%", "%%"))
    try:
        name = when.strftime(text) + suffix
    except ValueError as exc:
        raise NamingError("name_template %r is not a valid strftime pattern: %s" % (template, exc))
    if name in (".", "..") or name.startswith(".") or "/" in name or "\x00" in name or "\n" in name:
        raise NamingError("name_template %r renders the unsafe file name %r" % (template, name))
    if len(name.encode("utf-8")) + max(len(MANIFEST_SUFFIX), len(GLOBALS_SUFFIX)) > 255:
        raise NamingError("name_template %r renders a file name that is too long" % (template,))
    return name


def manifest_name(backup_name):
    return backup_name + MANIFEST_SUFFIX


def globals_name(backup_name):
    return backup_name + GLOBALS_SUFFIX


def now(timezone_name="utc"):
    """The current time for names: UTC (default) or the host's local time."""
    if timezone_name == "local":
        return datetime.datetime.now()
    return datetime.datetime.now(datetime.timezone.utc)


class BackupName(object):
    """What a file name tells: whether it is a backup, whose, when, and in which format."""

    def __init__(self, name, stem, prefix, timestamp, suffix, legacy):
        self.name = name
        self.stem = stem
        self.prefix = prefix
        self.timestamp = timestamp
        self.suffix = suffix
        self.legacy = legacy

    @property
    def encryption(self):
        """The encryption its suffix names, or ``none``."""
        for encryption, suffix in _ENCRYPTION_SUFFIXES.items():
            if self.suffix.endswith(suffix) and self.suffix[:-len(suffix)] in _STREAM_SUFFIXES:
                return encryption
        return "none"

    @property
    def _stream_suffix(self):
        """The suffix without the encryption's."""
        encryption = self.encryption
        return self.suffix if encryption == "none" else self.suffix[:-len(_ENCRYPTION_SUFFIXES[encryption])]

    @property
    def format(self):
        if self._stream_suffix in (".dump", ".backup"):
            return "custom"
        if self._stream_suffix == "":
            return "directory"
        return "plain"

    @property
    def compression(self):
        for compression, suffix in _PLAIN_SUFFIXES.items():
            if self._stream_suffix == suffix:
                return compression
        return None


def parse_backup_name(name):
    """Recognise a backup by its name, or return None for a file that is not a backup.

    Plain ``.sql`` names are the same for this collection and the earlier plain-SQL process;
    the manifest tells them apart. ``..._YYYY-MM-DD_HH-mm-ss.backup`` is the earlier custom one.
    """
    for pattern, stamp_format, legacy in ((_OUR_NAME_RE, "%Y%m%d_%H%M%S", False),
                                          (_LEGACY_CUSTOM_RE, "%Y-%m-%d_%H-%M-%S", True)):
        match = pattern.match(name)
        if match:
            break
    else:
        return None
    try:
        stamp = datetime.datetime.strptime(match.group("ts"), stamp_format)
    except ValueError:
        return None
    return BackupName(name, match.group("stem"), match.group("prefix"), stamp,
                      match.group("suffix"), legacy)
