"""``c360 kyc``: screen a name against the configured sanctions lists, with every hit explained."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import typer

from ..deps import screener
from .common import audited, fail, out, print_json

kyc_app = typer.Typer(help="KYC: sanctions screening (applications and documents follow).", no_args_is_help=True)


@kyc_app.command("screen")
def kyc_screen(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The person's name, in any script and order.")],
    dob: Annotated[str | None, typer.Option(help="Date of birth, YYYY-MM-DD: further evidence.")] = None,
    nationality: Annotated[str | None, typer.Option(help="Nationality (a country name): further evidence.")] = None,
    entities: Annotated[bool, typer.Option("--entities", help="Screen against entities too.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print the hits as JSON.")] = False,
) -> None:
    """Screen one name against the OFAC and UN lists (kyc.ofac_dir, kyc.un_file); exit 3 when anything hits."""
    born = None
    if dob is not None:
        try:
            born = date.fromisoformat(dob)
        except ValueError:
            fail(f"--dob {dob!r} is not a date YYYY-MM-DD")
    kinds = ("individual", "entity") if entities else ("individual",)
    with audited(ctx.obj.settings, "screen_name", None) as note:
        hits = screener(ctx.obj.settings).screen(name, date_of_birth=born, nationality=nationality, kinds=kinds)
        note.detail = f"{len(hits)} hits"
    if json_:
        rows: list[dict[str, Any]] = [
            {
                "entry": h.entry_key,
                "listed_name": h.entry.name,
                "matched_name": h.matched_name,
                "alias": h.alias is not None,
                "score": round(h.score, 4),
                "explanation": h.explanation.text(),
            }
            for h in hits
        ]
        print_json({"query": name, "hits": rows})
    else:
        if not hits:
            out.print(f"no hit for {name!r}")
        for h in hits:
            out.print(f"{h.entry_key}  {h.entry.name}  score {h.score:.3f}")
            out.print(h.explanation.text(), highlight=False)
    if hits:
        raise typer.Exit(3)
