# Two entry points (see README):
#   make run   - install what is missing, build, run `starling serve` with defaults
#   make test  - install what is missing, build, run the whole test suite
SWIFT ?= swift
CONFIG ?= release

.PHONY: deps build run test bench clean

deps:
	./scripts/install-deps.sh

build: deps
	$(SWIFT) build -c $(CONFIG) --product starling

run: build
	$$($(SWIFT) build -c $(CONFIG) --show-bin-path)/starling serve

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

bench: deps
	./bench/run

clean:
	rm -rf .build
