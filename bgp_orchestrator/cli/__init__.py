"""The `bgpo` command line (typer + rich)."""
