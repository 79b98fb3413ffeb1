# lift_simulator.postgresql: the two commands are `make demo` and `make test` (see README.md).
# Every target installs what it needs itself (venv, Debian packages, Docker engine, lab images).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
COLLECTION_LINK := .cache/collections/ansible_collections/lift_simulator/postgresql
# make runs the lab (demo, demo-down) and the tests: the lab's configuration. Your own runs use
# ansible.cfg (no inventory, host-key checking on) with -i.
export ANSIBLE_CONFIG := $(CURDIR)/lab/ansible.cfg
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.cache/collections
export PATH := $(BIN):$(PATH)
export PY_COLORS := 0
export ANSIBLE_FORCE_COLOR := 0
export ANSIBLE_NOCOLOR := 1

.PHONY: help setup venv host lab-images collection-link lint sanity unit integration faults molecule \
        test demo demo-down build clean bench bench-fleet

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

venv: $(VENV)/.installed ## Python venv with the pinned toolchain

collection-link: ## make the checkout importable as lift_simulator.postgresql
	@mkdir -p $(dir $(COLLECTION_LINK))
	@ln -sfn ../../../.. $(COLLECTION_LINK)

host: ## Debian packages (PostgreSQL, docker.io, debootstrap...) and a running Docker engine
	scripts/bootstrap_host.sh

# The images the suite and the demo use (the script can build debian12 and debian13).
LAB_IMAGES ?= debian12 debian13
lab-images: host ## build the lab images (lift-lab/debian12, ...) when missing or their recipe changed
	scripts/build_lab_images.sh --parallel $(LAB_IMAGES)

setup: venv host collection-link

lint: venv collection-link ## ansible-lint (production profile)
	$(BIN)/ansible-lint --profile production

sanity: venv collection-link ## ansible-test sanity (offline-capable)
	scripts/ansible_test_sanity.sh

unit: venv collection-link ## pytest unit tests
	$(BIN)/pytest -q tests/unit

# Integration test files run INTEGRATION_JOBS at a time (pytest-xdist; each worker starts its own
# PostgreSQL and test servers on free ports; the tests of one file stay in one worker).
INTEGRATION_JOBS ?= 2
integration: setup ## modules through ansible-playbook against a real PostgreSQL (INTEGRATION_JOBS at a time)
	$(BIN)/pytest -q -n $(INTEGRATION_JOBS) --dist loadfile tests/integration

# The fault tests too, FAULT_JOBS files at a time: a test finds the processes it kills among its
# own descendants only (tests/lib/processes.py), never another worker's or a container's.
FAULT_JOBS ?= 2
faults: setup ## fault injection: kills, full disks, stopped servers, hostile inputs, secrets (FAULT_JOBS at a time)
	$(BIN)/pytest -q -n $(FAULT_JOBS) --dist loadfile tests/faults

# The scenarios to run (default: all of them), MOLECULE_JOBS at a time (default: the CPUs, at most 4).
MOLECULE_SCENARIOS ?=
molecule: setup lab-images ## molecule scenarios in systemd containers, several at a time (MOLECULE_JOBS)
	scripts/run_molecule.sh $(MOLECULE_SCENARIOS)

test: setup lab-images ## the whole suite: lint, sanity, unit, integration, faults, molecule
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory sanity
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory integration
	$(MAKE) --no-print-directory faults
	$(MAKE) --no-print-directory molecule

# The story on two lab machines: lift-db-1 (Debian 12) gets PostgreSQL 15 from the server role
# and the sample data, is backed up, and migrated to a bare lift-db-2 (Debian 13: PostgreSQL 17
# from the same role through clean_restore), which then verifies the backup again; the last
# playbook prints a summary of both machines.
demo: setup lab-images ## lab story: provision lift-db-1, sample data, backup, migrate to lift-db-2, verify, summary
	$(BIN)/ansible-playbook lab/up.yml
	$(BIN)/ansible-playbook lab/prepare.yml
	$(BIN)/ansible-playbook playbooks/backup.yml -e lift_backup_fetch=true
	$(BIN)/ansible-playbook lab/demo.yml -e migrate_reuse_backup=true

demo-down: venv collection-link ## remove the lab containers (lift-db-1 and lift-db-2)
	$(BIN)/ansible-playbook lab/down.yml

# The bench also runs pgBackRest (physical) beside the modules, a tiny database (the fixed cost) and
# wide-shaped databases (backups); BENCH_ARGS for its options (bench/bench.py --help), e.g.
# BENCH_ARGS='--sizes 100 --wide-sizes ""'.
bench: setup ## benchmark against the bare PostgreSQL tools and pgBackRest (1/100/500/1500 MB; about 45 min)
	$(BIN)/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	$(BIN)/python bench/bench.py --docs $(BENCH_ARGS)

# One backup.yml over N lab containers of its own (lift-bench-fleet-<i>, removed afterwards);
# BENCH_FLEET_ARGS for its options (bench/fleet.py --help).
bench-fleet: setup lab-images ## fleet run: one backup.yml over 1, 2, 4, 8 lab containers (about 15 min)
	$(BIN)/python bench/fleet.py $(BENCH_FLEET_ARGS)

build: venv ## build the collection tarball
	$(BIN)/ansible-galaxy collection build --force --output-path .cache/dist .

clean: ## remove caches (not the venv)
	rm -rf .cache tests/output .pytest_cache
