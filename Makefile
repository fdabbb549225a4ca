# Entry points for users and CI. Everything a fresh machine needs is installed by these targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= $(CURDIR)/.venv
PY ?= python3
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: help venv system-deps test lint render check-template nextest demo bench package clean-demo simulate

help:
	@echo "make demo     rotate certificates for a fleet of local hosts on the local stack"
	@echo "make test     fmt, clippy, template checks and the whole test suite"
	@echo "make bench    benchmarks (prints figures, writes target/bench/report.json)"
	@echo "make package  build the four Lambda zips for arm64"
	@echo "make chaos    the chaos test at full size (50 hosts; CHAOS_SEED=<n> replays a run)"
	@echo "make simulate the fleet simulator at full size (SCENARIO=<name>, any parameter by name)"
	@echo "make render   write cloudformation/documents/ into cloudformation/template.yaml"

# Debian packages the checks and the emulated hosts use (openssl runs the host scripts, bats
# tests their shell functions).
system-deps:
	@missing=""; \
	command -v shellcheck >/dev/null || missing="$$missing shellcheck"; \
	command -v bats >/dev/null || missing="$$missing bats"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	test -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf || missing="$$missing fonts-dejavu-core"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

# The project's virtualenv (moto server, cfn-lint, checkov), rebuilt when requirements change.
$(VENV)/.stamp: requirements-dev.txt
	@test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	@echo "installing the Python tools into $(VENV) (requirements-dev.txt)…"
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
	@touch $@

venv: $(VENV)/.stamp

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

# The SSM documents' scripts and patterns (cloudformation/documents/) into template.yaml.
render:
	$(PY) cloudformation/render.py

check-template: venv system-deps
	cloudformation/check.sh $(VENV)

nextest: venv system-deps
	MOTO_PYTHON=$(VENV)/bin/python $(CARGO) nextest run --workspace --locked --no-fail-fast

test: venv system-deps lint check-template nextest

# The chaos test at its full size (CI runs it with 8 hosts inside `make test`).
CHAOS_HOSTS ?= 50
chaos: venv system-deps
	CHAOS_HOSTS=$(CHAOS_HOSTS) MOTO_PYTHON=$(VENV)/bin/python $(CARGO) nextest run --locked --profile chaos -p tests -E 'binary(chaos)' --no-capture

# The build first, with cargo's progress shown (the first one compiles the whole workspace); then
# the demo itself, quiet.
demo: venv system-deps
	@echo "building the demo (the first build compiles the workspace: a few minutes)…"
	$(CARGO) build --locked -p tests --bin demo
	MOTO_PYTHON=$(VENV)/bin/python $(CARGO) run --locked -q -p tests --bin demo

# Release builds: the function binaries for the cold-start figures, the bench itself.
bench: venv system-deps
	$(CARGO) build --locked --release -p cert-check -p cert-issue -p cert-deploy -p crl-processor
	$(CARGO) build --locked --release -p tests --bin bench
	MOTO_PYTHON=$(VENV)/bin/python target/release/bench

# Packaging tools (cargo-lambda, zig), kept apart from requirements-dev.txt so `make test` stays lean.
$(VENV)/.stamp-package: requirements-package.txt
	@test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-package.txt
	@touch $@

# The four Lambda functions for arm64 (provided.al2023), one zip each under target/lambda/<function>/.
# zig and cargo-zigbuild cache under $XDG_CACHE_HOME: a fixed path keeps that cache across builds.
FUNCTIONS := cert-check cert-issue cert-deploy crl-processor
LAMBDA_DIR := target/lambda
PACKAGE_CACHE := $(CURDIR)/target/.cache

package: $(VENV)/.stamp-package
	@rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
	PATH="$(VENV)/bin:$$PATH" XDG_CACHE_HOME=$(PACKAGE_CACHE) $(CARGO) lambda build --locked --release --arm64 \
	  --output-format zip --lambda-dir $(LAMBDA_DIR) $(addprefix -p ,$(FUNCTIONS))
	$(PY) scripts/check-lambda-zips.py $(LAMBDA_DIR) $(FUNCTIONS)

# The fleet simulator at full size, in virtual time: target/sim/<scenario>.json and .png.
# Every scenario, or SCENARIO=<name>; any parameter by its upper-case name passes through
# (make simulate SCENARIO=outage SEED=7 HOSTS=20000 OUTAGE_HOURS=48). A release build without
# LTO: the simulator's speed matters here, the link time of a fully optimized build does not.
simulate: system-deps
	CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
	  $(CARGO) build --release --locked -p tests --bin simulate
	CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
	  $(CARGO) run --release --locked -q -p tests --bin simulate
