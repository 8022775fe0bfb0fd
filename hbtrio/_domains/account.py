"""The account part of ``Client``: server info, accounts, connectors, balances."""

from __future__ import annotations

from .._errors import InputValidationError
from .._validation import check_exchange
from .._wire import rest as wire
from ..models import Balance, ServerInfo
from ._part import Part

__all__ = ["AccountPart"]


class AccountPart(Part):
    """Server info, the server's accounts and connectors, the account's balances."""

    async def server_info(self) -> ServerInfo:
        """Return what ``GET /`` says (name, version, status).

        Returns:
            The server info.

        Raises:
            HbtrioError: The request failed.
        """
        return await self._rest.call(wire.build_server_info(), wire.parse_server_info)

    async def get_accounts(self) -> list[str]:
        """Return the account names of the server.

        Returns:
            Account names.

        Raises:
            AuthenticationFailed: Wrong credentials.
            HbtrioError: The request failed.
        """
        return await self._rest.call(wire.build_accounts(), wire.parse_str_list)

    async def get_exchanges(self) -> list[str]:
        """Return the connector names the server knows.

        Returns:
            Connector names.

        Raises:
            HbtrioError: The request failed.
        """
        return await self._rest.call(wire.build_connectors(), wire.parse_str_list)

    async def get_balances(
        self, exchange: str | None = None, refresh: bool = False
    ) -> list[Balance]:
        """Return the account's balances (total and available per asset).

        Args:
            exchange: Only this connector.
            refresh: Ask the server to refresh from the exchanges (the real server
                otherwise answers from a cache refreshed every 5 minutes).

        Returns:
            The balances.

        Raises:
            InputValidationError: An argument is invalid.
            HbtrioError: The request failed.
        """
        if not isinstance(refresh, bool):
            raise InputValidationError("refresh", "must be a bool")
        exchanges = None if exchange is None else [check_exchange(exchange)]
        req = wire.build_portfolio_state(
            accounts=[self._account], exchanges=exchanges, refresh=refresh
        )
        balances = await self._rest.call(req, wire.parse_balances)
        return [
            b
            for b in balances
            if b.account == self._account and (exchange is None or b.exchange == exchange)
        ]
