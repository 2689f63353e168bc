"""The spec's execution_options as the API decodes them."""

from __future__ import annotations

import re

import msgspec
import pytest

from opsresponder.response.executor.service import ExecutionOptions, NotificationPreferences


def test_defaults_and_the_spec_example() -> None:
    assert ExecutionOptions() == ExecutionOptions(
        dry_run=False, rollback_on_failure=True, max_execution_time_minutes=None
    )
    body = (
        b'{"dry_run": false, "rollback_on_failure": true, "max_execution_time_minutes": 30,'
        b' "notification_preferences": {"notify_on_start": true, "notify_on_completion": true,'
        b' "notify_on_failure": true}}'
    )
    options = msgspec.json.decode(body, type=ExecutionOptions)
    assert options.max_execution_time_minutes == 30
    assert options.notification_preferences == NotificationPreferences(
        notify_on_start=True, notify_on_completion=True, notify_on_failure=True
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"max_execution_time_minutes": 0}', "Expected `int` >= 1 - at `$.max_execution_time_minutes`"),
        (
            b'{"max_execution_time_minutes": 1441}',
            "Expected `int` <= 1440 - at `$.max_execution_time_minutes`",
        ),
        (b'{"dryrun": true}', "Object contains unknown field `dryrun`"),
        (b'{"notification_preferences": {"notify": true}}', "unknown field `notify`"),
    ],
)
def test_refused_options_name_the_field(body: bytes, message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=re.escape(message)):
        msgspec.json.decode(body, type=ExecutionOptions)
