# ai-workflow: `make up` brings the stack up on this machine, `make test` runs every test.
# Works on a fresh Debian/Ubuntu host as root with python3 (3.11+), git and make.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The Python services are the folders under services/ with a pyproject.toml.
PY_SERVICES := $(patsubst %/pyproject.toml,%,$(wildcard services/*/pyproject.toml))
PY_SERVICE_PACKAGES := $(patsubst %/__init__.py,%,$(foreach s,$(PY_SERVICES),$(wildcard $(s)/*/__init__.py)))
DASHBOARD := services/dashboard
# Debian packages the tests drive for real.
TEST_APT_PACKAGES := nginx tmux logrotate espeak-ng ffmpeg sox pebble certbot openssh-server \
	debootstrap docker-compose chromium zstd
# What `aiwf up` may need on the host: debootstrap builds the local base image when no registry
# answers; zstd compresses backups.
UP_APT_PACKAGES := debootstrap zstd

# Install the Debian packages in $(1) that are missing, with one apt-get call.
define apt_install_missing
	@missing="$$(for p in $(1); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done)"; \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi
endef

.PHONY: venv engine deps host-tools node lint dashboard test up

## venv: .venv with aiwf and every Python service installed (editable), test tools included
venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(wildcard services/*/pyproject.toml)
	@if [ ! -x $(BIN)/python ]; then \
		if ! $(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1; then \
			echo "installing python3-venv"; \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv; \
		fi; \
		$(PYTHON) -m venv $(VENV); \
	fi
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]' $(foreach s,$(PY_SERVICES),-e $(s))
	@touch $@

## engine: a Docker engine that answers (installs docker.io and starts dockerd when needed)
engine:
	@scripts/ensure-docker.sh

## deps: the Debian packages the tests use, installed when missing (one apt-get call)
deps:
	$(call apt_install_missing,$(TEST_APT_PACKAGES))

## host-tools: the Debian packages `aiwf up` may need on this host
host-tools:
	$(call apt_install_missing,$(UP_APT_PACKAGES))

## node: Node.js 20.19+ and npm for the dashboard. Debian's npm when none is installed; when the
## system's node is older (Debian 12 and Ubuntu 24.04 ship 18), the Node.js binary that the npm
## registry publishes as node-linux-<arch> goes into .tools/node/bin, which comes first on PATH.
NODE_VERSION := 22.23.3
NODE_BIN := $(CURDIR)/.tools/node/bin
export PATH := $(NODE_BIN):$(PATH)

node:
	@if [ -f $(DASHBOARD)/package.json ] && ! command -v npm >/dev/null 2>&1; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm; \
	fi
	@if [ -f $(DASHBOARD)/package.json ] && ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then \
		case "$$(uname -m)" in x86_64) arch=x64;; aarch64) arch=arm64;; *) echo "no Node.js package for $$(uname -m): install Node.js 20.19+" >&2; exit 1;; esac; \
		echo "node $$(node --version) is older than 20.19: installing node-linux-$$arch@$(NODE_VERSION) into .tools/node"; \
		npm install --no-audit --no-fund --no-save --prefix .tools/node-package node-linux-$$arch@$(NODE_VERSION); \
		mkdir -p $(NODE_BIN); \
		ln -sf ../../node-package/node_modules/node-linux-$$arch/bin/node $(NODE_BIN)/node; \
		node --version; \
	fi

## lint: ruff check, ruff format --check and mypy --strict on aiwf and every Python service
lint: venv
	$(BIN)/ruff check aiwf tests bench deploy.py $(PY_SERVICES)
	$(BIN)/ruff format --check aiwf tests bench deploy.py $(PY_SERVICES)
	$(BIN)/mypy aiwf
	@for package in $(PY_SERVICE_PACKAGES); do \
		echo "mypy $$package"; \
		(cd $$(dirname $$package) && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml $$(basename $$package)); \
	done

## dashboard: install, lint, type-check, unit-test and build the dashboard
dashboard: node
	@if [ -f $(DASHBOARD)/package.json ]; then \
		cd $(DASHBOARD) && npm ci --no-audit --no-fund && npm run lint && npm run typecheck \
			&& npm test && npm run build; \
	fi

## test: everything: Debian packages, engine, venv, lint, dashboard, then the whole pytest suite.
## The dockerd restart test stops the shared engine, so it runs alone, before the rest.
test: deps engine venv lint dashboard
	AIWF_E2E_RESTART_DOCKERD=1 $(BIN)/pytest tests/e2e/test_dockerd_restart.py
	$(BIN)/pytest --deselect tests/e2e/test_dockerd_restart.py

## up: bring the stack up on this machine (aiwf up)
up: venv engine host-tools node
	$(BIN)/aiwf up
