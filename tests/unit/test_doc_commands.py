# -*- coding: utf-8 -*-
"""What the docs show, checked as written.

Every ansible-playbook and ansible command in the docs and the playbook headers: Ansible accepts
its options, it names an inventory (the checkout has no default one), its playbook exists, every
`-e name=value` is a variable that playbook (or a role it applies) reads, and restore.yml and
rollback.yml are limited to one host. Every YAML snippet: a task of one of our modules uses only
that module's options, and a role variable is one the role declares. The README's quick start
and the runbook are also run for real, over SSH, by the molecule scenario `quickstart`; the
modules' EXAMPLES by tests/integration/test_examples.py."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os
import re
import shlex

import pytest
import yaml
from ansible.cli.adhoc import AdHocCLI
from ansible.cli.playbook import PlaybookCLI

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCES = (["README.md"] + sorted(glob.glob("docs/*.md", root_dir=ROOT)) + sorted(glob.glob("roles/*/README.md", root_dir=ROOT))
           + sorted(glob.glob("playbooks/*.yml", root_dir=ROOT)) + sorted(glob.glob("lab/*.yml", root_dir=ROOT)))
COMMAND_START = re.compile(r"^(ansible-playbook|ansible) ")
ONE_HOST_PLAYBOOKS = {"restore", "rollback"}


def _command_lines(path, text):
    """The command lines of one file: code spans and code block lines in Markdown (continuations
    joined), comment lines in YAML."""
    if path.endswith(".md"):
        yield from re.findall(r"(?<!`)`([^`\n]+)`(?!`)", text)
        for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
            for line in block.replace("\\\n", " ").splitlines():
                yield line.strip()
    else:
        for line in text.splitlines():
            if line.startswith("#"):
                # A remark after the command: two or more spaces, then "(" or "#".
                yield re.split(r"\s{2,}[(#]", line.lstrip("#").strip())[0]


def doc_commands():
    found = []
    for source in SOURCES:
        with open(os.path.join(ROOT, source)) as handle:
            text = handle.read()
        for line in _command_lines(source, text):
            if COMMAND_START.match(line):
                found.append(pytest.param(source, line, id="%s: %s" % (source, line[:90])))
    return found


def _parse(argv):
    cli = (PlaybookCLI if argv[0] == "ansible-playbook" else AdHocCLI)(argv)
    cli.init_parser()
    return cli.parser.parse_args(argv[1:])


def _playbook_file(name):
    if name.startswith("lift_simulator.postgresql."):
        return os.path.join(ROOT, "playbooks", name.split(".")[-1] + ".yml")
    return os.path.join(ROOT, name)


def _variables_read_by(playbook_path):
    """Words of the playbook and of the argument specs of the roles it applies (their variables)."""
    with open(playbook_path) as handle:
        text = handle.read()
    for role in set(re.findall(r"lift_simulator\.postgresql\.(\w+)", text)):
        spec = os.path.join(ROOT, "roles", role, "meta", "argument_specs.yml")
        if os.path.exists(spec):
            with open(spec) as handle:
                text += handle.read()
    return set(re.findall(r"\w+", text))


def test_the_docs_show_commands():
    # The extraction itself works: the quick start, the runbook and the playbook headers are found.
    sources = {param.values[0] for param in doc_commands()}
    assert {"README.md", "docs/runbook.md", "playbooks/restore.yml", "lab/prepare.yml"} <= sources
    assert len(doc_commands()) >= 40


@pytest.mark.parametrize("source, command", doc_commands())
def test_doc_command_works_as_written(source, command):
    argv = shlex.split(command, comments=True)
    try:
        options = _parse(argv)
    except SystemExit:
        pytest.fail("%s: Ansible refuses the command %r" % (source, command))
    assert options.inventory, "%s: %r names no inventory (-i): the checkout has no default one" % (source, command)
    if argv[0] == "ansible":
        return
    playbook = options.args[0]
    path = _playbook_file(playbook)
    assert os.path.isfile(path), "%s: %r runs %s, which does not exist" % (source, command, playbook)
    known = _variables_read_by(path)
    for extra in options.extra_vars:
        if extra.startswith("@"):
            continue
        name = extra.split("=", 1)[0]
        assert name in known, "%s: %r sets %s, which %s does not read" % (source, command, name, playbook)
    stem = os.path.basename(path)[:-len(".yml")]
    if stem in ONE_HOST_PLAYBOOKS:
        assert options.subset, "%s: %r restores without --limit (one host)" % (source, command)


ROLE_PREFIXES = {"server_": "server", "scheduled_backup_": "scheduled_backup", "clean_restore_": "clean_restore",
                 "private_directory_": "private_directory", "fetch_backup_": "fetch_backup"}


def doc_snippets():
    found = []
    for source in SOURCES:
        if source.endswith(".md"):
            with open(os.path.join(ROOT, source)) as handle:
                for number, block in enumerate(re.findall(r"```yaml\n(.*?)```", handle.read(), re.S)):
                    found.append(pytest.param(source, block, id="%s: yaml block %d" % (source, number + 1)))
    return found


def _role_variables(role):
    with open(os.path.join(ROOT, "roles", role, "meta", "argument_specs.yml")) as handle:
        specs = yaml.safe_load(handle)["argument_specs"]
    return set(name for entry in specs.values() for name in entry.get("options", {}))


def _walk(node):
    """Every mapping in a YAML document."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def test_the_docs_show_yaml():
    assert len(doc_snippets()) >= 10


@pytest.mark.parametrize("source, snippet", doc_snippets())
def test_doc_yaml_uses_real_options_and_variables(source, snippet, module_docs):
    # A snippet may repeat a key to show alternatives (docs/scheduling.md); each must still parse.
    document = yaml.safe_load(snippet)
    for mapping in _walk(document):
        for key, value in mapping.items():
            key = str(key)
            module = key.rsplit(".", maxsplit=1)[-1]
            if key.startswith("lift_simulator.postgresql.") and module in module_docs:
                names = set()
                for name, spec in module_docs[module]["options"].items():
                    names.add(name)
                    names.update(spec.get("aliases", []))
                unknown = sorted(set(value or {}) - names)
                assert not unknown, "%s: the %s task uses options it does not have: %s" % (source, module, unknown)
            for prefix, role in ROLE_PREFIXES.items():
                if key.startswith(prefix):
                    assert key in _role_variables(role), "%s: %s is not a variable of the role %s" % (
                        source, key, role)
