"""`ridgeline demo` (placeholder until the demo lands)."""

import click


@click.command("demo")
def demo() -> None:
    """Run the demo."""
