"""`metabench bench`: placeholder until this group is built."""

import typer

app = typer.Typer(help="bench commands.", no_args_is_help=True)
