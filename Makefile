# Offboard: build, run and test. The README's two commands are `make run` and `make test`;
# both install what is missing on a fresh machine and skip what is already there.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Build outputs and tools are cached outside the clone so a fresh clone (and CI) reuses them.
CACHE            ?= $(HOME)/.cache/offboard
export CARGO_TARGET_DIR ?= $(CACHE)/target
TOOLS            := $(CACHE)/tools
VENV             := $(CACHE)/venv-scim
WASM_BINDGEN_VERSION := 0.2.130
SCIM2_SERVER_VERSION := 0.8.3
BINARYEN_VERSION := 132
SITE             := target/site
WASM_OPT         := $(TOOLS)/node_modules/.bin/wasm-opt
SERVER_BIN       := $(CARGO_TARGET_DIR)/release/offboard
# PostgreSQL's programs for the PostgreSQL tests (Debian's package keeps them off PATH).
PG_VERSION       := 15
PG_BIN           := /usr/lib/postgresql/$(PG_VERSION)/bin
SUDO             := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CARGO_HOME       ?= $(HOME)/.cargo
# Both release builds use Leptos's `erase_components`: each component becomes one type-erased
# view instead of a deeply nested generic type, which cut the gzipped WASM by a fifth (to under
# 400 KB, docs/benchmarks.md). The server must be built the same way, so the markup it renders
# is the markup the browser hydrates. The WASM also remaps the registry paths out of its panic
# messages (shorter, and nothing about the build machine in the download).
# wasm-opt's --low-memory-unused lets it fold constant offsets into loads and stores (a smaller
# bundle); it holds because Rust puts the 1 MB stack first in memory, growing down towards 0,
# so the lowest 1 KB is reached only by a stack overflow, which is fatal anyway.
LEPTOS_RUSTFLAGS := --cfg erase_components
WASM_RUSTFLAGS   := $(LEPTOS_RUSTFLAGS) --remap-path-prefix=$(CARGO_HOME)/registry/src/=

# Settings such as OFFBOARD_ADDR, OFFBOARD_DATA_DIR and DATABASE_URL reach `make run` from the
# environment or the make command line (make passes both on); they are not exported here,
# because exporting an unset variable would hand the console an empty value.
export LEPTOS_OUTPUT_NAME := offboard
export SCIM2_SERVER_BIN := $(VENV)/bin/scim2-server
# The tests' mail server (server/tests/support/smtp_sink.py) runs on this Python, with aiosmtpd.
export SMTP_SINK_PYTHON := $(VENV)/bin/python
AIOSMTPD_VERSION := 1.4.6

.PHONY: help run build dist site server test test-unit e2e bench bench-replicas deps deps-build deps-test clean-site fmt lint

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

run: build ## Build (release) and run the console on http://127.0.0.1:3000 (or $$OFFBOARD_ADDR)
	@echo "==> Starting Offboard on http://$${OFFBOARD_ADDR:-127.0.0.1:3000} (data in $${OFFBOARD_DATA_DIR:-./data}); Ctrl-C stops it"
	LEPTOS_SITE_ROOT=$(SITE) $(SERVER_BIN) serve

build: site server ## Release server binary and optimised WASM site

dist: build ## Release archive in target/dist: binary, site, systemd unit, docs (runs from any folder)
	@echo "==> Packing the release archive"
	scripts/dist.sh $(SERVER_BIN) $(SITE) target/dist

server: deps-build
	@echo "==> Building the server (release)"
	RUSTFLAGS="$(LEPTOS_RUSTFLAGS)" cargo build --release -p server --bins

site: deps-build
	@echo "==> Building the browser bundle (WASM, release)"
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="$(WASM_RUSTFLAGS)" \
	cargo rustc -p app --lib --target wasm32-unknown-unknown --crate-type cdylib \
		--features hydrate --no-default-features --profile wasm-release
	@rm -rf $(SITE)/pkg && mkdir -p $(SITE)/pkg
	wasm-bindgen --target web --no-typescript --out-dir $(SITE)/pkg --out-name offboard \
		$(CARGO_TARGET_DIR)/wasm32-unknown-unknown/wasm-release/app.wasm
	$(WASM_OPT) -Oz --converge --low-memory-unused --strip-producers --strip-target-features --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
		--enable-reference-types --enable-multivalue --enable-mutable-globals \
		$(SITE)/pkg/offboard_bg.wasm -o $(SITE)/pkg/offboard.wasm
	@rm -f $(SITE)/pkg/offboard_bg.wasm
	cp style/main.css $(SITE)/pkg/offboard.css
	cp -r public/. $(SITE)/
	@echo "==> Content-hashed names and brotli/gzip copies (scripts/finish-site.mjs)"
	node scripts/finish-site.mjs $(SITE)

test: deps-test ## Run every test layer: unit, integration (real SCIM and PostgreSQL servers), end-to-end (Chromium)
	@bash .ci/test-all

test-unit: deps-test ## Unit and integration tests only (no browser)
	cargo test --workspace --all-targets --features app/ssr

e2e: build deps-test ## End-to-end tests in Chromium against the release binary
	cd end2end && OFFBOARD_BIN=$(SERVER_BIN) OFFBOARD_SITE_ROOT=$(abspath $(SITE)) npx playwright test

bench: build ## Benchmarks: the engine vs the old script, the console under load, two replicas on PostgreSQL, a rolling restart (docs/benchmarks.md)
	python3 server/bench/bench.py
	python3 server/bench/console_bench.py
	python3 server/bench/replicas_bench.py
	python3 server/bench/rolling_restart_bench.py

bench-replicas: build ## Only the two-replica benchmark on a throwaway PostgreSQL (docs/benchmarks.md)
	python3 server/bench/replicas_bench.py

fmt: ## Format the code
	cargo fmt --all

lint: ## Formatting, clippy and the floors of the code (scripts/check-layers.py)
	python3 scripts/check-layers.py
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --features app/ssr -- -D warnings

deps: deps-test ## Install everything the build and the tests need

deps-build:
	@command -v cargo >/dev/null || { echo "Rust (cargo) is needed: install it with rustup first."; exit 1; }
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || { \
		echo "==> Installing the wasm32 Rust target"; rustup target add wasm32-unknown-unknown; }
	@[ "$$(wasm-bindgen --version 2>/dev/null)" = "wasm-bindgen $(WASM_BINDGEN_VERSION)" ] || { \
		echo "==> Installing wasm-bindgen-cli $(WASM_BINDGEN_VERSION) (about 3 minutes, once)"; \
		cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION); }
	@[ -x $(WASM_OPT) ] || { \
		echo "==> Installing wasm-opt (npm binaryen@$(BINARYEN_VERSION)) into $(TOOLS)"; \
		mkdir -p $(TOOLS); npm install --prefix $(TOOLS) --no-audit --no-fund --silent binaryen@$(BINARYEN_VERSION); }

deps-test: deps-build
	@command -v chromium >/dev/null || { \
		echo "==> Installing Chromium from Debian (about 1 minute, once)"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@# The PostgreSQL tests start a throwaway cluster of their own (server/tests/support/pg_cluster.rs):
	@# only the programs are needed, so the package is told not to create or start a cluster.
	@[ -x $(PG_BIN)/initdb ] || { \
		echo "==> Installing PostgreSQL $(PG_VERSION) from Debian (for the PostgreSQL tests; about 1 minute, once)"; \
		$(SUDO) mkdir -p /etc/postgresql-common/createcluster.d; \
		echo "create_main_cluster = false" | $(SUDO) tee /etc/postgresql-common/createcluster.d/offboard.conf >/dev/null; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-$(PG_VERSION) >/dev/null; }
	@# The reverse-proxy end-to-end test (end2end/tests/proxy.spec.ts) runs its own nginx from a
	@# temp folder on a free port: only the program is needed, the package's service is turned off.
	@[ -x /usr/sbin/nginx ] || { \
		echo "==> Installing nginx from Debian (for the reverse-proxy end-to-end test; once)"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; \
		if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then $(SUDO) systemctl disable --now nginx >/dev/null 2>&1 || true; fi; }
	@# The retention test and undo-window tests (server/tests/retention.rs, undo_window.rs)
	@# jump the console's clock with Debian's libfaketime, preloaded: only the library is needed.
	@[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || { \
		echo "==> Installing faketime from Debian (for the retention and undo-window tests' clock jumps; once)"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime >/dev/null; }
	@[ -x $(SCIM2_SERVER_BIN) ] || { \
		echo "==> Installing the reference SCIM server (PyPI scim2-server==$(SCIM2_SERVER_VERSION)) into $(VENV)"; \
		python3 -m venv $(VENV) && $(VENV)/bin/pip install -q scim2-server==$(SCIM2_SERVER_VERSION); }
	@[ -x $(VENV)/bin/aiosmtpd ] || { \
		echo "==> Installing the tests' mail server (PyPI aiosmtpd==$(AIOSMTPD_VERSION)) into $(VENV)"; \
		$(VENV)/bin/pip install -q aiosmtpd==$(AIOSMTPD_VERSION); }
	@# Reinstalled whenever package-lock.json changed since the last install (a copy is kept).
	@cmp -s end2end/package-lock.json end2end/node_modules/.offboard-installed-lock || { \
		echo "==> Installing the end-to-end test tools (npm: Playwright, axe-core, oidc-provider; no browser download)"; \
		cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent \
		&& cp package-lock.json node_modules/.offboard-installed-lock; }

clean-site:
	rm -rf $(SITE)
