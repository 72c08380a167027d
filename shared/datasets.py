"""Reading uploaded CSV files into typed tables, and storing them canonically.

An LMS uploads a CSV export; ``parse_csv`` turns its bytes into a
``ParsedTable`` or refuses it with ``InvalidInput`` (422) or
``PayloadTooLarge`` (413). The steps, in order:

1. Refuse what is not CSV text: no bytes, only whitespace, a known binary
   signature (PNG, ZIP/xlsx, PDF, ...) or NUL bytes (``shared.csv_text``).
2. Decode: a UTF-8 byte-order mark is stripped; UTF-8 is tried first and,
   unless an encoding was given, cp1252 is the fallback (recorded in
   ``notes``). A given encoding is used as is (``shared.csv_text``).
3. Find the delimiter among ``, ; TAB |`` by counting each one outside quotes
   on the first lines: the one whose count on the header recurs on the most
   data lines wins. A given delimiter is used as is.
4. Check the header before reading the body: the column limit, at least two
   columns, no empty names except on all-empty trailing columns, no
   duplicates. Names are stripped of surrounding whitespace; messages show
   them with ``repr`` so invisible characters are visible.
5. Read every cell as text with pandas' C engine (the first column is never
   taken as the index), drop all-empty trailing columns (a trailing
   delimiter on some or all rows) with a note, refuse extra fields that hold
   values, and enforce the row limit.
6. Type each column. The tokens in ``MISSING_TOKENS`` (any case, after
   stripping) are missing. A column whose every present value parses as a
   number is numeric (float64); any other column is categorical (stripped
   strings). The rule is deliberately simple: ids such as ``007`` become the
   number 7.0, ids such as ``S01`` stay strings. With the ``;`` delimiter and
   no decimal given, a column that only parses with ``,`` as the decimal
   mark (``11,5``) is read that way; with ``decimal=','`` given, a value
   holding a ``.`` is not a number. Infinite numbers are refused because
   models cannot use them.

``to_stored_csv`` writes the typed frame as canonical UTF-8 CSV (comma,
``.`` decimal, no index) and ``read_stored_csv`` reads it back exactly, with
the dtypes that the ``ColumnInfo`` list records.
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from shared.csv_text import LINE_END, decode, is_blank, record_widths, records
from shared.errors import InvalidInput, PayloadTooLarge

NUMERIC = "numeric"
CATEGORICAL = "categorical"
CLASSIFICATION = "classification"
REGRESSION = "regression"

DELIMITERS = (",", ";", "\t", "|")
DECIMALS = (".", ",")
# Numbers beyond this are refused: their squares, summed over rows (variances,
# distances), would overflow a float; no student figure comes near it.
MAX_MAGNITUDE = 1e150
MISSING_TOKENS = frozenset({"", "na", "n/a", "#n/a", "nan", "null", "?"})

SAMPLE_LINES = 20  # lines after the header looked at to find the delimiter
SAMPLE_CHARS = 65_536  # ... unless they are longer than this in total
SHOWN_NAMES = 10  # header names quoted in an error message, at most

_QUOTED = re.compile(r'"[^"]*"')
_UNCLOSED_QUOTE = re.compile(r"EOF inside string starting at row (\d+)")


@dataclass(frozen=True)
class ColumnInfo:
    """What one column of a dataset holds."""

    name: str
    type: str
    missing: int
    distinct: int

    def as_dict(self) -> dict[str, str | int]:
        return {
            "name": self.name,
            "type": self.type,
            "missing": self.missing,
            "distinct": self.distinct,
        }


@dataclass
class ParsedTable:
    """An upload as typed columns, with how it was read."""

    frame: pd.DataFrame
    columns: list[ColumnInfo]
    encoding: str
    delimiter: str
    decimal: str
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _TypedColumn:
    values: pd.Series
    info: ColumnInfo
    decimal: str | None  # the decimal mark a numeric column was read with
    comma_hint: bool = False  # categorical, though numeric with a decimal comma
    point_hint: bool = False  # categorical, though numeric with a decimal point


def parse_csv(
    data: bytes,
    *,
    delimiter: str | None = None,
    decimal: str | None = None,
    encoding: str | None = None,
    max_rows: int,
    max_columns: int,
    min_columns: int = 2,
    full_rows: bool = False,
) -> ParsedTable:
    """Read an uploaded CSV into typed columns, or refuse it with a reason.

    ``min_columns`` is 2 for a training table (features and a target); a file
    of instances to predict may hold a single feature. A row with fewer fields
    than the header names is read as missing values at its end, unless
    ``full_rows`` asks for every row to be complete (instances to predict,
    where a short row is a mistake rather than an export's habit).
    """
    _check_options(delimiter, decimal)
    text, used_encoding, notes = decode(data, encoding)

    sample = _head(text)
    if delimiter is None:
        delimiter = _detect_delimiter(sample)
    header = _read_header(sample, delimiter)
    names = _check_header(header, delimiter, max_columns, min_columns)

    cells = _read_cells(text, delimiter, header, max_rows)
    named = len(_named_part(header))
    short, line, fields = _short_rows(text, delimiter, named, cells)
    if short and full_rows:
        raise InvalidInput(
            f"line {line} has {_count(fields, 'field')} but the header names "
            f"{_count(named, 'column')}; every row gives a value (or an empty "
            "field) for each column"
        )
    if short:
        notes.append(
            f"{_count(short, 'row')} {'has' if short == 1 else 'have'} fewer "
            f"fields than the header (first on line {line}); each field missing "
            "from a row was read as a missing value"
        )
    cells, dropped = _drop_trailing_columns(cells, header, text, delimiter)
    if dropped:
        notes.append(f"ignored {_count(dropped, 'empty trailing column')}")
    cells.columns = pd.Index(names)

    typed = _type_columns(cells, _decimal_marks(decimal, delimiter))
    _reject_non_finite(typed, cells, text, delimiter)
    notes.extend(_decimal_notes(typed, decimal))
    return ParsedTable(
        frame=pd.DataFrame({column.info.name: column.values for column in typed}),
        columns=[column.info for column in typed],
        encoding=used_encoding,
        delimiter=delimiter,
        decimal=decimal or _decimal_used(typed),
        notes=notes,
    )


def to_stored_csv(frame: pd.DataFrame) -> bytes:
    """The canonical bytes of a table: UTF-8, comma, '.' decimal, no index."""
    text = frame.to_csv(index=False, lineterminator="\n", na_rep="")
    return text.encode("utf-8")


def read_stored_csv(data: bytes, columns: list[ColumnInfo]) -> pd.DataFrame:
    """Read ``to_stored_csv`` output back with the dtypes ``columns`` record."""
    names = [column.name for column in columns]
    try:
        frame = pd.read_csv(io.BytesIO(data), **_stored_options(columns))
    except (ValueError, pd.errors.ParserError) as error:
        raise InvalidInput(f"stored table could not be read: {error}") from error

    if list(frame.columns) != names:
        raise InvalidInput(
            f"stored table has the columns {_show(list(frame.columns))}, "
            f"the dataset lists {_show(names)}"
        )
    return frame


def read_stored_chunks(
    data: bytes, columns: list[ColumnInfo], names: list[str], chunk_rows: int
) -> Iterator[pd.DataFrame]:
    """The columns ``names`` of ``to_stored_csv`` output, ``chunk_rows`` rows at a
    time, with the dtypes ``columns`` record; each chunk is indexed from 0."""
    try:
        reader = pd.read_csv(
            io.BytesIO(data),
            usecols=names,
            chunksize=chunk_rows,
            **_stored_options([c for c in columns if c.name in names]),
        )
        for chunk in reader:
            yield chunk[names].reset_index(drop=True)
    except (ValueError, pd.errors.ParserError) as error:
        raise InvalidInput(f"stored table could not be read: {error}") from error


def _stored_options(columns: list[ColumnInfo]) -> dict[str, Any]:
    return {
        "dtype": {
            column.name: "float64" if column.type == NUMERIC else str
            for column in columns
        },
        "encoding": "utf-8",
        "index_col": False,
        "keep_default_na": False,
        "na_values": [""],
        "skip_blank_lines": False,
    }


def infer_task(column: ColumnInfo) -> str:
    """Classification for labels and 0/1-style numbers, regression otherwise.

    A numeric column with a single value counts as a (one-class) label, so
    that the request fails on the class count rather than as a regression.
    """
    if column.type == CATEGORICAL or column.distinct <= 2:
        return CLASSIFICATION
    return REGRESSION


# Options and decoding.


def _check_options(delimiter: str | None, decimal: str | None) -> None:
    if delimiter is not None and (len(delimiter) != 1 or delimiter in '"\r\n'):
        raise InvalidInput(
            "delimiter must be one character other than a quote or a line "
            f"break, such as ',' or ';'; received {delimiter!r}"
        )
    if decimal is not None and decimal not in DECIMALS:
        raise InvalidInput(f"decimal must be '.' or ','; received {decimal!r}")


# Delimiter and header.


def _head(text: str) -> str:
    """The header line and up to SAMPLE_LINES more, cut at whole lines."""
    for count, line_end in enumerate(LINE_END.finditer(text), 1):
        if count > SAMPLE_LINES or line_end.end() >= SAMPLE_CHARS:
            return text[: line_end.end()]
    return text


def _detect_delimiter(sample: str) -> str:
    """The candidate whose header count recurs on the most data lines."""
    lines = [line for line in _QUOTED.sub("", sample).splitlines() if line.strip()]
    header, rows = (lines[0], lines[1:]) if lines else ("", [])
    candidates = [mark for mark in DELIMITERS if mark in header]
    if not candidates:
        return DELIMITERS[0]

    def agreement(mark: str) -> tuple[int, int]:
        expected = header.count(mark)
        return sum(line.count(mark) == expected for line in rows), expected

    return max(candidates, key=agreement)


def _read_header(sample: str, delimiter: str) -> list[str]:
    """The first non-blank record, names stripped of surrounding whitespace."""
    try:
        for _, record in records(sample, delimiter):
            if not is_blank(record):
                return [name.strip() for name in record]
    except csv.Error as error:
        raise InvalidInput(f"header line could not be read as CSV: {error}") from error
    raise InvalidInput(
        f"file has no header line in its first {SAMPLE_LINES + 1} lines; "
        "the first line should name the columns"
    )


def _check_header(
    header: list[str], delimiter: str, max_columns: int, min_columns: int
) -> list[str]:
    """The column names, once the header passes every check."""
    names = _named_part(header)
    if len(names) > max_columns:
        raise PayloadTooLarge(
            f"{len(names)} columns exceeds the limit of {max_columns} columns"
        )
    if len(names) < min_columns:
        raise InvalidInput(_too_few_columns_message(names, delimiter, min_columns))
    _reject_empty_names(names)
    _reject_duplicate_names(names)
    return names


def _named_part(header: list[str]) -> list[str]:
    """The header without its trailing empty names."""
    end = len(header)
    while end and not header[end - 1]:
        end -= 1
    return header[:end]


def _too_few_columns_message(names: list[str], delimiter: str, needed: int) -> str:
    why = " (features and a target)" if needed == 2 else ""
    message = (
        f"file has {_count(len(names), 'column')} when read with delimiter "
        f"{delimiter!r}; at least {needed} are needed{why}"
    )
    others = [
        mark for mark in DELIMITERS if mark != delimiter and names and mark in names[0]
    ]
    if others:
        message += (
            f"; header was read as one column containing {others[0]!r} — "
            f"set delimiter={others[0]!r}"
        )
    return f"{message}; received header {_show(names)}"


def _reject_empty_names(names: list[str]) -> None:
    empty = [position for position, name in enumerate(names, 1) if not name]
    if empty:
        raise InvalidInput(
            f"column {empty[0]} has an empty name; only all-empty trailing "
            f"columns may be unnamed; received header {_show(names)}"
        )


def _reject_duplicate_names(names: list[str]) -> None:
    positions: dict[str, list[int]] = {}
    for position, name in enumerate(names, 1):
        positions.setdefault(name, []).append(position)
    repeated = [
        f"{name!r} (columns {', '.join(map(str, found))})"
        for name, found in positions.items()
        if len(found) > 1
    ]
    if repeated:
        raise InvalidInput(
            f"duplicate column names {'; '.join(repeated[:SHOWN_NAMES])}; "
            "every column needs a unique name"
        )


# Cells.


def _read_cells(
    text: str, delimiter: str, header: list[str], max_rows: int
) -> pd.DataFrame:
    """Every data cell as text, one column per field position.

    The first attempt assumes no record is wider than the header, which holds
    for almost every file; when pandas fails (most often on a wider record),
    the widest record is measured and the file read again that wide.
    """
    try:
        records = _read_records(text, delimiter, len(header), max_rows)
    except (pd.errors.ParserError, pd.errors.ParserWarning):
        width = max(_widest_record(text, delimiter), len(header))
        try:
            records = _read_records(text, delimiter, width, max_rows)
        except (pd.errors.ParserError, pd.errors.ParserWarning) as retry_error:
            raise _unreadable(retry_error, text, delimiter) from retry_error

    cells = records.iloc[1:].reset_index(drop=True)
    if len(cells) > max_rows:
        raise PayloadTooLarge(
            f"{_count_data_rows(text, delimiter)} data rows exceeds the limit "
            f"of {max_rows} rows"
        )
    if cells.empty:
        raise InvalidInput(
            "file has a header but no data rows; at least one data row is "
            f"needed; received header {_show(_named_part(header))}"
        )
    return cells


def _read_records(text: str, delimiter: str, width: int, max_rows: int) -> pd.DataFrame:
    """The header and up to max_rows + 1 data records, every cell a string."""
    with warnings.catch_warnings():
        # A record wider than ``width`` must fail, never be cut silently.
        warnings.simplefilter("error", pd.errors.ParserWarning)
        return pd.read_csv(
            io.StringIO(text),
            sep=delimiter,
            header=None,
            names=list(range(width)),
            index_col=False,
            dtype=str,
            na_filter=False,
            engine="c",
            nrows=max_rows + 2,
        )


def _widest_record(text: str, delimiter: str) -> int:
    try:
        return max((len(record) for _, record in records(text, delimiter)), default=0)
    except csv.Error as error:
        raise InvalidInput(f"file could not be read as CSV: {error}") from error


def _short_rows(
    text: str, delimiter: str, named: int, cells: pd.DataFrame
) -> tuple[int, int, int]:
    """Data rows with fewer fields than ``named``: how many, the first's line
    and its number of fields (0 and 0 when there is none).

    ``cells`` are the records as read: when none is wider than the header and
    the file has no quoting, a delimiter count short of none proves that no
    row is short, without looking at each line.
    """
    if (
        '"' not in text
        and cells.shape[1] == named
        and text.count(delimiter) == (named - 1) * (len(cells) + 1)
    ):
        return 0, 0, 0
    count = first = first_fields = 0
    widths = record_widths(text, delimiter)
    try:
        next(widths, None)  # the header
        for line, fields in widths:
            if fields < named:
                count += 1
                if not first:
                    first, first_fields = line, fields
    except csv.Error as error:
        raise InvalidInput(f"file could not be read as CSV: {error}") from error
    return count, first, first_fields


def _count_data_rows(text: str, delimiter: str) -> int:
    """All data rows of a file known to be over the limit (first column only)."""
    first = pd.read_csv(
        io.StringIO(text),
        sep=delimiter,
        header=None,
        usecols=[0],
        index_col=False,
        dtype=str,
        na_filter=False,
        engine="c",
    )
    return len(first) - 1


def _unreadable(error: Exception, text: str, delimiter: str) -> InvalidInput:
    unclosed = _UNCLOSED_QUOTE.search(str(error))
    if unclosed:
        line = _line_of_record(text, delimiter, int(unclosed.group(1)))
        return InvalidInput(
            f"file could not be read as CSV: a quoted field opened on line {line} "
            "is never closed; close the quote, or double a quote inside a field"
        )
    return InvalidInput(
        f"file could not be read as CSV: {error}; check the quoting "
        "(a quote opened in a field must be closed)"
    )


def _drop_trailing_columns(
    cells: pd.DataFrame, header: list[str], text: str, delimiter: str
) -> tuple[pd.DataFrame, int]:
    """Cells without the unnamed trailing columns, and how many were dropped.

    Trailing columns come from a trailing delimiter in the header or in data
    rows; they may only hold empty fields.
    """
    named = len(_named_part(header))
    for position in range(named, cells.shape[1]):
        holding = cells[position].str.strip() != ""
        if holding.any():
            row = int(holding.to_numpy().argmax())
            value = cells.at[row, position]
            line = _line_of_row(text, delimiter, row)
            raise InvalidInput(_trailing_value_message(position, value, line, header))
    return cells[list(range(named))], cells.shape[1] - named


def _trailing_value_message(
    position: int, value: str, line: int, header: list[str]
) -> str:
    if position < len(header):
        return (
            f"column {position + 1} has an empty name but holds {value!r} on "
            f"line {line}; name the column or remove its values"
        )
    return (
        f"line {line} has a value in field {position + 1} but the header names "
        f"only {_count(len(_named_part(header)), 'column')}; received {value!r} — "
        "remove the extra fields or name the column"
    )


def _line_of_record(text: str, delimiter: str, record: int) -> int:
    """The line on which record ``record`` starts, counted as pandas counts its
    rows: from 0, the header and blank lines included."""
    start = 1
    try:
        for index, (start, _) in enumerate(records(text, delimiter)):
            if index == record:
                return start
    except csv.Error:
        pass
    return start


def _line_of_row(text: str, delimiter: str, row: int) -> int:
    """The line (from 1) on which data row ``row`` (from 0) starts."""
    try:
        for index, (start, _) in enumerate(record_widths(text, delimiter)):
            if index == row + 1:  # the header is the first non-blank record
                return start
    except csv.Error:
        pass
    return row + 2  # the csv module disagrees with pandas; assume one line a row


# Types.


def _decimal_marks(decimal: str | None, delimiter: str) -> tuple[str, ...]:
    """The decimal marks to try, in order, on each column."""
    if decimal is not None:
        return (decimal,)
    if delimiter == ";":
        return (".", ",")
    return (".",)


def _type_columns(cells: pd.DataFrame, marks: tuple[str, ...]) -> list[_TypedColumn]:
    return [_type_column(cells[name], str(name), marks) for name in cells.columns]


def _type_column(raw: pd.Series, name: str, marks: tuple[str, ...]) -> _TypedColumn:
    """Numeric if every present value parses with one of ``marks``.

    The work is done once per distinct raw value and spread back over the
    rows by code: columns of student data repeat few values many times.
    """
    codes, distinct_raw = pd.factorize(raw, use_na_sentinel=False)
    texts = pd.Series(distinct_raw, dtype=str).str.strip()
    absent = (texts.isna() | texts.str.lower().isin(MISSING_TOKENS)).to_numpy()
    missing = int(absent[codes].sum())
    present = texts[~absent]
    for mark in marks:
        numbers = _to_numbers(present, mark)
        if numbers.notna().all():
            values = numbers.reindex(texts.index).to_numpy()[codes]
            info = ColumnInfo(name, NUMERIC, missing, numbers.nunique())
            return _TypedColumn(pd.Series(values, index=raw.index), info, mark)

    values = texts.mask(absent).to_numpy()[codes]
    info = ColumnInfo(name, CATEGORICAL, missing, present.nunique())
    comma_hint = "," not in marks and _looks_comma_decimal(present)
    point_hint = "." not in marks and bool(_to_numbers(present, ".").notna().all())
    return _TypedColumn(
        pd.Series(values, index=raw.index, dtype=str),
        info,
        None,
        comma_hint,
        point_hint,
    )


def _to_numbers(values: pd.Series, mark: str) -> pd.Series:
    """Floats, NaN where a value is not a number written with ``mark``."""
    if mark == ",":
        written_with_point = values.str.contains(".", regex=False)
        values = values.mask(written_with_point, "x").str.replace(",", ".", regex=False)
    return pd.to_numeric(values, errors="coerce").astype("float64")


def _reject_non_finite(
    typed: list[_TypedColumn], cells: pd.DataFrame, text: str, delimiter: str
) -> None:
    """Refuse infinite numbers, and finite ones too large for a model's sums."""
    for column in typed:
        if column.info.type != NUMERIC:
            continue
        values = column.values.to_numpy()
        infinite = np.isinf(values)
        huge = np.abs(values) > MAX_MAGNITUDE
        if not huge.any():
            continue
        row = int(infinite.argmax()) if infinite.any() else int(huge.argmax())
        shown = cells.at[row, column.info.name].strip()
        line = _line_of_row(text, delimiter, row)
        if infinite.any():
            raise InvalidInput(
                f"column {column.info.name!r} holds the non-finite number "
                f"{shown!r} on line {line}; only finite numbers can be used"
            )
        raise InvalidInput(
            f"column {column.info.name!r} holds {shown!r} on line {line}, beyond "
            f"±{MAX_MAGNITUDE:g}: models square and sum such numbers past what a "
            "float holds; rescale the column or mark the value missing"
        )


def _decimal_used(typed: list[_TypedColumn]) -> str:
    return "," if any(column.decimal == "," for column in typed) else "."


def _decimal_notes(typed: list[_TypedColumn], decimal: str | None) -> list[str]:
    """Say which columns were read with a decimal comma, or could have been."""
    notes = []
    with_comma = [column.info.name for column in typed if column.decimal == ","]
    if with_comma and decimal is None:
        notes.append(
            f"read ',' as the decimal mark in {_count(len(with_comma), 'column')}: "
            f"{_show(with_comma)}"
        )
    notes.extend(
        f"column {column.info.name!r} looks numeric with ',' as decimal mark "
        "— set decimal=','; it was kept as categorical"
        for column in typed
        if column.comma_hint
    )
    notes.extend(
        f"column {column.info.name!r} looks numeric with '.' as decimal mark "
        "— decimal=',' was given; it was kept as categorical"
        for column in typed
        if column.point_hint
    )
    return notes


def _looks_comma_decimal(present: pd.Series) -> bool:
    """Whether values such as '11,5' would all parse with a decimal comma."""
    if not present.str.contains(",", regex=False).any():
        return False
    return bool(_to_numbers(present, ",").notna().all())


# Messages.


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _show(names: list[str]) -> str:
    """Names as a Python list, escaped, cut after SHOWN_NAMES."""
    if len(names) <= SHOWN_NAMES:
        return repr(names)
    return f"{repr(names[:SHOWN_NAMES])[:-1]}, ... {len(names) - SHOWN_NAMES} more]"
