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

.PHONY: help venv data train model evaluate demo test lint ci stage1-up clean

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

demo: model ## Visite guidée : ce que fait chaque étape, sans Docker
	$(PY) -m stage1_local.tour

test: $(STAMP) ## Lance tous les tests
	$(PY) -m pytest

lint: $(STAMP) ## Vérifie le style du code (ruff)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

ci: lint test ## Ce que lance la CI : lint puis tests

stage1-up: model ## Étape 1 : ouvre le formulaire web local sur http://127.0.0.1:8001
	$(PY) -m stage1_local.app

clean: ## Supprime l'environnement virtuel, les caches et les fichiers générés
	rm -rf $(VENV) .pytest_cache .ruff_cache data reports build
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
