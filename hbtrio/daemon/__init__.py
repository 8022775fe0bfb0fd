"""``hbtrio daemon``: the supervised background client.

Modules: :mod:`~hbtrio.daemon.config` (TOML configuration),
:mod:`~hbtrio.daemon.sinks` (JSON Lines sinks), :mod:`~hbtrio.daemon.metrics`
and :mod:`~hbtrio.daemon.http` (``/healthz`` and ``/metrics``),
:mod:`~hbtrio.daemon.logs` (structured logging), :mod:`~hbtrio.daemon.supervisor`
(the :class:`~hbtrio.daemon.supervisor.Daemon` itself) and
:mod:`~hbtrio.daemon.cli` (the command). Nothing is imported here, so the
configuration can be validated without the optional dependencies.
"""
