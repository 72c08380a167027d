"""Moodle's dataset files: two metadata lines, a header, then the rows.

Moodle writes them with PHP's ``fputcsv`` (comma, double quotes, LF). Line 1
names metadata keys (``nfeatures``, ``targetclasses``, ``targettype``, ...;
any subset, in any order), line 2 holds their values, line 3 names the
columns:

- a labelled file (``/training``, ``/evaluation``): the features, then the
  target, whose values are among ``targetclasses``;
- an unlabelled file (``/prediction``): the sample id, then the features
  (a target name after them, with no values in the rows, is ignored).

Feature values are numbers (Moodle's indicators lie in [-1, 1]); an empty
field (or ``nan``) is an indicator Moodle could not calculate and stays
missing. Columns are matched by position, never by name: anonymised files
name the features of the two kinds differently (the sample-id header cell
may read ``input-0``).
Feature names come from the header when they are usable, else ``feature_<i>``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from shared.csv_text import record_widths
from shared.errors import InvalidInput, PayloadTooLarge

HEADER_LINES = 3
MISSING = ["", "nan", "NaN", "NAN"]  # Moodle writes "", numpy-made files "nan"
NAME_MAX_CHARS = 200
DEFAULT_TARGET = "target"
DISCRETE = "discrete"


@dataclass
class MoodleFile:
    """One file: its metadata, the features by position, labels or sample ids."""

    metadata: dict[str, str]
    names: list[str]
    X: pd.DataFrame
    y: np.ndarray | None = None
    target: str = DEFAULT_TARGET
    ids: list[str] | None = None

    @property
    def classes(self) -> list[int]:
        return target_classes(self.metadata)


def read_labelled(data: bytes, max_rows: int, max_columns: int) -> MoodleFile:
    """A training or evaluation file: features, then the target column."""
    metadata, header, rows = _split(data, max_columns)
    if len(header) < 2:
        raise InvalidInput(
            f"dataset: a labelled file needs at least one feature and the target "
            f"column; line 3 names {len(header)} column(s)"
        )
    frame = _read_rows(rows, header, max_rows, id_column=False)
    names = _feature_names(header[:-1])
    target = _target_name(header[-1], names)
    X = frame.iloc[:, :-1].set_axis(names, axis=1)
    _check_finite(X)
    y = _labels(frame.iloc[:, -1], target_classes(metadata))
    _check_nfeatures(metadata, len(names))
    return MoodleFile(metadata=metadata, names=names, X=X, y=y, target=target)


def read_unlabelled(data: bytes, max_rows: int, max_columns: int) -> MoodleFile:
    """A prediction file: the sample id, then the features."""
    metadata, header, rows = _split(data, max_columns)
    if len(header) < 2:
        raise InvalidInput(
            f"dataset: a prediction file needs the sample id and at least one "
            f"feature; line 3 names {len(header)} column(s)"
        )
    header = _without_target_name(header, metadata)
    frame = _read_rows(rows, header, max_rows, id_column=True)
    ids = frame.iloc[:, 0].fillna("").astype(str).tolist()
    names = _feature_names(header[1:])
    X = frame.iloc[:, 1:].astype("float64").set_axis(names, axis=1)
    _check_finite(X)
    _check_nfeatures(metadata, len(names))
    return MoodleFile(metadata=metadata, names=names, X=X, ids=ids)


def _without_target_name(header: list[str], metadata: dict[str, str]) -> list[str]:
    """Line 3 of a prediction file, less a trailing target name its rows lack.

    Some writers name the columns of a prediction file as those of a training
    file (sample id, features, target) and leave the target out of the rows;
    ``nfeatures`` tells the two apart.
    """
    declared = metadata.get("nfeatures", "")
    if declared.isdigit() and len(header) == int(declared) + 2:
        return header[:-1]
    return header


def target_classes(metadata: dict[str, str]) -> list[int]:
    """The class values ``targetclasses`` lists, e.g. ``[0,1]``."""
    kind = metadata.get("targettype", DISCRETE)
    if kind != DISCRETE:
        raise InvalidInput(
            f"dataset: targettype must be {DISCRETE!r} (classification); Moodle's "
            f"Python backend does no regression; received {kind!r}"
        )
    text = metadata.get("targetclasses")
    if text is None:
        raise InvalidInput(
            f"dataset: the metadata lines lack 'targetclasses' (e.g. \"[0,1]\"); "
            f"keys are {sorted(metadata)!r}"
        )
    try:
        values = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInput(
            f"dataset: targetclasses must be a JSON list of class values such as "
            f"[0,1]; received {text!r}"
        ) from error
    if not isinstance(values, list) or len(values) < 2:
        raise InvalidInput(
            f"dataset: targetclasses must list two classes or more; received {text!r}"
        )
    classes = [_class_value(value, text) for value in values]
    if len(set(classes)) != len(classes):
        raise InvalidInput(f"dataset: targetclasses lists a class twice: {text!r}")
    return classes


def write_labelled(
    names: list[str], target: str, X: pd.DataFrame, y: np.ndarray, classes: list[int]
) -> bytes:
    """A labelled file that ``read_labelled`` reads back to the same samples."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["nfeatures", "targetclasses", "targettype"])
    writer.writerow([len(names), json.dumps(classes, separators=(",", ":")), DISCRETE])
    writer.writerow([*names, target])
    body = pd.concat(
        [
            X.set_axis(range(len(names)), axis=1),
            pd.Series(y, name=len(names), index=X.index),
        ],
        axis=1,
    )
    body.to_csv(out, header=False, index=False, lineterminator="\n", na_rep="")
    return out.getvalue().encode("utf-8")


# Reading.


def _split(data: bytes, max_columns: int) -> tuple[dict[str, str], list[str], str]:
    """The metadata, the header names and the text of the rows."""
    if not data.strip():
        raise InvalidInput("dataset: the file is empty")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidInput(
            f"dataset: the file is not UTF-8 text (byte {error.start} cannot be read)"
        ) from error
    lines = text.replace("\r\n", "\n").split("\n", HEADER_LINES)
    if len(lines) < HEADER_LINES:
        raise InvalidInput(
            "dataset: a Moodle file starts with three lines (metadata keys, their "
            f"values, the column names); received {len(lines)} line(s)"
        )
    keys, values, header = (
        _fields(line, number) for number, line in enumerate(lines[:HEADER_LINES], 1)
    )
    if len(keys) != len(values):
        raise InvalidInput(
            f"dataset: line 1 names {len(keys)} metadata keys but line 2 holds "
            f"{len(values)} values"
        )
    if len(header) > max_columns:
        raise PayloadTooLarge(
            f"dataset: {len(header)} columns exceed the limit of {max_columns}"
        )
    metadata = {
        key.strip(): value.strip() for key, value in zip(keys, values, strict=True)
    }
    rows = lines[HEADER_LINES] if len(lines) > HEADER_LINES else ""
    return metadata, [name.strip() for name in header], rows


def _fields(line: str, number: int) -> list[str]:
    try:
        return next(csv.reader([line]), [])
    except csv.Error as error:
        raise InvalidInput(
            f"dataset: line {number} is not valid CSV: {error}"
        ) from error


def _read_rows(
    rows: str, header: list[str], max_rows: int, id_column: bool
) -> pd.DataFrame:
    """The rows as numbers (the sample ids as text), every row as wide as line 3."""
    lines = _complete_rows(rows, len(header))
    if not lines:
        raise InvalidInput(
            "dataset: the file has no sample rows after its 3 header lines"
        )
    if len(lines) > max_rows:
        raise PayloadTooLarge(f"dataset: more than {max_rows} rows")
    columns = len(header)
    dtype: dict[int, object] = dict.fromkeys(range(columns), "float64")
    if id_column:
        dtype[0] = str
    try:
        return pd.read_csv(
            io.StringIO(rows),
            header=None,
            names=list(range(columns)),
            index_col=False,
            dtype=dtype,
            na_values=MISSING,
            keep_default_na=False,
            skip_blank_lines=True,
        )
    except (ValueError, pd.errors.ParserError) as error:
        raise _not_numbers(rows, header, lines, id_column) from error


def _complete_rows(rows: str, columns: int) -> list[int]:
    """The file line of each row, blank lines left out as pandas skips them.

    A row with more or fewer fields than line 3 names is refused: columns are
    matched by position, so a missing or extra field would shift them.
    """
    lines: list[int] = []
    try:
        for line, fields in record_widths(rows, ",", first_line=HEADER_LINES + 1):
            if fields != columns:
                raise InvalidInput(_width_message(line, fields, columns))
            lines.append(line)
    except csv.Error as error:
        after = lines[-1] if lines else HEADER_LINES
        raise InvalidInput(
            f"dataset: the rows after line {after} are not valid CSV: {error}"
        ) from error
    return lines


def _width_message(line: int, fields: int, columns: int) -> str:
    return (
        f"dataset: line {line} holds {fields} field(s) but line 3 names {columns} "
        "columns; each row gives a value (or an empty field) for every column"
    )


def _not_numbers(
    rows: str, header: list[str], lines: list[int], id_column: bool
) -> InvalidInput:
    """The first cell that is neither a number nor empty, by line and column."""
    unreadable = InvalidInput(
        "dataset: the rows cannot be read as numbers; each value is a number or empty"
    )
    try:
        cells = pd.read_csv(
            io.StringIO(rows),
            header=None,
            names=list(range(len(header))),
            index_col=False,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=True,
        )
    except (ValueError, pd.errors.ParserError):
        return unreadable
    if len(cells) != len(lines):
        return unreadable
    for column in range(1 if id_column else 0, len(header)):
        text = cells[column].str.strip()
        absent = text.isin(MISSING)
        numbers = pd.to_numeric(text.where(~absent), errors="coerce")
        wrong = (numbers.isna() & ~absent).to_numpy()
        if wrong.any():
            row = int(np.argmax(wrong))
            hint = ""
            if column == 0 and not id_column:
                hint = " (a training or evaluation file has no sample-id column)"
            return InvalidInput(
                f"dataset: line {lines[row]}, column {column + 1} "
                f"({header[column]!r}) holds {cells[column].iloc[row]!r}, which is "
                f"not a number{hint}; values are numbers or empty"
            )
    return unreadable


def _feature_names(header: list[str]) -> list[str]:
    usable = all(0 < len(name) <= NAME_MAX_CHARS for name in header)
    if usable and len(set(header)) == len(header):
        return header
    return [f"feature_{position}" for position in range(len(header))]


def _target_name(name: str, features: list[str]) -> str:
    for candidate in (name, DEFAULT_TARGET, f"moodle_{DEFAULT_TARGET}"):
        if 0 < len(candidate) <= NAME_MAX_CHARS and candidate not in features:
            return candidate
    return f"moodle_{DEFAULT_TARGET}_{len(features)}"


def _check_finite(X: pd.DataFrame) -> None:
    values = X.to_numpy(dtype="float64")
    infinite = np.isinf(values)
    if infinite.any():
        row, column = (int(i) for i in np.argwhere(infinite)[0])
        raise InvalidInput(
            f"dataset: row {row + 1}, column {column + 1} holds an infinite number; "
            "features must be finite numbers or empty"
        )


def _labels(column: pd.Series, classes: list[int]) -> np.ndarray:
    missing = column.isna().to_numpy()
    if missing.any():
        raise InvalidInput(
            f"dataset: row {int(np.argmax(missing)) + 1} has no target value; every "
            "row of a labelled file ends with its class"
        )
    values = column.to_numpy(dtype="float64")
    unknown = sorted({value for value in values.tolist() if value not in classes})
    if unknown:
        shown = [
            int(value) if float(value).is_integer() else value for value in unknown
        ]
        raise InvalidInput(
            f"dataset: the target column holds {shown[:5]!r}, which targetclasses "
            f"{classes!r} does not list"
        )
    return values.astype(np.int64)


def _check_nfeatures(metadata: dict[str, str], features: int) -> None:
    given = metadata.get("nfeatures")
    if given is None:
        return
    try:
        declared = int(given)
    except ValueError as error:
        raise InvalidInput(
            f"dataset: nfeatures must be a whole number; received {given!r}"
        ) from error
    if declared != features:
        raise InvalidInput(
            f"dataset: nfeatures says {declared} features but the rows hold {features}"
        )


def _class_value(value: object, text: str) -> int:
    if isinstance(value, str):
        value = value.strip()
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(
            f"dataset: targetclasses must hold whole numbers; received {text!r}"
        )
    if not math.isfinite(value) or not float(value).is_integer():
        raise InvalidInput(
            f"dataset: targetclasses must hold whole numbers; received {text!r}"
        )
    return int(value)
