"""Batch scoring's frames and CSV text, against what the serving path does."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from services.gateway.predictions import to_rows
from services.serving import tasks
from services.serving.batch import _fields, _number_fields, feature_frame, score_chunk
from shared.batch import check_scorable, csv_columns
from shared.dataset_store import ColumnSchema, DatasetSchema
from shared.datasets import ColumnInfo, read_stored_chunks, to_stored_csv
from shared.errors import InvalidInput
from tests.unit.test_artifacts_and_serving import fitted, record_for


def stored_chunks(frame: pd.DataFrame, types: dict[str, str], rows: int) -> list:
    columns = [ColumnInfo(name, types[name], 0, 0) for name in frame.columns]
    data = to_stored_csv(frame)
    return list(read_stored_chunks(data, columns, list(frame.columns), rows))


def dataset_schema(types: dict[str, str], id_column: str | None = None):
    return DatasetSchema(
        id="d" * 32,
        rows=3,
        columns=[
            ColumnSchema(name=n, type=t, missing=0, distinct=3)
            for n, t in types.items()
        ],
        id_column=id_column,
        encoding="utf-8",
        delimiter=",",
        decimal=".",
    )


def test_feature_frame_equals_the_serving_tasks_for_the_same_rows():
    record = record_for(fitted())
    table = pd.DataFrame(
        {"hours": [1.5, np.nan, 30.0, 7.0], "group": ["a", None, "b", "zz"]}
    )
    chunk = stored_chunks(table, {"hours": "numeric", "group": "categorical"}, 10)[0]
    instances = [
        {"hours": 1.5, "group": "a"},
        {"hours": None, "group": None},
        {"hours": 30.0, "group": "b"},
        {"hours": 7.0, "group": "zz"},
    ]

    ours = feature_frame(record, chunk)
    theirs = tasks.feature_frame(record, ["hours", "group"], to_rows(record, instances))

    pd.testing.assert_frame_equal(ours, theirs)


def test_a_number_in_a_categorical_feature_becomes_its_text_as_predict_makes_it():
    record = record_for(fitted())
    table = pd.DataFrame({"hours": [1.0, 2.0, 3.0], "group": [3.0, 2.5, np.nan]})
    chunk = stored_chunks(table, {"hours": "numeric", "group": "numeric"}, 10)[0]
    instances = [
        {"hours": 1, "group": 3},
        {"hours": 2, "group": 2.5},
        {"hours": 3, "group": None},
    ]

    ours = feature_frame(record, chunk)
    theirs = tasks.feature_frame(record, ["hours", "group"], to_rows(record, instances))

    assert ours["group"].tolist()[:2] == ["3", "2.5"]
    pd.testing.assert_frame_equal(ours, theirs)


def test_chunk_lines_hold_row_id_prediction_and_probabilities_of_the_api():
    pipeline = fitted()
    record = record_for(pipeline)
    table = pd.DataFrame(
        {"hours": [1.0, 35.0], "group": ["a", "b"], "student": ["p01", "p02"]}
    )
    chunk = stored_chunks(
        table,
        {"hours": "numeric", "group": "categorical", "student": "categorical"},
        10,
    )[0]
    answer = tasks.run_pipeline(
        record, pipeline, ["hours", "group"], [[1.0, "a"], [35.0, "b"]]
    )

    text = score_chunk(record, pipeline, chunk, 40, "student")

    header = "row,id,prediction,probability_0,probability_1\n"
    table = pd.read_csv(io.StringIO(header + text))
    assert table["row"].tolist() == [41, 42]
    assert table["id"].tolist() == ["p01", "p02"]
    assert table["prediction"].tolist() == answer["predictions"]
    assert (
        table[["probability_0", "probability_1"]].to_numpy().tolist()
        == answer["probabilities"]
    )


def test_text_fields_are_quoted_only_where_csv_needs_it_and_gaps_are_empty():
    values = np.array(
        ['fail, "late"', "pass", None, np.nan, "two\nlines"], dtype=object
    )

    fields = _fields(values)

    assert fields == ['"fail, ""late"""', "pass", "", "", '"two\nlines"']
    assert _fields(np.array(["pass", None], dtype=object)) == ["pass", ""]


def test_numbers_read_back_exactly_and_non_finite_ones_are_empty():
    values = np.array([[0.1, 1 / 3], [np.nan, np.inf], [1e-7, 5e-324]])

    rows = _number_fields(values)

    assert rows[1] == ","
    assert [float(x) for x in rows[0].split(",")] == [0.1, 1 / 3]
    assert [float(x) for x in rows[2].split(",")] == [1e-7, 5e-324]
    assert _number_fields(np.array([2.5, -np.inf])) == ["2.5", ""]
    assert _number_fields(np.empty((0, 2))) == []


def test_check_scorable_names_missing_columns_and_text_in_numbers():
    record = record_for(fitted())

    with pytest.raises(InvalidInput, match=r"lacks the feature columns \['group'\]"):
        check_scorable(record, dataset_schema({"hours": "numeric"}))
    with pytest.raises(
        InvalidInput, match=r"columns \['hours'\] of dataset d+ hold text"
    ):
        check_scorable(
            record, dataset_schema({"hours": "categorical", "group": "categorical"})
        )
    check_scorable(record, dataset_schema({"hours": "numeric", "group": "numeric"}))


def test_csv_columns_follow_the_id_column_and_the_classes():
    classifier = record_for(fitted())
    regressor = record_for(
        fitted("regression"), task="regression", classes=None, has_proba=False
    )

    with_ids = csv_columns(classifier, dataset_schema({"s": "categorical"}, "s"))
    without = csv_columns(regressor, dataset_schema({"hours": "numeric"}))

    assert with_ids == ["row", "id", "prediction", "probability_0", "probability_1"]
    assert without == ["row", "prediction"]
