"""The blocking client's generated methods follow ``hbtrio.Client``.

``hbtrio/_sync_methods.py`` is written by ``python -m hbtrio._sync_gen`` from
``Client``'s public methods; this test fails while it is stale, and checks that
every public method of the Trio client has its blocking twin with the same
parameters.
"""

from __future__ import annotations

import inspect

import hbtrio
from hbtrio import _sync_gen
from hbtrio.sync import SyncClient


def test_generated_module_is_current() -> None:
    current = _sync_gen.TARGET.read_text(encoding="utf-8")
    assert current == _sync_gen.render(), (
        "hbtrio/_sync_methods.py is stale: run `python -m hbtrio._sync_gen`"
    )


def test_every_client_method_has_a_blocking_twin() -> None:
    for name, member in inspect.getmembers(hbtrio.Client, inspect.isfunction):
        if name.startswith("_") or name == "attach_streams":
            continue
        twin = getattr(SyncClient, name, None)
        assert twin is not None, name
        trio_params = list(inspect.signature(member).parameters)
        sync_params = list(inspect.signature(twin).parameters)
        assert sync_params == trio_params, name
        assert inspect.getdoc(twin), name
    assert isinstance(inspect.getattr_static(SyncClient, "state"), property)


def test_stream_methods_become_blocking_context_managers() -> None:
    source = _sync_gen.render()
    assert "AbstractAsyncContextManager" not in source
    assert "AsyncIterator" not in source
    assert "def subscribe_order_book(" in source
    assert "-> AbstractContextManager[Iterator[OrderBook]]:" in source
    assert "def iter_order_history(" in source
