"""The operator commands: ``hbtrio balances``, ``book``, ``orders``, ``place``, ``cancel``.

Each module provides ``add_arguments(parser)`` and ``run(args) -> int`` for
:mod:`hbtrio.cli`; :mod:`~hbtrio._cli_ops.common` holds what they share
(connection options, configuration, error reporting, tables).
"""
