# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scheduled job's mail notifier: the failure mail (headers that no message text can add to,
a plain-text body) handed to the host's sendmail-compatible MTA (``sendmail -t -i``: the message
on stdin, the recipients in its To: header, never in argv). Pure Python (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import email.message
import email.policy
import email.utils
import re
import subprocess

# An address as the job accepts it in notify_mail_to / notify_mail_from: no white space, no
# control character, no display name, no leading "-" (it can never be read as an option).
ADDRESS_RE = re.compile(r"^[^\s@<>()\[\],;:\"\\-][^\s@<>()\[\],;:\"\\]*@[A-Za-z0-9.-]+$")
_UNSAFE_HEADER_TEXT = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")
SUBJECT_MAX = 160
MESSAGE_MAX = 20000


def check_address(address, what):
    """None when ``address`` is a plain mail address, else what is wrong with it."""
    if not isinstance(address, str) or not ADDRESS_RE.match(address):
        return "%s %r is not a plain mail address (user@host)" % (what, address)
    return None


def header_text(text, limit=SUBJECT_MAX):
    """``text`` as one header line: every control character (CR, LF, ...) and run of them a space."""
    text = _UNSAFE_HEADER_TEXT.sub(" ", text or "").strip()
    return text if len(text) <= limit else text[:limit - 3].rstrip() + "..."


def subject_of(values):
    return header_text("[lift-pg-backup] %s: backup job %s (database %s) %s"
                       % (values["host"], values["name"], values["database"], values["status"]))


def body_of(values, time_text):
    """The mail's text: one line per fact (their control characters made spaces), then the message."""
    message = values["message"] or ""
    if len(message) > MESSAGE_MAX:
        message = message[:MESSAGE_MAX] + "\n... (cut; the log has all of it)"
    keys = ("host", "database", "name", "unit", "status", "log")
    field = dict((key, header_text(values[key], 1000) or "-") for key in keys)
    lines = [
        "The scheduled backup job %s failed." % field["name"],
        "",
        "host:      %s" % field["host"],
        "database:  %s" % field["database"],
        "job:       %s" % field["name"],
        "unit:      %s" % field["unit"],
        "status:    %s" % field["status"],
        "time:      %s" % time_text,
        "log:       %s" % field["log"],
        "",
        "message:",
        message,
        "",
        "-- ",
        "lift-pg-backup (lift_simulator.postgresql); journalctl -u %s shows the run"
        % (field["unit"] if values["unit"] else "<unit>"),
    ]
    return "\n".join(lines) + "\n"


def build_message(values, recipients, sender, time_text):
    """The failure mail as bytes (CRLF line ends are the MTA's business: sendmail -t takes LF)."""
    msg = email.message.EmailMessage(policy=email.policy.SMTP.clone(linesep="\n"))
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = subject_of(values)
    msg["Date"] = email.utils.formatdate(localtime=False)
    msg["Message-ID"] = email.utils.make_msgid(domain=header_text(values["host"], 200).replace(" ", "") or None)
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Lift-Backup-Job"] = header_text(values["name"])
    msg["X-Lift-Backup-Status"] = header_text(values["status"])
    msg.set_content(body_of(values, time_text), subtype="plain", charset="utf-8", cte="quoted-printable")
    return msg.as_bytes()


def send_mail(settings, values, time_text, default_sender):
    """Hand the mail to notify_mail_command; None when it took it, else what went wrong."""
    recipients = settings["notify_mail_to"]
    sender = settings["notify_mail_from"] or default_sender
    for problem in [check_address(a, "notify_mail_to") for a in recipients] + [check_address(sender, "notify_mail_from")]:
        if problem:
            return "mail not sent: %s" % problem
    argv = list(settings["notify_mail_command"])
    if not argv:
        return "mail not sent: notify_mail_command is empty"
    data = build_message(values, recipients, sender, time_text)
    try:
        proc = subprocess.run(argv, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=settings["notify_timeout"], check=False, cwd="/")
    except subprocess.TimeoutExpired:
        return "mail not sent: %s took longer than %d s" % (argv[0], settings["notify_timeout"])
    except (OSError, subprocess.SubprocessError) as exc:
        return "mail not sent: cannot run %s: %s" % (argv[0], exc)
    if proc.returncode != 0:
        said = header_text(proc.stderr.decode("utf-8", "replace"), 400)
        return "mail not sent: %s exited with %d%s" % (argv[0], proc.returncode, (": " + said) if said else "")
    return None
