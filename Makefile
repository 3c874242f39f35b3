# Two commands on a fresh machine: `make run` and `make test`. Both build .venv first.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install run test test-sqlite test-postgres lint bench db-upgrade demo \
        keys-rotate keys-list keys-prune mail-worker mail-list clean

install: $(STAMP)

# python-ldap builds against OpenLDAP's and Cyrus SASL's headers; pysaml2 runs xmlsec1.
SYSTEM_PACKAGES := libldap2-dev libsasl2-dev xmlsec1

$(STAMP): setup.cfg pyproject.toml
	@missing=""; \
	test -f /usr/include/ldap.h || missing="$$missing libldap2-dev"; \
	test -f /usr/include/sasl/sasl.h || missing="$$missing libsasl2-dev"; \
	command -v xmlsec1 >/dev/null 2>&1 || missing="$$missing xmlsec1"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing system packages:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing || exit 1; \
	  else \
	    echo "missing system packages:$$missing"; \
	    echo "install them first, e.g.: sudo apt-get install$$missing"; exit 1; \
	  fi; \
	fi
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

db-upgrade: install
	$(BIN)/idp db upgrade

demo: install
	$(BIN)/idp demo

# The provider on :5000 (SQLite, demo brand and contract) and the demo RP on :5001.
run: install
	$(BIN)/idp db upgrade
	$(BIN)/idp demo
	$(BIN)/python -m demo_rp & rp=$$!; trap "kill $$rp 2>/dev/null" EXIT INT TERM; \
	$(BIN)/granian --interface wsgi --host 127.0.0.1 --port 5000 --workers 2 wsgi:app

# The whole suite on SQLite, then on PostgreSQL + Redis (the services on this machine).
test: install
	$(MAKE) --no-print-directory test-sqlite
	$(MAKE) --no-print-directory test-postgres

test-sqlite: install
	IDP_TEST_BACKEND=sqlite $(BIN)/python -m pytest $(PYTEST_ARGS)

test-postgres: install
	IDP_TEST_BACKEND=postgres $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# Retries mail the SMTP server did not take (every request sends its own mail at once).
# Run one beside the web workers in production (any number is safe: a message is claimed
# by one worker at a time).
mail-worker: install
	$(BIN)/idp mail deliver --loop 30

mail-list: install
	$(BIN)/idp mail list $(ARGS)

keys-rotate: install
	$(BIN)/idp keys rotate $(ARGS)

keys-list: install
	$(BIN)/idp keys list

keys-prune: install
	$(BIN)/idp keys prune

clean:
	rm -rf $(VENV) instance .pytest_cache
