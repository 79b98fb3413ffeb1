# -*- coding: utf-8 -*-
"""molecule schedule: start a unit (systemctl start --no-block) and read the argv and the
environment of every process while its run lasts (every 20 ms, until the run it started has ended),
to show that no secret of the off-site targets file ever appears in them.

    python3 watch_run.py UNIT TARGETS_FILE

The secrets are read here, as root, from TARGETS_FILE (each line of each private key, the S3
keys); they are never passed in argv. Prints JSON: the samples taken, how often the job's own
processes were seen and their environment read (the check could see a secret there), the
processes (their argv[0]) in which a secret was found, how many secret lines were looked for, and
the unit's result.
"""

import json
import os
import subprocess
import sys
import time

JOB = b"/usr/local/sbin/lift-pg-backup"


def show(unit, prop):
    return subprocess.run(["systemctl", "show", "--property=" + prop, "--value", unit],
                          check=True, capture_output=True, text=True).stdout.strip()


def secrets_of(path):
    with open(path) as handle:
        targets = json.load(handle)
    found = []
    for target in targets:
        for key in ("private_key", "access_key", "secret_key", "session_token"):
            for line in (target.get(key) or "").splitlines():
                line = line.strip()
                if line and not line.startswith("-----"):
                    found.append(line.encode())
    return found


def read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def main():
    unit, targets_file = sys.argv[1], sys.argv[2]
    secrets = secrets_of(targets_file)
    before = show(unit, "ExecMainStartTimestampMonotonic")
    subprocess.run(["systemctl", "start", "--no-block", unit], check=True)
    samples = job_seen = environ_read = 0
    leaks = set()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        started, state = show(unit, "ExecMainStartTimestampMonotonic"), show(unit, "ActiveState")
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            cmdline = read("/proc/%s/cmdline" % pid)
            if cmdline is None:
                continue
            environ = read("/proc/%s/environ" % pid)
            if JOB in cmdline:
                job_seen += 1
                environ_read += environ is not None
            for secret in secrets:
                if secret in cmdline or (environ and secret in environ):
                    leaks.add(cmdline.split(b"\0")[0].decode("utf-8", "replace"))
        samples += 1
        if started != before and state in ("inactive", "failed"):
            break
        time.sleep(0.02)
    print(json.dumps({"samples": samples, "job_seen": job_seen, "environ_read": environ_read,
                      "leaks": sorted(leaks), "secret_lines": len(secrets), "result": show(unit, "Result")}))


if __name__ == "__main__":
    main()
