# zrc-relay — two commands: `make run` and `make test`.
SWIFT ?= swift
PYTHON := .venv/bin/python
BIN_DEBUG := .build/debug/zrc-relay
BIN_RELEASE := .build/release/zrc-relay
RUN_ARGS ?=

.PHONY: run test bench fuzz deps test-deps build build-release unit interop clean

## make run: install what is missing, build (release), start the relay on its defaults.
run: deps build-release
	$(BIN_RELEASE) serve $(RUN_ARGS)

## make test: install what is missing, build, run the Swift tests and the interop tests.
test: test-deps
	$(SWIFT) build --build-tests
	timeout 1200 $(SWIFT) test --skip-build
	.build/debug/zrc-fuzz-replay --seconds 3
	ZRC_BIN=$(CURDIR)/$(BIN_DEBUG) $(PYTHON) -m pytest -q tools/interop
	bash tools/bench/relay/run.sh --smoke --zrc-bin $(CURDIR)/$(BIN_DEBUG)

## make bench: the relay benchmark against coturn (release build, ~10 min) and the yamux one.
bench: deps build-release
	bash tools/bench/relay/run.sh --zrc-bin $(CURDIR)/$(BIN_RELEASE)
	bash tools/bench/yamux/run.sh

## make fuzz: libFuzzer binaries (.build-fuzz), each target FUZZ_SECONDS on its corpus (tools/fuzz/README.md).
FUZZ_SECONDS ?= 600
fuzz:
	SWIFT="$(SWIFT)" FUZZ_SECONDS=$(FUZZ_SECONDS) bash tools/fuzz/run.sh $(FUZZ_TARGETS)

deps:
	@bash tools/install.sh run

test-deps:
	@bash tools/install.sh test

build:
	$(SWIFT) build

build-release:
	$(SWIFT) build -c release

unit: build
	$(SWIFT) test

interop: build
	ZRC_BIN=$(CURDIR)/$(BIN_DEBUG) $(PYTHON) -m pytest -q tools/interop

clean:
	rm -rf .build .venv
