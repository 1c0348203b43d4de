# metabench developer recipes: `just --list`

# Install metabench with the development tools (torch's CPU wheel first, when it is missing).
install:
    python3 -c "import torch" 2>/dev/null || python3 -m pip install torch==2.13.0
    python3 -m pip install -e '.[dev]'

# Run the whole test suite (slow tests included, as CI does).
test *ARGS:
    python3 -m pytest {{ARGS}}

# Only the fast tests.
test-fast:
    python3 -m pytest -m "not slow"

# Lint: ruff and the import-linter layer contracts.
lint:
    ruff check .
    ruff format --check .
    lint-imports

# Format the code.
fmt:
    ruff check --fix .
    ruff format .

# Train and test a method, e.g. `just run protonet --preset quick`.
run *ARGS:
    metabench run {{ARGS}}

# Open the interactive workbench.
tui:
    metabench tui

# Regenerate results/LEADERBOARD.md from the committed run records: every budget and seed group (--all),
# so the quick runs' seed means stand beside the longer single-seed runs.
leaderboard:
    METABENCH_DB=$(mktemp -d)/lb.db sh -c 'metabench runs ingest results/runs && metabench export --all --out results/LEADERBOARD.md'

# Regenerate docs/figures/ (the `metabench plot` examples) from the committed run records.
figures:
    #!/usr/bin/env sh
    set -eu
    export METABENCH_DB="$(mktemp -d)/figures.db"
    metabench runs ingest results/runs
    mkdir -p docs/figures
    for suffix in svg png; do
        metabench plot board --protocol vinyals --ways 5 --shots 1 --out docs/figures/board-vinyals-5w1s.$suffix --force
        metabench plot board --protocol vinyals --ways 20 --shots 1 --out docs/figures/board-vinyals-20w1s.$suffix --force
        metabench plot board --protocol lake-runs --ways 20 --shots 1 --out docs/figures/board-lake-runs-20w1s.$suffix --force
        metabench plot curves protonet-vinyals-5w1s-20261126T095555-e961 maml-vinyals-5w1s-20261126T090037-a251 \
            pretrain-vinyals-5w1s-20261126T090817-5f64 --out docs/figures/curves-vinyals-5w1s.$suffix --force
    done
