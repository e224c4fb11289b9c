"""The neo4j backend's settings, apart from the backend itself: settings load this without the driver."""

from __future__ import annotations

from pydantic import Field, SecretStr

from .store import StoreConfig


class Neo4jConfig(StoreConfig):
    """Connection settings of the neo4j backend."""

    uri: str = Field(default="bolt://127.0.0.1:7687", description="Bolt or neo4j:// URI of the server.")
    user: str = Field(default="neo4j", description="User name.")
    password: SecretStr = Field(default=SecretStr(""), description="Password.")
    database: str = Field(default="neo4j", description="Database name.")
    connection_timeout: float = Field(default=10.0, gt=0, description="Seconds to wait for a connection.")
