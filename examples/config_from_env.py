"""Configuration from the environment, and what a bad value looks like.

Run against a simulator:
    hbtrio sim --port 8000 --ca-out /tmp/hbtrio-ca.pem &
    HBTRIO_HOST=127.0.0.1 HBTRIO_PORT=8000 HBTRIO_API_KEY=admin:admin \
    HBTRIO_CA_FILE=/tmp/hbtrio-ca.pem python examples/config_from_env.py
"""

from __future__ import annotations

import trio

import hbtrio


async def main() -> None:
    # HBTRIO_HOST, HBTRIO_PORT, HBTRIO_API_KEY are required; HBTRIO_TIMEOUT,
    # HBTRIO_RETRIES, HBTRIO_TLS, HBTRIO_CA_FILE and HBTRIO_ACCOUNT are optional.
    config = hbtrio.ClientConfig.from_env(timeout=2.0)  # keywords override the environment
    print("config:", config)  # the API key is shown as '***'

    try:
        config.replace(port=70000)
    except hbtrio.ConfigError as exc:
        print("refused:", exc.field, "-", exc.rule)

    async with hbtrio.open_client(config) as client:
        info = await client.server_info()
        print(f"connected to {info.name} {info.version}: state={client.state.value}")


if __name__ == "__main__":
    trio.run(main)
