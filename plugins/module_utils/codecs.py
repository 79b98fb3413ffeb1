# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one registry of the stream's stages: compressions and encryptions.

For each compression: its name, the suffix it adds to a plain dump's name, its magic bytes, its
level range and default, the commands that encode and decode a stream, the Debian package that has
them, and from which pg_dump it works inside custom and directory archives. For each encryption:
its name, the suffix it adds after the format's and the compression's, its magic bytes, and the
commands that encrypt to recipients and decrypt with an identity.

Naming, format detection, the dump pipeline, every decode path (restore, selective restore,
verify), the host job and the tests take them from here: adding one is one entry here (plus its
tests). Pure Python.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import shutil


class CodecError(ValueError):
    """A compression that is unknown, out of range, or not installed."""


class Codec(object):
    """One compression. ``encoder`` and ``decoder`` are argv templates whose first element lists
    the programs that can run them, in order of preference; ``{level}`` is the level."""

    def __init__(self, name, suffix, magic, levels, encoder, decoder, package, archive_since):
        self.name = name
        self.suffix = suffix                # what it adds to ".sql"
        self.magic = magic                  # the first bytes of a stream it wrote
        self.levels = levels                # (lowest, highest, default)
        self.encoder = encoder
        self.decoder = decoder
        self.package = package              # the Debian package with its programs
        self.archive_since = archive_since  # the first pg_dump major that compresses archives with it

    def level(self, level):
        """The level to use: ``level`` checked against the range, or the default for None."""
        low, high, default = self.levels
        if level is None:
            return default
        if not low <= int(level) <= high:
            raise CodecError("compression_level %s is out of range for %s (%d-%d)" % (level, self.name, low, high))
        return int(level)

    def _argv(self, template, which, level=None, required=True):
        programs = template[0]
        program = next((path for path in (which(name) for name in programs) if path), None)
        if not program and not required:
            program = programs[-1]  # running it fails with the program's name
        if not program:
            raise CodecError("compression %s needs %s on the database host (Debian: apt-get install %s)"
                             % (self.name, " or ".join(programs), self.package))
        return [program] + [arg.format(level=level) for arg in template[1:]]

    def encode_argv(self, level, which=shutil.which):
        """argv that compresses a stream (stdin to stdout)."""
        return self._argv(self.encoder, which, level)

    def decode_argv(self, which=shutil.which):
        """argv that decompresses a stream (stdin, or a file appended to it, to stdout)."""
        return self._argv(self.decoder, which, required=False)

    def archive_compress_option(self, fmt, level, pg_dump_major):
        """pg_dump's --compress value for a custom or directory archive."""
        if pg_dump_major < self.archive_since:
            raise CodecError("pg_dump %d cannot write %s-compressed %s archives (pg_dump %d or later can); use "
                             "format plain with compression %s, or compression gzip"
                             % (pg_dump_major, self.name, fmt, self.archive_since, self.name))
        # pg_dump before 16 takes a bare gzip level; 16 and later name the method.
        return str(level) if pg_dump_major < 16 else "%s:%d" % (self.name, level)


class _NoCompression(Codec):
    def __init__(self):
        Codec.__init__(self, "none", "", None, None, None, None, None, 0)

    def level(self, level):
        if level is not None:
            raise CodecError("compression_level is set but compression is none")
        return None

    def encode_argv(self, level, which=shutil.which):
        raise CodecError("compression none has no compressor")

    def decode_argv(self, which=shutil.which):
        raise CodecError("compression none has no decompressor")

    def archive_compress_option(self, fmt, level, pg_dump_major):
        return "0"


# Levels: gzip 6, zstd 3 and lz4 1 are the tools' own defaults. pigz is gzip in parallel (same
# output format). zstd -T0 uses every core.
_REGISTRY = (
    _NoCompression(),
    Codec("gzip", ".gz", b"\x1f\x8b", (1, 9, 6), (("pigz", "gzip"), "-c", "-n", "-{level}"),
          (("pigz", "gzip"), "-d", "-c"), "pigz", 0),
    Codec("zstd", ".zst", b"\x28\xb5\x2f\xfd", (1, 19, 3), (("zstd",), "-q", "-c", "-T0", "-{level}"),
          (("zstd",), "-q", "-d", "-c"), "zstd", 16),
    Codec("lz4", ".lz4", b"\x04\x22\x4d\x18", (1, 12, 1), (("lz4",), "-q", "-c", "-{level}"),
          (("lz4",), "-q", "-d", "-c"), "lz4", 16),
)
CODECS = dict((codec.name, codec) for codec in _REGISTRY)
# The names, "none" first: the choices of every compression option.
NAMES = tuple(codec.name for codec in _REGISTRY)
COMPRESSED = tuple(codec for codec in _REGISTRY if codec.magic)


def get(name):
    try:
        return CODECS[name]
    except KeyError:
        raise CodecError("unknown compression %r (one of %s)" % (name, ", ".join(NAMES)))


def archive_compress_option(fmt, compression, level, pg_dump_major):
    """pg_dump's --compress value: None for a plain dump (our pipeline compresses it), else the
    codec's value for the archive."""
    if fmt == "plain":
        return None
    return get(compression).archive_compress_option(fmt, level, pg_dump_major)


def by_magic(head):
    """The codec whose magic bytes start ``head``, or None."""
    return next((codec for codec in COMPRESSED if head.startswith(codec.magic)), None)


class Encryption(object):
    """One encryption of the whole stream (after compression). ``program`` lists the programs that
    can run it, in order of preference."""

    def __init__(self, name, suffix, magic, program, package):
        self.name = name
        self.suffix = suffix    # what it adds to the format's and the compression's suffix
        self.magic = magic      # the first bytes of a stream it wrote
        self.program = program
        self.package = package  # the Debian package with its program

    def _program(self, which):
        found = next((path for path in (which(name) for name in self.program) if path), None)
        if not found:
            raise CodecError("encryption %s needs %s on the database host (Debian: apt-get install %s)"
                             % (self.name, " or ".join(self.program), self.package))
        return found

    def encode_argv(self, recipients, which=shutil.which):
        """argv that encrypts a stream (stdin to stdout) to every public key of ``recipients``."""
        argv = [self._program(which), "--encrypt"]
        for recipient in recipients:
            argv.extend(["-r", recipient])
        return argv

    def decode_argv(self, identity_path, which=shutil.which):
        """argv that decrypts a stream (stdin, or a file appended to it, to stdout) with the
        identity (private key) in the file ``identity_path``."""
        return [self._program(which), "--decrypt", "-i", identity_path]


# age (https://age-encryption.org): public-key encryption of a stream to X25519 and SSH keys, a
# well-kept tool in Debian's own packages; the database host needs only the public keys.
_ENCRYPTIONS = (
    Encryption("age", ".age", b"age-encryption.org/v1\n", ("age",), "age"),
)
ENCRYPTIONS = dict((encryption.name, encryption) for encryption in _ENCRYPTIONS)
# "none" first: the choices of every encryption option.
ENCRYPTION_NAMES = ("none",) + tuple(encryption.name for encryption in _ENCRYPTIONS)


def encryption(name):
    """The Encryption called ``name``, or None for ``none``."""
    if name in (None, "none"):
        return None
    try:
        return ENCRYPTIONS[name]
    except KeyError:
        raise CodecError("unknown encryption %r (one of %s)" % (name, ", ".join(ENCRYPTION_NAMES)))


def encryption_by_magic(head):
    """The encryption whose magic bytes start ``head``, or None."""
    return next((e for e in _ENCRYPTIONS if head.startswith(e.magic)), None)
