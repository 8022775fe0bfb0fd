"""The secret registry survives its finalizer running inside one of its own updates.

``register_secret`` forgets a credential when its owner is garbage collected (a
``weakref.finalize`` calling ``_Secrets.remove``). A collection can happen inside
``_Secrets.add`` (``re.compile`` allocates), in the same thread: with a plain lock the
finalizer waited for the lock its own thread held, and the process hung (seen in the
full suite, which opens hundreds of clients).
"""

from __future__ import annotations

import gc
import threading

from hbtrio import _errors


class _Owner:
    pass


def test_finalizer_inside_an_update_does_not_deadlock() -> None:
    finished = threading.Event()

    def scenario() -> None:
        owner = _Owner()
        _errors.register_secret(owner, "reentrant:secret-one")
        with _errors._SECRETS._lock:  # as inside add(): the lock is held ...
            del owner
            gc.collect()  # ... when the owner's finalizer runs remove()
        finished.set()

    worker = threading.Thread(target=scenario, daemon=True)
    worker.start()
    worker.join(10)
    assert finished.is_set(), "the secret registry deadlocked on its own finalizer"
    assert "reentrant:secret-one" not in _errors._SECRETS._counts
    # The registry still works: a live owner's secret is scrubbed.
    keeper = _Owner()
    _errors.register_secret(keeper, "reentrant:secret-two")
    assert "secret-two" not in _errors.scrub_text("key reentrant:secret-two here")
    del keeper
