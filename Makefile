# gpulab.cluster: the two commands are `make demo` and `make test` (README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/collections
export ANSIBLE_FORCE_COLOR ?= 0
export PYTHONUNBUFFERED := 1
LAB := $(CURDIR)/lab/gpulab-lab
SANITY_DIR := $(CURDIR)/build/sanity/ansible_collections/gpulab/cluster

.PHONY: help deps venv lab-up lab-down lab-status demo site test test-quick test-unit test-syntax \
        test-sanity test-lint test-molecule perf ddp-smoke-cpu molecule-cluster molecule-lb-pair molecule-node molecule-osd docs docs-check \
        changelog-lint manifests clean

help:
	@echo "make demo        install what is missing, start the 19-host lab, run site.yml twice, summarise"
	@echo "make test        every test: unit, sanity, lint, Molecule on the container lab and on a VM"
	@echo "make test-quick  the inner loop: unit, syntax, lint, docs in sync (no lab)"
	@echo "make lab-up | lab-down | lab-status     the container lab alone"

deps:
	@scripts/install-deps

$(VENV)/.installed: requirements.txt cli/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt
	# the gpulab command (cli/), from this checkout
	$(VENV)/bin/pip install -q --no-deps -e ./cli
	touch $@

venv: $(VENV)/.installed

lab-up: deps venv
	$(LAB) up

lab-down:
	$(LAB) down

lab-status:
	$(LAB) status

# One converge of site.yml on the lab; GPULAB_SITE_ARGS passes extra options (e.g. --check).
site: venv
	ansible-playbook playbooks/site.yml $(GPULAB_SITE_ARGS)

demo: deps venv lab-up
	scripts/demo

# docs/performance.md's numbers (recreates the lab; about 25 minutes on 2 cores).
perf: deps venv
	scripts/measure-performance

ddp-smoke-cpu:
	scripts/ddp-smoke-cpu

test: test-quick test-sanity test-molecule
	@echo "make test: all suites passed"

test-quick: venv test-unit test-syntax test-lint docs-check changelog-lint

test-unit: venv
	python -m pytest tests/unit tests/integration -q --cov=plugins --cov=cli/gpulab_cli --cov-branch \
	  --cov-report=term-missing:skip-covered --cov-fail-under=85

test-syntax: venv
	ansible-playbook -i inventories/production --syntax-check playbooks/*.yml
	ansible-inventory -i inventories/production --list > /dev/null

test-lint: venv
	ansible-lint --profile production

test-sanity: venv
	python scripts/ansible-test-pip-bootstrap
	rm -rf $(CURDIR)/build/sanity && mkdir -p $(SANITY_DIR)
	git ls-files -co --exclude-standard | grep -v '^collections/' | \
	  rsync -a --files-from=- ./ $(SANITY_DIR)/
	cd $(SANITY_DIR) && git init -q && git add -A && \
	  ansible-test sanity --python 3.11 --venv --requirements --color no

test-molecule: molecule-cluster molecule-lb-pair molecule-node molecule-osd

molecule-cluster: deps venv
	molecule test -s cluster

# Two load balancers sharing the API's virtual IP (keepalived); uses the lab network, so after molecule-cluster.
molecule-lb-pair: deps venv
	molecule test -s lb_pair

# The node layer on a real kernel: a qemu VM with two extra disks, swap from three sources, a reboot.
molecule-node: deps venv
	molecule test -s node

# Ceph OSD preparation on a real kernel: a qemu VM whose disk holds a partition in every state ceph_osd_prep judges.
molecule-osd: deps venv
	molecule test -s osd

docs: venv
	python scripts/role-docs write

docs-check: venv
	python scripts/role-docs check

changelog-lint: venv
	antsibull-changelog lint

# Every manifest the collection renders, for the production inventory, into build/manifests/<role>/ (no cluster).
manifests: venv
	rm -rf $(CURDIR)/build/manifests
	ansible-playbook -i inventories/production playbooks/manifests.yml

clean: lab-down
	rm -rf build
