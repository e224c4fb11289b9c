# ruff: noqa: D101
# mypy: disallow-untyped-decorators=False
"""What the schema's domains share: the request context, page info, and how values print."""

from __future__ import annotations

import json
from typing import Any

import strawberry
from c360.graph.models import Profile
from strawberry.dataloader import DataLoader
from strawberry.fastapi import BaseContext

from . import profiles_service
from .principal import Principal
from .service import ProfileService


class ApiContext(BaseContext):
    """Per request: who calls, the service, and the request's DataLoaders."""

    def __init__(self, principal: Principal, service: ProfileService) -> None:
        super().__init__()
        self.principal = principal
        self.service = service
        self.profiles: DataLoader[str, Profile | None] = DataLoader(load_fn=self._load_profiles)

    async def _load_profiles(self, ids: list[str]) -> list[Profile | None]:
        return await profiles_service.load_profiles(service=self.service, ids=ids)


Info = strawberry.Info[ApiContext, None]


def text(value: Any) -> str:
    """A field value as GraphQL text (objects and lists as JSON)."""
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, dict | list) else str(value)


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


def page_info(cursor: str | None) -> PageInfo:
    """The page info of a page whose next page starts at ``cursor`` (None: the last page)."""
    return PageInfo(has_next_page=cursor is not None, end_cursor=cursor)
