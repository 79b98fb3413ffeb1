# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scheduled job's webhook notifier: the failure as a JSON POST (urllib; https verified
against the system's CAs, or http), with an optional bearer token read from a file only the job's
user can read, a bounded number of retries within notify_timeout, and no redirects followed (the
token goes to the configured URL only). Neither the token nor the URL's path or query (where
chat services keep their secret) is ever written to a message. Pure Python (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.version import COLLECTION_VERSION

RETRY_STATUS = (408, 425, 429, 500, 502, 503, 504)
FIRST_PAUSE = 1.0


class WebhookError(Exception):
    """The webhook cannot be called at all (settings, token file); no retry helps."""


def safe_url(url):
    """The URL as messages show it: scheme, host and port only."""
    parts = urllib.parse.urlsplit(url)
    return "%s://%s/..." % (parts.scheme, parts.hostname or "?") if parts.port is None else \
        "%s://%s:%d/..." % (parts.scheme, parts.hostname or "?", parts.port)


def check_url(url):
    parts = urllib.parse.urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookError("notify_webhook_url must be an http:// or https:// URL")
    if parts.username or parts.password:
        raise WebhookError("notify_webhook_url must not carry a user or password: use notify_webhook_token_file")


def read_token(path):
    """The first line of the token file, which must be the job user's own and 0600 (or stricter)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise WebhookError("cannot read the webhook token file %s: %s" % (path, exc.strerror))
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid():
            raise WebhookError("the webhook token file %s is not owned by the job's user" % path)
        if st.st_mode & 0o077:
            raise WebhookError("the webhook token file %s can be read by others (mode %04o): chmod 0600 it"
                               % (path, st.st_mode & 0o7777))
        with os.fdopen(fd, "rb", closefd=False) as handle:
            line = handle.readline(65536).decode("utf-8", "replace").strip()
    finally:
        os.close(fd)
    if not line or any(ord(c) < 0x21 or ord(c) == 0x7f for c in line):
        raise WebhookError("the webhook token file %s is empty or not one word" % path)
    return line


def payload(values, time_text):
    return dict(event="backup_failed", host=values["host"], database=values["database"], job=values["name"],
                unit=values["unit"], status=values["status"], message=values["message"], log=values["log"],
                time=time_text, source="lift-pg-backup")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # the 3xx answer is the result (an error): the token is never sent elsewhere


def post(url, body, token, timeout, retries, sleep=time.sleep, clock=time.monotonic):
    """POST ``body`` (bytes); None when the receiver answered 2xx, else what went wrong."""
    opener = urllib.request.build_opener(_NoRedirect(), urllib.request.HTTPSHandler(context=ssl.create_default_context()))
    headers = {"Content-Type": "application/json", "User-Agent": "lift-pg-backup/%s" % COLLECTION_VERSION}
    if token:
        headers["Authorization"] = "Bearer " + token
    deadline = clock() + timeout
    pause = FIRST_PAUSE
    problem = None
    for attempt in range(retries + 1):
        left = deadline - clock()
        if left <= 0:
            break
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with opener.open(request, timeout=left) as answer:
                answer.read(65536)
                return None
        except urllib.error.HTTPError as exc:
            problem = "HTTP %d %s" % (exc.code, exc.reason)
            exc.close()
            if exc.code not in RETRY_STATUS:
                return "webhook %s answered %s" % (safe_url(url), problem)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            problem = str(reason).replace(token, "***") if token else str(reason)
        if attempt < retries and deadline - clock() > pause:
            sleep(pause)
            pause *= 2
    return "webhook %s failed: %s (%s)" % (safe_url(url), problem or "no time left", "tried %d time%s" % (
        attempt + 1, "" if attempt == 0 else "s"))


def send_webhook(settings, values, time_text):
    """Post the failure to notify_webhook_url; None when it was taken, else what went wrong."""
    url = settings["notify_webhook_url"]
    try:
        check_url(url)
        token = read_token(settings["notify_webhook_token_file"]) if settings["notify_webhook_token_file"] else None
    except WebhookError as exc:
        return "webhook not called: %s" % exc
    body = json.dumps(payload(values, time_text), sort_keys=True).encode("utf-8")
    return post(url, body, token, settings["notify_timeout"], settings["notify_webhook_retries"])
