"""The seven ways of staying logged in that ``twofold bench`` compares.

Three session stores (the id in a cookie, the state in SQLite, PostgreSQL or Redis) and
four JWT signing algorithms (the state in the token, accounts and refresh families in
SQLite). A configuration is only a name and what it means; how it is started lives in
:mod:`twofold.bench.run`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from twofold.config import SigningAlgorithm

__all__ = ["ALGORITHMS", "CONFIGURATIONS", "STORES", "Configuration", "Mechanism", "StoreName"]

Mechanism = Literal["session", "jwt"]
StoreName = Literal["SQLite", "PostgreSQL", "Redis"]

STORES: tuple[StoreName, ...] = ("SQLite", "PostgreSQL", "Redis")
ALGORITHMS: tuple[SigningAlgorithm, ...] = ("HS256", "ES256", "EdDSA", "RS256")


@dataclass(frozen=True)
class Configuration:
    """One mechanism as deployed: sessions in ``store``, or JWTs signed with ``algorithm``
    (whose accounts and refresh families live in ``store``)."""

    mechanism: Mechanism
    store: StoreName
    algorithm: SigningAlgorithm | None = None

    @property
    def name(self) -> str:
        """How the report names it: "session/Redis", "JWT ES256"."""
        if self.mechanism == "session":
            return f"session/{self.store}"
        return f"JWT {self.algorithm}"


CONFIGURATIONS: tuple[Configuration, ...] = (
    *(Configuration("session", store) for store in STORES),
    *(Configuration("jwt", "SQLite", algorithm) for algorithm in ALGORITHMS),
)
