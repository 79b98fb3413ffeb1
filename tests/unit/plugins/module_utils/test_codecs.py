# -*- coding: utf-8 -*-
"""The codec registry: each compression's commands, levels and archive support, and that every
registered codec is recognised wherever backups are recognised (naming, detection by content, the
listing prune and backup_info share) and written where backups are written."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils import codecs
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import backup_files
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import naming


def fake_which(name):
    return {"gzip": "/bin/gzip", "zstd": "/usr/bin/zstd", "lz4": "/usr/bin/lz4"}.get(name)


@pytest.mark.parametrize("fmt, compression, level, major, expected", [
    ("plain", "zstd", 3, 15, None),
    ("custom", "none", None, 15, "0"),
    ("custom", "gzip", 6, 15, "6"),
    ("custom", "gzip", 6, 16, "gzip:6"),
    ("directory", "zstd", 3, 17, "zstd:3"),
    ("custom", "lz4", 1, 16, "lz4:1"),
])
def test_archive_compression(fmt, compression, level, major, expected):
    assert codecs.archive_compress_option(fmt, compression, level, major) == expected


def test_zstd_archives_need_pg_dump_16():
    with pytest.raises(codecs.CodecError) as info:
        codecs.archive_compress_option("custom", "zstd", 3, 15)
    assert "pg_dump 15 cannot write zstd-compressed custom archives" in str(info.value)


@pytest.mark.parametrize("compression, level, expected", [
    ("gzip", 6, ["/bin/gzip", "-c", "-n", "-6"]),
    ("zstd", 3, ["/usr/bin/zstd", "-q", "-c", "-T0", "-3"]),
    ("lz4", 1, ["/usr/bin/lz4", "-q", "-c", "-1"]),
])
def test_compressor_argv(compression, level, expected):
    assert codecs.get(compression).encode_argv(level, which=fake_which) == expected


def test_missing_compressor_is_named():
    with pytest.raises(codecs.CodecError) as info:
        codecs.get("zstd").encode_argv(3, which=lambda name: None)
    assert "apt-get install zstd" in str(info.value)


@pytest.mark.parametrize("compression, level, expected", [
    ("none", None, None), ("gzip", None, 6), ("zstd", None, 3), ("lz4", None, 1), ("zstd", 19, 19),
])
def test_compression_levels(compression, level, expected):
    assert codecs.get(compression).level(level) == expected


@pytest.mark.parametrize("compression, level", [("gzip", 0), ("gzip", 10), ("zstd", 20), ("none", 3)])
def test_bad_compression_levels(compression, level):
    with pytest.raises(codecs.CodecError):
        codecs.get(compression).level(level)


@pytest.mark.parametrize("name", codecs.NAMES)
def test_every_codec_is_recognised_by_name(name):
    codec = codecs.get(name)
    suffix = naming.backup_suffix("plain", name)
    assert suffix == ".sql" + codec.suffix
    parsed = naming.parse_backup_name("lift_simulator_backup_20261124_080001" + suffix)
    assert parsed is not None and (parsed.format, parsed.compression) == ("plain", name)
    assert suffix in naming.SUFFIXES


@pytest.mark.parametrize("codec", codecs.COMPRESSED, ids=lambda codec: codec.name)
def test_every_compressed_stream_is_recognised_by_content(codec, tmp_path):
    path = tmp_path / ("lift_simulator_backup_20261124_080001.sql" + codec.suffix)
    path.write_bytes(codec.magic + b"\x00" * 64)
    assert backup_files.detect_format(str(path)) == ("plain", codec.name)
    assert codecs.by_magic(codec.magic + b"rest") is codec


@pytest.mark.parametrize("name", codecs.NAMES)
def test_prune_and_backup_info_list_every_codecs_backups(name, tmp_path):
    # Both read the directory with backup_dir.list_entries and sort it with candidates.scan.
    from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import backup_dir
    from ansible_collections.lift_simulator.postgresql.plugins.module_utils.retention import candidates

    backup = "lift_simulator_backup_20261124_080001" + naming.backup_suffix("plain", name)
    (tmp_path / backup).write_bytes(b"x")
    (tmp_path / naming.manifest_name(backup)).write_text("{}")
    scanned = candidates.scan(backup_dir.list_entries(str(tmp_path))[0], "lift_simulator")
    assert [item.entry.name for item in scanned.backups] == [backup]
    assert scanned.backups[0].manifest_entry is not None and not scanned.orphan_manifests


def test_the_names_are_the_choices_everywhere():
    assert codecs.NAMES[0] == "none"
    assert len(set(codec.suffix for codec in codecs.COMPRESSED)) == len(codecs.COMPRESSED)
    assert len(set(codec.magic for codec in codecs.COMPRESSED)) == len(codecs.COMPRESSED)


def test_unknown_codec_is_named():
    with pytest.raises(codecs.CodecError) as info:
        codecs.get("bzip2")
    assert "unknown compression 'bzip2' (one of none, gzip, zstd, lz4)" in str(info.value)


def test_a_missing_decompressor_is_left_to_fail_with_its_name():
    assert codecs.get("lz4").decode_argv(which=lambda name: None) == ["lz4", "-q", "-d", "-c"]
    assert codecs.get("gzip").decode_argv(which=fake_which) == ["/bin/gzip", "-d", "-c"]


def test_the_scheduled_backup_role_offers_the_registered_codecs():
    import yaml

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
    with open(os.path.join(root, "roles", "scheduled_backup", "meta", "argument_specs.yml")) as handle:
        spec = yaml.safe_load(handle)["argument_specs"]["main"]["options"]["scheduled_backup_compression"]
    assert spec["choices"] == [""] + list(codecs.NAMES)


def _code_strings(path):
    """The string and bytes literals of a Python file, without its documentation blocks."""
    import ast

    with open(path) as handle:
        tree = ast.parse(handle.read())
    docs = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) in ("DOCUMENTATION", "EXAMPLES", "RETURN")
                                                for t in node.targets):
            docs.add(id(node.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)) and id(node) not in docs:
            yield node.value


ENCRYPTED_STREAMS = [("plain", name) for name in codecs.NAMES] + [("custom", None)]


@pytest.mark.parametrize("encryption", sorted(codecs.ENCRYPTIONS))
@pytest.mark.parametrize("fmt, compression", ENCRYPTED_STREAMS)
def test_every_encrypted_stream_is_recognised_by_name_content_and_listing(encryption, fmt, compression, tmp_path):
    from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import backup_dir
    from ansible_collections.lift_simulator.postgresql.plugins.module_utils.retention import candidates

    suffix = naming.backup_suffix(fmt, compression or "none", encryption)
    assert suffix.endswith(codecs.ENCRYPTIONS[encryption].suffix) and suffix in naming.SUFFIXES
    name = "lift_simulator_backup_20261124_080001" + suffix
    parsed = naming.parse_backup_name(name)
    assert (parsed.format, parsed.encryption) == (fmt, encryption)
    assert parsed.compression == (compression if fmt == "plain" else None)
    (tmp_path / name).write_bytes(codecs.ENCRYPTIONS[encryption].magic + b"-> X25519 x\n")
    (tmp_path / naming.manifest_name(name)).write_text("{}")
    assert backup_files.detect(str(tmp_path / name)) == (fmt, parsed.compression, encryption)
    assert codecs.encryption_by_magic(codecs.ENCRYPTIONS[encryption].magic + b"rest").name == encryption
    scanned = candidates.scan(backup_dir.list_entries(str(tmp_path))[0], "lift_simulator")
    assert [item.entry.name for item in scanned.backups] == [name]


def test_a_directory_archive_is_never_encrypted():
    with pytest.raises(naming.NamingError) as info:
        naming.backup_suffix("directory", "gzip", "age")
    assert "pg_dump writes its files itself" in str(info.value)


def test_an_encrypted_file_without_an_encrypted_name_is_refused(tmp_path):
    path = tmp_path / "lift_simulator_backup_20261124_080001.sql"
    path.write_bytes(codecs.ENCRYPTIONS["age"].magic + b"-> X25519 x\n")
    with pytest.raises(backup_files.BackupFileError) as info:
        backup_files.detect(str(path))
    assert "age-encrypted but not named as an encrypted backup" in str(info.value)


def test_encryption_commands_come_from_the_registry():
    age = codecs.encryption("age")
    assert age.encode_argv(["age1x", "ssh-ed25519 AAAA"], which=lambda n: "/usr/bin/" + n) == [
        "/usr/bin/age", "--encrypt", "-r", "age1x", "-r", "ssh-ed25519 AAAA"]
    assert age.decode_argv("/proc/self/fd/7", which=lambda n: "/usr/bin/" + n) == [
        "/usr/bin/age", "--decrypt", "-i", "/proc/self/fd/7"]
    assert codecs.encryption("none") is None and codecs.ENCRYPTION_NAMES[0] == "none"
    with pytest.raises(codecs.CodecError) as info:
        age.encode_argv(["age1x"], which=lambda n: None)
    assert "apt-get install age" in str(info.value)
    with pytest.raises(codecs.CodecError):
        codecs.encryption("gpg")


def test_suffixes_and_magic_bytes_live_only_in_the_registry():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
    holders = {}
    for top in ("plugins", "roles"):
        for folder, _dirs, files in os.walk(os.path.join(root, top)):
            for name in files:
                if not name.endswith(".py"):
                    continue
                path = os.path.join(folder, name)
                for literal in _code_strings(path):
                    for codec in codecs.COMPRESSED + tuple(codecs.ENCRYPTIONS.values()):
                        if (isinstance(literal, bytes) and codec.magic.strip() in literal) or (
                                isinstance(literal, str) and codec.suffix in literal.split()
                                or literal in (codec.suffix, ".sql" + codec.suffix)):
                            holders.setdefault(codec.name, set()).add(os.path.relpath(path, root))
    assert holders == dict((codec.name, {"plugins/module_utils/codecs.py"})
                           for codec in codecs.COMPRESSED + tuple(codecs.ENCRYPTIONS.values()))
