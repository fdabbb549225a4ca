# Entry points for users and CI. Everything a fresh machine needs is installed by these targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= $(CURDIR)/.venv
PY ?= python3
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: help venv system-deps test lint check-template nextest demo bench package clean-demo

help:
	@echo "make demo     rotate certificates for a fleet of local hosts on the local stack"
	@echo "make test     fmt, clippy, template checks and the whole test suite"
	@echo "make bench    benchmarks (prints figures, writes target/bench/report.json)"
	@echo "make package  build the four Lambda zips for arm64"

# Debian packages the checks and the emulated hosts use (openssl runs the host scripts).
system-deps:
	@missing=""; \
	command -v shellcheck >/dev/null || missing="$$missing shellcheck"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

# The project's virtualenv (moto server, cfn-lint, checkov), rebuilt when requirements change.
$(VENV)/.stamp: requirements-dev.txt
	@test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
	@touch $@

venv: $(VENV)/.stamp

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

check-template: venv system-deps
	cloudformation/check.sh $(VENV)

nextest: venv system-deps
	MOTO_PYTHON=$(VENV)/bin/python $(CARGO) nextest run --workspace --locked --no-fail-fast

test: venv system-deps lint check-template nextest

demo: venv system-deps
	MOTO_PYTHON=$(VENV)/bin/python $(CARGO) run --locked -q -p tests --bin demo

bench: venv system-deps
	MOTO_PYTHON=$(VENV)/bin/python $(CARGO) run --locked -q --release -p tests --bin bench
