# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The library of the scheduled job as one archive, built on the controller.

The role lift_simulator.postgresql.scheduled_backup (tasks/install.yml) runs this with the
controller's Python and unpacks the archive on the host into a release directory of its own
(/usr/local/lib/lift-pg-backup/releases/<release>), then points the symlink ``current`` at it.

What the archive holds, relative to the release directory:

- the package directories given with --package-dir (ansible_collections/.../module_utils), each a
  regular package with an empty __init__.py (unless the source has one), so that no other
  ansible_collections on sys.path can shadow or extend the copy;
- below the last of them, every *.py of --source (subpackages included; hidden files and
  __pycache__ skipped) but those with a line that --exclude-lines matches at its start (the
  modules that import Ansible: the job runs where Ansible is not installed);
- SHA256SUMS (last): the sha256 of every other file, as sha256sum(1) writes them.

The archive is reproducible: sorted members, owner root (0:0), directories 0755, files 0644, one
fixed time stamp, gzip without a name or time. The same sources give the same bytes, and the
release's name is the sha256 of its SHA256SUMS, so it changes exactly when a file, a name or the
set of files does.

It prints one JSON object:

  release   the release's name (sha256 of SHA256SUMS)
  archive   the .tar.gz, in a new private temporary directory (--tmpdir; the caller removes it)
  check     the input of `sha256sum --check` run in an installed release: SHA256SUMS, and the
            sha256 of SHA256SUMS itself
  listing   every entry of a correct release, as `find -printf '%y %m %U %G %P\\n'` prints it
            (type, mode, uid, gid, path), sorted
  files     the module_utils files copied (relative to --source)

Only the standard library: it runs with whatever Python runs Ansible.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import sys
import tarfile
import tempfile

# 1970-01-01: the time stamp of every member (a fixed one keeps the archive reproducible).
MTIME = 0
SUMS = "SHA256SUMS"


def select_files(source, exclude):
    """The *.py files below ``source`` (relative paths, sorted) with no line that ``exclude``
    matches at its start."""
    found = []
    for directory, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__pycache__")))
        for name in files:
            if not name.endswith(".py") or name.startswith("."):
                continue
            path = os.path.join(directory, name)
            with open(path, encoding="utf-8") as handle:
                if any(exclude.match(line) for line in handle):
                    continue
            found.append(os.path.relpath(path, source))
    return sorted(found)


def build(source, package_dirs, exclude):
    """(directories, {path: bytes}, module_utils files): the release's entries."""
    if not package_dirs:
        raise ValueError("at least one --package-dir is needed")
    selected = select_files(source, exclude)
    target = package_dirs[-1]
    contents = {}
    for name in package_dirs:
        contents[name + "/__init__.py"] = b""
    for name in selected:
        with open(os.path.join(source, name), "rb") as handle:
            contents[target + "/" + name.replace(os.sep, "/")] = handle.read()
    directories = set(package_dirs)
    for path in contents:
        parent = os.path.dirname(path)
        while parent:
            directories.add(parent)
            parent = os.path.dirname(parent)
    return sorted(directories), contents, selected


def sha256_sums(contents):
    return "".join("%s  %s\n" % (hashlib.sha256(contents[path]).hexdigest(), path)
                   for path in sorted(contents)).encode("ascii")


def write_archive(path, directories, contents, sums):
    """A reproducible .tar.gz: directories and files in sorted order (a directory before what it
    holds), SHA256SUMS last."""
    members = [(name, None) for name in directories] + [(name, contents[name]) for name in contents]
    members.sort(key=lambda member: member[0])
    members.append((SUMS, sums))
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = MTIME
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.mode = 0o644
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    with open(path, "wb") as handle:
        with gzip.GzipFile(filename="", mode="wb", fileobj=handle, mtime=0, compresslevel=9) as compressed:
            compressed.write(raw.getvalue())


def listing(directories, contents):
    """The release as `find <release> -mindepth 1 -printf '%y %m %U %G %P\\n'` lists it."""
    entries = ["d 755 0 0 %s" % name for name in directories]
    entries += ["f 644 0 0 %s" % name for name in list(contents) + [SUMS]]
    return sorted(entries)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Build the scheduled job's library as one reproducible archive.")
    parser.add_argument("--source", required=True, help="the collection's plugins/module_utils")
    parser.add_argument("--package-dir", action="append", default=[], dest="package_dirs",
                        help="a package directory of the release (repeat, outermost first); the files go below the last")
    parser.add_argument("--exclude-lines", required=True,
                        help="a regular expression: a file with a line that it matches at its start is left out")
    parser.add_argument("--tmpdir", default=None, help="where to make the private directory of the archive")
    args = parser.parse_args(argv)

    directories, contents, selected = build(args.source, args.package_dirs, re.compile(args.exclude_lines))
    sums = sha256_sums(contents)
    release = hashlib.sha256(sums).hexdigest()
    workdir = tempfile.mkdtemp(prefix="lift-pg-backup-library-", dir=args.tmpdir)
    archive = os.path.join(workdir, "lift-pg-backup-library-%s.tar.gz" % release[:12])
    write_archive(archive, directories, contents, sums)
    json.dump({
        "release": release,
        "archive": archive,
        "check": sums.decode("ascii") + "%s  %s\n" % (release, SUMS),
        "listing": listing(directories, contents),
        "files": selected,
    }, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
