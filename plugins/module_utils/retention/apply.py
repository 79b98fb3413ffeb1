# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Applying retention to a backup directory: scan, plan, remove.

The one implementation behind the ``prune`` module and the host-side scheduled job: the
directory is opened once, listed through that descriptor, the backups are examined (manifests
read, checksums verified), ``retention.plan`` decides, and what it removes goes through the same
descriptor (storage/posix.py: never a symlink, never an entry that changed since it
was examined; a backup before its manifest). On a storage that can lock objects (S3 Object Lock:
the driver's ``object_lock``), every object of what the plan removes is read first, and a backup
any of whose objects the server still retains is kept whole (policy.hold_back). The rules are
documented in docs/retention.md. Pure Python (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact.naming import safe_component
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.retention import candidates as retention_candidates
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.retention import policy as retention
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import atomic_files
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import path_trust
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.base import StorageError
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.posix import PosixStorage

UTC = datetime.timezone.utc


class PruneError(Exception):
    """Retention could not examine the directory (or refused to go on); nothing was removed."""


class PruneOutcome(object):
    """What ``apply_retention`` found and did.

    ``exists`` is False when ``path`` does not exist (nothing examined, nothing removed).
    ``plan`` is the retention.Plan; ``removed`` the decisions carried out (or, in check mode, that
    would be); ``errors`` the entries that could not be removed, as dict(path, msg); ``retained``
    the decisions the plan would have removed that the storage still retains, as (decision, locks).
    """

    def __init__(self, path, now):
        self.path = path
        self.now = now
        self.exists = True
        self.scanned = None
        self.left_out = []
        self.plan = retention.Plan([], [])
        self.removed = []
        self.errors = []
        self.warnings = []
        self.retained = []

    @property
    def kept(self):
        return self.plan.kept

    def kept_results(self):
        return [entry_result(d, self.path, self.now) for d in self.plan.kept]

    def removed_results(self):
        return [entry_result(d, self.path, self.now) for d in self.removed]

    def retained_results(self):
        """The backups (and leftovers) kept because the storage still retains them: each with the rule that
        would have removed it, the last retain-until date of its objects and every locked object."""
        results = []
        for decision, locks in self.retained:
            until = retention.held_until(locks)
            results.append(dict(
                name=decision.name, path=os.path.join(self.path, decision.name), rule=decision.rule, what=decision.what,
                retain_until=retention.utc_text(until), legal_hold=any(lock.get("legal_hold") for _n, lock in locks),
                mode="/".join(sorted(set(lock["mode"] for _n, lock in locks if lock.get("mode")))) or None,
                objects=[dict(name=name, retain_until=retention.utc_text(lock.get("retain_until")), mode=lock.get("mode"),
                              legal_hold=bool(lock.get("legal_hold"))) for name, lock in locks]))
        return results

    def left_alone(self):
        """Backup-named entries left alone, and why (symlinks; earlier processes' backups)."""
        if self.scanned is None:
            return []
        result = [dict(path=os.path.join(self.path, entry.name), reason=reason) for entry, reason in self.scanned.skipped]
        result.extend(dict(path=os.path.join(self.path, s.entry.name),
                           reason="an earlier process's backup; include_legacy is false") for s in self.left_out)
        return result

    def diff(self):
        """Listing of the backups, manifests and leftovers before and after (for --diff)."""
        before = sorted(set(n for d in self.plan.kept + self.plan.removed for n in removed_names(d)))
        gone = set(n for d in self.plan.removed for n in removed_names(d))
        return dict(before_header=self.path, after_header=self.path,
                    before="".join(n + "\n" for n in before),
                    after="".join(n + "\n" for n in before if n not in gone))


def entry_result(decision, path, now):
    """A decision as the modules return it (name, path, rule, reason, and the backup's data)."""
    result = dict(name=decision.name, path=os.path.join(path, decision.name), rule=decision.rule,
                  rules=decision.rules, reason=decision.reason, what=decision.what)
    candidate = decision.candidate
    if candidate is not None:
        result.update(
            time=candidate.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            age_days=round((now - candidate.time).total_seconds() / 86400.0, 3),
            good=candidate.good, problem=candidate.problem, legacy=candidate.legacy, size_bytes=candidate.size,
            manifest_path=os.path.join(path, candidate.manifest_name) if candidate.manifest_name else None)
    return result


def retained_objects(store, decisions):
    """{decision name: [(object name, lock)]} of the ``decisions`` whose objects the storage still
    retains, read from the storage (``object_lock``: the server's answer, object by object) before
    anything is removed; {} for a storage that has no locks (a directory, SFTP)."""
    object_lock = getattr(store, "object_lock", None)
    if object_lock is None:
        return {}
    holds = {}
    for decision in decisions:
        if decision.what == "partial":  # an unfinished upload: no object, nothing locked
            continue
        locks = [(name, lock) for name, lock in ((n, object_lock(n)) for n in removed_names(decision))
                 if lock is not None and lock["retained"]]
        if locks:
            holds[decision.name] = locks
    return holds


def examine(store, prefix, include_legacy=False, verify_checksums=True, legacy_tz=None):
    """The backups of ``prefix`` in ``store``: (scan, candidates, left out, identities), manifests
    read and (``verify_checksums``) checksums verified. The one listing of prune, backup_info and
    the backup's reuse. Raises OSError when the location cannot be read."""
    entries, idents = store.entries()
    scanned = retention_candidates.scan(entries, prefix)
    candidates, left_out = retention_candidates.inspect(
        scanned, include_legacy, read_manifest=store.read_manifest,
        digest=store.digest if verify_checksums else None, legacy_tz=legacy_tz)
    return scanned, candidates, left_out, idents


def _apply(store, outcome, prefix, rules, include_legacy, verify_checksums, legacy_tz, protect, check_mode):
    """Scan, plan and remove through ``store``, held open: what it removes is what it listed."""
    path = store.location
    try:
        outcome.scanned, candidates, outcome.left_out, idents = examine(
            store, prefix, include_legacy, verify_checksums, legacy_tz)
        partials = [name for name in store.stale_partials()
                    if retention_candidates.belongs_to(atomic_files.partial_target(name), prefix)]
    except OSError as exc:
        raise PruneError("cannot examine %s: %s" % (path, exc))
    outcome.plan = retention.plan(candidates, rules, outcome.now,
                                  orphan_manifests=[e.name for e in outcome.scanned.orphan_manifests],
                                  orphan_globals=[e.name for e in outcome.scanned.orphan_globals],
                                  stale_partials=partials)
    holds = retained_objects(store, outcome.plan.removed)
    if holds:
        outcome.retained = [(d, holds[d.name]) for d in outcome.plan.removed if d.name in holds]
        outcome.plan = retention.hold_back(outcome.plan, holds)
    protected = set(protect or ())
    doomed = sorted(protected.intersection(n for d in outcome.plan.removed for n in removed_names(d)))
    if doomed:
        raise PruneError("retention would remove %s, which must be kept (is a backup dated in the future "
                         "in %s?); nothing was removed" % (", ".join(doomed), path))
    if check_mode:
        outcome.removed = list(outcome.plan.removed)
        return
    for decision in outcome.plan.removed:
        gone = []
        try:
            if decision.what == "partial":
                store.remove_partials([decision.name])
            else:
                # The backup first: an interruption leaves orphan companions, removed next time.
                for name in removed_names(decision):
                    store.remove(name, idents[name])
                    gone.append(name)
        except OSError as exc:
            message = exc.strerror or str(exc)
            if decision.what != "partial" and len(removed_names(decision)) > 1:
                message += " (%s)" % ("removed before it: %s" % ", ".join(gone) if gone else "nothing of this backup was removed")
            outcome.errors.append(dict(path=os.path.join(path, decision.name), msg=message))
            continue
        outcome.removed.append(decision)
    if outcome.plan.removed:
        store.sync()


def removed_names(decision):
    """The directory entries a decision covers, in the order they are removed: the backup, its
    globals file and its manifest (last, so an interruption never leaves a manifest that counts)."""
    names = [decision.name]
    if decision.candidate is not None:
        names.extend(n for n in (decision.candidate.globals_name, decision.candidate.manifest_name) if n)
    return names


def apply_retention(path, rules, database="lift_simulator", include_legacy=False, verify_checksums=True,
                    legacy_tz=None, now=None, check_mode=False, protect=(), directory_checks=path_trust.STRICT):
    """Apply ``rules`` (a retention.Rules) to the backups of ``database`` in ``path``.

    ``legacy_tz`` is the time zone of the earlier processes' names (None: local time). In check
    mode nothing is removed and ``removed`` lists what would be. ``protect`` names entries that
    must not be removed: if the plan removes one, PruneError is raised before anything is removed
    (the scheduled job protects the backup it has just made). Raises PruneError when the directory
    cannot be opened or examined, or (``directory_checks`` strict) when another local user could
    change it; removal failures are collected in ``errors``.
    """
    path = os.path.abspath(path)
    outcome = PruneOutcome(path, now or datetime.datetime.now(UTC))
    if not os.path.lexists(path):
        outcome.exists = False
        return outcome
    if not os.path.isdir(path):
        raise PruneError("%s is not a directory" % path)
    try:
        outcome.warnings = path_trust.check([path], directory_checks, "the backup directory")
    except path_trust.UntrustedPathError as exc:
        raise PruneError("%s; nothing was removed" % exc)
    return apply_retention_to(PosixStorage(path), rules, database, include_legacy, verify_checksums, legacy_tz,
                              outcome.now, check_mode, protect, outcome)


def apply_retention_to(store, rules, database="lift_simulator", include_legacy=False, verify_checksums=True,
                       legacy_tz=None, now=None, check_mode=False, protect=(), outcome=None):
    """Apply ``rules`` to the backups of ``database`` in ``store`` (any storage driver: the local
    directory, an off-site target); as ``apply_retention`` without the local directory's checks."""
    outcome = outcome or PruneOutcome(store.location, now or datetime.datetime.now(UTC))
    prefix = safe_component(database)
    try:
        with store:
            _apply(store, outcome, prefix, rules, include_legacy, verify_checksums, legacy_tz, protect, check_mode)
    except StorageError as exc:
        raise PruneError(exc.strerror or str(exc))
    return outcome
