# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""WAL segments as a recovery sees them: names, LSNs, timelines, and the gaps in a repository.

A WAL segment file is named TTTTTTTTXXXXXXXXYYYYYYYY: the timeline, then the segment number split
in two (the "log" and the segment within it; 256 segments per log with the default 16 MiB
segments). ``parse_listing`` reads what ``pgbackrest repo-ls archive/<stanza> --recurse
--output=json`` prints into the segments and history files of each archive id; ``stopped_short``
says which segment a recovery that stopped at a given one could not get although the repository
holds later WAL of the same timeline. Pure Python (no I/O, no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024

SEGMENT_RE = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$")
# In the repository: <segment>-<sha1>[.<compression suffix>]. Partial segments (<segment>.partial-...)
# and backup labels (<segment>.<offset>.backup) are not segments of the chain.
_REPO_SEGMENT_RE = re.compile(r"(?:^|/)([0-9A-F]{24})-[0-9a-f]{40}(?:\.[a-z0-9]+)?$")
_REPO_HISTORY_RE = re.compile(r"(?:^|/)([0-9A-F]{8})\.history$")
_LSN_RE = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")


class WalError(ValueError):
    pass


def segments_per_log(segment_size=DEFAULT_SEGMENT_SIZE):
    return 0x100000000 // segment_size


def parse_segment(name, segment_size=DEFAULT_SEGMENT_SIZE):
    """(timeline, segment number) of a segment file name."""
    match = SEGMENT_RE.match(name or "")
    if not match:
        raise WalError("not a WAL segment name: %r" % (name,))
    timeline, log, seg = (int(part, 16) for part in match.groups())
    if seg >= segments_per_log(segment_size):
        raise WalError("not a WAL segment name for %d-byte segments: %s" % (segment_size, name))
    return timeline, log * segments_per_log(segment_size) + seg


def segment_name(timeline, number, segment_size=DEFAULT_SEGMENT_SIZE):
    per_log = segments_per_log(segment_size)
    return "%08X%08X%08X" % (timeline, number // per_log, number % per_log)


def parse_lsn(text):
    """An LSN as PostgreSQL writes it (``0/40296A8``) as an integer."""
    match = _LSN_RE.match((text or "").strip())
    if not match:
        raise WalError("not an LSN: %r" % (text,))
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def segment_of_lsn(lsn, timeline, segment_size=DEFAULT_SEGMENT_SIZE):
    """The name of the segment that holds ``lsn`` (text or integer) on ``timeline``."""
    value = parse_lsn(lsn) if not isinstance(lsn, int) else lsn
    return segment_name(timeline, value // segment_size, segment_size)


class Archive(object):
    """The WAL of one archive id (``15-1``) in a repository: segment numbers per timeline, and the
    timelines that have a history file."""

    def __init__(self, archive_id, segments=None, histories=None):
        self.archive_id = archive_id
        self.segments = dict((tl, set(numbers)) for tl, numbers in (segments or {}).items())
        self.histories = set(histories or ())

    def newest(self, segment_size=DEFAULT_SEGMENT_SIZE):
        """The newest segment's name (highest timeline, then highest number), or None."""
        timelines = [tl for tl, numbers in self.segments.items() if numbers]
        if not timelines:
            return None
        timeline = max(timelines)
        return segment_name(timeline, max(self.segments[timeline]), segment_size)

    def has(self, name, segment_size=DEFAULT_SEGMENT_SIZE):
        timeline, number = parse_segment(name, segment_size)
        return number in self.segments.get(timeline, ())

    def ranges(self, timeline, segment_size=DEFAULT_SEGMENT_SIZE):
        """The unbroken runs of segments of one timeline, as (first name, last name), oldest first."""
        return [(segment_name(timeline, first, segment_size), segment_name(timeline, last, segment_size))
                for first, last in runs(self.segments.get(timeline, ()))]

    def to_dict(self):
        """JSON-friendly: {archive_id, timelines: {"1": [[first, last], ...]}, histories}, ranges of numbers."""
        return {"archive_id": self.archive_id,
                "timelines": dict(("%d" % tl, [list(run) for run in runs(numbers)])
                                  for tl, numbers in sorted(self.segments.items())),
                "histories": sorted(self.histories)}

    @classmethod
    def from_dict(cls, data):
        segments = {}
        for timeline, ranges in (data.get("timelines") or {}).items():
            numbers = set()
            for first, last in ranges:
                numbers.update(range(int(first), int(last) + 1))
            segments[int(timeline)] = numbers
        return cls(data.get("archive_id"), segments, [int(tl) for tl in data.get("histories") or ()])


def runs(numbers):
    """Sorted integers as [(first, last), ...] unbroken runs."""
    found = []
    for number in sorted(set(numbers)):
        if found and number == found[-1][1] + 1:
            found[-1] = (found[-1][0], number)
        else:
            found.append((number, number))
    return found


def parse_listing(listing, archive_id, segment_size=DEFAULT_SEGMENT_SIZE):
    """The Archive of ``archive_id`` from repo-ls's JSON (a dict of relative path -> entry) of
    ``archive/<stanza>`` listed recursively. Entries of other archive ids are ignored."""
    segments = {}
    histories = set()
    prefix = archive_id + "/"
    for path, entry in (listing or {}).items():
        if not path.startswith(prefix) or (isinstance(entry, dict) and entry.get("type") not in (None, "file")):
            continue
        rest = path[len(prefix):]
        match = _REPO_SEGMENT_RE.search(rest)
        if match and "/" in rest:
            try:
                timeline, number = parse_segment(match.group(1), segment_size)
            except WalError:
                continue
            segments.setdefault(timeline, set()).add(number)
            continue
        match = _REPO_HISTORY_RE.search(rest)
        if match and "/" not in rest:
            histories.add(int(match.group(1), 16))
    return Archive(archive_id, segments, histories)


def stopped_short(archive, last_restored, segment_size=DEFAULT_SEGMENT_SIZE):
    """Whether a recovery whose last restored segment is ``last_restored`` stopped before the end
    of its timeline's WAL in ``archive``: None when the archive holds no later segment of that
    timeline; else (the next segment's name, whether the archive lists it). Listed, the segment is
    there but could not be read (corrupt, undecryptable); not listed, it is missing."""
    timeline, number = parse_segment(last_restored, segment_size)
    numbers = archive.segments.get(timeline, set())
    if not any(n > number for n in numbers):
        return None
    return segment_name(timeline, number + 1, segment_size), (number + 1) in numbers


def later_timelines(archive, timeline):
    """Timelines newer than ``timeline`` that the archive holds WAL or a history file of."""
    return sorted(tl for tl in set(archive.segments) | archive.histories if tl > timeline)
