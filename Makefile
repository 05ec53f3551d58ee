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
# the development PKI's OCSP/CRL/TSA services (esign pki-services); the certificates carry this port
PKI_PORT ?= 9780
# the demo and the server timestamp every signature with the development TSA (not `make test`:
# the tests start their own services)
run demo: export ESIGN_PKI_TSA_URL ?= http://127.0.0.1:$(PKI_PORT)/esign/tsa/tsa
# esign-remote, the remote signing service holding the demo people's mobile certificates
# (keys/remote.py writes its configuration and secrets into keys/dev/remote)
REMOTE_PORT ?= 9790
REMOTE_DIR := keys/dev/remote
# the variables of $(REMOTE_DIR)/secrets.env (client secret, service key, TOTP), for one command
WITH_REMOTE_SECRETS := set -a; . $(REMOTE_DIR)/secrets.env; set +a;

.PHONY: run test fuzz system install pki pki-services remote remote-service db demo lint bench clean-dev

run: system install pki pki-services remote-service db demo
	@test -s var/secret-key || (mkdir -p var && $(BIN)/python -c "import secrets; print(secrets.token_urlsafe(48))" > var/secret-key && chmod 600 var/secret-key)
	@echo "mobile certificates: confirm on http://127.0.0.1:$(REMOTE_PORT)/confirm/... with PIN 123456;" \
	  "the chair's one-time code: $(BIN)/python keys/remote.py keys/dev totp nguyenthiquynhtrieu"
	$(WITH_REMOTE_SECRETS) ESIGN_SECRET_KEY="$$(cat var/secret-key)" $(BIN)/esign serve

test: system install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# fuzzing for longer than the bounded run in `make test`: random examples, ESIGN_FUZZ_EXAMPLES per endpoint
fuzz: system install
	ESIGN_FUZZ=long $(BIN)/python -m pytest tests/fuzz -q

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
	$(BIN)/python keys/make_dev_pki.py keys/dev --port $(PKI_PORT)
	$(BIN)/python keys/tokens.py keys/dev

# Starts the services in the background unless something already answers on the port
# (a second `make run`); log in var/pki-services.log, stop with: kill $$(cat var/pki-services.pid)
pki-services: pki
	@if $(BIN)/python -c "import sys; from esign.signing.devservices import port_answers; sys.exit(0 if port_answers($(PKI_PORT)) else 1)"; then \
	  echo "PKI services already answer on 127.0.0.1:$(PKI_PORT)"; \
	else \
	  mkdir -p var; \
	  nohup $(BIN)/esign pki-services --port $(PKI_PORT) > var/pki-services.log 2>&1 & echo $$! > var/pki-services.pid; \
	  for i in $$(seq 50); do $(BIN)/python -c "import sys; from esign.signing.devservices import port_answers; sys.exit(0 if port_answers($(PKI_PORT)) else 1)" && break; sleep 0.2; done; \
	  echo "PKI services on http://127.0.0.1:$(PKI_PORT)/ (pid $$(cat var/pki-services.pid))"; \
	fi

# esign-remote's tokens (the demo people's mobile keys), configuration and secrets; done again
# only when the development PKI, the script or the port changed
remote: pki
	@stamp="$(REMOTE_DIR)/.ready-$(REMOTE_PORT)"; \
	if [ -f "$$stamp" ] && [ "$$stamp" -nt keys/dev/people.json ] && [ "$$stamp" -nt keys/remote.py ] \
	   && [ -f $(REMOTE_DIR)/secrets.env ]; then echo "esign-remote set up ($(REMOTE_DIR))"; \
	else rm -f $(REMOTE_DIR)/.ready-*; $(BIN)/python keys/remote.py keys/dev --port $(REMOTE_PORT) && touch "$$stamp"; fi

# Starts esign-remote in the background unless something already answers on the port;
# log in var/remote.log, stop with: kill $$(cat var/remote.pid)
remote-service: remote
	@if $(BIN)/python -c "import sys; from esign.signing.devservices import port_answers; sys.exit(0 if port_answers($(REMOTE_PORT)) else 1)"; then \
	  echo "esign-remote already answers on 127.0.0.1:$(REMOTE_PORT)"; \
	else \
	  mkdir -p var; \
	  $(WITH_REMOTE_SECRETS) nohup $(BIN)/esign-remote --config $(REMOTE_DIR)/remote.toml --port $(REMOTE_PORT) > var/remote.log 2>&1 & echo $$! > var/remote.pid; \
	  for i in $$(seq 50); do $(BIN)/python -c "import sys; from esign.signing.devservices import port_answers; sys.exit(0 if port_answers($(REMOTE_PORT)) else 1)" && break; sleep 0.2; done; \
	  echo "esign-remote on http://127.0.0.1:$(REMOTE_PORT)/ (pid $$(cat var/remote.pid))"; \
	fi

db: install
	$(BIN)/esign db upgrade

demo: pki pki-services remote-service db
	$(WITH_REMOTE_SECRETS) $(BIN)/esign demo

lint: install
	$(BIN)/ruff check esign tests keys bench

bench: install pki
	$(BIN)/python bench/run.py

# Removes the development database, blobs and keys (not the venv).
clean-dev:
	rm -rf var keys/dev
