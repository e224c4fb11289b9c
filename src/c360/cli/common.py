"""What the command groups share: the root options' state, the consoles, errors, the store, the audit trail."""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from c360.graph.errors import C360Error, NotFoundError
from c360.graph.store import GraphStore

from ..deps import audit_log, build_store
from ..settings import Settings, load_settings

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@dataclass
class State:
    """Options shared by every command."""

    config: Path | None = None
    data_dir: Path | None = None
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        """Settings, built once."""
        if self._settings is None:
            self._settings = load_settings(self.config, data_dir=self.data_dir)
        return self._settings


def one_line(message: object) -> str:
    """``message`` on one line, its whitespace runs collapsed."""
    return " ".join(str(message).split())


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a one-line error and exit non-zero."""
    err.print(Text.assemble(("error: ", "red"), one_line(message)))
    raise typer.Exit(code)


@contextmanager
def store_of(ctx: typer.Context) -> Iterator[GraphStore]:
    """The configured store of the command's settings, closed at the end."""
    store = build_store(ctx.obj.settings)
    try:
        yield store
    finally:
        store.close()


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout (non-ASCII characters as they are)."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def who(by: str | None) -> str:
    """The person deciding: ``by``, else the OS user."""
    if by:
        return by
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


@contextmanager
def audited(settings: Settings, action: str, target: str | None, *, by: str | None = None) -> Iterator[None]:
    """Write the audit entry of a command that reads a profile or changes the graph, whatever its outcome.

    The command line works on the store directly, as an operator: its entries carry role ``cli``.
    """
    log = audit_log(settings)

    def entry(outcome: str, detail: str | None = None) -> None:
        log.append(actor=who(by), role="cli", action=action, target=target, outcome=outcome, detail=detail)

    try:
        yield
    except NotFoundError:
        entry("not_found")
        raise
    except typer.Exit:
        entry("refused", "invalid input")
        raise
    except C360Error as exc:
        entry("refused", f"{type(exc).__name__}: {exc}")
        raise
    except Exception as exc:
        entry("error", type(exc).__name__)
        raise
    entry("ok")
