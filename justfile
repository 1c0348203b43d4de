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

# Regenerate results/LEADERBOARD.md from the committed run records.
leaderboard:
    METABENCH_DB=$(mktemp -d)/lb.db sh -c 'metabench runs ingest results/runs && metabench export --out results/LEADERBOARD.md'
