"""`metabench data`: placeholder until this group is built."""

import typer

app = typer.Typer(help="data commands.", no_args_is_help=True)
