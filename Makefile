# The README's commands. Each sets up .venv on first use (python3 and pip are
# all a fresh machine needs), then runs.
#   make study  the scaling study (laptop preset): 8 sizes at 2M tokens, fits, plots, report
#   make test   the test suite less its long checks and the tests of the [hf] and [eval]
#               extras: a few minutes on any 2-core CPU (issue #26)
#   make test-all  every test, the extras installed first (what CI runs)
#   make emergence  in-context copying on text: 1x64 vs 2x64, 2 seeds (~22 min on AVX2 kernels of an AMX CPU)
#   make instruct   the third act: SFT, reward models, PPO and DPO on base models of the
#               4M-token laptop ladder (preset laptop-4M, trained first if missing)
#   make demo   prepare the corpus, train the default char model (~2 min), print samples
#               (run again, it reuses the trained model and only samples)
# TORCH pins this machine's CPU wheel; on a GPU machine use e.g. `make TORCH=torch test`.

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: study emergence instruct demo test test-all clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

# The [hf] and [eval] extras, for the tests that load exports in transformers and run
# lm-eval. TORCH is named again so that resolving the extras can never move the pinned torch.
$(BIN)/.installed-hf: $(BIN)/.installed
	$(BIN)/python -m pip install -q -e ".[dev,hf,eval]" "$(TORCH)"
	touch $@

study: $(BIN)/.installed
	$(BIN)/tinygpt study --preset=laptop

emergence: $(BIN)/.installed
	$(BIN)/tinygpt emergence --preset=emergence

instruct: $(BIN)/.installed
	$(BIN)/tinygpt instruct --preset=laptop

demo: $(BIN)/.installed
	$(BIN)/tinygpt prepare --dataset=shakespeare --tokenizer=char
	$(BIN)/tinygpt train configs/shakespeare_char.toml --init_from=auto
	$(BIN)/tinygpt sample --out_dir=out/shakespeare-char --num_samples=2 --max_new_tokens=300

# The markers are pyproject.toml's: `long` (whole studies and pipelines, redraws of committed
# reports, calibrations over many fits: about 60% of the suite's time) and `extras`.
test: $(BIN)/.installed
	@echo "make test: every test but those marked long or extras (make test-all runs them too)"
	$(BIN)/python -m pytest -q -n auto -m "not long and not extras"

test-all: $(BIN)/.installed-hf
	$(BIN)/python -m pytest -q -n auto

clean:
	rm -rf $(VENV) out data
