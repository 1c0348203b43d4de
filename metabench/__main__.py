"""Entry point for `python -m metabench`."""

from metabench.cli.app import main

if __name__ == "__main__":
    main()
