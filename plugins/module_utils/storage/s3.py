# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An S3-compatible bucket as backup storage (base.Storage), for off-site copies: the objects
directly under a prefix are the storage's files. Pure Python over boto3, imported only when the
storage is first used (a host without boto3 can import this file and use other storages).

What S3 gives and what this driver adds:

- A name appears complete or not at all. A large file streams as a multipart upload (each part
  with its Content-MD5, so the server refuses a damaged part; one part in memory at a time) that
  becomes the object only at ``commit()``; a small one (under ``part_size``) is one PUT at commit.
  ``abort()`` (or a killed writer) publishes nothing.
- Every object carries its sha256 in the metadata ``sha256``. A PUT and a multipart upload whose
  sha256 the caller passed (``create(name, sha256=...)``) get it as they are created; S3 takes a
  multipart upload's metadata only when the upload starts, so one whose sha256 becomes known only
  at the end is rewritten in place by a server-side copy with the new metadata (CopyObject up to
  5 GiB, a multipart copy above), conditional on the ETag just published. In between, a reader
  sees the complete object without the metadata; callers publish a backup's manifest last anyway.
- After commit the object is checked end to end: its size (HEAD), its metadata, and (unless
  ``verify_upload=False``) a full re-read that must hash to the sha256 streamed. An object that
  fails is deleted and commit raises: a failed commit leaves nothing under the name.
- Identities are ETags: ``remove`` deletes only the object a listing saw. Names never replace an
  existing object unless asked (``write(..., replace=True)``).
- A writer killed mid-upload leaves an unfinished multipart upload (invisible as an object, but
  stored and billed). ``stale_partials()`` reports those under the prefix started more than
  ``stale_after_hours`` (24) ago, named like the local driver's temporaries,
  ``.<name>.partial-s3upload-<start, epoch seconds>``, so that prune's rules for leftovers apply
  unchanged; ``remove_partials`` aborts them. A bucket lifecycle rule
  (AbortIncompleteMultipartUpload) is the belt to these braces.
- S3 has no rename (``promote``) and no free space (``free_bytes`` is None); buckets are never
  created here (``ensure`` checks that the bucket is there).
- Object Lock (``object_lock_days``, ``object_lock_mode``): every object this storage uploads asks
  the server to retain it (COMPLIANCE or GOVERNANCE) until one date, the server's own time (the
  Date of its answer to the check of the bucket's Object Lock configuration) plus the days, fixed
  once per storage so that the objects of one copy share it. A bucket without Object Lock is an
  error before anything is uploaded; an object the server stores without the lock asked for fails
  its commit. The server enforces retention by its own clock; this driver's date only asks.
  ``object_lock(name)`` reads an object's lock as the server reports it (HEAD), for retention.
- Removal on a versioned bucket (every Object Lock bucket is one) deletes the version that was
  examined, for good: a DELETE without a version would only add a delete marker, hiding the object
  while it stays stored (and, under Object Lock, answering success although nothing is gone). A
  removal the server refuses is a StorageError that says why (a lock, a legal hold, a permission).

Every failure is a StorageError naming the endpoint, bucket and key and the problem in plain
words; the secret key and session token appear in no message and no repr.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import datetime
import email.utils
import errno
import hashlib
import json
import re

try:
    import boto3
    import botocore.config
    import botocore.exceptions
except ImportError:  # reported on first use (NEEDS_BOTO3): importing this file must work without boto3
    boto3 = None

try:
    from urllib3.exceptions import HTTPError as _Urllib3Error
except ImportError:  # boto3 brings urllib3; without either the storage is unusable anyway
    _Urllib3Error = OSError

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import manifest as manifest_mod
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import atomic_files
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.base import FILE, Entry, Storage, StorageError

NEEDS_BOTO3 = "the s3 storage needs boto3 (Debian package python3-boto3)"
MIB = 1024 * 1024
DEFAULT_PART_SIZE = 8 * MIB
MIN_PART_SIZE = 5 * MIB           # S3's floor for every part but the last
MAX_PARTS = 10000                 # S3's ceiling of parts per upload
PARTS_PER_SIZE_STEP = 2000        # the part size doubles after each 2000 parts (see _part_size_for)
COPY_OBJECT_LIMIT = 5 * 1024 * MIB  # the largest object one CopyObject copies
COPY_PART_SIZE = 1024 * MIB       # the parts of a larger object's multipart copy
READ_CHUNK = MIB
STALE_AFTER_HOURS = 24
ADDRESSING_STYLES = ("auto", "path", "virtual")
SHA256_KEY = "sha256"             # the object metadata (x-amz-meta-sha256) that records the content's sha256
PARTIAL_HOST = "s3upload"         # stands where the local driver's temporaries name their host
UTC = datetime.timezone.utc if hasattr(datetime, "timezone") else None
LOCK_MODES = ("COMPLIANCE", "GOVERNANCE")
DEFAULT_LOCK_MODE = "COMPLIANCE"
# An object whose retain-until date passed less than this long ago (by the server's clock) is still
# judged retained: the server's own check, a moment later, may not agree yet.
LOCK_MARGIN = datetime.timedelta(seconds=5)
_PARTIAL_RE = re.compile(r"^\.(?P<name>.+)%s%s-(?P<started>\d+)$" % (re.escape(atomic_files.PARTIAL_MARK), PARTIAL_HOST))
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")

# The ClientError codes this driver explains: (errno, what went wrong in plain words). A HEAD
# request's error has no body, so the server's answer there is only the HTTP status ("403").
_CREDENTIALS_REFUSED = "the server refused the credentials"
CLIENT_PROBLEMS = {
    "InvalidAccessKeyId": (errno.EACCES, _CREDENTIALS_REFUSED + ": it does not know the access key"),
    "SignatureDoesNotMatch": (errno.EACCES, _CREDENTIALS_REFUSED + ": the secret key does not match the access key"),
    "InvalidToken": (errno.EACCES, _CREDENTIALS_REFUSED + ": the session token is not valid"),
    "ExpiredToken": (errno.EACCES, _CREDENTIALS_REFUSED + ": the session token has expired"),
    "AccessDenied": (errno.EACCES, "access denied: the credentials were refused or lack the permission"),
    "403": (errno.EACCES, "access denied (HTTP 403): the credentials were refused or lack the permission"),
    "NoSuchBucket": (errno.ENOENT, "the bucket does not exist"),
    "NoSuchKey": (errno.ENOENT, "no such object"),
    "NotFound": (errno.ENOENT, "not found"),
    "404": (errno.ENOENT, "not found (HTTP 404)"),
    "NoSuchUpload": (errno.ENOENT, "the multipart upload no longer exists (aborted, or expired by a lifecycle rule)"),
    "PreconditionFailed": (errno.EAGAIN, "it is not (or no longer) what was expected: another writer got there first"),
    "412": (errno.EAGAIN, "it is not (or no longer) what was expected: another writer got there first"),
    "BadDigest": (errno.EIO, "the server received other bytes than were sent (Content-MD5 mismatch)"),
    "InvalidDigest": (errno.EIO, "the server did not accept the Content-MD5 sent"),
    "EntityTooSmall": (errno.EINVAL, "a part is smaller than the server's minimum part size"),
    "EntityTooLarge": (errno.EFBIG, "the object or part is larger than the server accepts"),
    "InvalidBucketName": (errno.EINVAL, "the bucket name is not valid"),
    "RequestTimeTooSkewed": (errno.EACCES, "this host's clock is too far from the server's"),
    "SlowDown": (errno.EAGAIN, "the server is overloaded (SlowDown), still after retries"),
    "503": (errno.EAGAIN, "the server is unavailable (HTTP 503), still after retries"),
    "NotImplemented": (errno.EOPNOTSUPP, "the server does not implement this request"),
    "ObjectLockConfigurationNotFoundError": (errno.EOPNOTSUPP, "the bucket has no Object Lock configuration"),
}


def normalize_prefix(prefix):
    """The key prefix of a storage: "" or "a/b/" (slashes at either end of ``prefix`` dropped)."""
    prefix = (prefix or "").strip("/")
    if "//" in prefix or any(part in (".", "..") for part in prefix.split("/")):
        raise StorageError(errno.EINVAL, "not a usable S3 prefix: %r" % (prefix,))
    return prefix + "/" if prefix else ""


def object_key(prefix, name):
    """The key of the file ``name`` (a plain name: files live directly under the prefix)."""
    if not name or "/" in name or name in (".", ".."):
        raise StorageError(errno.EINVAL, "not a plain file name: %r" % (name,))
    return prefix + name


def quoted(etag):
    """An ETag in its quoted form: servers differ (SeaweedFS answers CopyObject with a bare one)."""
    return '"%s"' % etag.strip('"') if etag else etag


def aware_utc(moment):
    """A listing's time as an aware UTC datetime (a naive one is taken as UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def epoch_seconds(moment):
    return int((aware_utc(moment) - datetime.datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())


def partial_name(name, started):
    """The name stale_partials gives an unfinished upload of ``name`` started at ``started``."""
    return ".%s%s%s-%d" % (name, atomic_files.PARTIAL_MARK, PARTIAL_HOST, epoch_seconds(started))


def parse_partial_name(partial):
    """(name, start in epoch seconds) of a partial_name, or None for any other name."""
    match = _PARTIAL_RE.match(partial)
    return (match.group("name"), int(match.group("started"))) if match else None


def content_md5(data):
    return base64.b64encode(hashlib.md5(data).digest()).decode("ascii")


def server_time(answer):
    """The server's clock when it answered (its HTTP Date header) as an aware UTC datetime, or None."""
    headers = ((answer or {}).get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
    text = headers.get("date")
    if not text:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return aware_utc(moment) if moment is not None else None


def retain_until(now, days):
    """The retain-until date ``days`` after ``now``, in whole seconds (rounded up: never shorter)."""
    until = aware_utc(now) + datetime.timedelta(days=days)
    if until.microsecond:
        until += datetime.timedelta(microseconds=1000000 - until.microsecond)
    return until


def utc_text(moment):
    return aware_utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else None


def lock_of(head, now=None):
    """The Object Lock of an object as a HEAD answer reports it, or None when nothing locks it:
    dict(mode, retain_until (aware UTC or None), legal_hold (bool), server_time, retained).
    ``retained`` says whether the server still refuses to delete it: a legal hold, or a retain-until
    date not yet passed (LOCK_MARGIN) by the server's clock (the answer's Date; ``now`` without one)."""
    until = head.get("ObjectLockRetainUntilDate")
    legal_hold = head.get("ObjectLockLegalHoldStatus") == "ON"
    if until is None and not legal_hold:
        return None
    moment = server_time(head) or now or datetime.datetime.now(UTC)
    until = aware_utc(until) if until is not None else None
    return dict(mode=head.get("ObjectLockMode"), retain_until=until, legal_hold=legal_hold, server_time=moment,
                retained=legal_hold or (until is not None and until + LOCK_MARGIN > moment))


def describe_lock(lock):
    """A lock (lock_of) in words: ``COMPLIANCE until 2026-12-04T11:24:18Z``, ``a legal hold``."""
    parts = []
    if lock.get("retain_until") is not None:
        parts.append("%s until %s" % (lock.get("mode") or "retention", utc_text(lock["retain_until"])))
    if lock.get("legal_hold"):
        parts.append("a legal hold")
    return " and ".join(parts) or "no lock"


def lock_problems(head, asked):
    """How the lock a HEAD answer reports falls short of the upload's request ``asked``
    (ObjectLockMode, ObjectLockRetainUntilDate); [] when it does not. A server may store an object
    without the lock it was asked for (some ignore the request) - then the copy is not immutable."""
    mode, until = head.get("ObjectLockMode"), head.get("ObjectLockRetainUntilDate")
    wanted = asked["ObjectLockRetainUntilDate"]
    if mode == asked["ObjectLockMode"] and until is not None and aware_utc(until) >= wanted - datetime.timedelta(seconds=1):
        return []
    if mode is None and until is None:
        found = "it reports no Object Lock (the server ignored the request, or these credentials may not read it: " \
                "s3:GetObjectRetention)"
    else:
        found = "it reports %s until %s" % (mode, utc_text(until) if until is not None else "no date")
    return ["the server did not apply the Object Lock asked for (%s until %s): %s"
            % (asked["ObjectLockMode"], utc_text(wanted), found)]


def client_config(config_class, addressing_style="auto", connect_timeout=10, read_timeout=60, max_attempts=5):
    """The botocore Config of the client. botocore >= 1.36 adds CRC checksums to every upload by
    default, which many S3-compatible servers reject; "when_required" turns that off (the parts
    carry Content-MD5 instead). Older botocore knows neither setting (a TypeError) and sends no
    such checksums: it gets the rest."""
    settings = dict(s3={"addressing_style": addressing_style}, signature_version="s3v4",
                    connect_timeout=connect_timeout, read_timeout=read_timeout,
                    retries={"total_max_attempts": max_attempts, "mode": "standard"})
    try:
        return config_class(request_checksum_calculation="when_required",
                            response_checksum_validation="when_required", **settings)
    except TypeError:
        return config_class(**settings)


def describe_problem(exc):
    """(errno, plain words) for an exception of boto3 or botocore."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # a ClientError: the server answered
        error = response.get("Error") or {}
        code = str(error.get("Code") or response.get("ResponseMetadata", {}).get("HTTPStatusCode") or "")
        if code in CLIENT_PROBLEMS:
            return CLIENT_PROBLEMS[code]
        detail = error.get("Message") or "no explanation given"
        return errno.EIO, "the server answered %s: %s" % (code or "an error", detail)
    kind = type(exc).__name__
    if kind in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError", "ProxyConnectionError"):
        return errno.ECONNREFUSED, "cannot reach the endpoint (%s)" % exc
    if kind == "ReadTimeoutError":
        return errno.ETIMEDOUT, "the endpoint stopped answering (%s)" % exc
    if kind == "SSLError":
        return errno.EPROTO, "TLS failed: the server's certificate is not trusted (validate_certs, ca_bundle) (%s)" % exc
    if kind == "NoCredentialsError":
        return errno.EACCES, ("no credentials: set access_key and secret_key, or provide them the AWS way "
                              "(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile)")
    if kind == "PartialCredentialsError":
        return errno.EACCES, "incomplete credentials in the AWS environment or profile (%s)" % exc
    if kind in ("ProfileNotFound", "InvalidEndpointConfigurationError"):
        return errno.EINVAL, str(exc)
    return errno.EIO, "%s: %s" % (kind, exc)


class _Credentials(object):
    """The credentials given as arguments, kept apart so that no repr or vars() shows them."""

    __slots__ = ("access_key", "secret_key", "session_token")

    def __init__(self, access_key, secret_key, session_token):
        self.access_key = access_key or None
        self.secret_key = secret_key or None
        self.session_token = session_token or None

    def secrets(self):
        # The access key id too: the modules treat it as secret (no_log), so logs must as well.
        return [s for s in (self.secret_key, self.session_token, self.access_key) if s]

    def __repr__(self):
        return "<credentials: %s>" % ("given, hidden" if self.access_key else "boto3's chain (environment, profile)")


class S3Storage(Storage):
    """The objects directly under ``prefix`` in ``bucket`` (see the module's docstring).

    Credentials are the arguments, else boto3's standard chain (environment, profile, instance
    role). ``validate_certs=False`` turns TLS verification off; ``ca_bundle`` names the CA file
    to trust. The client is made on first use; connect_timeout, read_timeout (seconds) and
    max_attempts (tries of one request, counting the first) go to botocore.
    """

    # Instance attributes may lower these (the tests do, to reach the multipart copy cheaply).
    copy_object_limit = COPY_OBJECT_LIMIT
    copy_part_size = COPY_PART_SIZE
    list_page_size = 1000

    def __init__(self, bucket, prefix="", endpoint_url=None, region=None, addressing_style="auto",
                 access_key=None, secret_key=None, session_token=None, validate_certs=True, ca_bundle=None,
                 part_size=DEFAULT_PART_SIZE, verify_upload=True, connect_timeout=10, read_timeout=60,
                 max_attempts=5, stale_after_hours=STALE_AFTER_HOURS, object_lock_days=None,
                 object_lock_mode=DEFAULT_LOCK_MODE):
        if not bucket or "/" in bucket:
            raise StorageError(errno.EINVAL, "not an S3 bucket name: %r" % (bucket,))
        if addressing_style not in ADDRESSING_STYLES:
            raise StorageError(errno.EINVAL, "addressing_style must be one of %s, not %r"
                               % (", ".join(ADDRESSING_STYLES), addressing_style))
        if bool(access_key) != bool(secret_key):
            raise StorageError(errno.EINVAL, "give access_key and secret_key together, or neither (boto3's chain)")
        if int(part_size) < MIN_PART_SIZE:
            raise StorageError(errno.EINVAL, "part_size must be at least %d bytes (5 MiB, S3's minimum), not %s"
                               % (MIN_PART_SIZE, part_size))
        if object_lock_days is not None and (isinstance(object_lock_days, bool) or not isinstance(object_lock_days, int)
                                             or object_lock_days < 1):
            raise StorageError(errno.EINVAL, "object_lock_days must be a whole number of days, 1 or more, not %r"
                               % (object_lock_days,))
        if object_lock_mode not in LOCK_MODES:
            raise StorageError(errno.EINVAL, "object_lock_mode must be one of %s, not %r"
                               % (", ".join(LOCK_MODES), object_lock_mode))
        self.bucket = bucket
        self.prefix = normalize_prefix(prefix)
        self.location = ("s3://%s/%s" % (bucket, self.prefix)).rstrip("/")
        self.endpoint_url = endpoint_url or None
        self.region = region or None
        self.addressing_style = addressing_style
        self.validate_certs = validate_certs
        self.ca_bundle = ca_bundle or None
        self.part_size = int(part_size)
        self.verify_upload = verify_upload
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_attempts = max_attempts
        self.stale_after_hours = stale_after_hours
        self.object_lock_days = object_lock_days
        self.object_lock_mode = object_lock_mode
        self._lock_request = None  # the uploads' Object Lock parameters, fixed on first use
        self._credentials = _Credentials(access_key, secret_key, session_token)
        self._client = None
        self._conditional_ok = True  # cleared when the server answers NotImplemented to a conditional write

    def __repr__(self):
        return "S3Storage(%s at %s)" % (self.location, self.endpoint())

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()

    # -- the client and its errors ---------------------------------------------------------

    def endpoint(self):
        """The endpoint as messages name it."""
        return self.endpoint_url or "AWS S3 (region %s)" % (self.region or "from the AWS configuration")

    def uri(self, key=None):
        return "s3://%s/%s" % (self.bucket, key) if key is not None else self.location

    def client(self):
        if self._client is None:
            if boto3 is None:
                raise StorageError(0, NEEDS_BOTO3)
            creds = self._credentials
            verify = self.ca_bundle if (self.validate_certs and self.ca_bundle) else bool(self.validate_certs)
            try:
                session = boto3.session.Session(aws_access_key_id=creds.access_key, aws_secret_access_key=creds.secret_key,
                                                aws_session_token=creds.session_token, region_name=self.region)
                config = client_config(botocore.config.Config, self.addressing_style, self.connect_timeout,
                                       self.read_timeout, self.max_attempts)
                self._client = session.client("s3", endpoint_url=self.endpoint_url, config=config, verify=verify)
            except (ValueError, botocore.exceptions.BotoCoreError) as exc:  # a malformed endpoint, an unknown profile
                raise self.failure(exc, "connect to", self.location)
        return self._client

    def failure(self, exc, action, what):
        """The StorageError for ``exc`` while trying to ``action`` ``what`` (a URI)."""
        code, problem = describe_problem(exc)
        message = "cannot %s %s at %s: %s" % (action, what, self.endpoint(), problem)
        for secret in self._credentials.secrets():  # botocore's own texts carry none; never trust that alone
            message = message.replace(secret, "<hidden>")
        return StorageError(code, message)

    def call(self, action, key, operation, **params):
        """One request ``operation`` about ``key`` (None: the bucket), its errors as StorageError."""
        client = self.client()
        try:
            return getattr(client, operation)(Bucket=self.bucket, **params)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self.failure(exc, action, self.uri(key))

    def supports(self, operation, parameter):
        """Whether the installed botocore can send ``parameter`` with ``operation`` (conditional
        writes came with botocore 1.35; Debian 12's 1.29 has none) and the server did not refuse
        conditional writes before."""
        if not self._conditional_ok:
            return False
        model = self.client().meta.service_model.operation_model(operation)
        return parameter in model.input_shape.members

    def conditional_call(self, action, key, operation, condition, **params):
        """``operation`` with ``condition`` (e.g. {"IfNoneMatch": "*"}) when botocore can send it;
        a server that answers NotImplemented gets the request again without it (the caller's
        HEAD beforehand is then the only check)."""
        api_name = self.client().meta.method_to_api_mapping[operation]
        if not self.supports(api_name, list(condition)[0]):
            return self.call(action, key, operation, **params)
        try:
            return self.call(action, key, operation, **dict(params, **condition))
        except StorageError as exc:
            if exc.errno != errno.EOPNOTSUPP:
                raise
        self._conditional_ok = False
        return self.call(action, key, operation, **params)

    def head(self, key):
        """The HEAD answer of ``key``, or None when there is no such object."""
        try:
            return self.call("look at", key, "head_object", Key=key)
        except StorageError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise

    def refuse_existing(self, key):
        if self.head(key) is not None:
            raise StorageError(errno.EEXIST, "refusing to overwrite %s at %s: it already exists" % (self.uri(key), self.endpoint()))

    def lock_request(self):
        """The Object Lock parameters every upload of this storage carries, or None without
        ``object_lock_days``. On first use the bucket's Object Lock configuration is read: a bucket
        without Object Lock enabled is an error (raised before anything is uploaded); the
        retain-until date is the server's time in that answer (its Date; this host's clock only
        when the server sends none) plus ``object_lock_days``, the same for every later upload."""
        if not self.object_lock_days:
            return None
        if self._lock_request is None:
            refusal = ("object_lock_days is set, but the bucket %s at %s does not have Object Lock enabled%s; nothing "
                       "was uploaded. Object Lock is enabled when a bucket is made (docs/offsite.md, \"Immutable copies\"): "
                       "use such a bucket, or leave object_lock_days unset")
            client = self.client()
            try:
                answer = client.get_object_lock_configuration(Bucket=self.bucket)
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
                code, problem = describe_problem(exc)
                if code != errno.EOPNOTSUPP:
                    raise self.failure(exc, "read the Object Lock configuration of", self.uri())
                raise StorageError(errno.EOPNOTSUPP, refusal % (self.bucket, self.endpoint(), " (%s)" % problem))
            if (answer.get("ObjectLockConfiguration") or {}).get("ObjectLockEnabled") != "Enabled":
                raise StorageError(errno.EOPNOTSUPP, refusal % (self.bucket, self.endpoint(), ""))
            now = server_time(answer) or datetime.datetime.now(UTC)
            self._lock_request = dict(ObjectLockMode=self.object_lock_mode,
                                      ObjectLockRetainUntilDate=retain_until(now, self.object_lock_days))
        return dict(self._lock_request)

    def check_lock(self, key, asked, head=None):
        """Raise StorageError when ``key`` does not carry the lock ``asked`` (lock_problems)."""
        head = head if head is not None else self.head(key)
        problems = lock_problems(head or {}, asked) if head is not None else ["it is gone"]
        if problems:
            raise StorageError(errno.EIO, "%s at %s is not immutable: %s" % (self.uri(key), self.endpoint(),
                                                                             "; ".join(problems)))

    def object_lock(self, name):
        """The Object Lock of the object ``name`` as the server reports it now (lock_of), or None
        when nothing locks it or there is no such object. Reading it may need a permission of its
        own (AWS: s3:GetObjectRetention, s3:GetObjectLegalHold); without, the server reports none."""
        head = self.head(object_key(self.prefix, name))
        return lock_of(head) if head is not None else None

    # -- base.Storage -----------------------------------------------------------------------

    def ensure(self):
        """Check that the bucket is there and these credentials reach it, and (``object_lock_days``)
        that it has Object Lock enabled; never creates one (a bucket's policy, versioning, lifecycle
        and Object Lock are the owner's to choose). Always False."""
        try:
            self.call("use bucket", None, "head_bucket")
        except StorageError as exc:
            if exc.errno == errno.ENOENT:
                raise StorageError(errno.ENOENT, "the bucket %s does not exist at %s (this storage never creates "
                                   "buckets: create it first)" % (self.bucket, self.endpoint()))
            if exc.errno == errno.EACCES:
                # A HEAD's refusal is a bare 403; a listing's says why (unknown key, wrong secret...).
                self.call("use bucket", None, "list_objects_v2", Prefix=self.prefix, MaxKeys=1)
            raise
        self.lock_request()  # with object_lock_days, a bucket without Object Lock is refused here
        return False

    def exists(self, name):
        return self.head(object_key(self.prefix, name)) is not None

    def create(self, name, mode=0o600, sha256=None):
        """A writer for ``name`` (see S3Writer). ``mode`` has no meaning in S3 (access is the bucket's
        policy); ``sha256``, when the caller knows it, goes into the metadata from the start and
        the upload is refused at commit if the bytes hash otherwise."""
        return S3Writer(self, name, sha256=sha256)

    def write(self, name, data, mode=0o600, replace=False):
        """Write a small object (a manifest) with one PUT. ``replace=False`` refuses an existing
        name: a HEAD first, then the PUT conditional on there being none (If-None-Match) where
        botocore and the server support it. Without that support a race remains: an object
        another writer puts between the HEAD and the PUT is silently replaced."""
        if not isinstance(data, bytes):
            data = data.encode("utf-8")
        key = object_key(self.prefix, name)
        lock = self.lock_request()
        params = dict(Key=key, Body=data, ContentMD5=content_md5(data), Metadata={SHA256_KEY: hashlib.sha256(data).hexdigest()},
                      **(lock or {}))
        if replace:
            answer = self.call("write", key, "put_object", **params)
        else:
            self.refuse_existing(key)
            answer = self.put_new(key, params)
        if lock:
            head = self.head(key)
            try:
                self.check_lock(key, lock, head)
            except StorageError as exc:
                # Not immutable as asked: taken back (the version just written, if it is still the one there).
                if head is not None and quoted(head.get("ETag")) == quoted(answer.get("ETag")):
                    try:
                        self.remove(name, head["ETag"])
                    except StorageError as again:
                        raise StorageError(exc.errno, "%s; removing it failed too: %s" % (exc.strerror, again.strerror))
                raise
        return self.uri(key)

    def put_new(self, key, params):
        """PUT a new object; EEXIST when the server says one appeared meanwhile."""
        try:
            return self.conditional_call("write", key, "put_object", {"IfNoneMatch": "*"}, **params)
        except StorageError as exc:
            if exc.errno == errno.EAGAIN:
                raise StorageError(errno.EEXIST, "refusing to overwrite %s at %s: another writer created it meanwhile"
                                   % (self.uri(key), self.endpoint()))
            raise

    def promote(self, staged, name):
        raise StorageError(errno.EOPNOTSUPP, "cannot rename %s to %s in %s: S3 has no rename (a key rotation runs on "
                           "local storage)" % (staged, name, self.location))

    def entries(self):
        """(Entry per object directly under the prefix, {name: ETag}); deeper keys and the prefix's
        own folder marker are left out."""
        entries, identities = [], {}
        token = None
        while True:
            params = dict(Prefix=self.prefix, Delimiter="/", MaxKeys=self.list_page_size)
            if token:
                params["ContinuationToken"] = token
            page = self.call("list", self.prefix, "list_objects_v2", **params)
            for item in page.get("Contents", ()):
                name = item["Key"][len(self.prefix):]
                if not name or "/" in name:
                    continue
                entries.append(Entry(name, FILE, item["Size"], aware_utc(item["LastModified"])))
                identities[name] = quoted(item["ETag"])
            if not page.get("IsTruncated"):
                return entries, identities
            token = page.get("NextContinuationToken")
            if not token:
                raise StorageError(errno.EIO, "cannot list %s at %s: the server said the listing goes on but gave no "
                                   "continuation token" % (self.location, self.endpoint()))

    def stat(self, name):
        head = self.head(object_key(self.prefix, name))
        if head is None:
            return None
        return Entry(name, FILE, head["ContentLength"], aware_utc(head["LastModified"]))

    def open_read(self, name, if_match=None):
        """A stream of the object ``name`` (S3ReadStream); ``if_match`` an ETag it must still have."""
        key = object_key(self.prefix, name)
        params = dict(Key=key, IfMatch=if_match) if if_match else dict(Key=key)
        response = self.call("read", key, "get_object", **params)
        return S3ReadStream(response["Body"], lambda exc: self.failure(exc, "read", self.uri(key)))

    def read_manifest(self, name):
        """The validated manifest ``name``; ManifestError when it is missing, too large or not a
        valid manifest (a StorageError when the storage cannot be reached at all)."""
        key = object_key(self.prefix, name)
        where = self.uri(key)
        try:
            stream = self.open_read(name)
        except StorageError as exc:
            if exc.errno == errno.ENOENT:
                raise manifest_mod.ManifestError("cannot read manifest %s: no such object" % where)
            raise
        limit = manifest_mod.MAX_MANIFEST_BYTES
        with stream:
            raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise manifest_mod.ManifestError("manifest %s is larger than %d bytes" % (where, limit))
        try:
            manifest = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise manifest_mod.ManifestError("manifest %s is not valid JSON: %s" % (where, exc))
        return manifest_mod.validate_manifest(manifest)

    def close(self):
        if self._client is not None:
            close = getattr(self._client, "close", None)  # botocore >= 1.25
            if close is not None:
                close()
            self._client = None

    def digest(self, name):
        """The sha256 of the object's bytes, read and hashed as they stream (never the metadata's
        word for it)."""
        return self.hash_object(name)[0]

    def hash_object(self, name, if_match=None):
        """(sha256, size) of the object as read now."""
        digest, size = hashlib.sha256(), 0
        with self.open_read(name, if_match=if_match) as stream:
            while True:
                chunk = stream.read(READ_CHUNK)
                if not chunk:
                    return digest.hexdigest(), size
                digest.update(chunk)
                size += len(chunk)

    def remove(self, name, identity):
        """Delete ``name`` if its ETag is still ``identity``; gone already is fine.

        On a versioned bucket (the HEAD names a version) the version examined is deleted, for good,
        and only it: no race, and no delete marker (which would hide the object while it stays
        stored). An older version of the name, if the bucket keeps one, is then what the name shows.
        Elsewhere the DELETE is conditional (If-Match) where botocore and the server support it;
        without, a race remains: an object put between the HEAD and the DELETE is deleted. A DELETE
        the server refuses (Object Lock, a legal hold, a permission) raises StorageError saying so."""
        key = object_key(self.prefix, name)
        head = self.head(key)
        if head is None:
            return
        changed = StorageError(errno.EAGAIN, "cannot remove %s at %s: it changed since it was examined; left alone"
                               % (self.uri(key), self.endpoint()))
        if quoted(head["ETag"]) != quoted(identity):
            raise changed
        version = head.get("VersionId")
        if version == "null":  # an unversioned object (versioning suspended): nothing to name
            version = None
        try:
            if version:
                self.call("remove", key, "delete_object", Key=key, VersionId=version)
            else:
                self.conditional_call("remove", key, "delete_object", {"IfMatch": quoted(identity)}, Key=key)
        except StorageError as exc:
            if exc.errno == errno.EAGAIN:
                raise changed
            if exc.errno == errno.EACCES:
                raise StorageError(exc.errno, self.refusal(key, head, version, exc))
            raise

    def refusal(self, key, head, version, exc):
        """Why the server refused to delete ``key`` (its HEAD ``head``), in words."""
        where = "cannot remove %s at %s" % (self.uri(key), self.endpoint())
        lock = lock_of(head)
        if lock is not None:
            return ("%s: the server refuses, it is under Object Lock (%s; the server's time %s); left alone"
                    % (where, describe_lock(lock), utc_text(lock["server_time"])))
        if version:
            return ("%s. Deleting a version needs the permission s3:DeleteObjectVersion; an Object Lock or legal "
                    "hold these credentials cannot read (s3:GetObjectRetention, s3:GetObjectLegalHold) also refuses "
                    "it; left alone" % exc.strerror)
        return "%s; left alone" % exc.strerror

    def sync(self):
        """Nothing to do: S3 answers a DELETE once it is done."""

    def uploads(self):
        """(name, started, upload id) of the unfinished multipart uploads directly under the prefix."""
        params = dict(Prefix=self.prefix)
        while True:
            page = self.call("list the unfinished uploads of", self.prefix, "list_multipart_uploads", **params)
            for upload in page.get("Uploads", ()):
                name = upload["Key"][len(self.prefix):]
                if name and "/" not in name:
                    yield name, upload["Initiated"], upload["UploadId"]
            if not page.get("IsTruncated"):
                return
            params.update(KeyMarker=page.get("NextKeyMarker", ""), UploadIdMarker=page.get("NextUploadIdMarker", ""))

    def stale_partials(self, older_than_hours=None):
        """The unfinished multipart uploads directly under the prefix started more than
        ``older_than_hours`` (default ``stale_after_hours``, 24) ago, as partial_name names. S3 does not say
        whether the writer still runs: the age is the judge, so a writer still streaming after a
        day would lose its upload."""
        hours = self.stale_after_hours if older_than_hours is None else older_than_hours
        cutoff = datetime.datetime.now(UTC) - datetime.timedelta(hours=hours)
        return sorted(set(partial_name(name, started) for name, started, _upload in self.uploads()
                          if aware_utc(started) <= cutoff))

    def remove_partials(self, names):
        """Abort the unfinished uploads that ``names`` (from stale_partials) name; other names are
        ignored, uploads already gone skipped. Returns the names whose uploads were aborted."""
        wanted = set(parsed for parsed in (parse_partial_name(name) for name in names) if parsed)
        removed = set()
        for name, started, upload_id in list(self.uploads()):
            if (name, epoch_seconds(started)) not in wanted:
                continue
            key = object_key(self.prefix, name)
            try:
                self.call("abort the unfinished upload of", key, "abort_multipart_upload", Key=key, UploadId=upload_id)
            except StorageError as exc:
                if exc.errno != errno.ENOENT:
                    raise
            removed.add(partial_name(name, started))
        return sorted(removed)

    def free_bytes(self):
        """None: a bucket has no free space to tell."""
        return None


class S3ReadStream(object):
    """An object's body as it downloads: ``read(size)``, ``close()``, a ``with`` block. Errors
    while reading become StorageError (``failure`` turns an exception into one)."""

    def __init__(self, body, failure):
        self._body = body
        self._failure = failure

    def read(self, size=-1):
        try:
            return self._body.read(None if size is None or size < 0 else size)
        except (botocore.exceptions.BotoCoreError, _Urllib3Error, OSError) as exc:
            raise self._failure(exc)

    def readable(self):
        return True

    def close(self):
        self._body.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()


def _part_size_for(base_size, number):
    """The size of part ``number`` (1-based): ``base_size``, doubled after every 2000 parts, so that
    10000 parts hold 62000 times ``base_size`` (496 GiB at 8 MiB) while memory holds one part."""
    return base_size * 2 ** ((number - 1) // PARTS_PER_SIZE_STEP)


class S3Writer(object):
    """Streams ``name`` into the storage; see the module's docstring. ``size`` counts the bytes
    written; ``sha256`` is set once committed."""

    def __init__(self, storage, name, sha256=None):
        if sha256 is not None and not _SHA256_RE.match(sha256):
            raise StorageError(errno.EINVAL, "the expected sha256 of %s is not 64 lowercase hex digits" % name)
        if sha256 is None and storage.object_lock_days:
            # A locked object's metadata cannot be rewritten (the copy onto itself of a large upload).
            raise StorageError(errno.EINVAL, "%s: with Object Lock (object_lock_days) a file's sha256 must be known "
                               "before its upload" % storage.uri(object_key(storage.prefix, name)))
        self.lock = storage.lock_request()  # a bucket without Object Lock is refused before any upload
        self.storage = storage
        self.name = name
        self.key = object_key(storage.prefix, name)
        self.expected_sha256 = sha256
        self.sha256 = None
        self.size = 0
        self._hash = hashlib.sha256()
        self._buffer = bytearray()
        self._upload_id = None
        self._parts = []
        self._finished = False
        # Fail before streaming gigabytes; commit checks again (the name may be taken meanwhile).
        storage.refuse_existing(self.key)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.abort()  # a no-op after a successful commit
        return False

    def _where(self):
        return "%s at %s" % (self.storage.uri(self.key), self.storage.endpoint())

    def write(self, data):
        if self._finished:
            raise StorageError(errno.EINVAL, "%s: written after commit or abort" % self._where())
        view = memoryview(data)
        self._hash.update(view)
        self.size += len(view)
        while len(view):
            room = _part_size_for(self.storage.part_size, len(self._parts) + 1) - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]
            if len(self._buffer) >= _part_size_for(self.storage.part_size, len(self._parts) + 1):
                self._send_part()

    def _send_part(self):
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise StorageError(errno.EFBIG, "%s: more than %d parts; use a larger part_size" % (self._where(), MAX_PARTS))
        if self._upload_id is None:
            params = dict(Key=self.key, **(self.lock or {}))
            if self.expected_sha256:
                params["Metadata"] = {SHA256_KEY: self.expected_sha256}
            self._upload_id = self.storage.call("start the upload of", self.key, "create_multipart_upload",
                                                **params)["UploadId"]
        # The bytearray itself is the body: no copy of the part is made.
        answer = self.storage.call("upload a part of", self.key, "upload_part", Key=self.key, UploadId=self._upload_id,
                                   PartNumber=number, Body=self._buffer, ContentMD5=content_md5(self._buffer))
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        self._buffer = bytearray()

    def commit(self):
        """Publish the object under its name, then check it end to end (see the module's docstring).
        Raises StorageError, with nothing left under the name, when any step fails."""
        if self._finished:
            raise StorageError(errno.EINVAL, "%s: committed after commit or abort" % self._where())
        sha256 = self._hash.hexdigest()
        storage = self.storage
        try:
            if self.expected_sha256 and sha256 != self.expected_sha256:
                raise StorageError(errno.EIO, "%s: the bytes written hash to %s, not to the expected %s; nothing was "
                                   "published" % (self._where(), sha256, self.expected_sha256))
            if self._upload_id is None:
                body = bytes(self._buffer)
                etag = storage.put_new(self.key, dict(Key=self.key, Body=body, ContentMD5=content_md5(body),
                                                      Metadata={SHA256_KEY: sha256}, **(self.lock or {})))["ETag"]
            else:
                if self._buffer:
                    self._send_part()
                etag = self._complete()
        except BaseException:
            self.abort()
            raise
        self._finished = True
        self._buffer = bytearray()
        try:
            if self._parts and not self.expected_sha256:
                etag = self._rewrite_metadata(quoted(etag), sha256)
            self._check(quoted(etag), sha256)
        except BaseException as exc:
            removed = self._discard(quoted(etag))
            if isinstance(exc, StorageError):
                raise StorageError(exc.errno, "%s; %s" % (exc.strerror, "the object was removed" if removed
                                                          else "removing the object failed too: remove it by hand"))
            raise
        self.sha256 = sha256

    def _complete(self):
        try:
            answer = self.storage.conditional_call(
                "publish", self.key, "complete_multipart_upload", {"IfNoneMatch": "*"}, Key=self.key,
                UploadId=self._upload_id, MultipartUpload={"Parts": self._parts})
        except StorageError as exc:
            if exc.errno == errno.EAGAIN:
                raise StorageError(errno.EEXIST, "refusing to overwrite %s: another writer created it meanwhile"
                                   % self._where())
            raise
        self._upload_id = None  # it is the object now: nothing left to abort
        return answer["ETag"]

    def _rewrite_metadata(self, etag, sha256):
        """Give the object just published (``etag``) its sha256 metadata by a server-side copy onto
        itself; returns the new ETag."""
        storage, source = self.storage, {"Bucket": self.storage.bucket, "Key": self.key}
        metadata = {SHA256_KEY: sha256}
        if self.size <= storage.copy_object_limit:
            answer = storage.call("record the sha256 of", self.key, "copy_object", Key=self.key, CopySource=source,
                                  CopySourceIfMatch=etag, MetadataDirective="REPLACE", Metadata=metadata)
            return answer["CopyObjectResult"]["ETag"]
        upload_id = storage.call("record the sha256 of", self.key, "create_multipart_upload", Key=self.key,
                                 Metadata=metadata)["UploadId"]
        try:
            parts, start = [], 0
            step = max(storage.copy_part_size, MIN_PART_SIZE, -(-self.size // MAX_PARTS))
            while start < self.size:
                end = min(start + step, self.size) - 1
                answer = storage.call("record the sha256 of", self.key, "upload_part_copy", Key=self.key,
                                      UploadId=upload_id, PartNumber=len(parts) + 1, CopySource=source,
                                      CopySourceIfMatch=etag, CopySourceRange="bytes=%d-%d" % (start, end))
                parts.append({"PartNumber": len(parts) + 1, "ETag": answer["CopyPartResult"]["ETag"]})
                start = end + 1
            answer = storage.call("record the sha256 of", self.key, "complete_multipart_upload", Key=self.key,
                                  UploadId=upload_id, MultipartUpload={"Parts": parts})
        except BaseException:
            self._abort_upload(upload_id)
            raise
        return answer["ETag"]

    def _check(self, etag, sha256):
        """The object as the server has it now: its size, its metadata, and (verify_upload) its
        bytes re-read, all of them what was sent."""
        head = self.storage.head(self.key)
        if head is None:
            raise StorageError(errno.EIO, "%s: gone right after it was published" % self._where())
        problems = []
        if head["ContentLength"] != self.size:
            problems.append("it has %d bytes, %d were sent" % (head["ContentLength"], self.size))
        recorded = (head.get("Metadata") or {}).get(SHA256_KEY)
        if recorded != sha256:
            problems.append("its metadata records sha256 %s, the bytes sent hash to %s" % (recorded, sha256))
        if self.lock:
            problems.extend(lock_problems(head, self.lock))
        if not problems and self.storage.verify_upload:
            found, size = self.storage.hash_object(self.name, if_match=etag)
            if (found, size) != (sha256, self.size):
                problems.append("read back it hashes to %s (%d bytes), the bytes sent to %s (%d bytes)"
                                % (found, size, sha256, self.size))
        if problems:
            raise StorageError(errno.EIO, "%s does not hold what was sent: %s" % (self._where(), "; ".join(problems)))

    def _discard(self, etag):
        """Best effort: delete the object published as ``etag``, not another writer's (remove's
        rules); whether it is gone."""
        try:
            self.storage.remove(self.name, etag)
        except StorageError:
            return False
        return True

    def _abort_upload(self, upload_id):
        try:
            self.storage.call("abort the upload of", self.key, "abort_multipart_upload", Key=self.key, UploadId=upload_id)
        except StorageError:
            pass  # best effort: stale_partials finds what is left

    def abort(self):
        """Drop what was written: the multipart upload is aborted (best effort, see stale_partials);
        nothing was ever published under the name."""
        self._finished = True
        self._buffer = bytearray()
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            self._abort_upload(upload_id)
