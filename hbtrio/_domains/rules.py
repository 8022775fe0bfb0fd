"""The trading-rules cache: fetched per connector, used by placement checks."""

from __future__ import annotations

from .._actors.rest import RestActor
from .._errors import NotFound
from .._wire import rest as wire
from ..models import TradingRule

__all__ = ["TradingRules"]


class TradingRules:
    """Trading rules per ``(connector, trading pair)``, fetched once and kept.

    Args:
        rest: The REST actor.
    """

    def __init__(self, rest: RestActor) -> None:
        self._rest = rest
        self._rules: dict[tuple[str, str], TradingRule | None] = {}
        self._unknown: dict[str, NotFound] = {}

    async def fetch(self, exchange: str, pairs: list[str] | None) -> dict[str, TradingRule]:
        """Fetch the rules of ``pairs`` (all when ``None``) and cache them.

        Args:
            exchange: Connector name (checked).
            pairs: Trading pairs (checked), ``None`` for all.

        Returns:
            Trading rule per trading pair.
        """
        rules = await self._rest.call(
            wire.build_trading_rules(exchange, pairs), wire.parse_trading_rules
        )
        self._unknown.pop(exchange, None)
        for market, rule in rules.items():
            self._rules[(exchange, market)] = rule
        return rules

    async def rule(self, exchange: str, market: str) -> TradingRule | None:
        """Return the cached rule of a market, fetching it once (``None``: none known).

        Args:
            exchange: Connector name.
            market: Trading pair.

        Returns:
            The rule, or ``None`` when the server has none for the market.

        Raises:
            NotFound: The server does not know the connector (cached: asked once).
            HbtrioError: The request failed.
        """
        key = (exchange, market)
        if exchange in self._unknown:
            raise self._unknown[exchange]
        if key not in self._rules:
            try:
                await self.fetch(exchange, [market])
            except NotFound as exc:
                # Unknown connector: remembered, so each placement does not ask again
                # (an explicit ``fetch`` that succeeds forgets it).
                self._unknown[exchange] = exc
                raise
            self._rules.setdefault(key, None)
        return self._rules[key]
