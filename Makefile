# Two commands do everything on a fresh Debian machine with Python 3.11:
#   make run    venv, install, system packages, development PKI, migrations, demo data, server
#   make test   the same set-up, then the whole test suite
# Both are idempotent: each step checks before it acts.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEBS   := softhsm2 opensc poppler-utils libnss3-tools chromium fonts-noto-core
PYTEST_ARGS ?= -n auto

# development secrets of the development PKI and SoftHSM tokens (keys/dev, git-ignored)
export ESIGN_SOFTKEY_PASSPHRASE ?= esign-dev
export ESIGN_SEAL_PIN ?= 123456
export SOFTHSM2_CONF ?= $(CURDIR)/keys/dev/softhsm/softhsm2.conf

.PHONY: run test system install pki db demo lint bench clean-dev

run: system install pki db demo
	@test -s var/secret-key || (mkdir -p var && $(BIN)/python -c "import secrets; print(secrets.token_urlsafe(48))" > var/secret-key && chmod 600 var/secret-key)
	ESIGN_SECRET_KEY="$$(cat var/secret-key)" $(BIN)/esign serve

test: system install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# System packages: installed with apt when missing (as root); otherwise say what to install.
system:
	@missing=""; for p in $(DEBS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing system packages:$$missing"; echo "run: sudo apt-get install$$missing"; exit 1; \
	  fi; \
	fi

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

pki: install
	$(BIN)/python keys/make_dev_pki.py keys/dev
	$(BIN)/python keys/tokens.py keys/dev

db: install
	$(BIN)/esign db upgrade

demo: pki db
	$(BIN)/esign demo

lint: install
	$(BIN)/ruff check esign tests keys bench

bench: install pki
	$(BIN)/python bench/run.py

# Removes the development database, blobs and keys (not the venv).
clean-dev:
	rm -rf var keys/dev
