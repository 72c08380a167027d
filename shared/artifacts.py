"""Fitted pipelines as bytes in S3, and the checks made before one is loaded.

Only pipelines that our own training service wrote are ever unpickled, and
only after their SHA-256 matches the one recorded when the version was
registered and the library versions match the ones of this process.
"""

from __future__ import annotations

import pickle
import platform
import warnings
from typing import Any

import numpy
import pandas
import sklearn

from shared.errors import ArtifactRejected, NotFound
from shared.registry import VersionRecord
from shared.storage import Storage, sha256_hex

# A pickled scikit-learn estimator is only safe to use under the same
# scikit-learn and numpy it was written with.
CHECKED_LIBRARIES = ("scikit-learn", "numpy")


def library_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "scikit-learn": sklearn.__version__,
    }


def dump(pipeline: Any) -> bytes:
    return pickle.dumps(pipeline, protocol=pickle.HIGHEST_PROTOCOL)


def load(storage: Storage, record: VersionRecord) -> Any:
    """The fitted pipeline of a version, after its checks pass."""
    if record.deleted_at is not None:
        raise NotFound(
            f"{record.model} v{record.version} was deleted at {record.deleted_at}"
        )
    check_libraries(record)
    data = storage.get_bytes(record.artifact.key)
    digest = sha256_hex(data)
    if digest != record.artifact.sha256:
        raise ArtifactRejected(
            f"artifact checksum mismatch for {record.model} v{record.version}: "
            f"expected sha256 {record.artifact.sha256[:12]}…, got {digest[:12]}… "
            f"({len(data)} of {record.artifact.bytes} bytes)"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error", category=UserWarning)
        return pickle.loads(data)  # noqa: S301 - our own artifact, checksum verified


def check_libraries(record: VersionRecord) -> None:
    here = library_versions()
    for name in CHECKED_LIBRARIES:
        built = record.libraries.get(name)
        if built != here[name]:
            raise ArtifactRejected(
                f"{record.model} v{record.version} was built with {name} {built}, "
                f"this service has {here[name]} — retrain or pin {name}=={built}"
            )
