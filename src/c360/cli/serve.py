"""``c360 serve``: the API under uvicorn."""

from __future__ import annotations

import gc
from typing import Annotated

import typer

from c360.graph.errors import InvalidInputError
from c360.graph.store import GraphStore

from ..settings import Settings
from .common import err


def _recompute_dues(settings: Settings, store: GraphStore) -> None:
    """The stored SLA dues of open cases under the calendars and policies configured now (at most a minute)."""
    from ..deps import case_desk

    try:
        _, changed = case_desk(settings, store).recompute(budget_seconds=60)
    except InvalidInputError as exc:  # over the budget: serve anyway, the reads compute clocks afresh
        err.print(f"warning: {exc}")
        return
    if changed:
        err.print(f"SLA dues of {changed:,} open cases recomputed under the calendars configured now")


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8360,
    dev: Annotated[bool, typer.Option("--dev", help="Dev mode: local tokens (c360 auth token), GraphiQL.")] = False,
) -> None:
    """Serve the API with uvicorn until stopped: /graphql, /v1 (REST, partner events), /healthz, /readyz, /metrics."""
    import uvicorn

    from ..deps import audit_log, build_app

    settings: Settings = ctx.obj.settings
    if dev:
        settings = settings.model_copy(update={"api": settings.api.model_copy(update={"dev_mode": True})})
    from ..deps import build_store

    with build_store(settings, serving=True) as store:
        mode = "dev mode: GraphiQL on /graphql, tokens from c360 auth token" if settings.api.dev_mode else "production"
        err.print(f"c360 serving on http://{host}:{port} (store: {store.name}; {mode})")
        # A torn last line is repaired here (the repair is an entry); a log that cannot take entries
        # is said now, and /readyz answers 503 with the reason until it can.
        broken = audit_log(settings).problem()
        if broken:
            err.print(f"warning: {broken}; audited reads answer 503", highlight=False)
        _recompute_dues(settings, store)
        app_ = build_app(settings, store)
        # Start-up objects (schema, settings, caches) never die: keep them out of every GC pass, and
        # collect less often, since a request allocates many short-lived objects (fewer, shorter pauses).
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 50, 100)
        uvicorn.run(app_, host=host, port=port, log_level="warning")
