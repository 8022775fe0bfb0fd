"""``hbtrio daemon``: the supervised background client.

Modules: ``config`` (TOML configuration),
``sinks`` (JSON Lines sinks), ``metrics``
and ``http`` (``/healthz`` and ``/metrics``),
``logs`` (structured logging), ``supervisor``
(the ``Daemon`` itself) and
``cli`` (the command). Nothing is imported here, so the
configuration can be validated without the optional dependencies.
"""
