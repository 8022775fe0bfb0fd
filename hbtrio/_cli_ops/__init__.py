"""The operator commands: ``hbtrio balances``, ``book``, ``orders``, ``place``, ``cancel``.

Each module provides ``add_arguments(parser)`` and ``run(args) -> int`` for
``hbtrio.cli``; ``common`` holds what they share
(connection options, configuration, error reporting, tables).
"""
