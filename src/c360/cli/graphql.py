"""``c360 graphql``: the GraphQL schema."""

from __future__ import annotations

import sys

import typer

graphql_app = typer.Typer(help="The GraphQL schema.", no_args_is_help=True)


@graphql_app.command("schema")
def graphql_schema() -> None:
    """Print the GraphQL schema (SDL)."""
    from c360.graphql.schema import build_schema

    sys.stdout.write(build_schema().as_str() + "\n")
