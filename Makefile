# Two entry points (see README):
#   make run   - install what is missing, build, run `starling serve` with defaults
#   make test  - install what is missing, build, run the whole test suite
# and `make install` (release build, installed without debug information).
SWIFT ?= swift
CONFIG ?= release
PREFIX ?= /usr/local
SCRATCH ?= .build
# Release builds go through scripts/build-release (the Swift runtime and
# Foundation linked in, so a node needs only Debian's libraries: fuse3,
# curl, sqlite3, libcrypto, zlib, zstd, libdeflate, isa-l).
BUILD = SWIFT=$(SWIFT) ./scripts/build-release --scratch-path $(SCRATCH)

.PHONY: deps build run test bench install clean

deps:
	./scripts/install-deps.sh

build: deps
	$(BUILD) --product starling

run: build
	$$($(BUILD) --show-bin-path)/starling serve

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

# The build keeps its DWARF (for profilers and debuggers); the installed
# binary drops it and keeps the symbol table, so crash backtraces still name
# functions.
install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 "$$($(BUILD) --show-bin-path)/starling" $(DESTDIR)$(PREFIX)/bin/starling
	strip --strip-debug $(DESTDIR)$(PREFIX)/bin/starling

bench: deps
	./bench/run

clean:
	rm -rf .build
