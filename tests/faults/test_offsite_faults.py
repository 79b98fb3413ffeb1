# -*- coding: utf-8 -*-
"""Faults of off-site copies, through the offsite module (ansible-playbook; the module runs as the
postgres OS user, as on a database host) against real servers the test run starts: OpenSSH's sshd
(tests/lib/sftpserver.py) and SeaweedFS's S3 gateway (tests/lib/s3server.py), with backups of the
test cluster.

Each fault: the S3 server SIGKILLed and the sshd stopped while a multipart upload or an SFTP
temporary is being written (once it has opened the backup, the module is frozen with SIGSTOP and
let run in 2 ms steps until the server holds part of the upload: the moment is reached
deterministically, and an unfinished upload is asserted before the server goes), a full remote disk
(a small tmpfs as the SFTP directory; a SeaweedFS whose volumes are full), remote manifests that
lie (verify and pull of each), a replaced remote object, wrong credentials and an unknown host key
(at -vvv). Each asserts a clear error
(no traceback, no secret, even at -vvv), no object under the backup's final names on the target
that is not byte-identical to the local file (the remote side listed directly: the SFTP directory
through the file system, the bucket through boto3), the local backup and its manifest unchanged
(sha256 before and after), nothing left behind by a refused pull, and a push that works once the
fault is repaired.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import hashlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import pytest
import yaml

import processes
from agekeys import keys  # noqa: F401 pylint: disable=unused-import
from helpers import listing, sha256_file
from pglab import postgres_owned_dir, run_playbook
from s3server import ACCESS_KEY, SECRET_KEY, SeaweedS3, s3_server  # noqa: F401 pylint: disable=unused-import
from sftpserver import TEST_USER, sftp_server_fixture  # noqa: F401 pylint: disable=unused-import

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import manifest as manifest_mod
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.s3 import S3Storage

BIG_DB = "offsite_faults_big"
# About 20 MB of plain dump: three parts of the S3 driver's 8 MiB multipart upload, and an SFTP
# upload long enough to be caught half-way.
BIG_ROWS = 260000
MIB = 1024 * 1024
COMPANIONS = (".globals.sql", ".manifest.json")
# What the module says when a run hit a bug instead of a fault.
CRASH_SIGNS = ("Traceback (most recent call last)", "MODULE FAILURE")
# How the default callback's text starts a task's result, and whether it is a failure.
RESULT_MARKS = (("fatal: [localhost]: FAILED! => ", True), ("ok: [localhost] => ", False),
                ("changed: [localhost] => ", False))


def final_names(name):
    return [name] + [name + suffix for suffix in COMPANIONS]


# --- running the modules --------------------------------------------------------------------


def run_calls(calls, secrets, verbosity=0):
    """One ansible-playbook run of ``calls`` [(label, module, args)] in order, each a task named by
    its label running as postgres, a failure ignored (its result says). Returns {label: result}
    (``verbosity``: the -vvv text run through the default callback, each result parsed from it)
    and the run. Nothing in the output may show a secret or a crash."""
    tasks = []
    for index, (label, module, args) in enumerate(calls):
        tasks.append({"name": label, "become": True, "become_user": "postgres", "ignore_errors": True,
                      "lift_simulator.postgresql." + module: dict((key, "{{ calls[%d].%s }}" % (index, key))
                                                                  for key in args)})
    work = tempfile.mkdtemp(prefix="lift-offsite-faults-play-")
    try:
        playbook = os.path.join(work, "calls.yml")
        with open(playbook, "w") as handle:
            yaml.safe_dump([{"name": "Offsite faults", "hosts": "lift_db", "gather_facts": False, "tasks": tasks}],
                           handle)
        extra = {"calls": [args for _label, _module, args in calls]}
        if verbosity:
            # The default callback prints each result as JSON (ansible.cfg says yaml) so it can be read back.
            os.environ["ANSIBLE_CALLBACK_RESULT_FORMAT"] = "json"
            try:
                run = run_playbook(playbook, extra, verbosity=verbosity, json_output=False)
            finally:
                del os.environ["ANSIBLE_CALLBACK_RESULT_FORMAT"]
            results = parse_text_results(run.stdout)
        else:
            run = run_playbook(playbook, extra)
            results = dict((label, run.task(label)) for label, _module, _args in calls)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = run.stdout + run.stderr
    assert run.rc == 0, text[-3000:]
    for sign in CRASH_SIGNS:
        assert sign not in text, text[-3000:]
    for secret in secrets:
        assert secret not in text, "a secret is in the output of ansible-playbook"
    for label, result in results.items():
        # ansible-core 2.19 adds "exception": "(traceback unavailable)" to every failure.
        assert result is not None and "module_stderr" not in result, (label, result)
        assert CRASH_SIGNS[0] not in result.get("exception", ""), (label, result)
    return results, run


def parse_text_results(stdout):
    """{task name: result} from the default callback's text (results as JSON; a failure's result
    there has no "failed" key: its line says it)."""
    found = {}
    for section in stdout.split("\nTASK [")[1:]:
        label = section.split("]", 1)[0]
        marks = [(section.find(mark), failed) for mark, failed in RESULT_MARKS]
        assert any(at >= 0 for at, _failed in marks), section[:2000]
        start, failed = min((at, failed) for at, failed in marks if at >= 0)
        result = json.JSONDecoder().raw_decode(section[section.index("{", start):])[0]
        if failed:
            result["failed"] = True
        found[label] = result
    return found


def failed_with(result, *phrases):
    """The result is a failure whose message says each of ``phrases``."""
    assert result.get("failed") is True, result
    for phrase in phrases:
        assert phrase in result["msg"], (phrase, result["msg"])
    return result["msg"]


def postgres_uid():
    return pwd.getpwnam("postgres").pw_uid


def uid_of(pid):
    for line in processes.read(pid, "status").decode().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    return None


def module_process():
    """The pid of the module the test's ansible-playbook runs now: the python below this process
    running as postgres (su's child)."""
    me, uid = os.getpid(), postgres_uid()

    def find():
        for pid in processes.pids():
            if processes.comm(pid).startswith("python") and uid_of(pid) == uid and processes.descends_from(pid, me):
                return pid
        return None
    return processes.wait_for(find, timeout=120, interval=0.005, what="the module's process")


def reading(pid, path):
    """Whether ``pid`` has ``path`` open (the module has begun to copy the backup)."""
    fd_dir = "/proc/%d/fd" % pid
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(os.path.join(fd_dir, fd)) == path:
                return True
        except OSError:
            continue
    return False


def hold_when(pid, path, condition, timeout=120):
    """Once ``pid`` has opened ``path`` (polled), freeze it (SIGSTOP) and let it run in 2 ms steps
    until ``condition()`` is true; it stays frozen (``release``). Returns what the condition returned."""
    processes.wait_for(lambda: reading(pid, path), timeout=timeout, interval=0.001, what="the module to open %s" % path)
    os.kill(pid, signal.SIGSTOP)

    def step():
        value = condition()
        if value:
            return value
        assert processes.alive(pid), "the module ended before the moment was reached"
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.002)  # one step of the module's run, not a wait for a condition
        os.kill(pid, signal.SIGSTOP)
        return None
    return processes.wait_for(step, timeout=timeout, interval=0, what="the module to reach the fault's moment")


def release(pid):
    """Let the frozen module go on. su stops itself when its child stops (job control, util-linux
    su's supervision), so every process between this test and the module is continued too."""
    chain, current = [], pid
    while current and current != os.getpid() and len(chain) < 32:
        chain.append(current)
        current = processes.parent(current)
    for each in chain:
        try:
            os.kill(each, signal.SIGCONT)
        except ProcessLookupError:
            pass


def in_background(calls, secrets):
    holder = {}

    def work():
        try:
            holder["results"], holder["run"] = run_calls(calls, secrets)
        except BaseException as exc:  # pylint: disable=broad-except  # re-raised by the test
            holder["error"] = exc
    thread = threading.Thread(target=work)
    thread.start()
    return thread, holder


def joined(thread, holder):
    thread.join(600)
    assert not thread.is_alive(), "ansible-playbook did not end"
    if "error" in holder:
        raise holder["error"]
    return holder["results"]


# --- the backups and the remote sides ---------------------------------------------------------


def file_hashes(directory):
    """{name: sha256} of every file in ``directory`` (hidden ones too)."""
    return dict((entry, sha256_file(os.path.join(directory, entry))) for entry in listing(directory)
                if os.path.isfile(os.path.join(directory, entry)))


@pytest.fixture(scope="module")
def made(cluster, keys):
    """Two encrypted backups with their manifests, made once: ``small`` (the fixture database,
    zstd) and ``big`` (about 20 MB, uncompressed); ``state`` the sha256 of every local file."""
    cluster.psql("CREATE DATABASE %s OWNER lift_admin" % BIG_DB)
    cluster.psql("CREATE TABLE filler AS SELECT g AS id, md5(g::text) || md5((-g)::text) AS payload "
                 "FROM generate_series(1, %d) g" % BIG_ROWS, database=BIG_DB)
    base = postgres_owned_dir("lift-offsite-faults-")
    directory = os.path.join(base, "backups")
    try:
        common = dict(cluster.connection_vars(), dest_dir=directory, encryption="age",
                      encryption_recipients=[keys["ops"]["recipient"]])
        results, _run = run_calls([("small", "backup", dict(common, database="lift_simulator", compression="zstd")),
                                   ("big", "backup", dict(common, database=BIG_DB, compression="none"))], [])
        found = dict(dir=directory, state=file_hashes(directory), base=base)
        for label in ("small", "big"):
            assert results[label].get("failed") is not True, results[label]
            path = results[label]["path"]
            found[label] = dict(path=path, name=os.path.basename(path), size=os.path.getsize(path))
        assert found["big"]["size"] > 2 * 8 * MIB, found["big"]["size"]  # at least three parts
        assert sorted(found["state"]) == sorted(final_names(found["small"]["name"]) + final_names(found["big"]["name"]))
        yield found
    finally:
        shutil.rmtree(base, ignore_errors=True)
        cluster.psql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % BIG_DB)


def local_unchanged(made):
    assert file_hashes(made["dir"]) == made["state"], "the local backups changed"


def sftp_secrets(server):
    """Lines of the private keys' bodies (the test key and the other one)."""
    found = []
    for path in (server.client_key, server.other_key):
        found.extend(line for line in server.private(path).splitlines()[1:-1] if len(line) > 20)
    return found


def all_secrets(server=None):
    return [SECRET_KEY, ACCESS_KEY] + (sftp_secrets(server) if server is not None else [])


def sftp_target(server, directory, **extra):
    settings = dict(type="sftp", host=server.host, port=server.port, user=TEST_USER,
                    directory=os.path.join(server.root, directory), private_key=server.private(),
                    known_hosts=server.known_hosts, connect_timeout=5)
    settings.update(extra)
    return settings


def s3_target(server, prefix, **extra):
    settings = dict(server.target_settings(), prefix=prefix)
    settings.update(extra)
    return settings


def s3_objects(server, prefix):
    """{name: sha256} of the objects under ``prefix``/ (read through boto3)."""
    client = server.client()
    found = {}
    for item in client.list_objects_v2(Bucket=server.bucket, Prefix=prefix + "/").get("Contents", []):
        body = client.get_object(Bucket=server.bucket, Key=item["Key"])["Body"].read()
        found[item["Key"][len(prefix) + 1:]] = hashlib.sha256(body).hexdigest()
    return found


def s3_uploads(server, prefix):
    """[(name, upload id)] of the unfinished multipart uploads under ``prefix``/."""
    uploads = server.client().list_multipart_uploads(Bucket=server.bucket, Prefix=prefix + "/").get("Uploads", [])
    return [(u["Key"][len(prefix) + 1:], u["UploadId"]) for u in uploads]


def only_complete_copies(remote, made, label):
    """Every final name of the backup ``label`` on the remote side ({name: sha256}) holds exactly
    the local file; returns those present."""
    name = made[label]["name"]
    present = [n for n in final_names(name) if n in remote]
    for entry in present:
        assert remote[entry] == made["state"][entry], "%s on the target is not the local file" % entry
    return present


def whole_copy(remote, made, label):
    """The backup ``label`` is on the remote side, complete, its manifest included."""
    assert only_complete_copies(remote, made, label) == final_names(made[label]["name"]), sorted(remote)


# --- a) the S3 server killed mid-upload --------------------------------------------------------


class RestartableS3(SeaweedS3):
    """SeaweedS3 that can be SIGKILLed and started again on the same data and ports, with other
    volume limits. A short raft election timeout: a master that resumes its state otherwise waits
    its default 10 s election (twice) before it answers."""

    def __init__(self, volume_max=0, volume_size_limit_mb=64):
        SeaweedS3.__init__(self)
        self.limits = {}
        self.set_limits(volume_max, volume_size_limit_mb)
        self._argv = None

    def set_limits(self, volume_max, volume_size_limit_mb):
        self.limits = {"-volume.max": volume_max, "-master.volumeSizeLimitMB": volume_size_limit_mb}

    def argv(self):
        if self._argv is None:
            self._argv = SeaweedS3.argv(self) + ["-master.electionTimeout=1s"]  # makes the data folder
        kept = [arg for arg in self._argv if arg.split("=", 1)[0] not in self.limits]
        return kept + ["%s=%s" % item for item in sorted(self.limits.items())]

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        for port in self.ports.values():  # its unix sockets; ours only (named by our ports)
            for path in glob.glob("/tmp/seaweedfs-*-%d.sock" % port):
                try:
                    os.unlink(path)
                except OSError:
                    pass


@pytest.fixture
def own_s3():
    """A SeaweedFS of this test alone (killed, restarted, filled)."""
    servers = []

    def start(**limits):
        server = RestartableS3(**limits)
        servers.append(server)
        return server.start()
    yield start
    for server in servers:
        server.stop()


def test_s3_server_killed_mid_upload(made, own_s3):
    server = own_s3()
    prefix = "killed"
    target = s3_target(server, prefix)
    name = made["big"]["name"]
    key = prefix + "/" + name
    client = server.client()
    thread, holder = in_background([("push", "offsite", dict(action="push", path=made["big"]["path"], target=target))],
                                   all_secrets())

    def parts_stored():
        uploads = [u for u in s3_uploads(server, prefix) if u[0] == name]
        if not uploads:
            return None
        parts = client.list_parts(Bucket=server.bucket, Key=key, UploadId=uploads[0][1]).get("Parts", [])
        return uploads[0][1] if parts else None
    module = module_process()
    try:
        upload_id = hold_when(module, made["big"]["path"], parts_stored)
        assert s3_objects(server, prefix) == {}, "the backup was already published"
        server.kill()
    finally:
        release(module)
    pushed = joined(thread, holder)["push"]
    msg = failed_with(pushed, "cannot reach the endpoint", server.endpoint)
    assert "s3://%s/%s" % (server.bucket, key) in msg, msg

    server.start()  # the same data folder and ports
    assert s3_objects(server, prefix) == {}  # nothing under the backup's names, nor any other
    # The unfinished upload is still stored (the module could not abort it: the server was gone);
    # it is never an object. The next push starts its own upload and leaves it alone.
    assert s3_uploads(server, prefix) == [(name, upload_id)]
    local_unchanged(made)

    repaired, _run = run_calls([("push", "offsite", dict(action="push", path=made["big"]["path"], target=target))],
                               all_secrets())
    assert repaired["push"]["copy"] == "copied", repaired["push"]
    whole_copy(s3_objects(server, prefix), made, "big")
    assert s3_uploads(server, prefix) == [(name, upload_id)]
    # prune's leftovers are the uploads older than a day (stale_partials): this one will be, and goes then.
    store = S3Storage(**dict((k, v) for k, v in target.items() if k != "type"))
    leftovers = store.stale_partials(older_than_hours=0)
    assert len(leftovers) == 1 and leftovers[0].startswith("." + name + ".partial-s3upload-"), leftovers
    assert store.stale_partials() == []  # younger than 24 h: prune leaves it
    assert store.remove_partials(leftovers) == leftovers and s3_uploads(server, prefix) == []
    store.close()
    local_unchanged(made)


# --- b) the SFTP server stopped mid-upload ------------------------------------------------------


def test_sftp_server_stopped_mid_upload(made, sftp_server):
    directory = "stopped"
    remote = os.path.join(sftp_server.root, directory)
    name = made["big"]["name"]
    target = sftp_target(sftp_server, directory)
    secrets = all_secrets(sftp_server)
    thread, holder = in_background([("push", "offsite", dict(action="push", path=made["big"]["path"], target=target))],
                                   secrets)

    def temporary_written():
        temporaries = [e for e in listing(remote) if e.startswith("." + name + ".partial-")]
        if temporaries and os.path.getsize(os.path.join(remote, temporaries[0])) >= MIB:
            return temporaries[0]
        return None
    module = module_process()
    try:
        temporary = hold_when(module, made["big"]["path"], temporary_written)
        assert temporary.endswith("-%d" % module)  # the module's own writer
        assert listing(remote) == [temporary]
        sftp_server.stop()
    finally:
        release(module)
    try:
        pushed = joined(thread, holder)["push"]
    finally:
        sftp_server.start(port=sftp_server.port)
    failed_with(pushed, "the connection to the server was lost", "sftp://%s@127.0.0.1:%d" % (TEST_USER, sftp_server.port))
    # Nothing under the final names; the hidden temporary stays (the connection was gone).
    assert listing(remote) == [temporary]
    local_unchanged(made)

    results, _run = run_calls([
        ("push", "offsite", dict(action="push", path=made["big"]["path"], target=target)),
        # The writer is gone: its temporary is stale, and prune on the target removes it.
        ("prune", "prune", dict(target=target, database=BIG_DB, keep_last=7)),
    ], secrets)
    assert results["push"]["copy"] == "copied", results["push"]
    pruned = results["prune"]
    assert pruned.get("failed") is not True, pruned
    assert [(r["name"], r["what"]) for r in pruned["removed"]] == [(temporary, "partial")], pruned["removed"]
    assert listing(remote) == sorted(final_names(name))
    whole_copy(file_hashes(remote), made, "big")
    local_unchanged(made)


# --- c) a full remote disk ----------------------------------------------------------------------


def test_sftp_full_remote_disk(made, sftp_server):
    """The SFTP directory is a 4 MB tmpfs: the 20 MB backup does not fit."""
    mount = os.path.join(sftp_server.root, "full")
    os.mkdir(mount)
    owner = pwd.getpwnam(TEST_USER)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700,uid=%d,gid=%d" % (owner.pw_uid, owner.pw_gid),
                    "tmpfs", mount], check=True)
    try:
        target = sftp_target(sftp_server, "full")
        secrets = all_secrets(sftp_server)
        results, _run = run_calls([("push", "offsite", dict(action="push", path=made["big"]["path"], target=target))],
                                  secrets)
        failed_with(results["push"], "cannot write .%s.partial-" % made["big"]["name"], "no space left on the server",
                    "sftp://%s@127.0.0.1:%d%s" % (TEST_USER, sftp_server.port, mount))
        # The temporary went with the failed write: nothing under any name, the space free again.
        assert listing(mount) == []
        usage = os.statvfs(mount)
        assert usage.f_bfree == usage.f_blocks
        local_unchanged(made)

        subprocess.run(["mount", "-o", "remount,size=64m", mount], check=True)  # the disk has room again
        results, _run = run_calls([("push", "offsite", dict(action="push", path=made["big"]["path"], target=target))],
                                  secrets)
        assert results["push"]["copy"] == "copied", results["push"]
        whole_copy(file_hashes(mount), made, "big")
        assert listing(mount) == sorted(final_names(made["big"]["name"]))
        local_unchanged(made)
    finally:
        subprocess.run(["umount", mount], check=True)
        os.rmdir(mount)


def test_s3_full_remote_disk(made, own_s3):
    """SeaweedFS with one volume of 10 MB: the 20 MB backup's second part finds no room."""
    server = own_s3(volume_max=1, volume_size_limit_mb=10)
    prefix = "full"
    target = s3_target(server, prefix)
    push = [("push", "offsite", dict(action="push", path=made["big"]["path"], target=target))]
    results, _run = run_calls(push, all_secrets())
    # S3 has no word for a full disk: the server's own answer is what there is to say.
    failed_with(results["push"], "cannot upload a part of", "s3://%s/%s/%s" % (server.bucket, prefix, made["big"]["name"]),
                "the server answered InternalError")
    assert s3_objects(server, prefix) == {}
    assert s3_uploads(server, prefix) == []  # the server was there: the upload was aborted
    local_unchanged(made)

    server.kill()
    server.set_limits(0, 64)  # room again: as many volumes as the disk holds, of 64 MB each
    server.start()
    results, _run = run_calls(push, all_secrets())
    assert results["push"]["copy"] == "copied", results["push"]
    whole_copy(s3_objects(server, prefix), made, "big")
    assert s3_uploads(server, prefix) == []
    local_unchanged(made)


# --- d) remote manifests that lie, e) a replaced remote object ---------------------------------

# Which lies each kind of target tells (the checks are the same code for both). A replaced object
# is tried on S3, where it keeps its original's sha256 metadata; on SFTP, a copy with one bit
# changed (same size, other content) is tests/integration/test_offsite.py's
# test_a_damaged_copy_is_found_and_never_pulled[sftp-flip].
LIES = {
    "sftp": ("other-sha256", "missing-file", "other-database"),
    "s3": ("other-size", "other-globals-sha256", "replaced-object"),
}


def read_bytes(path):
    with open(path, "rb") as handle:
        return handle.read()


def told(lie, made):
    """The files of a copy of the small backup as a target that lies (``lie``) holds them:
    {name: bytes}, a file left out when the lie is a file that is not there."""
    name = made["small"]["name"]
    files = dict((entry, read_bytes(os.path.join(made["dir"], entry))) for entry in final_names(name))
    manifest_file, globals_file = name + ".manifest.json", name + ".globals.sql"
    manifest = json.loads(files[manifest_file])
    if lie == "other-sha256":  # the sha256 of another file (the role definitions')
        manifest["sha256"] = hashlib.sha256(files[globals_file]).hexdigest()
    elif lie == "other-size":  # the size of another file
        manifest["size_bytes"] = len(files[globals_file])
    elif lie == "other-globals-sha256":  # the role definitions' sha256 is the backup's
        manifest["globals"]["sha256"] = manifest["sha256"]
    elif lie == "other-database":  # the name says lift_simulator, the manifest another database
        manifest["database"] = "lift_other"
    elif lie == "missing-file":  # the manifest lists role definitions that are not there
        del files[globals_file]
        return files
    elif lie == "replaced-object":  # same size, other content (the start of another backup); a true manifest
        files[name] = read_bytes(made["big"]["path"])[:len(files[name])]
        return files
    files[manifest_file] = manifest_mod.dumps(manifest)
    return files


class Liar(object):
    """A copy that lies, planted on a target (written there directly, as whoever controls the
    server would), and that target read directly."""

    def __init__(self, kind, server, lie, made):
        self.kind, self.server, self.lie = kind, server, lie
        self.where = "lie-" + lie
        self.directory = os.path.join(server.root, self.where) if kind == "sftp" else None
        files = told(lie, made)
        if kind == "sftp":
            owner = pwd.getpwnam(TEST_USER)
            os.mkdir(self.directory, 0o700)
            os.chown(self.directory, owner.pw_uid, owner.pw_gid)
            for entry, data in sorted(files.items()):
                path = os.path.join(self.directory, entry)
                with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
                    handle.write(data)
                os.chown(path, owner.pw_uid, owner.pw_gid)
        else:
            client = server.client()
            for entry, data in sorted(files.items()):
                # The sha256 metadata the driver gives an object: a replaced one keeps its original's.
                original = made["state"][entry]
                client.put_object(Bucket=server.bucket, Key="%s/%s" % (self.where, entry), Body=data,
                                  Metadata={"sha256": original})
        self.planted = self.state()

    def target(self):
        if self.kind == "sftp":
            return sftp_target(self.server, self.where)
        return s3_target(self.server, self.where)

    def state(self):
        """{name: sha256} of everything there (S3: and its unfinished uploads)."""
        if self.kind == "sftp":
            return file_hashes(self.directory)
        found = s3_objects(self.server, self.where)
        assert s3_uploads(self.server, self.where) == []
        return found


@pytest.fixture(scope="module")
def lies(made, sftp_server, s3_server):
    """Each lie planted; then, in one run per kind of target (both at once): verify and pull of each
    copy (into a directory of its own), and once they are refused, a push of the true backup to
    each. Returns {(kind, lie): dict(liar, verify, pull, dest, push, after)}."""
    name = made["small"]["name"]
    servers = dict(sftp=sftp_server, s3=s3_server)
    pulled = os.path.join(made["base"], "pulled")
    os.mkdir(pulled, 0o700)
    os.chown(pulled, postgres_uid(), -1)
    seen, runs = {}, {}
    for kind, told_lies in sorted(LIES.items()):
        calls, repairs = [], []
        for lie in told_lies:
            liar = Liar(kind, servers[kind], lie, made)
            dest = os.path.join(pulled, "%s-%s" % (kind, lie))
            seen[kind, lie] = dict(liar=liar, dest=dest)
            # The name a backup's database has; the lie about the database is asked for as "latest"
            # of lift_simulator, the way a recovery asks.
            which = dict(name="latest", database="lift_simulator") if lie == "other-database" else dict(name=name)
            calls.append(("verify " + lie, "offsite", dict(which, action="verify", target=liar.target())))
            calls.append(("pull " + lie, "offsite", dict(which, action="pull", dest_dir=dest, target=liar.target())))
            repairs.append(("push " + lie, "offsite", dict(action="push", path=made["small"]["path"],
                                                           target=liar.target())))
        runs[kind] = in_background(calls + repairs, all_secrets(sftp_server))
    for kind, (thread, holder) in runs.items():
        results = joined(thread, holder)
        for lie in LIES[kind]:
            entry = seen[kind, lie]
            entry.update(verify=results["verify " + lie], pull=results["pull " + lie], push=results["push " + lie],
                         pulled=listing(entry["dest"]), after=entry["liar"].state())
    return seen


def refused_and_repaired(lies, made, kind, lie, verify_says, pull_says):
    """The copy that lies is refused by verify (saying ``verify_says``) and by pull (``pull_says``),
    nothing pulled is left behind, the local backup is unchanged; the push of the true backup
    replaces the copy, which is then the local backup's, byte for byte, manifest included."""
    seen = lies[kind, lie]
    failed_with(seen["verify"], *verify_says)
    failed_with(seen["pull"], *pull_says)
    assert seen["pulled"] == [], "a refused pull left %s in %s" % (seen["pulled"], seen["dest"])
    local_unchanged(made)
    assert seen["push"].get("failed") is not True, seen["push"]
    assert seen["push"]["copy"] == "replaced", seen["push"]
    whole_copy(seen["after"], made, "small")
    assert sorted(seen["after"]) == sorted(final_names(made["small"]["name"]))


def test_a_manifest_with_another_files_sha256(lies, made):
    name = made["small"]["name"]
    refused_and_repaired(lies, made, "sftp", "other-sha256", ["is not good", "%s (sha256 %s, the manifest records"
                                                              % (name, made["state"][name])],
                         ["%s in sftp://" % name, "does not match its manifest"])


def test_a_manifest_with_another_files_size(lies, made):
    name = made["small"]["name"]
    other_size = os.path.getsize(made["small"]["path"] + ".globals.sql")
    refused_and_repaired(lies, made, "s3", "other-size",
                         ["is not good", "%s (%d bytes, the manifest records %d" % (name, made["small"]["size"], other_size)],
                         ["%s in s3://" % name, "manifest records", "%d bytes" % other_size])


def test_a_manifest_listing_a_file_that_is_not_there(lies, made):
    globals_file = made["small"]["name"] + ".globals.sql"
    refused_and_repaired(lies, made, "sftp", "missing-file", ["is not good", "%s (missing)" % globals_file], [globals_file])


def test_a_manifest_with_another_sha256_for_the_role_definitions(lies, made):
    globals_file = made["small"]["name"] + ".globals.sql"
    refused_and_repaired(lies, made, "s3", "other-globals-sha256", ["is not good", "%s (sha256 %s, the manifest records"
                                                                    % (globals_file, made["state"][globals_file])],
                         ["%s in s3://" % globals_file, "does not match its manifest"])


def test_a_manifest_naming_another_database(lies, made):
    """The newest copy named as lift_simulator's holds a manifest of another database: not a good
    copy of lift_simulator, so "latest" finds none."""
    refused_and_repaired(lies, made, "sftp", "other-database", ["no good copy of lift_simulator"],
                         ["no good copy of lift_simulator"])


def test_a_replaced_object_same_size_other_content(lies, made):
    name, kind = made["small"]["name"], "s3"
    seen = lies[kind, "replaced-object"]
    assert seen["liar"].planted[name] != made["state"][name]
    refused_and_repaired(lies, made, kind, "replaced-object", ["is not good", "the manifest records %s" % made["state"][name]],
                         ["%s in %s://" % (name, kind), "does not match its manifest", "damaged or replaced"])


# --- f) wrong credentials, an unknown host key --------------------------------------------------


def test_wrong_credentials_and_an_unknown_host_key(made, sftp_server, s3_server):
    """Through the module at -vvv: each refused in plain words, nothing written on either target,
    no secret in the output (the wrong ones included); with the right ones the push works."""
    path = made["small"]["path"]
    wrong_secret = "Wr0ng-" + SECRET_KEY[::-1]
    s3_settings = s3_target(s3_server, "credentials")
    sftp_settings = sftp_target(sftp_server, "credentials")
    elsewhere = "[127.0.0.2]:%d %s\n" % (sftp_server.port, sftp_server.public(sftp_server.host_key))
    secrets = all_secrets(sftp_server) + [wrong_secret]
    results, run = run_calls([
        ("s3 wrong secret key", "offsite", dict(action="push", path=path, target=dict(s3_settings, secret_key=wrong_secret))),
        ("sftp wrong key", "offsite", dict(action="push", path=path, target=dict(
            sftp_settings, private_key=sftp_server.private(sftp_server.other_key)))),
        ("sftp unknown host key", "offsite", dict(action="push", path=path, target=dict(sftp_settings,
                                                                                        known_hosts=elsewhere))),
    ], secrets, verbosity=3)
    assert "<127.0.0.1> EXEC" in run.stdout or "ESTABLISH LOCAL CONNECTION" in run.stdout  # -vvv indeed
    failed_with(results["s3 wrong secret key"], "the server refused the credentials",
                "the secret key does not match the access key", s3_server.endpoint)
    failed_with(results["sftp wrong key"], "authentication refused", TEST_USER)
    failed_with(results["sftp unknown host key"], "not in the known_hosts given", sftp_server.host_fingerprint())
    assert not os.path.exists(sftp_settings["directory"])
    assert s3_objects(s3_server, "credentials") == {} and s3_uploads(s3_server, "credentials") == []
    local_unchanged(made)

    results, _run = run_calls([("s3", "offsite", dict(action="push", path=path, target=s3_settings)),
                               ("sftp", "offsite", dict(action="push", path=path, target=sftp_settings))], secrets)
    assert results["s3"]["copy"] == results["sftp"]["copy"] == "copied", results
    whole_copy(s3_objects(s3_server, "credentials"), made, "small")
    whole_copy(file_hashes(sftp_settings["directory"]), made, "small")
    local_unchanged(made)
