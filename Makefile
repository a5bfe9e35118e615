# make run: install what is missing, migrate, serve on $(HOST):$(PORT).
# make test: the same install, then lint, migration check and the whole suite.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := run

HOST ?= 127.0.0.1
PORT ?= 8000
# The server runs on Debian's Python 3.11, which the sandbox needs anyway: built with profile-guided
# and link-time optimisation, it runs the server's own code about 1.5 x as fast as a Python built
# from source without them, as pyenv builds it (bench/NOTES.md, 2026-12-06, night).
PYTHON ?= /usr/bin/python3
TOOLS_DIR ?= $(or $(RUNNER_TOOLS_DIR),/opt/code-playground)
VENV := .venv
PY := $(VENV)/bin/python
# Commands the sandbox and the runtimes need, from Debian packages (installed below
# when missing). /usr/bin/python3 is Debian's Python, used inside the sandbox because
# it starts several times faster; libseccomp2 builds the seccomp filter; musl-gcc builds
# the C tools (below).
SYSTEM_COMMANDS := bwrap cc musl-gcc node npm /usr/bin/python3
# The Debian packages the languages need, from their files under languages/ (engine/languages.py
# reads the same files); installed below when missing. RUNNER_LANGUAGES=python,bash (names as
# the files are named) installs only what those need, and the server then serves only them;
# RUNNER_LIBRARIES=off leaves out the languages' libraries (Python's data stack).
LANGUAGE_PACKAGES := $(shell RUNNER_LANGUAGES="$(RUNNER_LANGUAGES)" RUNNER_LIBRARIES="$(RUNNER_LIBRARIES)" $(PYTHON) engine/packages.py)

.PHONY: install dev system venv browser run test lint check bench clean

SCRIPTS := node-preload.cjs pool-loader.py pool-loader.cjs ts-service.cjs java-build.sh
BINARIES := sandbox-launch sandbox-init pool-exec
# Debian's Python's headers, for the zygote's extension (runtimes/zygote.c).
PYTHON_INCLUDE := $(shell /usr/bin/python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null)
TOOLS := $(addprefix $(TOOLS_DIR)/,$(BINARIES)) $(TOOLS_DIR)/_zygote.so $(TOOLS_DIR)/esbuild $(TOOLS_DIR)/esbuild-api.js $(addprefix $(TOOLS_DIR)/,$(SCRIPTS)) \
	$(TOOLS_DIR)/matplotlib/.built

FRONTEND_SOURCES := $(wildcard frontend/src/*.js)

install: system venv $(VENV)/.installed runtimes/node_modules/.installed $(TOOLS) static/build/.built

# The test suite, its clients and the linter: make test only; the server never loads them.
dev: install $(VENV)/.dev-installed

system:
	@missing=""; for c in $(SYSTEM_COMMANDS); do command -v $$c >/dev/null || missing="$$missing $$c"; done; \
	ldconfig -p | grep -q 'libseccomp.so.2 ' || missing="$$missing libseccomp"; \
	test -f "$(PYTHON_INCLUDE)/Python.h" || missing="$$missing python3-headers"; \
	[ -d /usr/include/linux ] || missing="$$missing linux-headers"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages for:$$missing"; \
	  apt-get update -qq; \
	  pkgs="bubblewrap gcc libc6-dev linux-libc-dev musl-tools python3 libpython3-dev libseccomp2"; \
	  command -v node >/dev/null || pkgs="$$pkgs nodejs"; \
	  command -v npm >/dev/null || pkgs="$$pkgs npm"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkgs >/dev/null; \
	fi
	@missing=""; for p in $(LANGUAGE_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages for the languages:$$missing"; \
	  apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { apt-get update -qq; apt-get install -y -qq python3-venv >/dev/null; }

# A virtualenv made with another interpreter than $(PYTHON) is made again.
venv: system
	@grep -qsx "home = $(patsubst %/,%,$(dir $(PYTHON)))" $(VENV)/pyvenv.cfg || { rm -rf $(VENV); $(PYTHON) -m venv $(VENV); }

# The browser tests drive Debian's Chromium; no browser is ever downloaded.
browser:
	@test -x /usr/bin/chromium || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

$(VENV)/.installed: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# requirements.txt pins every package: --no-deps keeps out what it leaves out on purpose
	# (daphne's TLS extras: TLS ends at the reverse proxy, and they cost 5 MiB a server).
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -r requirements.txt
	@touch $@

$(VENV)/.dev-installed: requirements-dev.txt $(VENV)/.installed
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -r requirements-dev.txt
	@touch $@

runtimes/node_modules/.installed: runtimes/package.json runtimes/package-lock.json
	cd runtimes && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

frontend/node_modules/.installed: frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The editor (CodeMirror 6), the embed page and embed.js, bundled by esbuild. No CDN at run time.
static/build/.built: frontend/node_modules/.installed $(FRONTEND_SOURCES)
	cd frontend && npm run -s build
	@touch $@

# The tools are bound into every sandbox, so they live where the sandbox's
# unprivileged uid can read them, not inside this checkout (which may sit under /root).
# They are linked statically against musl, so they load no shared library of the host's, and
# are a fraction of the size of glibc's static runtime: every run execs two of them
# (sandbox-launch, sandbox-init), and a waiting sandbox holds its init (bench/NOTES.md). musl ships
# no kernel headers: sandbox-launch's <linux/capability.h> comes from Debian's, through a
# directory that holds nothing else, so no glibc header can stand in for one of musl's.
KERNEL_INCLUDE := .build/kernel-include
$(KERNEL_INCLUDE)/.linked:
	@mkdir -p $(@D)
	ln -sfn /usr/include/linux $(@D)/linux
	ln -sfn /usr/include/asm-generic $(@D)/asm-generic
	ln -sfn /usr/include/$$(gcc -print-multiarch)/asm $(@D)/asm
	@touch $@

$(addprefix $(TOOLS_DIR)/,$(BINARIES)): $(TOOLS_DIR)/%: runtimes/%.c Makefile $(KERNEL_INCLUDE)/.linked
	@mkdir -p $(TOOLS_DIR) && chmod 0755 $(TOOLS_DIR)
	musl-gcc -O2 -Wall -Werror -static -isystem $(KERNEL_INCLUDE) -o $@.tmp $< && install -m 0755 $@.tmp $@ && rm -f $@.tmp

# The zygote's extension, loaded by Debian's Python in its sandbox (runtimes/zygote.c): glibc's gcc,
# against that Python's own headers, on the stable ABI. PYTHON_INCLUDE is read again here, as the
# system step may have just installed the headers.
$(TOOLS_DIR)/_zygote.so: runtimes/zygote.c Makefile
	@mkdir -p $(TOOLS_DIR) && chmod 0755 $(TOOLS_DIR)
	gcc -O2 -Wall -Werror -shared -fPIC -isystem "$$(/usr/bin/python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')" \
	  -o $@.tmp $< && install -m 0755 $@.tmp $@ && rm -f $@.tmp

# matplotlib's font list as the sandbox sees it, made again when matplotlib comes or goes.
$(TOOLS_DIR)/matplotlib/.built: runtimes/matplotlib-fonts.py $(wildcard /usr/share/matplotlib/mpl-data/matplotlibrc)
	@mkdir -p $(@D) && chmod 0755 $(TOOLS_DIR) $(@D)
	/usr/bin/python3 runtimes/matplotlib-fonts.py $(@D) && chmod -R a+rX $(@D)
	@touch $@

$(TOOLS_DIR)/esbuild: runtimes/node_modules/.installed
	@mkdir -p $(TOOLS_DIR) && chmod 0755 $(TOOLS_DIR)
	install -m 0755 runtimes/node_modules/@esbuild/$$(node -p 'process.platform + "-" + process.arch')/bin/esbuild $@

$(TOOLS_DIR)/esbuild-api.js: runtimes/node_modules/.installed
	@mkdir -p $(TOOLS_DIR) && chmod 0755 $(TOOLS_DIR)
	install -m 0644 runtimes/node_modules/esbuild/lib/main.js $@

# Scripts the sandbox runs: the Node preload, and the pre-warmed sandboxes' loaders.
$(addprefix $(TOOLS_DIR)/,$(SCRIPTS)): $(TOOLS_DIR)/%: runtimes/%
	@mkdir -p $(TOOLS_DIR) && chmod 0755 $(TOOLS_DIR)
	install -m 0644 $< $@

run: install
	$(PY) manage.py migrate --noinput -v 0
	$(PY) manage.py collectstatic --noinput -v 0
	RUNNER_TOOLS_DIR=$(TOOLS_DIR) $(PY) manage.py serve --host $(HOST) --port $(PORT)

lint: dev
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

check: install
	$(PY) manage.py makemigrations --check --dry-run -v 0
	RUNNER_TOOLS_DIR=$(TOOLS_DIR) $(PY) manage.py sandbox_check

test: lint browser
	$(PY) manage.py makemigrations --check --dry-run -v 0
	$(PY) manage.py collectstatic --noinput -v 0
	RUNNER_TOOLS_DIR=$(TOOLS_DIR) $(VENV)/bin/pytest

# Latency, throughput and memory against a bare interpreter, in one interleaved run (bench/run.py).
bench: install
	$(PY) manage.py collectstatic --noinput -v 0
	RUNNER_TOOLS_DIR=$(TOOLS_DIR) $(PY) bench/run.py

clean:
	rm -rf $(VENV) runtimes/node_modules frontend/node_modules static/build .build
