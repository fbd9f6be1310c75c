# posthorn: a sendmail-compatible MTA. `make run` and `make test` are the two
# commands a newcomer needs; see README.md.
GO        ?= go
PREFIX    ?= /usr
DESTDIR   ?=
SYSCONFDIR ?= /etc
UNITDIR   ?= /lib/systemd/system
BIN       := bin/sendmail
GOFILES   := $(shell find . -name '*.go' -not -path './var/*' 2>/dev/null)
FUZZTIME  ?= 10s
BENCHTIME ?= 1s
DEV_USER  := $(shell id -un)

.PHONY: build run test unit blackbox bench fuzz lint install clean

build: $(BIN)

$(BIN): $(GOFILES) go.mod go.sum
	$(GO) build -trimpath -o $(BIN) ./cmd/sendmail

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

# A short run of every fuzz target.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

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

clean:
	rm -rf bin
