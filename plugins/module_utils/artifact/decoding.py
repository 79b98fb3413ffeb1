# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A backup's dump as a stream: decrypted and decompressed in child processes, never on disk.

The stages come from the registry (codecs.py): the encryption's decoder first (with the identity,
handed over as an in-memory file), then the compression's for a plain dump. What comes out is
pg_dump's own output: plain SQL, or a custom archive for pg_restore to read from its stdin.
``finish()`` says whether every stage ended well, in the words of the first that did not.
Pure Python (runs age and the decompressors; no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import signal
import subprocess
import tempfile

from ansible_collections.lift_simulator.postgresql.plugins.module_utils import codecs
from ansible_collections.lift_simulator.postgresql.plugins.module_utils import process


class DecodeError(Exception):
    pass


def stages(backup, identity_path=None):
    """The argv of each stage that turns ``backup`` into pg_dump's output (empty: read the file)."""
    commands = []
    if backup.encryption != "none":
        commands.append(decrypt_argv(backup, identity_path))
    if backup.format == "plain" and backup.compression not in (None, "none"):
        commands.append(codecs.get(backup.compression).decode_argv() + ([] if commands else [backup.path]))
    return commands


def decrypt_argv(backup, identity_path):
    """The argv that decrypts an encrypted ``backup`` to its stdout with the identity file named."""
    if identity_path is None:
        raise DecodeError("%s is encrypted with %s: an identity is needed to read it" % (backup.name, backup.encryption))
    return codecs.encryption(backup.encryption).decode_argv(identity_path) + [backup.path]


class DecodedStream(object):
    """Context manager: ``stdout`` is the dump; ``finish()`` returns None when every stage ended
    well, else what went wrong. ``identity`` is a secret_file.SecretFile (or anything with
    ``path`` and ``fds``), or None for an unencrypted backup."""

    def __init__(self, backup, identity=None):
        self.backup = backup
        self.identity = identity
        self.procs = []
        self.errs = []
        self.stdout = None

    def __enter__(self):
        commands = stages(self.backup, self.identity.path if self.identity is not None else None)
        if not commands:
            self.stdout = open(self.backup.path, "rb")
            return self
        upstream = subprocess.DEVNULL
        try:
            for argv in commands:
                err = tempfile.TemporaryFile()
                self.errs.append(err)
                fds = self.identity.fds if self.identity is not None and argv is commands[0] else ()
                proc = process.spawn(argv, stdin=upstream, stdout=subprocess.PIPE, stderr=err, bufsize=0,
                                     pass_fds=fds)
                if upstream is not subprocess.DEVNULL:
                    upstream.close()  # the next stage holds it now
                self.procs.append(proc)
                upstream = proc.stdout
        except OSError as exc:
            self.__exit__(None, None, None)
            raise DecodeError("cannot run %s to read %s: %s" % (argv[0], self.backup.name, exc.strerror))
        self.stdout = upstream
        return self

    def finish(self, reader_stopped_early=False):
        """Wait for every stage; None when all ended well, else (program name, what it said) of
        the first that did not. ``reader_stopped_early``: the reader had what it needed before the
        end (pg_restore --list), so a stage stopped by SIGPIPE is no failure."""
        problem = None
        for proc, err in zip(self.procs, self.errs):
            code = proc.wait()
            if code == -signal.SIGPIPE and reader_stopped_early:
                continue
            if code != 0 and problem is None:
                lines = process.read_tail(err).strip().splitlines()
                problem = (os.path.basename(proc.args[0]),
                           "%s: %s" % (process.describe_exit(proc.args[0], code), lines[-1] if lines else "no message"))
        return problem

    def __exit__(self, *exc_info):
        if self.stdout is not None:
            self.stdout.close()
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        for err in self.errs:
            err.close()
        return False
