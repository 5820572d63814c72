"""Command groups beyond the core ones in evalkit/cli.py.

Each module here defines `register(app: typer.Typer) -> None`; the CLI imports every module of this package,
so a new command family is one new file.
"""
