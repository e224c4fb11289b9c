"""``c360 auth``: local tokens for dev mode."""

from __future__ import annotations

from typing import Annotated

import typer

from ..settings import Settings
from .common import audited, fail, out

auth_app = typer.Typer(help="Local tokens for dev mode.", no_args_is_help=True)


@auth_app.command("token")
def auth_token(
    ctx: typer.Context,
    role: Annotated[str, typer.Option(help="Role of the token (see the policy): data_steward, marketer, ...")],
    subject: Annotated[str, typer.Option(help="Who the token speaks for (the audit trail's actor).")] = "dev",
    ttl: Annotated[int, typer.Option(min=60, max=86_400 * 30, help="Lifetime in seconds.")] = 3600,
    dev: Annotated[bool, typer.Option("--dev", help="Dev mode for this command (as c360 serve --dev).")] = False,
) -> None:
    """Issue a local HS256 token (dev mode only: set api.dev_mode, or pass --dev to both commands)."""
    from c360.graphql.auth import issue_dev_token
    from c360.graphql.policy import load_policy

    from ..deps import auth_config

    settings: Settings = ctx.obj.settings
    if dev:
        settings = settings.model_copy(update={"api": settings.api.model_copy(update={"dev_mode": True})})
    if not settings.api.dev_mode:
        fail("local tokens exist in dev mode only: pass --dev (and run c360 serve --dev) or set C360_API__DEV_MODE=1")
    policy = load_policy(settings.api.policy_file)
    with audited(settings, "issue_token", subject, change=True) as note:
        note.detail = f"dev token, role {role}, {ttl} s"
        token = issue_dev_token(auth_config(settings), role, subject, ttl, roles=policy.roles)
    out.print(token, highlight=False)
