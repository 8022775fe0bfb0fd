"""The domain parts of ``Client``, one module a domain.

- ``orders``: placing (rule checks, the placement ledger, reconciliation of lost
  answers), cancelling, looking orders up, open orders, history and fills.
- ``market_data``: order books, composed tickers, candles, trading rules.
- ``account``: server info, accounts, connectors, balances.
- ``streams``: the streaming side (subscriptions, events) as the client exposes it.
- ``rules``: the trading-rules cache shared by market data and placement.
- ``_part``: what every part shares (configuration, REST actor, tracker).

Each part talks to the REST actor itself; ``hbtrio._client.Client`` combines them
and is the one place that knows them all.
"""
