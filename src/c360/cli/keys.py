"""``c360 keys``: the deployment's secret keys: rotate the key ring of the ``hash`` masking rule."""

from __future__ import annotations

from typing import Annotated

import typer

from ..deps import rotate_hash_key
from .common import audited, err, fail, out

keys_app = typer.Typer(
    help="Secret keys of the deployment (the audit key: c360 audit rotate-key).", no_args_is_help=True
)


@keys_app.command("rotate")
def keys_rotate(
    ctx: typer.Context,
    hash_: Annotated[bool, typer.Option("--hash", help="Rotate the key ring of the hash masking rule.")] = False,
    by: Annotated[str | None, typer.Option(help="Who rotates (default: the OS user).")] = None,
) -> None:
    """Make a new key current; the old ones stay in the ring, so hashes made before are still recognised.

    Every hash served from now on is under the new key (``hmac:<new id>:...``): consumers that join on
    hashes re-read what they keep. A running ``c360 serve`` keeps the ring it started with: restart it.
    """
    if not hash_:
        fail("name the key to rotate: --hash (the audit key rotates with c360 audit rotate-key)")
    with audited(ctx.obj.settings, "rotate_hash_key", None, by=by, change=True) as note:
        ring = rotate_hash_key(ctx.obj.settings)
        note.detail = f"current {ring.current}"
    out.print(f"hash key {ring.current} is current; the ring keeps {', '.join(ring.ids)}")
    err.print("restart c360 serve to hash with the new key")
