# One cargo profile (release) and one target directory for demo, tests and benchmarks,
# so RocksDB's C++ is compiled once. CI may point CARGO_TARGET_DIR at a shared cache.
CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_TARGET_DIR
BIN := $(CARGO_TARGET_DIR)/release/stellamirror
export STELLAMIRROR_BIN := $(BIN)
N ?= 100000
# Generated benchmark data (kept and reused by later runs with the same N and seed) and scratch.
SMSCALE_WORK ?= $(CARGO_TARGET_DIR)/smscale

.PHONY: deps build demo test lint bench bench-scale bench-retention bench-gc install clean
PREFIX ?= /usr/local

deps:
	@bash tests/scripts/install-deps.sh

build: deps
	cargo build --release --workspace --bins

demo: build
	@bash tests/scripts/demo.sh

test: build
	cargo test --release --workspace --no-fail-fast

lint: deps
	cargo fmt --all -- --check
	cargo clippy --release --workspace --all-targets -- -D warnings

bench: build
	cargo bench -p stellamirror-benches

bench-scale: build
	@bash tests/scripts/install-deps.sh restic b3sum time
	RESTIC_PASSWORD=$${RESTIC_PASSWORD:-smscale-local-only} $(CARGO_TARGET_DIR)/release/smscale --n $(N) --bin $(BIN) --work $(SMSCALE_WORK) --docs docs/benchmarks.md

# Retention (issue 20, docs/benchmarks.md "Retention"): 48 hourly cycles with prune, and the
# collection of one pruned snapshot (incremental against full) on the smscale dataset of N
# (run `make bench-scale N=...` once first to generate it; GC_CHURN picks its churned generation).
RETENTION_WORK ?= $(CARGO_TARGET_DIR)/smretention
GC_CHURN ?= gen1-c0.01
bench-retention: build
	$(CARGO_TARGET_DIR)/release/smretention --n $(N) --cycles 48 --work $(RETENTION_WORK) --bin $(BIN)
bench-gc: build
	$(CARGO_TARGET_DIR)/release/smretention --gc-probe setup --work $(RETENTION_WORK)/gc-n$(N) --data $(SMSCALE_WORK)/data/n$(N)-s1/gen0 --churned $(SMSCALE_WORK)/data/n$(N)-s1/$(GC_CHURN) --bin $(BIN)
	$(CARGO_TARGET_DIR)/release/smretention --gc-probe measure --work $(RETENTION_WORK)/gc-n$(N) --bin $(BIN)

# The binary, bash/zsh/fish completions and man pages, generated from the CLI definition.
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/stellamirror
	mkdir -p $(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/site-functions $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	$(BIN) completions bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/stellamirror
	$(BIN) completions zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_stellamirror
	$(BIN) completions fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/stellamirror.fish
	$(BIN) --quiet man --out $(DESTDIR)$(PREFIX)/share/man/man1

clean:
	cargo clean
