"""Sans-IO wire layer of hbtrio: what goes on the wire and how it is read back.

Nothing here does I/O or imports trio, anyio, trio_websocket, ``hbtrio._actors``
or ``hbtrio._client``; every function is pure and synchronous.

Modules:
    rest: ``HttpRequest`` builders (``build_*``) and
        response parsers (``parse_*``), one pair per REST endpoint.
    ws: WebSocket ``/ws/market-data`` message decoding (tagged union), client
        action encoders, deterministic subscription ids, push converters.
    errors: ``error_from_response`` (HTTP answer to typed
        exception) and ``RejectionTable`` (exchange
        rejection texts to typed exceptions, user-extensible).

Every parser raises ``MalformedResponse`` and nothing else on a
malformed payload.
"""
