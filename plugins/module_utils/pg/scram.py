# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SCRAM-SHA-256 password verifiers (RFC 5802, RFC 7677) as PostgreSQL stores them.

Setting a password as its verifier means the password itself never reaches the server, so no
server log (log_statement = ddl, log_min_duration_statement...) can ever hold it. ``for_password``
keeps the stored verifier when it already belongs to the password (PostgreSQL salts each one at
random, so a new verifier would look like a change on every run). Pure Python.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import hashlib
import hmac
import os
import re

_VERIFIER_RE = re.compile(r"^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$")
ITERATIONS = 4096


def _b64(data):
    return base64.b64encode(data).decode("ascii")


def verifier(password, salt=None, iterations=ITERATIONS):
    """The verifier PostgreSQL stores for ``password`` (a new random salt unless one is given)."""
    salt = salt if salt is not None else os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    stored_key = hashlib.sha256(hmac.new(salted, b"Client Key", hashlib.sha256).digest()).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return "SCRAM-SHA-256$%d:%s$%s:%s" % (iterations, _b64(salt), _b64(stored_key), _b64(server_key))


def matches(stored, password):
    """Whether the verifier ``stored`` belongs to ``password``."""
    match = _VERIFIER_RE.match(stored or "")
    if not match:
        return False
    try:
        salt = base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(verifier(password, salt, int(match.group(1))), stored)


def for_password(password, stored=None):
    """``stored`` when it is already the verifier of ``password``, else a new verifier."""
    if stored and matches(stored, password):
        return stored
    return verifier(password)
