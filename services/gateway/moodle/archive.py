"""The zips the Moodle backend hands out and takes back.

An export is ``model.json`` (the manifest: format, model, algorithm,
classes, how many samples, and the checksum of the samples) and
``samples.csv`` (the model's training samples in Moodle's own labelled
format: indicator values and labels, no sample ids). An import is checked
against the same shape before anything of it is used; nothing in it is ever
unpickled or run. An evaluation log is ``info.log`` and ``result.json``.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from shared.errors import InvalidInput
from shared.storage import sha256_hex

EXPORT_FORMAT = "eduml-moodle-model"
EXPORT_FORMAT_VERSION = 1
MANIFEST, SAMPLES = "model.json", "samples.csv"
# An export holds two members; a zip with many more is not one of ours.
MAX_ZIP_MEMBERS = 10


def pack_export(fields: dict[str, Any], samples: bytes) -> bytes:
    """The export zip of ``samples``, its manifest made of ``fields``."""
    manifest = {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        **fields,
        "samples_sha256": sha256_hex(samples),
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, json.dumps(manifest, indent=2))
        archive.writestr(SAMPLES, samples)
    return out.getvalue()


def unpack_export(data: bytes, max_bytes: int) -> tuple[dict[str, Any], bytes]:
    """The manifest and samples of an export; InvalidInput for anything else."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
        if (
            len(members) > MAX_ZIP_MEMBERS
            or sum(m.file_size for m in members) > max_bytes
        ):
            raise InvalidInput("importzip: the archive is larger than any export")
        names = archive.namelist()
        if MANIFEST not in names or SAMPLES not in names:
            raise InvalidInput(
                f"importzip: an export of this backend holds {MANIFEST} and "
                f"{SAMPLES}; the archive holds {names[:MAX_ZIP_MEMBERS]!r}"
            )
        samples = archive.read(SAMPLES)
        try:
            manifest = json.loads(archive.read(MANIFEST))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise InvalidInput(
                f"importzip: {MANIFEST} is not JSON text: {error}"
            ) from error
    except zipfile.BadZipFile as error:
        raise InvalidInput(
            f"importzip is not an export of this backend: {error}"
        ) from error
    if not isinstance(manifest, dict) or manifest.get("format") != EXPORT_FORMAT:
        raise InvalidInput(
            f"importzip: {MANIFEST} is not of the format {EXPORT_FORMAT!r}"
        )
    if manifest.get("samples_sha256") != sha256_hex(samples):
        raise InvalidInput(
            f"importzip: {SAMPLES} does not match the checksum its {MANIFEST} records"
        )
    return manifest, samples


def evaluation_log(runid: int, run: dict[str, Any] | None) -> bytes:
    """A zip with the run's log (``info.log``) and result; never empty."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        if run is None:
            archive.writestr(
                "info.log", f"No evaluation run {runid} is known for this model.\n"
            )
        else:
            archive.writestr("info.log", "\n".join(run.get("log", [])) + "\n")
            archive.writestr("result.json", json.dumps(run.get("result"), indent=2))
    return out.getvalue()
