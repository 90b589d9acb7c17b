# Every command a person or a workflow runs. `make help` lists them (in French).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
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

.PHONY: help venv data train model evaluate evaluate-skab demo test lint hadolint ci container-test stage1-up stage2-up stage2-down stage2-run clean

help: ## Affiche cette aide : chaque cible avec sa description
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): requirements-dev.txt $(wildcard stage*/requirements.txt)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	@$(PY) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 requis"' 
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP) ## Crée l'environnement virtuel .venv avec les dépendances épinglées

data: $(STAMP) ## Écrit des fichiers simulés au format SKAB dans data/ (normal, pannes, dérive)
	$(PY) -m common.simulator --output data

$(DEFAULT_MODEL): | $(STAMP)
	$(PY) -m stage1_local.train --version 1.0.0

model: $(STAMP) $(DEFAULT_MODEL) ## Entraîne le modèle par défaut (version 1.0.0) s'il n'existe pas encore

train: $(STAMP) ## Entraîne et enregistre une nouvelle version : make train VERSION=x.y.z
	$(PY) -m stage1_local.train --version $(VERSION)

evaluate: model ## Évalue le modèle sur des données simulées jamais vues (par type de panne)
	$(PY) -m common.evaluation --version 1.0.0

evaluate-skab: $(STAMP) ## Évalue sur des fichiers SKAB réels (protocole SKAB et modèle appris sur anomaly-free) : make evaluate-skab DATA=chemin/vers/skab
	@test -n "$(DATA)" || { echo "Indiquez le dossier SKAB : make evaluate-skab DATA=chemin/vers/skab" >&2; exit 2; }
	$(PY) -m common.skab $(DATA) --seeds 5

demo: model ## Visite guidée : ce que fait chaque étape, sans Docker
	$(PY) -m stage1_local.tour
	$(PY) -m stage2_shared.tour

test: $(STAMP) ## Lance tous les tests (ceux des conteneurs sont ignorés, et signalés, sans moteur Docker)
	$(PY) -m pytest

lint: $(STAMP) ## Vérifie le style du code (ruff)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

hadolint: $(STAMP) ## Vérifie chaque Dockerfile (hadolint)
	$(VENV)/bin/hadolint stage*/Dockerfile

ci: lint hadolint test ## Ce que lance la CI : lint, hadolint puis tous les tests

container-test: model ## Construit l'image de l'étape 2, la démarre avec Compose et l'interroge
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

clean: ## Supprime l'environnement virtuel, les caches et les fichiers générés
	rm -rf $(VENV) .pytest_cache .ruff_cache data reports build
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
