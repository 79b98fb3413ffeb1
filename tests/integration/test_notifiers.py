# -*- coding: utf-8 -*-
"""The scheduled job's ready-made notifiers (job/notify_mail.py, job/notify_webhook.py) end to end.

A real failed run of the installed job (tests/lib/lift_job.py: the command as the role lays it
out, run as postgres with the system Python; nothing listens where it connects), then the
command's own ``--notify-failure`` as the OnFailure unit runs it. The mail goes through the
host's MTA (/usr/sbin/sendmail from Debian's msmtp-mta, pointed by its -C option at a private
configuration) to a real SMTP server (aiosmtpd) the test starts on 127.0.0.1; the webhook goes to
an HTTP receiver (http.server) the test starts on 127.0.0.1. While the receiver holds a request,
it reads every process's argv and environment: the bearer token must be in none of them.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import email
import email.policy
import http.server
import json
import os
import shutil
import socket
import tempfile
import threading
import types

import pytest

from pglab import free_port
from lift_job import Job, chown_postgres, make_layout

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")

SENDMAIL = "/usr/sbin/sendmail"
UNIT = "lift-pg-backup-it_job.service"
TOKEN = "tok-3f9c1e7a5b2d4c6e8a0b1c2d3e4f5a6b"
pytestmark = pytest.mark.skipif(not os.path.exists(SENDMAIL) or not os.path.realpath(SENDMAIL).endswith("msmtp"),
                                reason="needs msmtp-mta (/usr/sbin/sendmail): make host")


@pytest.fixture(scope="module")
def layout():
    base = tempfile.mkdtemp(prefix="lift-it-notify-", dir="/tmp")
    yield make_layout(base)
    shutil.rmtree(base, ignore_errors=True)


# --- the receivers ----------------------------------------------------------------------------

def processes_holding(secret):
    """The pids whose argv or environment contains ``secret`` (all processes, as root reads them)."""
    found = []
    needle = secret.encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        for part in ("cmdline", "environ"):
            try:
                with open("/proc/%s/%s" % (pid, part), "rb") as handle:
                    if needle in handle.read():
                        found.append((int(pid), part))
            except OSError:
                pass
    return found


class MailSink(object):
    """aiosmtpd's handler: every message as the server received it (envelope and data)."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.messages.append(dict(mail_from=envelope.mail_from, rcpt_tos=list(envelope.rcpt_tos),
                                  data=envelope.original_content or envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_server():
    sink = MailSink()
    controller = aiosmtpd_controller.Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, sink
    finally:
        controller.stop()


class Receiver(object):
    """An HTTP server on 127.0.0.1 that records each POST and answers with ``status``."""

    def __init__(self, status=204):
        self.requests = []
        self.status = status
        # What the notifier's argv has: the scan must see that process, or it proves nothing.
        self.canary = "--notify-failure\0--unit\0" + UNIT
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                # The notifier waits for this answer: its process (and any child) is alive now.
                receiver.requests.append(dict(path=self.path, headers=dict(self.headers.items()), body=body,
                                              holders=processes_holding(TOKEN),
                                              seen=processes_holding(receiver.canary)))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/hooks/dba/s3cr3t-path?key=abc" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


# --- the set-up -------------------------------------------------------------------------------

def private_file(path, text):
    with open(path, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)
    chown_postgres(path)
    return path


def failed_job(layout, workdir, smtp_port, **settings):
    """A job whose run really failed (no server where it connects), with the mail notifier going
    through the host's sendmail (msmtp with a private configuration) to the test's SMTP server."""
    nowhere = types.SimpleNamespace(socket_dir=os.path.join(workdir, "no-server"), port=free_port())
    os.mkdir(nowhere.socket_dir)
    msmtprc = private_file(os.path.join(workdir, "msmtprc"), (
        "defaults\nauth off\ntls off\n\naccount default\nhost 127.0.0.1\nport %d\nfrom envelope@example.test\n"
        % smtp_port))
    token_file = private_file(os.path.join(workdir, "webhook-token"), TOKEN + "\n")
    config = dict(notify_mail_to=["dba@example.test", "oncall@example.test"], notify_mail_from="backup@example.test",
                  notify_mail_command=[SENDMAIL, "-C", msmtprc, "-t", "-i"], notify_webhook_token_file=token_file,
                  notify_timeout=20)
    config.update(settings)
    job = Job(layout, workdir, nowhere, **config)
    run = job.run()
    assert run.returncode == 1, run.stdout + run.stderr
    status = job.status()
    assert status["status"] == "failed" and status["stage"] == "backup"
    return job, status


def notify(job):
    return job.run("--notify-failure", "--unit", UNIT)


def parsed(mail):
    return email.message_from_bytes(mail["data"], policy=email.policy.default)


def assert_no_token_anywhere(job, run, receiver):
    assert TOKEN not in run.stdout + run.stderr
    for request in receiver.requests:
        assert request["holders"] == [], request["holders"]
        assert request["seen"] and all(part == "cmdline" for _pid, part in request["seen"]), request["seen"]
    with open(job.config) as handle:
        assert TOKEN not in handle.read()
    for path in [os.path.join(job.logs, n) for n in job.log_files()] + [
            os.path.join(job.state_dir, n) for n in os.listdir(job.state_dir)]:
        with open(path) as handle:
            assert TOKEN not in handle.read(), path


# --- tests ------------------------------------------------------------------------------------

def test_mail_and_webhook_both_report_the_failure(layout, workdir, smtp_server):
    controller, sink = smtp_server
    with Receiver(204) as receiver:
        job, status = failed_job(layout, workdir, controller.port, notify_webhook_url=receiver.url)
        run = notify(job)
        assert run.returncode == 0, run.stdout + run.stderr
    host = socket.getfqdn()
    # The mail: through sendmail -t (recipients from the header), one message to both.
    assert len(sink.messages) == 1
    mail = sink.messages[0]
    assert sorted(mail["rcpt_tos"]) == ["dba@example.test", "oncall@example.test"]
    message = parsed(mail)
    assert message["From"] == "backup@example.test"
    assert message["To"] == "dba@example.test, oncall@example.test"
    assert message["Subject"] == "[lift-pg-backup] %s: backup job it_job (database lift_simulator) failed" % host
    assert message["Auto-Submitted"] == "auto-generated"
    body = message.get_content()
    for text in ("host:      %s" % host, "database:  lift_simulator", "job:       it_job", "unit:      %s" % UNIT,
                 "status:    failed", "log:       %s" % status["log_path"], status["message"]):
        assert text in body, text
    assert os.path.isfile(status["log_path"])
    # The webhook: one JSON POST with the same facts and the bearer token from the file.
    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    assert request["path"] == "/hooks/dba/s3cr3t-path?key=abc"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["Authorization"] == "Bearer " + TOKEN
    document = json.loads(request["body"])
    assert document == dict(event="backup_failed", host=host, database="lift_simulator", job="it_job", unit=UNIT,
                            status="failed", message=status["message"], log=status["log_path"],
                            time=document["time"], source="lift-pg-backup")
    assert_no_token_anywhere(job, run, receiver)


def test_a_webhook_that_fails_does_not_stop_the_mail(layout, workdir, smtp_server):
    controller, sink = smtp_server
    with Receiver(503) as receiver:
        job, _status = failed_job(layout, workdir, controller.port, notify_webhook_url=receiver.url,
                                  notify_webhook_retries=2)
        run = notify(job)
    assert run.returncode == 1, run.stdout + run.stderr
    port = receiver.server.server_address[1]
    assert "webhook http://127.0.0.1:%d/... failed: HTTP 503" % port in run.stderr
    assert "tried 3 times" in run.stderr
    assert len(receiver.requests) == 3  # the first attempt and two retries, no more
    assert "s3cr3t-path" not in run.stdout + run.stderr and "key=abc" not in run.stdout + run.stderr
    assert len(sink.messages) == 1 and parsed(sink.messages[0])["To"] == "dba@example.test, oncall@example.test"
    assert_no_token_anywhere(job, run, receiver)

    # Nothing listens at all: refused at once, the mail still goes, the exit status says so.
    job.write_config(notify_webhook_url="http://127.0.0.1:%d/hook" % free_port(), notify_webhook_retries=0)
    run = notify(job)
    assert run.returncode == 1 and "Connection refused" in run.stderr, run.stderr
    assert len(sink.messages) == 2


def test_a_failing_mail_does_not_stop_the_webhook(layout, workdir, smtp_server):
    controller, sink = smtp_server
    with Receiver(200) as receiver:
        job, _status = failed_job(layout, workdir, controller.port, notify_webhook_url=receiver.url)
        job.write_config(notify_mail_command=[SENDMAIL, "-C", os.path.join(workdir, "missing-msmtprc"), "-t", "-i"])
        run = notify(job)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "mail not sent: %s exited with" % SENDMAIL in run.stderr
    assert sink.messages == [] and len(receiver.requests) == 1


def test_line_breaks_in_the_message_cannot_add_headers_or_recipients(layout, workdir, smtp_server):
    """The failed run's message carries the database name, chosen here to smuggle headers in
    (CR, Unicode line separators: the job's settings refuse LF) and its own lines."""
    controller, sink = smtp_server
    hostile = "lift\rBcc: evil@example.test\rSubject: all good\u2028X-Injected: yes\x85To: evil2@example.test"
    with Receiver(204) as receiver:
        job, status = failed_job(layout, workdir, controller.port, notify_webhook_url=receiver.url, database=hostile)
        assert "Bcc: evil@example.test" in status["message"]
        run = notify(job)
        assert run.returncode == 0, run.stdout + run.stderr
    assert len(sink.messages) == 1
    mail = sink.messages[0]
    assert sorted(mail["rcpt_tos"]) == ["dba@example.test", "oncall@example.test"]
    message = parsed(mail)
    assert message.get_all("Bcc") is None and message.get_all("X-Injected") is None
    assert message.get_all("To") == ["dba@example.test, oncall@example.test"]
    subjects = message.get_all("Subject")
    assert len(subjects) == 1 and "\r" not in subjects[0] and "\n" not in subjects[0]
    assert subjects[0].startswith("[lift-pg-backup] ") and "Bcc: evil@example.test" in subjects[0]
    # The header block of the raw message: each line a header of ours (or a folded continuation).
    head = mail["data"].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    names = [line.split(b":", 1)[0].strip().lower() for line in head.replace(b"\r\n", b"\n").split(b"\n")
             if line and not line[:1].isspace()]
    assert set(names) <= {b"from", b"to", b"subject", b"date", b"message-id", b"auto-submitted",
                          b"x-lift-backup-job", b"x-lift-backup-status", b"content-type",
                          b"content-transfer-encoding", b"mime-version", b"received"}, names
    # The body's fields are one line each; the message keeps its text; the JSON has it unchanged.
    body = message.get_content().replace("\r\n", "\n")
    assert "database:  lift Bcc: evil@example.test Subject: all good X-Injected: yes To: evil2@example.test\n" in body
    assert "Bcc: evil@example.test" in body.split("message:\n", 1)[1]
    assert json.loads(receiver.requests[0]["body"])["message"] == status["message"]


def test_a_token_file_others_can_read_is_refused(layout, workdir, smtp_server):
    controller, sink = smtp_server
    with Receiver(204) as receiver:
        job, _status = failed_job(layout, workdir, controller.port, notify_webhook_url=receiver.url)
        os.chmod(job.settings["notify_webhook_token_file"], 0o644)
        run = notify(job)
    assert run.returncode == 1
    assert "webhook not called: the webhook token file" in run.stderr and "chmod 0600" in run.stderr
    assert receiver.requests == [] and len(sink.messages) == 1
    assert TOKEN not in run.stdout + run.stderr
