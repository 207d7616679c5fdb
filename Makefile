# kubecluster.aws development entry points. The README documents two of them:
#   make demo   create the example cluster on a local AWS (moto + Docker hosts) and show its nodes
#   make test   everything CI runs, stopping at the first failure
# Everything runs from the venv in .venv (made by `make venv`, from requirements-dev.txt).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
BENCH_ARGS ?=
export PATH := $(BIN):$(PATH)

.PHONY: help venv collection-link test test-lane-localaws-checks test-lane-nodes-e2e test-unit test-e2e test-nodes test-localaws sanity lint docs-check build release demo demo-stop bench bench-full bench-hosts clean distclean

help:
	@echo "make demo        create the example cluster on a local AWS (moto + Docker hosts) and show its nodes"
	@echo "make demo-stop   remove everything make demo started"
	@echo "make test        test-unit, test-e2e, sanity, lint and docs-check, stopping at the first failure"
	@echo "make venv        create .venv with requirements-dev.txt (done by every target that needs it)"
	@echo "make bench       count API calls and time each phase (bench/api_calls.py)"
	@echo "make bench-full  the whole benchmark table: 2, 20 and 100 workers, this collection next to bench/stock, on moto and"
	@echo "                 in moto's state-transition mode (estimated real-AWS seconds), medians of 3 (about 1.5 to 2 hours)"
	@echo "make bench-hosts the same for the whole flow on the local AWS's hosts, as root (BENCH_ARGS=--local-hosts)"
	@echo "make build       build/kubecluster-aws-<version>.tar.gz with the release notes of galaxy.yml's version (CHANGELOG.rst)"
	@echo "make release VERSION=x.y.z  release: galaxy.yml's version, changelogs/fragments/ into changelog.yaml and CHANGELOG.rst"
	@echo "make clean       remove build output and caches (make distclean also removes .venv)"

venv: $(STAMP) collection-link

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --progress-bar off --upgrade pip
	$(BIN)/python -m pip install --progress-bar off -r requirements-dev.txt
	touch $@

# ansible.cfg resolves kubecluster.aws through this link to the checkout.
collection-link:
	@hack/link-collection.sh

test: venv
	$(MAKE) test-unit
	@# Two lanes side by side, each about 40 minutes: the local AWS suites (the longest) then the static checks,
	@# and the node tests then the e2e playbooks. They use their own networks, addresses, ports and locks (Docker
	@# and the host image are prepared under one lock). Each recipe line's output shows when that line ends.
	$(MAKE) -j2 --output-sync=line test-lane-localaws-checks test-lane-nodes-e2e

test-lane-localaws-checks: venv
	$(MAKE) test-localaws
	$(MAKE) sanity
	$(MAKE) lint
	$(MAKE) docs-check

test-lane-nodes-e2e: venv
	$(MAKE) test-nodes
	$(MAKE) test-e2e

# One pytest worker per core; a test file stays in one worker, in order, as when run alone.
UNIT_PARALLEL ?= -n auto --dist loadfile

test-unit: venv
	$(BIN)/python -m pytest $(UNIT_PARALLEL) tests/unit $(PYTEST_ARGS)

# pytest exits 5 when it collects no test: that fails the target too (nothing was tested).
test-e2e: venv
	$(BIN)/python -m pytest -m e2e tests/integration $(PYTEST_ARGS) || { \
	    status=$$?; \
	    if [ $$status -eq 5 ]; then echo "test-e2e: pytest collected no e2e test in tests/integration" >&2; fi; \
	    exit $$status; }

# Node roles against Debian 12 hosts in Docker (needs root: hack/nodes-env.sh installs docker.io and
# debootstrap and starts dockerd when missing). Zero collected tests fail the target, as for test-e2e.
test-nodes: venv
	$(BIN)/python -m pytest -m nodes tests/nodes $(PYTEST_ARGS) || { \
	    status=$$?; \
	    if [ $$status -eq 5 ]; then echo "test-nodes: pytest collected no node test in tests/nodes" >&2; fi; \
	    exit $$status; }

# The product against the local AWS (tests/localaws: moto whose instances are Debian hosts in Docker,
# load balancers real TCP proxies; kubeadm, kubelet and the API server stand-ins). Needs root, as test-nodes.
test-localaws: venv
	$(BIN)/python -m pytest -m localaws tests/integration/test_localaws*.py $(PYTEST_ARGS) || { \
	    status=$$?; \
	    if [ $$status -eq 5 ]; then echo "test-localaws: pytest collected no localaws test" >&2; fi; \
	    exit $$status; }

sanity: venv
	PYTHON=$(BIN)/python hack/sanity.sh

# mypy reads mypy.ini (strict on module_utils); the collection link made by venv lets it import
# the checkout as ansible_collections.kubecluster.aws.
lint: venv
	$(BIN)/ansible-lint
	$(BIN)/shellcheck .ci/run hack/*.sh
	MYPYPATH=.ansible/collections $(BIN)/mypy -p ansible_collections.kubecluster.aws.plugins

docs-check: venv
	PYTHON=$(BIN)/python hack/docs-check.sh

build: venv
	PYTHON=$(BIN)/python hack/build-collection.sh

# A release in the checkout (to commit and tag): antsibull-changelog moves the fragments into
# changelogs/changelog.yaml and writes CHANGELOG.rst; ansible-doc (in the venv) names new plugins.
release: venv
	@test -n "$(VERSION)" || { echo "make release VERSION=x.y.z: say the version to release" >&2; exit 2; }
	sed -i 's/^version: .*/version: $(VERSION)/' galaxy.yml
	PATH="$(BIN):$$PATH" $(BIN)/antsibull-changelog release --version $(VERSION)
	PYTHON=$(BIN)/python hack/build-collection.sh

demo: venv
	VENV_BIN=$(BIN) hack/demo.sh

demo-stop:
	hack/demo.sh stop

bench: venv
	$(BIN)/python bench/api_calls.py $(BENCH_ARGS)

# Everything issue 9 asks of the benchmark in one run (bench/README.md): 4 jobs at once, at most one of them moto-only
# (CPU-bound); the state-transition jobs mostly sleep. Every sample goes to .cache/bench/full.json as each job ends
# (bench/api_calls.py --from-json .cache/bench/full.json prints the table again). BENCH_ARGS adds to or overrides them.
BENCH_FULL_JOBS ?= 4

bench-full: venv
	mkdir -p .cache/bench
	$(BIN)/python bench/api_calls.py --full --jobs $(BENCH_FULL_JOBS) --json .cache/bench/full.json $(BENCH_ARGS)

# The whole flow (node plays too) on tests/localaws: root and Docker, as test-localaws; one local AWS per machine.
bench-hosts: venv
	$(BIN)/python bench/api_calls.py --local-hosts $(BENCH_ARGS)

clean:
	@if [ -f .cache/demo/moto_server.pid ] || [ -f .cache/demo/localaws/localaws.pid ]; then hack/demo.sh stop; fi
	rm -rf build tests/output .cache .pytest_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) .ansible
