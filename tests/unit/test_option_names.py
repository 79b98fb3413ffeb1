# -*- coding: utf-8 -*-
"""One name per idea across the modules: the options as ansible-doc shows them (doc fragments
included) must not give one idea two names, or one name two meanings or two defaults."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

MODULES = ["backup", "verify", "restore", "prune", "backup_info", "compare"]

# Each idea and its one name; the other names it has had are only ever deprecated aliases.
IDEAS = {
    "the directory the backups are in": ("backup_dir", {"dest_dir", "path", "dir", "directory"}),
    "the clock of the time in a backup's name": ("name_timezone", {"timezone"}),
    "the clock of retention's day, week and month boundaries": ("calendar_timezone", {"timezone"}),
    "the database": ("database", {"db", "dbname", "prefix"}),
}
# Options whose same name means different things in different modules (none, and it should stay so).
SAME_NAME_OTHER_IDEA = set()
DEPRECATED = {
    "backup": {"dest_dir", "timezone"},
    "prune": {"path", "timezone", "prefix"},
    "backup_info": {"path", "prefix"},
}


@pytest.fixture(scope="module")
def options(module_docs):
    return dict((m, module_docs[m]["options"]) for m in MODULES)


def deprecated_in_spec(argument_spec):
    return set(alias["name"] for option in argument_spec.values() for alias in option.get("deprecated_aliases", []))


@pytest.mark.parametrize("module", MODULES)
def test_deprecated_aliases_are_the_listed_ones(module, argument_spec_of):
    assert deprecated_in_spec(argument_spec_of(module)) == DEPRECATED.get(module, set())


def test_no_idea_has_a_second_name(options):
    for idea, (name, others) in IDEAS.items():
        for module, opts in options.items():
            clash = set(opts) & others
            if module in ("verify", "restore"):
                clash -= {"path"}  # there `path` is the backup file: another idea
            assert not clash, "%s names %s %s; its one name is %s" % (module, idea, sorted(clash), name)
            if name in opts:
                live = set(opts[name].get("aliases", [])) - DEPRECATED.get(module, set())
                assert live <= {"db"}, "%s: %s has other names than deprecated ones: %s" % (module, name, live)


def test_one_name_has_one_type_default_choice_set_and_alias_set(options):
    by_name = {}
    for module, opts in options.items():
        for name, spec in opts.items():
            by_name.setdefault(name, []).append((module, spec))
    for name, uses in by_name.items():
        if len(uses) < 2 or name in SAME_NAME_OTHER_IDEA:
            continue
        shape = set()
        for module, spec in uses:
            aliases = tuple(sorted(set(spec.get("aliases", [])) - DEPRECATED.get(module, set())))
            shape.add((spec.get("type", "str"), json.dumps(spec.get("default"), sort_keys=True),
                       tuple(spec.get("choices") or ()), aliases))
        assert len(shape) == 1, "option %s differs between %s: %s" % (name, [use[0] for use in uses], sorted(shape))


def test_the_backup_file_and_the_backup_directory_are_not_confused(options):
    # `path` is a backup (file or directory archive) where it is a primary name; never the directory.
    for module in ("verify", "restore"):
        assert "backup_dir" not in options[module] and "path" in options[module]
    for module in ("backup", "prune", "backup_info"):
        assert "backup_dir" in options[module] and "path" not in options[module]
