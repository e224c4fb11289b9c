"""The ``c360`` command line: the root app, its options, and a module per command group.

Each group's module (``customer``, ``resolve``, ``review``, ``events``, ...) defines its commands; what
several share (the root options' state, consoles, errors, the store, the audit trail) is in ``common``.
Heavy imports (the API, Faust, Kafka, the Neo4j driver) stay inside the commands that use them, so
``c360 --help`` loads none of them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from c360.graph.errors import C360Error

from .audit import audit_app
from .auth import auth_app
from .cases import cases_app
from .common import State, err, one_line
from .consent import consent_app
from .customer import customer_app
from .demo import demo, generate_cmd
from .dlq import dlq_app
from .events import events_app
from .export import export_app
from .graphql import graphql_app
from .ingest import ingest
from .keys import keys_app
from .kyc import kyc_app
from .lens import lens_app
from .ml import ml_app
from .outbox import outbox_app
from .partner import partner_app
from .pull import pull_app
from .resolve import explain_cmd, resolve_app
from .review import review_app
from .serve import serve
from .streams import streams_app, worker

app = typer.Typer(
    help="c360: one trustworthy profile per customer.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# The order of registration is the order of c360 --help: the commands, then the groups.
app.command("explain")(explain_cmd)
app.command("ingest")(ingest)
app.command("serve")(serve)
app.command("worker")(worker)
app.command("generate")(generate_cmd)
app.command("demo")(demo)
app.add_typer(customer_app, name="customer")
app.add_typer(export_app, name="export")
app.add_typer(resolve_app, name="resolve")
app.add_typer(review_app, name="review")
app.add_typer(events_app, name="events")
app.add_typer(dlq_app, name="dlq")
app.add_typer(partner_app, name="partner")
app.add_typer(pull_app, name="pull")
app.add_typer(streams_app, name="streams")
app.add_typer(auth_app, name="auth")
app.add_typer(graphql_app, name="graphql")
app.add_typer(audit_app, name="audit")
app.add_typer(keys_app, name="keys")
app.add_typer(cases_app, name="cases")
app.add_typer(outbox_app, name="outbox")
app.add_typer(kyc_app, name="kyc")
app.add_typer(lens_app, name="lens")
app.add_typer(ml_app, name="ml")
app.add_typer(consent_app, name="consent")


@app.callback()
def _root(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Data folder (embedded store, rejects). Env: C360_DATA_DIR; default ./.c360"),
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML settings file. Env: C360_CONFIG.")] = None,
) -> None:
    ctx.obj = State(config=config, data_dir=data_dir)


def main() -> None:
    """Entry point: run the CLI, turning c360's errors into one-line messages."""
    try:
        app()
    except C360Error as exc:
        err.print(Text.assemble(("error: ", "red"), one_line(exc)))
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("C360_DEBUG"):
            raise
        detail = f"unexpected {type(exc).__name__}: {one_line(exc)} (set C360_DEBUG=1 for a traceback)"
        err.print(Text.assemble(("error: ", "red"), detail))
        sys.exit(1)
