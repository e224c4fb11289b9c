"""``c360 keys``: the deployment's keys: rotate the ``hash`` masking rule's ring or the receipt signing keys."""

from __future__ import annotations

from typing import Annotated

import typer

from ..deps import rotate_hash_key, rotate_signing_key, rotate_vault
from .common import audited, err, fail, out, store_of

keys_app = typer.Typer(help="Keys of the deployment (the audit key: c360 audit rotate-key).", no_args_is_help=True)


@keys_app.command("rotate")
def keys_rotate(
    ctx: typer.Context,
    hash_: Annotated[bool, typer.Option("--hash", help="Rotate the key ring of the hash masking rule.")] = False,
    signing: Annotated[
        bool, typer.Option("--signing", help="Rotate the Ed25519 keys that sign consent receipts.")
    ] = False,
    vault: Annotated[
        bool, typer.Option("--vault", help="Rotate the AES keys of the identifier vault and re-seal every secret.")
    ] = False,
    by: Annotated[str | None, typer.Option(help="Who rotates (default: the OS user).")] = None,
) -> None:
    """Make a new key current; the old ones stay in the ring.

    ``--hash``: every hash served from now on is under the new key (``hmac:<new id>:...``), hashes made
    before are still recognised; consumers that join on hashes re-read what they keep. A running
    ``c360 serve`` keeps the ring it started with: restart it.

    ``--signing``: new consent receipts are signed with the new key; receipts signed before still verify
    by their ``kid``, and ``/.well-known/jwks.json`` lists every key (a running server shows the new one
    without a restart).

    ``--vault``: a new AES key seals from now on and every stored secret is re-sealed under it, beside
    running writers (compare-and-swap); old keys stay so that nothing unreadable is ever left.
    """
    if not (hash_ or signing or vault):
        fail("name the key to rotate: --hash, --signing or --vault (the audit key: c360 audit rotate-key)")
    if hash_:
        with audited(ctx.obj.settings, "rotate_hash_key", None, by=by, change=True) as note:
            ring = rotate_hash_key(ctx.obj.settings)
            note.detail = f"current {ring.current}"
        out.print(f"hash key {ring.current} is current; the ring keeps {', '.join(ring.ids)}")
        err.print("restart c360 serve to hash with the new key")
    if signing:
        with audited(ctx.obj.settings, "rotate_signing_key", None, by=by, change=True) as note:
            keys = rotate_signing_key(ctx.obj.settings)
            note.detail = f"current {keys.current}"
        out.print(f"signing key {keys.current} is current; the ring keeps {', '.join(keys.ids)}")
    if vault:
        with store_of(ctx) as store, audited(ctx.obj.settings, "rotate_vault_key", None, by=by, change=True) as note:
            counts = rotate_vault(
                ctx.obj.settings, store, progress=lambda c: err.print(f"{c.rewrapped:,} re-sealed", end="\r")
            )
            note.detail = f"{counts.rewrapped} re-sealed, {counts.skipped} changed meanwhile, {counts.failed} failed"
        out.print(
            f"vault key rotated: {counts.rewrapped:,} secrets re-sealed, {counts.skipped:,} changed meanwhile, "
            f"{counts.failed:,} could not be opened" + ("" if counts.complete else "; not finished: run it again")
        )
        if counts.failed:
            raise typer.Exit(1)
