"""Reading uploaded CSVs (shared.datasets), named after the field cases."""

from __future__ import annotations

import csv
import io
import math
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shared.datasets import (
    CATEGORICAL,
    NUMERIC,
    ColumnInfo,
    ParsedTable,
    infer_task,
    parse_csv,
    read_stored_csv,
    to_stored_csv,
)
from shared.errors import InvalidInput, PayloadTooLarge

PROJECT = Path(__file__).resolve().parents[2]
CASES = PROJECT / "tests" / "data" / "cases"
DATASETS = PROJECT / "data"

MAX_ROWS = 2_000_000
MAX_COLUMNS = 2_000


def parse(
    data: bytes | str,
    *,
    delimiter: str | None = None,
    decimal: str | None = None,
    encoding: str | None = None,
    max_rows: int = MAX_ROWS,
) -> ParsedTable:
    """parse_csv with the platform's limits; text is sent as UTF-8."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return parse_csv(
        data,
        delimiter=delimiter,
        decimal=decimal,
        encoding=encoding,
        max_rows=max_rows,
        max_columns=MAX_COLUMNS,
    )


def case(name: str) -> bytes:
    return (CASES / name).read_bytes()


def column(table: ParsedTable, name: str) -> ColumnInfo:
    return next(info for info in table.columns if info.name == name)


# Field cases.


def test_c12_single_class_target_is_read_as_one_distinct_number() -> None:
    table = parse(case("c12.csv"))

    assert table.frame.shape == (5, 5)
    assert column(table, "passed") == ColumnInfo("passed", NUMERIC, 0, 1)
    assert column(table, "student_id").type == CATEGORICAL


def test_c13_categorical_target_infers_classification() -> None:
    table = parse(case("c13.csv"))

    outcome = column(table, "outcome")

    assert outcome == ColumnInfo("outcome", CATEGORICAL, 0, 2)
    assert infer_task(outcome) == "classification"
    assert table.frame["outcome"].value_counts().to_dict() == {"pass": 8, "fail": 2}


def test_c17_semicolon_and_decimal_comma_detected() -> None:
    table = parse(case("c17.csv"))

    assert table.delimiter == ";"
    assert table.decimal == ","
    assert list(table.frame.columns) == [
        "school",
        "sex",
        "age",
        "studytime",
        "absences",
        "avg_quiz",
        "G1",
        "G2",
        "G3",
    ]
    assert table.frame["avg_quiz"].tolist() == [11.5, 8.25, 14.0, 9.75, 16.5]
    assert table.frame["avg_quiz"].dtype == np.float64
    assert table.frame["school"].tolist() == ["GP", "GP", "MS", "MS", "GP"]
    assert table.frame["G3"].tolist() == [11.0, 9.0, 15.0, 10.0, 17.0]
    assert "read ',' as the decimal mark in 1 column: ['avg_quiz']" in table.notes


def test_c17_forced_comma_delimiter_names_the_problem() -> None:
    with pytest.raises(
        InvalidInput,
        match="header was read as one column containing ';' — set delimiter=';'",
    ):
        parse(case("c17.csv"), delimiter=",")


def test_c17_explicit_decimal_point_keeps_comma_numbers_categorical() -> None:
    table = parse(case("c17.csv"), decimal=".")

    assert column(table, "avg_quiz").type == CATEGORICAL
    assert table.frame["avg_quiz"].tolist()[:2] == ["11,5", "8,25"]
    assert table.decimal == "."
    assert any("set decimal=','" in note for note in table.notes)


def test_c17_comma_delimited_file_hints_at_decimal_comma() -> None:
    text = 'student_id,avg_quiz\nS01,"11,5"\nS02,"8,25"\nS03,14\n'

    table = parse(text)

    assert column(table, "avg_quiz").type == CATEGORICAL
    assert table.notes == [
        "column 'avg_quiz' looks numeric with ',' as decimal mark — set "
        "decimal=','; it was kept as categorical"
    ]


def test_decimal_comma_given_for_numbers_written_with_a_point_is_noted() -> None:
    text = "student_id,avg_quiz\nS01,11.5\nS02,8.25\nS03,14\n"

    table = parse(text, decimal=",")

    assert column(table, "avg_quiz").type == CATEGORICAL
    assert table.notes == [
        "column 'avg_quiz' looks numeric with '.' as decimal mark — decimal=',' "
        "was given; it was kept as categorical"
    ]


def test_c17_explicit_decimal_comma_honoured_with_comma_delimiter() -> None:
    text = 'student_id,avg_quiz\nS01,"11,5"\nS02,"8,25"\nS03,14\n'

    table = parse(text, decimal=",")

    assert table.frame["avg_quiz"].tolist() == [11.5, 8.25, 14.0]
    assert table.decimal == ","


def test_c18_bom_stripped() -> None:
    table = parse(case("c18.csv"))

    assert table.encoding == "utf-8-sig"
    assert list(table.frame.columns) == ["student_id", "studytime", "absences", "G3"]
    assert table.frame["student_id"].tolist() == ["S01", "S02", "S03"]


def test_c18_bom_stripped_with_explicit_utf8() -> None:
    table = parse(case("c18.csv"), encoding="utf-8")

    assert table.encoding == "utf-8-sig"
    assert table.columns[0].name == "student_id"


def test_c18_header_errors_show_invisible_characters_escaped() -> None:
    text = "\u200bstudent_id\nS01\n"

    with pytest.raises(InvalidInput, match=re.escape(r"['\u200bstudent_id']")):
        parse(text)


def test_c20_cp1252_decoded_without_mojibake() -> None:
    table = parse(case("c20.csv"))

    assert table.encoding == "cp1252"
    assert table.frame["first_name"].tolist() == ["José", "Jürgen", "Zoë"]
    assert table.frame["city"].tolist() == ["Málaga", "Köln", "Besançon"]
    assert table.notes == ["decoded as cp1252 (not valid UTF-8 at line 2, byte 8)"]
    assert "Ã" not in to_stored_csv(table.frame).decode("utf-8")


def test_c20_explicit_utf8_names_line_and_byte() -> None:
    with pytest.raises(
        InvalidInput,
        match="file is not valid utf-8 at line 2, byte 8 — re-export as UTF-8",
    ):
        parse(case("c20.csv"), encoding="utf-8")


def test_c20_explicit_cp1252_used_without_note() -> None:
    table = parse(case("c20.csv"), encoding="cp1252")

    assert table.encoding == "cp1252"
    assert table.notes == []
    assert table.frame["first_name"].tolist()[0] == "José"


def test_c20_neither_utf8_nor_cp1252_refused_with_position() -> None:
    data = b"student_id,G3\nS01,12\nS\x81,15\n"

    with pytest.raises(
        InvalidInput,
        match="file is not valid UTF-8 at line 3, byte 2, nor valid cp1252",
    ):
        parse(data)


def test_c20_unknown_encoding_refused() -> None:
    with pytest.raises(InvalidInput, match="received 'klingon'"):
        parse(case("c20.csv"), encoding="klingon")


def test_c22_trailing_delimiter_dropped() -> None:
    table = parse(case("c22.csv"))

    assert list(table.frame.columns) == ["student_id", "studytime", "absences", "G3"]
    assert table.frame["student_id"].tolist() == ["S01", "S02", "S03"]
    assert table.frame["G3"].tolist() == [12.0, 15.0, 8.0]
    assert table.notes == ["ignored 1 empty trailing column"]


def test_c22_only_first_row_trailing() -> None:
    table = parse(case("c22_2.csv"))

    assert table.frame["student_id"].tolist() == ["S01", "S02", "S03"]
    assert table.frame["absences"].tolist() == [4.0, 0.0, 10.0]
    assert table.frame["G3"].tolist() == [12.0, 15.0, 8.0]
    assert table.notes == ["ignored 1 empty trailing column"]


def test_c22_extra_field_with_a_value_refused_with_line_number() -> None:
    text = "student_id,G1,G3\nS01,10,12\nS02,11,15,oops\nS03,9,8\n"

    with pytest.raises(
        InvalidInput, match=r"line 3 has a value in field 4 .* received 'oops'"
    ):
        parse(text)


def test_c22_several_empty_trailing_fields_dropped() -> None:
    table = parse("student_id,G3\nS01,12,,\nS02,15\nS03,8,\n")

    assert table.frame["G3"].tolist() == [12.0, 15.0, 8.0]
    assert table.notes == ["ignored 2 empty trailing columns"]


def test_c22_trailing_delimiter_on_header_dropped() -> None:
    table = parse("student_id,G3,\nS01,12,\nS02,15,\n")

    assert list(table.frame.columns) == ["student_id", "G3"]
    assert table.notes == ["ignored 1 empty trailing column"]


def test_c22_unnamed_trailing_column_with_values_refused() -> None:
    with pytest.raises(InvalidInput, match="column 3 has an empty name but holds 'x'"):
        parse("student_id,G3,\nS01,12,\nS02,15,x\n")


def test_c22_unnamed_column_in_the_middle_refused() -> None:
    with pytest.raises(InvalidInput, match="column 2 has an empty name"):
        parse("student_id,,G3\nS01,,12\n")


def test_c23_too_many_columns_refused() -> None:
    header = ",".join(f"q{number:05d}" for number in range(1, 20_001))
    row = ",".join(["0.25"] * 20_000)
    wide = "\n".join([header, *[row] * 300]).encode("utf-8")

    started = time.perf_counter()
    with pytest.raises(
        PayloadTooLarge, match=r"^20000 columns exceeds the limit of 2000 columns$"
    ):
        parse(wide)
    elapsed = time.perf_counter() - started

    assert len(wide) > 10_000_000
    assert elapsed < 1.0


# Refusals.


@pytest.mark.parametrize(
    ("data", "received"),
    [(b"", "received 0 bytes"), (b"  \r\n\n\t", "received 6 bytes of whitespace")],
)
def test_empty_file_refused(data: bytes, received: str) -> None:
    with pytest.raises(InvalidInput, match=f"^file is empty: .*; {received}$"):
        parse(data)


def test_header_only_refused() -> None:
    with pytest.raises(
        InvalidInput,
        match=re.escape("header but no data rows; at least one data row is needed"),
    ):
        parse("student_id,G3\n")


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "a PNG image"),
        (b"PK\x03\x04\x14\x00\x06\x00", "a ZIP archive"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3", "a PDF document"),
    ],
)
def test_binary_file_refused(data: bytes, kind: str) -> None:
    with pytest.raises(
        InvalidInput, match=f"^file is not a CSV text file: it starts like {kind}"
    ):
        parse(data)


def test_nul_bytes_refused() -> None:
    with pytest.raises(
        InvalidInput,
        match="file is not a CSV text file: it contains NUL bytes "
        r"\(first at line 2, byte 3\)",
    ):
        parse(b"a,b\n1,\x002\n")


def test_utf16_without_encoding_refused_with_hint() -> None:
    data = "student_id,G3\nS01,12\n".encode("utf-16")

    with pytest.raises(InvalidInput, match="set encoding='utf-16'"):
        parse(data)


def test_utf16_with_explicit_encoding_read() -> None:
    data = "student_id,G3\nS01,12\n".encode("utf-16")

    table = parse(data, encoding="utf-16")

    assert table.frame["G3"].tolist() == [12.0]
    assert table.encoding == "utf-16"


def test_duplicate_column_names_refused() -> None:
    with pytest.raises(
        InvalidInput, match=re.escape("duplicate column names 'G3' (columns 2, 4)")
    ):
        parse("student_id,G3,G1, G3\nS01,12,10,12\n")


def test_single_column_refused() -> None:
    with pytest.raises(
        InvalidInput, match=r"file has 1 column .* at least 2 are needed"
    ):
        parse("G3\n12\n15\n")


def test_too_many_rows_refused_naming_both_numbers() -> None:
    text = "student_id,G3\n" + "".join(f"S{row},{row}\n" for row in range(25))

    with pytest.raises(
        PayloadTooLarge, match=r"^25 data rows exceeds the limit of 10 rows$"
    ):
        parse(text, max_rows=10)


def test_rows_at_the_limit_accepted() -> None:
    text = "student_id,G3\n" + "".join(f"S{row},{row}\n" for row in range(10))

    assert len(parse(text, max_rows=10).frame) == 10


def test_non_finite_number_refused_with_column_and_line() -> None:
    text = "student_id,G3\nS01,12\nS02,inf\nS03,8\n"

    with pytest.raises(
        InvalidInput,
        match="column 'G3' holds the non-finite number 'inf' on line 3",
    ):
        parse(text)


def test_finite_numbers_too_large_for_a_model_refused_with_column_and_line() -> None:
    text = "student_id,G3\nS01,12\nS02,8\nS03,-1.7e308\n"

    with pytest.raises(InvalidInput, match="column 'G3' holds '-1.7e308' on line 4"):
        parse(text)
    assert (
        parse("student_id,G3\nS01,1e149\nS02,-1e149\n").frame["G3"].abs().max() == 1e149
    )


def test_short_rows_are_read_as_missing_values_with_a_note() -> None:
    table = parse("student_id,age,G3\nS01,17,12\nS02,18\nS03\n")

    assert table.frame["G3"].isna().tolist() == [False, True, True]
    assert "2 rows have fewer fields than the header (first on line 3)" in " ".join(
        table.notes
    )


def test_an_unclosed_quote_is_refused_with_the_line_it_opens_on() -> None:
    text = 'student_id,comment\nS01,"two\nlines"\n\nS02,"never closed\nS03,ok\n'

    with pytest.raises(InvalidInput, match="quoted field opened on line 5 is never"):
        parse(text)


def test_error_line_counts_blank_lines_and_quoted_newlines() -> None:
    text = 'student_id,comment,G3\nS01,"two\nlines",12\n\nS02,ok,-inf\n'

    with pytest.raises(InvalidInput, match="'-inf' on line 5;"):
        parse(text)


def test_unterminated_quote_refused() -> None:
    with pytest.raises(InvalidInput, match="could not be read as CSV"):
        parse('student_id,G3\nS01,"12\n')


@pytest.mark.parametrize(
    ("delimiter", "decimal", "message"),
    [
        (";;", None, "delimiter must be one character .* received ';;'"),
        ('"', None, "delimiter must be one character .* received '\"'"),
        ("", None, "delimiter must be one character .* received ''"),
        (None, ";", "decimal must be '.' or ','; received ';'"),
    ],
)
def test_invalid_options_refused(
    delimiter: str | None, decimal: str | None, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse("a,b\n1,2\n", delimiter=delimiter, decimal=decimal)


# Delimiters, quoting and values.


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_detected(delimiter: str) -> None:
    text = f"student_id{delimiter}G1{delimiter}G3\nS01{delimiter}10{delimiter}12\n"

    table = parse(text)

    assert table.delimiter == delimiter
    assert list(table.frame.columns) == ["student_id", "G1", "G3"]


def test_delimiter_inside_quotes_not_counted() -> None:
    text = 'student_id,comment,G3\nS01,"late; absent | ill",12\nS02,"ok; fine",15\n'

    table = parse(text)

    assert table.delimiter == ","
    assert table.frame["comment"].tolist() == ["late; absent | ill", "ok; fine"]


def test_explicit_delimiter_honoured() -> None:
    table = parse("student_id;note,x;G3\nS01;a,b;12\n", delimiter=";")

    assert list(table.frame.columns) == ["student_id", "note,x", "G3"]


def test_quoted_fields_keep_newlines_and_quotes() -> None:
    text = 'student_id,comment,G3\nS01,"two\nlines",12\nS02,"say ""hi""",15\n'

    table = parse(text)

    assert table.frame["comment"].tolist() == ["two\nlines", 'say "hi"']
    assert table.frame["G3"].tolist() == [12.0, 15.0]


def test_old_mac_line_endings_read() -> None:
    table = parse("student_id;G3\rS01;12\rS02;15\r")

    assert table.delimiter == ";"
    assert table.frame["G3"].tolist() == [12.0, 15.0]


def test_blank_lines_skipped_and_crlf_read() -> None:
    table = parse("student_id,G3\r\nS01,12\r\n\r\nS02,15\r\n")

    assert table.frame["student_id"].tolist() == ["S01", "S02"]


def test_short_rows_padded_with_missing() -> None:
    table = parse("student_id,G1,G3\nS01,10,12\nS02,11\n")

    assert math.isnan(table.frame.at[1, "G3"])
    assert column(table, "G3").missing == 1


def test_missing_tokens_counted_as_missing() -> None:
    text = "student_id,G3\nS01,12\nS02,NA\nS03,\nS04,nan\nS05,NaN\nS06,null\nS07,?\n"

    table = parse(text)

    assert column(table, "G3") == ColumnInfo("G3", NUMERIC, 6, 1)
    assert table.frame["G3"].isna().sum() == 6


def test_values_and_names_stripped() -> None:
    table = parse(" student_id , G3 \n S01 , 12 \nS02,15\n")

    assert list(table.frame.columns) == ["student_id", "G3"]
    assert table.frame["student_id"].tolist() == ["S01", "S02"]
    assert column(table, "student_id").distinct == 2


def test_id_like_strings_are_categorical() -> None:
    table = parse("student_id,G3\nS01,12\nS02,15\n")

    assert column(table, "student_id").type == CATEGORICAL
    assert table.frame["student_id"].tolist() == ["S01", "S02"]


def test_leading_zero_ids_are_numeric_by_the_simple_rule() -> None:
    table = parse("student_id,G3\n007,12\n008,15\n")

    assert column(table, "student_id").type == NUMERIC
    assert table.frame["student_id"].tolist() == [7.0, 8.0]


def test_mixed_values_make_a_column_categorical() -> None:
    table = parse("student_id,grade\nS01,12\nS02,absent\nS03,NA\n")

    assert column(table, "grade") == ColumnInfo("grade", CATEGORICAL, 1, 2)
    assert table.frame["grade"].tolist()[:2] == ["12", "absent"]
    assert pd.isna(table.frame.at[2, "grade"])


def test_frame_dtypes_are_float64_and_str() -> None:
    table = parse(case("c13.csv"))

    dtypes = table.frame.dtypes

    assert dtypes["G1"] == np.float64
    assert dtypes["outcome"] == pd.StringDtype(na_value=np.nan)
    assert table.frame["outcome"].map(type).eq(str).all()


def test_first_column_is_never_the_index() -> None:
    table = parse(case("c22.csv"))

    assert isinstance(table.frame.index, pd.RangeIndex)
    assert table.frame.columns[0] == "student_id"


# Storage and tasks.


def test_stored_csv_round_trip_is_exact() -> None:
    frame = pd.DataFrame(
        {
            "student_id": pd.Series(["007", "008", "009", "010"], dtype=str),
            "score": [0.1 + 0.2, np.nan, 1e-300, 123456789.12345679],
            "comment": pd.Series(["a, b", 'say "hi"', None, "two\nlines"], dtype=str),
        }
    )
    columns = [
        ColumnInfo("student_id", CATEGORICAL, 0, 4),
        ColumnInfo("score", NUMERIC, 1, 3),
        ColumnInfo("comment", CATEGORICAL, 1, 3),
    ]

    restored = read_stored_csv(to_stored_csv(frame), columns)

    pd.testing.assert_frame_equal(restored, frame)
    assert restored["student_id"].tolist() == ["007", "008", "009", "010"]
    assert restored.at[0, "score"] == 0.1 + 0.2


def test_stored_csv_is_canonical_utf8_comma_point() -> None:
    table = parse(case("c17.csv"))

    stored = to_stored_csv(table.frame).decode("utf-8")

    assert (
        stored.splitlines()[0] == "school,sex,age,studytime,absences,avg_quiz,G1,G2,G3"
    )
    assert stored.splitlines()[1] == "GP,F,17.0,2.0,4.0,11.5,10.0,11.0,11.0"
    pd.testing.assert_frame_equal(
        read_stored_csv(stored.encode("utf-8"), table.columns), table.frame
    )


def test_stored_csv_round_trip_keeps_missing_categories() -> None:
    table = parse(case("c20.csv"))
    frame = table.frame.copy()
    frame.loc[1, "city"] = np.nan

    restored = read_stored_csv(to_stored_csv(frame), table.columns)

    pd.testing.assert_frame_equal(restored, frame)


def test_read_stored_csv_refuses_other_columns() -> None:
    table = parse(case("c18.csv"))
    other = [ColumnInfo("id", CATEGORICAL, 0, 3), *table.columns[1:]]

    with pytest.raises(InvalidInput, match="stored table has the columns"):
        read_stored_csv(to_stored_csv(table.frame), other)


@pytest.mark.parametrize(
    ("info", "task"),
    [
        (ColumnInfo("outcome", CATEGORICAL, 0, 2), "classification"),
        (ColumnInfo("school", CATEGORICAL, 0, 7), "classification"),
        (ColumnInfo("passed", NUMERIC, 0, 2), "classification"),
        (ColumnInfo("G3", NUMERIC, 0, 17), "regression"),
        (ColumnInfo("passed", NUMERIC, 0, 1), "classification"),
    ],
)
def test_infer_task(info: ColumnInfo, task: str) -> None:
    assert infer_task(info) == task


def test_column_info_as_dict() -> None:
    info = ColumnInfo("G3", NUMERIC, 1, 17)

    assert info.as_dict() == {
        "name": "G3",
        "type": "numeric",
        "missing": 1,
        "distinct": 17,
    }


# Real data sets.


def empty_cells_per_column(data: bytes) -> dict[str, int]:
    """An independent count with the csv module, to check parse_csv's."""
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    header, body = rows[0], rows[1:]
    return {
        name: sum(1 for row in body if row[index] == "")
        for index, name in enumerate(header)
    }


def test_chem97_parsed_fast_with_right_counts() -> None:
    data = (DATASETS / "chem97.csv").read_bytes()

    started = time.perf_counter()
    table = parse(data)
    elapsed = time.perf_counter() - started

    assert table.frame.shape == (31_022, 8)
    assert elapsed < 1.0
    assert all(info.missing == 0 for info in table.columns)
    assert column(table, "student").distinct == 31_022
    assert column(table, "score") == ColumnInfo("score", NUMERIC, 0, 6)
    assert column(table, "gender") == ColumnInfo("gender", CATEGORICAL, 0, 2)
    assert infer_task(column(table, "score")) == "regression"


def test_star_parsed_with_right_missing_counts() -> None:
    data = (DATASETS / "star.csv").read_bytes()

    table = parse(data)

    assert table.frame.shape == (11_598, 47)
    assert {info.name: info.missing for info in table.columns} == (
        empty_cells_per_column(data)
    )
    assert column(table, "read3") == ColumnInfo("read3", NUMERIC, 5_598, 90)
    assert column(table, "stark") == ColumnInfo("stark", CATEGORICAL, 5_273, 3)
    assert column(table, "birth").type == CATEGORICAL


def test_exam_parsed_with_types() -> None:
    table = parse((DATASETS / "exam.csv").read_bytes())

    assert table.frame.shape == (4_059, 10)
    assert column(table, "normexam").type == NUMERIC
    assert column(table, "vr") == ColumnInfo("vr", CATEGORICAL, 0, 3)
