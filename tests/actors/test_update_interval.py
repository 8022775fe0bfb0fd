"""``update_interval`` validation of the stream subscriptions (0 means as fast as sent)."""

from __future__ import annotations

import pytest

from hbtrio import InputValidationError
from hbtrio._actors.streams import _check_update_interval


@pytest.mark.parametrize("value", [0, 0.0, 0.25, 1, 3600])
def test_accepted(value: float) -> None:
    assert _check_update_interval(value) == float(value)


@pytest.mark.parametrize("value", [-0.1, -1, 3600.5, float("nan"), float("inf"), True, "1"])
def test_refused(value: object) -> None:
    with pytest.raises(InputValidationError, match="update_interval"):
        _check_update_interval(value)
