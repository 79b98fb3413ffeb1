# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import hashlib
import os
import sys

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils import process
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.backup import dump_pipeline as dp


def test_pg_dump_argv_plain_never_carries_the_database_or_secrets():
    argv = dp.pg_dump_argv("/usr/bin/pg_dump", "plain", snapshot="00000003-0000001B-1")
    assert argv == ["/usr/bin/pg_dump", "--format=p", "--no-password", "--snapshot=00000003-0000001B-1"]


def test_pg_dump_argv_directory_with_jobs_and_compression():
    argv = dp.pg_dump_argv("pg_dump", "directory", snapshot="S", compress="gzip:6", jobs=4,
                           file_path="/b/.x.partial-h-1", lock_wait_timeout="60s")
    assert argv == ["pg_dump", "--format=d", "--no-password", "--snapshot=S", "--jobs=4",
                    "--compress=gzip:6", "--lock-wait-timeout=60s", "--file=/b/.x.partial-h-1"]


def test_jobs_of_one_are_not_passed():
    assert "--jobs=1" not in dp.pg_dump_argv("pg_dump", "custom", jobs=1)


class Sink(object):
    def __init__(self, fail_after=None):
        self.data = bytearray()
        self.fail_after = fail_after

    def write(self, chunk):
        if self.fail_after is not None and len(self.data) + len(chunk) > self.fail_after:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.data.extend(chunk)


def py(code):
    return [sys.executable, "-c", code]


def test_pipeline_hashes_what_it_writes():
    producer = py("import sys\nfor i in range(20000): sys.stdout.write('line %d\\n' % i)")
    sink = Sink()
    reports = []
    result = dp.Pipeline([producer, ["gzip", "-c", "-1"], ["gzip", "-d", "-c"]],
                         progress=lambda size, elapsed: reports.append(size)).run(sink)
    expected = "".join("line %d\n" % i for i in range(20000)).encode()
    assert bytes(sink.data) == expected
    assert result.size == len(expected)
    assert result.sha256 == hashlib.sha256(expected).hexdigest()
    assert reports[-1] == len(expected)


def test_pipeline_batches_small_writes_without_losing_bytes():
    # pg_dump writes 8 kB at a time; the pipeline hashes and writes in larger batches.
    producer = py("import os\nfor i in range(600): os.write(1, b'%07d' % i + b'.' * 8185)")
    sink = Sink()
    writes = []
    original = sink.write
    sink.write = lambda chunk: (writes.append(len(chunk)), original(chunk))
    result = dp.Pipeline([producer]).run(sink)
    expected = b"".join(b"%07d" % i + b"." * 8185 for i in range(600))
    assert bytes(sink.data) == expected
    assert result.size == len(expected) and sum(writes) == len(expected)
    assert result.sha256 == hashlib.sha256(expected).hexdigest()
    assert all(size >= process.CHUNK // 2 for size in writes[:-1])
    assert len(writes) < 600 // 8


def test_pipeline_with_empty_output():
    sink = Sink()
    result = dp.Pipeline([["true"]]).run(sink)
    assert (result.size, bytes(sink.data)) == (0, b"")
    assert result.sha256 == hashlib.sha256(b"").hexdigest()


def test_pipeline_reports_the_failing_program_and_its_stderr():
    producer = py("import sys\nsys.stdout.write('partial')\nsys.stderr.write('pg_dump: error: boom\\n')\nsys.exit(1)")
    with pytest.raises(process.ProgramError) as info:
        dp.Pipeline([producer, ["cat"]]).run(Sink())
    assert "failed with exit code 1" in str(info.value)
    assert "pg_dump: error: boom" in info.value.stderr


def test_pipeline_reports_a_killed_program():
    producer = py("import os, signal, sys\nsys.stdout.write('x' * 1000)\nsys.stdout.flush()\n"
                  "os.kill(os.getpid(), signal.SIGKILL)")
    with pytest.raises(process.ProgramError) as info:
        dp.Pipeline([producer]).run(Sink())
    assert "killed by SIGKILL" in str(info.value)


def test_disk_full_kills_and_reaps_the_programs():
    producer = py("import sys\nwhile True: sys.stdout.write('y' * 65536)")
    pipeline = dp.Pipeline([producer, ["cat"]])
    with pytest.raises(process.ProgramError) as info:
        pipeline.run(Sink(fail_after=300000))
    assert "no space left on the device" in str(info.value)
    assert all(proc.returncode is not None for proc in pipeline.procs)


def test_a_missing_program_is_named():
    with pytest.raises(process.ProgramError) as info:
        dp.Pipeline([["/nonexistent/pg_dump"]]).run(Sink())
    assert "cannot start /nonexistent/pg_dump" in str(info.value)


def test_human_bytes_is_one_function_for_the_modules_and_the_job():
    from ansible_collections.lift_simulator.postgresql.plugins.module_utils.units import human_bytes

    assert [human_bytes(n) for n in (0, 1023, 1536, 5 * 1024 ** 3, 3 * 1024 ** 4)] == [
        "0 B", "1023 B", "1.5 KiB", "5.0 GiB", "3.0 TiB"]
