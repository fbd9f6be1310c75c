# posthorn: a sendmail-compatible MTA. `make run` and `make test` are the two
# commands a newcomer needs; see README.md.
GO        ?= go
PREFIX    ?= /usr
DESTDIR   ?=
SYSCONFDIR ?= /etc
UNITDIR   ?= /lib/systemd/system
BIN       := bin/sendmail
GOFILES   := $(shell find . -name '*.go' -not -path './var/*' 2>/dev/null)
FUZZTIME  ?= 1m
BENCHTIME ?= 1s
DEV_USER  := $(shell id -un)
# The version built into the binary ($v, the greeting, Received, -d0.1) and
# the package: VERSION, plus the commit when not at the release tag.
POSTHORN_VERSION := $(shell sh dist/version.sh)
LDFLAGS   := -X github.com/posthorn/posthorn/conf.Version=$(POSTHORN_VERSION)
# Dates in the pages and the package: the last commit's, for reproducible builds.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH
DEB_ARCH  := $(shell dpkg --print-architecture 2>/dev/null || $(GO) env GOARCH)
DEB       ?= posthorn_$(POSTHORN_VERSION)_$(DEB_ARCH).deb
BUILDDIR  ?= build
DEB_MAINTAINER ?= posthorn maintainers <maintainers@users.noreply.github.com>

.PHONY: build run test unit blackbox bench bench-relay bench-postfix fuzz fuzz-quick vuln lint install install-man man deb lintian clean FORCE

build: $(BIN)

$(BIN): $(GOFILES) go.mod go.sum bin/.version
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/sendmail

# Rewritten only when the version changes, so that a new commit rebuilds
# the binary even when no Go file changed.
bin/.version: FORCE
	@mkdir -p bin; echo '$(POSTHORN_VERSION)' | cmp -s - $@ || echo '$(POSTHORN_VERSION)' > $@

# The daemon in the foreground on conf/dev.cf: SMTP on 127.0.0.1:2525,
# state under ./var, a queue run every minute.
run: build
	@mkdir -p var/spool/mqueue var/mail var/run var/smrsh
	@[ -f var/aliases ] || printf '# development aliases (make run)\npostmaster: %s\nMAILER-DAEMON: postmaster\n' '$(DEV_USER)' > var/aliases
	@echo "posthorn: SMTP on 127.0.0.1:2525, queue var/spool/mqueue, mail in var/mail (Ctrl-C stops)"
	exec $(BIN) -C conf/dev.cf -bD -q1m

# Everything: unit, integration and black-box tests (test/ runs bin/sendmail).
test: build
	$(GO) test -count=1 ./...

bench: build
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./...

# Relay throughput (issue 10): smtp-source into a posthorn daemon and into a
# private Postfix, both relaying to smtp-sink on a loopback address, in the
# same run; prints msgs/s, CPU per message and the ratio. Needs root and the
# postfix package. BENCH_RELAY_N messages per MTA.
BENCH_RELAY_N ?= 2000
bench-relay: build
	POSTHORN_BENCH_RELAY_N=$(BENCH_RELAY_N) $(GO) test -count=1 -run '^$$' -bench '^BenchmarkRelayThroughput$$' -benchtime 1x ./test/

# posthorn against a private Postfix, scenario by scenario in one run
# (issue 15): local delivery to 1 and 5 mailboxes, relay to smtp-sink,
# latency, queue fill / mailq / flush and restart with a big queue; one
# table with the ratios (test/sidebyside_bench_test.go). Needs root and the
# postfix package. BENCH_N messages per throughput scenario, BENCH_JOBS
# for the queue ones, BENCH_ONLY=local1,relay,... for some scenarios only,
# BENCH_OUT=file to keep the table.
BENCH_N    ?= 20000
BENCH_JOBS ?= 50000
BENCH_ONLY ?=
BENCH_OUT  ?=
bench-postfix: build
	POSTHORN_BENCH_N=$(BENCH_N) POSTHORN_BENCH_JOBS=$(BENCH_JOBS) POSTHORN_BENCH_ONLY=$(BENCH_ONLY) POSTHORN_BENCH_OUT=$(if $(BENCH_OUT),$(abspath $(BENCH_OUT))) \
	  $(GO) test -count=1 -timeout 3h -run '^$$' -bench '^BenchmarkSideBySide$$' -benchtime 1x ./test/

# Every fuzz target for FUZZTIME each (1 minute: about 40 minutes in
# all), one after the other; the last line of each is its executions.
# `make test` runs the targets on their seeds and testdata/fuzz corpora
# only. `make fuzz-quick` is 10 seconds each.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
	    echo "== $$pkg $$f"; \
	    out=$$($(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg 2>&1) || { echo "$$out"; exit 1; }; \
	    echo "$$out" | grep 'elapsed:' | tail -1; \
	  done; \
	done

fuzz-quick:
	$(MAKE) fuzz FUZZTIME=10s

# govulncheck against a vulnerability database built from the pinned
# golang.org/x/vulndb module (its data/osv reports, indexed with its
# indexdb command), so that it works where vuln.go.dev cannot be reached;
# the database is kept in VULNDB_DIR between runs. Raise VULNDB_VERSION to
# take newer reports. cmd/vulngate fails the build for a reachable
# vulnerability in a required module, and warns for one in the standard
# library (the toolchain is the machine's).
GOVULNCHECK    ?= $(shell command -v govulncheck 2>/dev/null || echo $$HOME/go/bin/govulncheck)
VULNDB_VERSION ?= v0.0.0-20261105234957-e22db6528018
VULNDB_DIR     ?= $(HOME)/.cache/posthorn/vulndb-$(VULNDB_VERSION)
vuln:
	@if [ ! -x "$(GOVULNCHECK)" ]; then echo "vuln: govulncheck not installed (go install golang.org/x/vuln/cmd/govulncheck@v1.9.0): skipped"; exit 0; fi; \
	if [ ! -f "$(VULNDB_DIR)/index/db.json" ]; then \
	  src=$$($(GO) mod download -json golang.org/x/vulndb@$(VULNDB_VERSION) 2>/dev/null | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$$/\1/p'); \
	  if [ -z "$$src" ] || ! $(GO) run golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION) -vulns "$$src/data/osv" -out "$(VULNDB_DIR).tmp" >/dev/null 2>&1; then \
	    rm -rf "$(VULNDB_DIR).tmp"; echo "vuln: cannot build the vulnerability database from golang.org/x/vulndb@$(VULNDB_VERSION): skipped"; exit 0; \
	  fi; \
	  rm -rf "$(VULNDB_DIR)"; mv "$(VULNDB_DIR).tmp" "$(VULNDB_DIR)"; \
	fi; \
	mkdir -p $(BUILDDIR); $(GOVULNCHECK) -db file://$(VULNDB_DIR) -format json ./... > $(BUILDDIR)/govulncheck.json || true; \
	$(GO) run ./cmd/vulngate < $(BUILDDIR)/govulncheck.json

lint:
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@if command -v staticcheck >/dev/null; then staticcheck ./...; \
	 elif [ -x $$HOME/go/bin/staticcheck ]; then $$HOME/go/bin/staticcheck ./...; \
	 else echo "staticcheck not installed (go install honnef.co/go/tools/cmd/staticcheck@latest)"; fi

install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/sbin/sendmail
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/libexec/posthorn
	for n in mailq newaliases hoststat purgestat; do ln -sf ../sbin/sendmail $(DESTDIR)$(PREFIX)/bin/$$n; done
	ln -sf ../../sbin/sendmail $(DESTDIR)$(PREFIX)/libexec/posthorn/mail.local
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/mail
	[ -e $(DESTDIR)$(SYSCONFDIR)/mail/sendmail.cf ] || install -m 0644 conf/sendmail.cf $(DESTDIR)$(SYSCONFDIR)/mail/sendmail.cf
	install -D -m 0644 dist/posthorn.service $(DESTDIR)$(UNITDIR)/posthorn.service
	install -d -m 0700 $(DESTDIR)/var/spool/mqueue

# Manual pages (scdoc sources in man/, expanded by cmd/mangen) into $(BUILDDIR)/man.
man:
	rm -rf $(BUILDDIR)/man
	$(GO) run ./cmd/mangen -out $(BUILDDIR)/man -version '$(POSTHORN_VERSION)' man/*.scd

install-man: man
	for p in $(BUILDDIR)/man/*.[1-8]; do install -D -m 0644 $$p $(DESTDIR)$(PREFIX)/share/man/man$${p##*.}/$${p##*/}; done
	ln -sf hoststat.8 $(DESTDIR)$(PREFIX)/share/man/man8/purgestat.8

# The Debian package: posthorn_<version>_<arch>.deb (dist/debian/mkdeb.sh).
# The binary is built as Debian builds: position-independent, full RELRO,
# without symbol tables.
deb: man
	CGO_ENABLED=1 $(GO) build -trimpath -buildmode=pie \
	  -ldflags '$(LDFLAGS) -s -w -linkmode=external -extldflags "-Wl,-z,relro,-z,now"' \
	  -o $(BUILDDIR)/deb/sendmail ./cmd/sendmail
	VERSION='$(POSTHORN_VERSION)' BIN=$(BUILDDIR)/deb/sendmail MANDIR=$(BUILDDIR)/man STAGE=$(BUILDDIR)/deb/stage \
	  OUT='$(DEB)' MAINTAINER='$(DEB_MAINTAINER)' sh dist/debian/mkdeb.sh

lintian: deb
	lintian --fail-on error --info $(DEB)

clean:
	rm -rf bin build posthorn_*.deb
