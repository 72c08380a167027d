"""Uploaded bytes to text, and the records of that text.

Decoding: what is not CSV text is refused, the rest decoded.

Refused: no bytes, only whitespace, a known binary signature (PNG,
ZIP/xlsx, PDF, ...), a UTF-16 byte-order mark with no encoding given, and
NUL bytes or characters. Decoded: a UTF-8 byte-order mark is stripped; UTF-8
is tried first and, unless an encoding was given, ``FALLBACK_ENCODING`` is
the fallback, with a note saying so. A given encoding is used as is. Every
position in a message is a line and a byte, both counted from 1.

Records: each CSV record with the line it starts on, and a fast count of
each record's fields. A blank record (an empty line, or one of spaces only)
is one pandas skips, and so do the counts here.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator

from shared.errors import InvalidInput

FALLBACK_ENCODING = "cp1252"

_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (an .xlsx workbook is one)"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Excel .xls workbook"),
)
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
LINE_END = re.compile(r"\r\n?|\n")


def decode(data: bytes, encoding: str | None) -> tuple[str, str, list[str]]:
    """The text of the file, the encoding used and a note about a fallback."""
    if not data:
        raise InvalidInput(
            "file is empty: a CSV needs a header line and at least one data "
            "row; received 0 bytes"
        )
    _reject_binary(data, encoding)

    if encoding is None:
        text, used, notes = _decode_guessing(data)
    else:
        text, used = _decode_as(data, encoding)
        notes = []

    if not text.strip():
        raise InvalidInput(
            "file is empty: a CSV needs a header line and at least one data "
            f"row; received {len(data)} bytes of whitespace"
        )
    _reject_nul_characters(text)
    return text, used, notes


def _reject_binary(data: bytes, encoding: str | None) -> None:
    for signature, kind in _SIGNATURES:
        if data.startswith(signature):
            raise InvalidInput(
                f"file is not a CSV text file: it starts like {kind}; "
                "export the table as CSV and upload that"
            )
    if encoding is None and data.startswith(_UTF16_BOMS):
        raise InvalidInput(
            "file is UTF-16 text (it starts with a UTF-16 byte-order mark); "
            "re-export it as UTF-8 or set encoding='utf-16'"
        )
    if encoding is None or not _is_wide_codec(encoding):
        position = data.find(b"\x00")
        if position >= 0:
            raise InvalidInput(
                "file is not a CSV text file: it contains NUL bytes (first at "
                f"{_where(data, position)}); export the table as CSV text"
            )


def _reject_nul_characters(text: str) -> None:
    """NUL in decoded text: binary data that a wide codec let through."""
    position = text.find("\x00")
    if position >= 0:
        line = text.count("\n", 0, position) + 1
        raise InvalidInput(
            "file is not a CSV text file: it contains NUL characters (first on "
            f"line {line}); export the table as CSV text"
        )


def _is_wide_codec(encoding: str) -> bool:
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        return False
    return name.startswith(("utf-16", "utf-32"))


def _decode_guessing(data: bytes) -> tuple[str, str, list[str]]:
    """UTF-8 (with or without a byte-order mark), else the cp1252 fallback."""
    if data.startswith(codecs.BOM_UTF8):
        text, used = _decode_as(data, "utf-8-sig")
        return text, used, []
    try:
        return data.decode("utf-8"), "utf-8", []
    except UnicodeDecodeError as error:
        where = _where(data, error.start)
        try:
            text = data.decode(FALLBACK_ENCODING)
        except UnicodeDecodeError as fallback_error:
            raise InvalidInput(
                f"file is not valid UTF-8 at {where}, nor valid "
                f"{FALLBACK_ENCODING} — re-export as UTF-8 or choose an encoding"
            ) from fallback_error
    note = f"decoded as {FALLBACK_ENCODING} (not valid UTF-8 at {where})"
    return text, FALLBACK_ENCODING, [note]


def _decode_as(data: bytes, encoding: str) -> tuple[str, str]:
    """The text decoded with ``encoding``, and the codec's canonical name."""
    name = _codec_name(data, encoding)
    try:
        return data.decode(name), name
    except UnicodeDecodeError as error:
        raise InvalidInput(
            f"file is not valid {name} at {_where(data, error.start)} — "
            f"re-export as UTF-8 or choose another encoding; "
            f"received encoding={encoding!r}"
        ) from error


def _codec_name(data: bytes, encoding: str) -> str:
    """The codec's canonical name; UTF-8 with a byte-order mark is utf-8-sig."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError as error:
        raise InvalidInput(
            "encoding must be a known codec name such as 'utf-8' or 'cp1252'; "
            f"received {encoding!r}"
        ) from error
    if name == "utf-8" and data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    return name


def _where(data: bytes, offset: int) -> str:
    """'line L, byte B' of a byte offset, both counted from 1."""
    line = data.count(b"\n", 0, offset) + 1
    line_start = data.rfind(b"\n", 0, offset) + 1
    return f"line {line}, byte {offset - line_start + 1}"


def records(
    text: str, delimiter: str, first_line: int = 1
) -> Iterator[tuple[int, list[str]]]:
    """Each record with the line it starts on; ``csv.Error`` as csv raises it."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    start = first_line
    for record in reader:
        yield start, record
        start = first_line + reader.line_num


def is_blank(record: list[str]) -> bool:
    """A record pandas skips: an empty line or one holding only whitespace."""
    return not record or (len(record) == 1 and not record[0].strip())


def record_widths(
    text: str, delimiter: str, first_line: int = 1
) -> Iterator[tuple[int, int]]:
    """The line and number of fields of each non-blank record.

    Without quoting, a record is a line and its fields are counted by their
    delimiters, without parsing; with quoting, records are parsed.
    """
    if '"' not in text:
        lines = LINE_END.split(text) if "\r" in text else text.split("\n")
        return (
            (first_line + offset, line.count(delimiter) + 1)
            for offset, line in enumerate(lines)
            if line.strip()
        )
    return (
        (line, len(record))
        for line, record in records(text, delimiter, first_line)
        if not is_blank(record)
    )
