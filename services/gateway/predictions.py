"""Turning prediction instances into rows for the serving queue, and back."""

from __future__ import annotations

import math
from typing import Any

import redis
from kombu.exceptions import OperationalError

from shared import errors, replies
from shared.celery_app import FAST_JSON, PREDICT_TASK, app
from shared.clients import get_clients
from shared.errors import (
    DependencyUnavailable,
    InvalidInput,
    PlatformError,
    PredictionTimeout,
)
from shared.registry import VersionRecord

SHOWN_CHARS = 80  # of a received value quoted in an error message

ERRORS_BY_CODE: dict[str, type[PlatformError]] = {
    cls.code: cls
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, PlatformError)
}


def to_rows(record: VersionRecord, instances: list[dict[str, Any]]) -> list[list[Any]]:
    """Feature values in the model's order, matched by name; extra fields ignored."""
    rows = []
    for position, instance in enumerate(instances):
        missing = [f.name for f in record.features if f.name not in instance]
        if missing:
            raise InvalidInput(
                f"instance {position} lacks columns {missing!r} that "
                f"{record.model} v{record.version} needs"
            )
        rows.append(
            [
                _value(record, f.name, f.type, instance[f.name], position)
                for f in record.features
            ]
        )
    return rows


def ids_of(record: VersionRecord, instances: list[dict[str, Any]]) -> list[Any] | None:
    """The id of each instance, echoed with the predictions, when any is given."""
    name = record.id_column
    if name is None or not any(name in instance for instance in instances):
        return None
    ids = [instance.get(name) for instance in instances]
    for position, value in enumerate(ids):
        if isinstance(value, (dict, list)):
            raise InvalidInput(
                f"instance {position}, id column {name!r}: expected a text value, "
                f"a number or null; received {_shown(value)}"
            )
    return ids


def _value(
    record: VersionRecord, name: str, kind: str, value: Any, position: int
) -> Any:
    if value is None:
        return None
    if kind == "numeric":
        number = _number(value)
        if number is None or not math.isfinite(number):
            raise InvalidInput(
                f"instance {position}, column {name!r}: expected a finite number "
                f"or null; received {_shown(value)}"
            )
        return number
    if isinstance(value, (dict, list)):
        raise InvalidInput(
            f"instance {position}, column {name!r}: expected a text value or null; "
            f"received {_shown(value)}"
        )
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _shown(value: Any) -> str:
    """The value's repr, cut when long (a huge integer, a large object)."""
    text = repr(value)
    if len(text) <= SHOWN_CHARS:
        return text
    return f"{text[:SHOWN_CHARS]}... ({len(text)} characters)"


def _number(value: Any) -> float | None:
    """The value as a float; None when it is not a number or too large for one."""
    if isinstance(value, (bool, int, float)):
        try:
            return float(value)
        except OverflowError:  # an integer beyond the float range
            return None
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def run_prediction(
    tenant: str,
    record: VersionRecord,
    rows: list[list[Any]],
    timeout_s: float,
    explain: bool = False,
) -> dict[str, Any]:
    """Ask the serving queue and wait, at most ``timeout_s``, for its answer."""
    address = replies.new_address()
    try:
        send_prediction(tenant, record, rows, timeout_s, explain, address, address)
        answer = replies.wait(get_clients().settings.redis_url, address, timeout_s)
    except (redis.RedisError, OperationalError) as error:
        raise DependencyUnavailable(
            f"the serving queue is unavailable at REDIS_URL: {error}"
        ) from error
    if answer is None:
        raise timed_out(record, timeout_s)
    return checked(answer)


def send_prediction(
    tenant: str,
    record: VersionRecord,
    rows: list[list[Any]],
    timeout_s: float,
    explain: bool,
    reply_to: str,
    correlation: str,
) -> None:
    """One predict task on the serving queue; it expires with its caller's wait."""
    app.send_task(
        PREDICT_TASK,
        kwargs={
            "tenant": tenant,
            "model": record.model,
            "version": record.version,
            "columns": [feature.name for feature in record.features],
            "rows": rows,
            "explain": explain,
            "reply_to": reply_to,
            "correlation": correlation,
        },
        expires=timeout_s,
        serializer=FAST_JSON,
        # The answer comes to ``reply_to``: nothing to store or subscribe to.
        ignore_result=True,
        # Celery would quote the arguments in the message headers, feature
        # values included (and spend more time on it than on the rest).
        argsrepr="()",
        kwargsrepr=f"{{{record.model!r} v{record.version}: {len(rows)} rows}}",
    )


def timed_out(record: VersionRecord, timeout_s: float) -> PredictionTimeout:
    return PredictionTimeout(
        f"no serving worker answered for {record.model} v{record.version} "
        f"within {timeout_s:g} s"
    )


def checked(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer, or the platform error serving reported instead."""
    if "error" in answer:
        failure = answer["error"]
        raise ERRORS_BY_CODE.get(failure["code"], PlatformError)(failure["message"])
    return answer


def response(
    record: VersionRecord, answer: dict[str, Any], ids: list[Any] | None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": record.model,
        "version": record.version,
        "predictions": answer["predictions"],
    }
    if answer.get("probabilities") is not None and record.classes is not None:
        labels = [str(label) for label in record.classes]
        body["classes"] = record.classes
        body["probabilities"] = [
            dict(zip(labels, row, strict=False)) for row in answer["probabilities"]
        ]
    if answer.get("explanations") is not None:
        body["explanations"] = answer["explanations"]
    if ids is not None:
        body["ids"] = ids
    return body
