# -*- coding: utf-8 -*-
"""The job's mail and webhook notifiers (job/notify_mail.py, job/notify_webhook.py) and how
job/notify.py runs them: header safety, the token file's checks, bounded retries against a real
HTTP server on 127.0.0.1, and every notifier running when one fails."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import email
import email.policy
import http.server
import io
import json
import os
import sys
import threading

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import notify, notify_mail, notify_webhook
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.presentation import Reporter
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.settings import SETTING_DEFAULTS

VALUES = dict(log="/b/logs/x.log", unit="lift-pg-backup-db.service", name="db", database="db", host="h.example",
              status="failed", message="boom\nsecond line")


def settings(**changes):
    result = dict(SETTING_DEFAULTS, name="db", database="db", notify_timeout=10)
    result.update(changes)
    return result


def test_header_text_is_one_line_and_bounded():
    assert notify_mail.header_text("a\r\nBcc: x\u2028y\x85z\x00") == "a Bcc: x y z"
    assert len(notify_mail.header_text("x" * 500)) == notify_mail.SUBJECT_MAX


@pytest.mark.parametrize("address", ["a@b", "dba.team+backup@example.org"])
def test_plain_addresses_pass(address):
    assert notify_mail.check_address(address, "to") is None


@pytest.mark.parametrize("address", ["", "a", "-oQ/tmp@x", "a@b\r\nBcc: c@d", "A <a@b>", "a@b,c@d", "a b@c", None])
def test_anything_else_is_refused(address):
    assert "is not a plain mail address" in notify_mail.check_address(address, "to")


def test_the_message_has_our_headers_only():
    hostile = dict(VALUES, database="db\rBcc: evil@x\u2028Subject: ok", message="m\r\nBcc: evil@x\r\n\r\nbody")
    data = notify_mail.build_message(hostile, ["a@b"], "f@g", "2026-12-01T08:00:00Z")
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert message.get_all("Bcc") is None and len(message.get_all("Subject")) == 1
    assert message["Subject"] == "[lift-pg-backup] h.example: backup job db (database db Bcc: evil@x Subject: ok) failed"
    assert "database:  db Bcc: evil@x Subject: ok\n" in message.get_content()
    assert "log:       /b/logs/x.log" in message.get_content()


def test_sendmail_gets_the_message_on_stdin_and_no_recipient_in_argv(tmp_path):
    out = tmp_path / "mail"
    args = tmp_path / "args"
    command = [sys.executable, "-c", "import sys; open(%r, 'wb').write(sys.stdin.buffer.read()); "
               "open(%r, 'w').write(repr(sys.argv[1:]))" % (str(out), str(args)), "-t", "-i"]
    assert notify_mail.send_mail(settings(notify_mail_to=["a@b"], notify_mail_command=command), VALUES, "t",
                                 "job@h") is None
    assert args.read_text() == "['-t', '-i']"
    message = email.message_from_bytes(out.read_bytes(), policy=email.policy.default)
    assert message["To"] == "a@b" and message["From"] == "job@h"
    failing = settings(notify_mail_to=["a@b"], notify_mail_command=["/bin/sh", "-c", "echo no relay >&2; exit 75"])
    assert notify_mail.send_mail(failing, VALUES, "t", "job@h") == "mail not sent: /bin/sh exited with 75: no relay"
    assert "not a plain mail address" in notify_mail.send_mail(settings(notify_mail_to=["a@b\nc"]), VALUES, "t", "j@h")


def test_urls_and_messages():
    assert notify_webhook.safe_url("https://chat.example/hooks/T0/B0/secret?x=1") == "https://chat.example/..."
    assert notify_webhook.safe_url("http://127.0.0.1:8080/p") == "http://127.0.0.1:8080/..."
    for url in ("ftp://x/", "file:///etc/passwd", "https://", "https://u:p@x/"):
        with pytest.raises(notify_webhook.WebhookError):
            notify_webhook.check_url(url)


def test_the_token_file_must_be_private_and_one_word(tmp_path):
    path = tmp_path / "token"
    path.write_text("tok-1\n")
    os.chmod(str(path), 0o600)
    assert notify_webhook.read_token(str(path)) == "tok-1"
    os.chmod(str(path), 0o640)
    with pytest.raises(notify_webhook.WebhookError, match="can be read by others"):
        notify_webhook.read_token(str(path))
    os.chmod(str(path), 0o600)
    path.write_text("two words\n")
    with pytest.raises(notify_webhook.WebhookError, match="not one word"):
        notify_webhook.read_token(str(path))
    link = tmp_path / "link"
    link.symlink_to(path)
    with pytest.raises(notify_webhook.WebhookError, match="cannot read"):
        notify_webhook.read_token(str(link))


class Answers(object):
    """A real HTTP server on 127.0.0.1 answering POSTs with the given codes in turn."""

    def __init__(self, codes):
        self.codes = list(codes)
        self.seen = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                outer.seen.append((self.headers.get("Authorization"), self.rfile.read(int(self.headers["Content-Length"]))))
                code = outer.codes.pop(0) if outer.codes else 200
                self.send_response(code)
                if code in (301, 302, 307, 308):
                    self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/hook" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def answers():
    made = []

    def make(codes):
        made.append(Answers(codes))
        return made[-1]
    yield make
    for server in made:
        server.close()


def test_retries_are_bounded_and_only_for_passing_trouble(answers):
    pauses = []
    server = answers([503, 502, 200])
    assert notify_webhook.post(server.url, b"{}", "tok", 30, 2, sleep=pauses.append) is None
    assert len(server.seen) == 3 and pauses == [1.0, 2.0] and server.seen[0][0] == "Bearer tok"
    server = answers([503] * 10)
    problem = notify_webhook.post(server.url, b"{}", None, 30, 1, sleep=pauses.append)
    assert problem.endswith("failed: HTTP 503 Service Unavailable (tried 2 times)") and len(server.seen) == 2
    assert server.seen[0][0] is None
    server = answers([400, 200])
    assert "answered HTTP 400" in notify_webhook.post(server.url, b"{}", "tok", 30, 3, sleep=pauses.append)
    assert len(server.seen) == 1


def test_redirects_are_not_followed(answers):
    server = answers([302])
    assert "answered HTTP 302" in notify_webhook.post(server.url, b"{}", "tok", 30, 2, sleep=lambda s: None)
    assert len(server.seen) == 1


def test_every_notifier_runs_and_any_failure_fails_the_notification(answers, tmp_path):
    marker = tmp_path / "ran"
    server = answers([200, 200])
    both = settings(notify_command=["/bin/sh", "-c", 'echo "$LIFT_BACKUP_STATUS" > "$0"', str(marker)],
                    notify_mail_to=["a@b"], notify_mail_command=["/bin/false"], notify_webhook_url=server.url)
    assert notify.configured_notifiers(both) == ["command", "mail", "webhook"]
    err = io.StringIO()
    code = notify.run_notify(both, {"status": "failed", "message": "m", "log_path": "/l"}, "u.service",
                             Reporter(False, io.StringIO(), err))
    assert code == 1 and "mail not sent: /bin/false exited with 1" in err.getvalue()
    assert marker.read_text() == "failed\n" and len(server.seen) == 1
    assert json.loads(server.seen[0][1])["unit"] == "u.service"
    both["notify_mail_command"] = ["/bin/true"]
    assert notify.run_notify(both, None, "u", Reporter(False, io.StringIO(), io.StringIO())) == 0
    err = io.StringIO()
    assert notify.run_notify(settings(), None, "u", Reporter(False, io.StringIO(), err)) == 0
    assert "no notifier configured" in err.getvalue()
