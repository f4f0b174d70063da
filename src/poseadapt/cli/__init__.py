"""Command-line interface (typer). Command bodies import their heavy modules lazily so `--help` stays fast."""
