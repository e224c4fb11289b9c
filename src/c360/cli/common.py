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


@dataclass
class Audited:
    """What an audited command adds to its entry: the detail of its outcome (counts, files)."""

    detail: str | None = None


@contextmanager
def audited(
    settings: Settings, action: str, target: str | None, *, by: str | None = None, change: bool = False
) -> Iterator[Audited]:
    """Write the audit entry of a command that reads data or changes it, whatever its outcome.

    The audit trail is checked first: a broken one (:class:`~c360.graphql.audit.AuditUnavailableError`)
    stops the command before it reads or changes anything. The entry is written when the body ends,
    so a command prints what it read *after* the block: nothing is shown that is not audited. The
    command line works on the store directly, as an operator: its entries carry role ``cli``.
    """
    log = audit_log(settings)
    log.open()  # a torn tail is repaired here; a log that cannot take entries stops the command
    note = Audited()

    def entry(outcome: str, detail: str | None = None) -> None:
        try:
            log.append(actor=who(by), role="cli", action=action, target=target, outcome=outcome, detail=detail)
        except OSError as exc:
            from c360.graphql.audit import AuditUnavailableError

            done = "the change was made, but " if change and outcome == "ok" else ""
            raise AuditUnavailableError(f"{action}: {done}its audit entry could not be written: {exc}") from exc

    try:
        yield note
    except NotFoundError:
        entry("not_found", note.detail)
        raise
    except typer.Exit as exc:
        entry("refused" if exc.exit_code else "ok", note.detail or ("invalid input" if exc.exit_code else None))
        raise
    except C360Error as exc:
        entry("refused", "; ".join(filter(None, (f"{type(exc).__name__}: {exc}", note.detail))))
        raise
    except Exception as exc:
        entry("error", "; ".join(filter(None, (type(exc).__name__, note.detail))))
        raise
    entry("ok", note.detail)
