# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""age recipients and the header of an age file, read without any key.

An age file starts with a text header (https://age-encryption.org/v1): the version line, one
stanza per recipient (``-> <type> <arguments>`` and a base64 body), and ``--- <mac>``. An X25519
stanza carries only an ephemeral share, so it tells how many X25519 recipients there are, not
which; an SSH stanza (``ssh-ed25519``, ``ssh-rsa``) names its key by a tag, the first four bytes
of the SHA-256 of the public key. That is what a check without the identity can compare with the
recipients the manifest recorded. Recipients are public keys: ``age1...`` or an OpenSSH public
key line. Pure Python.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import hashlib
import re

from ansible_collections.lift_simulator.postgresql.plugins.module_utils import codecs

VERSION_LINE = codecs.ENCRYPTIONS["age"].magic.rstrip(b"\n")
MAX_HEADER = 64 * 1024
X25519 = "X25519"
SSH_TYPES = ("ssh-ed25519", "ssh-rsa")
_AGE_RECIPIENT_RE = re.compile(r"^age1[02-9ac-hj-np-z]{58}$")
_B64_RE = re.compile(rb"^[A-Za-z0-9+/]*$")


class AgeHeaderError(ValueError):
    pass


def _b64_nopad(data):
    return base64.b64encode(data).decode("ascii").rstrip("=")


def looks_like_identity(text):
    """Whether ``text`` holds a private key (an age identity or a PEM/OpenSSH private key)."""
    return "AGE-SECRET-KEY-" in text.upper() or "PRIVATE KEY" in text


def describe_recipient(text):
    """What the manifest records of a recipient: its type, and the public key (X25519) or the
    SSH fingerprint and age's stanza tag (SSH). Raises AgeHeaderError for what is neither."""
    text = text.strip()
    if _AGE_RECIPIENT_RE.match(text):
        return {"type": X25519, "recipient": text}
    parts = text.split()
    if len(parts) >= 2 and parts[0] in SSH_TYPES:
        try:
            blob = base64.b64decode(parts[1], validate=True)
        except (binascii.Error, ValueError):
            raise AgeHeaderError("the SSH public key %s... is not valid base64" % parts[1][:16])
        digest = hashlib.sha256(blob).digest()
        return {"type": parts[0], "fingerprint": "SHA256:" + _b64_nopad(digest), "tag": _b64_nopad(digest[:4]),
                "recipient": "%s %s" % (parts[0], parts[1])}
    shown = "a private key" if looks_like_identity(text) else repr(text[:24] + ("..." if len(text) > 24 else ""))
    raise AgeHeaderError("%s is not an age recipient (age1...) or an SSH public key (ssh-ed25519 or ssh-rsa); "
                         "identities (private keys) never belong in a recipient list" % shown)


def made_for(recipients):
    """The recipients a manifest recorded, as an error message names them (public keys and SSH
    fingerprints only)."""
    return ", ".join(r.get("fingerprint") or r.get("recipient", "?") for r in recipients or []) \
        or "recipients the manifest does not name"


def same_recipients(recorded, wanted):
    """Whether two lists of recipient descriptions name the same keys (in any order)."""
    return sorted(r.get("recipient") for r in recorded or []) == sorted(r.get("recipient") for r in wanted or [])


def read_stanzas(head):
    """The stanzas of the header at the start of ``head`` (bytes): a list of (type, arguments).
    Raises AgeHeaderError when the header is not well formed."""
    lines = head[:MAX_HEADER].split(b"\n")
    if not lines or lines[0] != VERSION_LINE:
        raise AgeHeaderError("it does not start with the age version line")
    stanzas, index = [], 1
    while index < len(lines) - 1:
        line = lines[index]
        if line.startswith(b"--- "):
            if not _B64_RE.match(line[4:]) or len(line[4:]) != 43:
                raise AgeHeaderError("the header's MAC line is malformed")
            if not stanzas:
                raise AgeHeaderError("the header has no recipient stanza")
            return stanzas
        if not line.startswith(b"-> "):
            raise AgeHeaderError("line %d of the header is neither a stanza nor the MAC line" % (index + 1))
        fields = line[3:].split(b" ")
        if not fields or not fields[0] or any(not f for f in fields):
            raise AgeHeaderError("line %d of the header is a malformed stanza" % (index + 1))
        index += 1
        while True:  # the body: base64 lines of 64 characters, the last one shorter
            if index >= len(lines) - 1:
                raise AgeHeaderError("the header is cut short")
            body = lines[index]
            if not _B64_RE.match(body) or len(body) > 64:
                raise AgeHeaderError("line %d of the header is not a stanza body" % (index + 1))
            index += 1
            if len(body) < 64:
                break
        stanzas.append((fields[0].decode("ascii", "replace"), [f.decode("ascii", "replace") for f in fields[1:]]))
    raise AgeHeaderError("the header has no MAC line (cut short, or not an age file)")


def header_problems(stanzas, recipients):
    """How the header's stanzas disagree with the recipients a manifest recorded (a list of texts,
    empty when they agree as far as a header can tell)."""
    problems = []
    expected_x25519 = sum(1 for r in recipients if r.get("type") == X25519)
    found_x25519 = sum(1 for kind, _args in stanzas if kind == X25519)
    if found_x25519 != expected_x25519:
        problems.append("%d X25519 recipient stanza(s), the manifest lists %d" % (found_x25519, expected_x25519))
    found_tags = sorted((kind, args[0]) for kind, args in stanzas if kind in SSH_TYPES and args)
    expected_tags = sorted((r["type"], r.get("tag")) for r in recipients if r.get("type") in SSH_TYPES)
    if found_tags != expected_tags:
        problems.append("SSH recipient stanzas %s, the manifest lists %s" % (
            ", ".join("%s %s" % tag for tag in found_tags) or "none",
            ", ".join("%s %s" % tag for tag in expected_tags) or "none"))
    others = sorted(set(kind for kind, _args in stanzas if kind != X25519 and kind not in SSH_TYPES
                        and not kind.endswith("-grease")))
    if others:
        problems.append("stanzas of types no recipient in the manifest has: %s" % ", ".join(others))
    return problems
