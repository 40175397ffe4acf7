"""Patient identifiers never reach the header summary, error messages, warnings or logs."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from pydicom.uid import generate_uid

from engine.bench.io import synthetic_slice
from engine.errors import ImageReadError
from engine.imaging import read_image
from engine.imaging.dicom_series import MultipleSeriesError, list_series, read_series
from engine.imaging.phi import header_summary, safe_description

PHI = {
    "PatientName": "Doe^Janet^Q",
    "PatientID": "PID-98765",
    "PatientBirthDate": "19610203",
    "AccessionNumber": "ACC-44556",
    "InstitutionName": "Saint Example Hospital",
    "ReferringPhysicianName": "Whooper^Gregory",
}
NEEDLES = ("Janet", "PID-98765", "19610203", "ACC-44556", "Saint Example", "Whooper")


def _phi_slice(description="Janet follow-up", **kwargs):
    ds = synthetic_slice(np.arange(64, dtype=np.uint16).reshape(8, 8), series_uid=kwargs.pop("series_uid", generate_uid()),
                         position=kwargs.pop("position", (0, 0, 0)), description=description, **kwargs)
    for keyword, value in PHI.items():
        setattr(ds, keyword, value)
    ds.Manufacturer, ds.ManufacturerModelName, ds.BodyPartExamined = "ACME", "Scanner 3000", "HEAD"
    return ds


def _assert_clean(text: str):
    for needle in NEEDLES:
        assert needle.lower() not in text.lower(), f"{needle!r} leaked into: {text}"


def test_summary_holds_technical_attributes_only(tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "phi.dcm"
    _phi_slice().save_as(path, enforce_file_format=True)
    volume = read_image(path)
    _assert_clean(repr(volume.header))
    assert volume.header["modality"] == "CT"
    assert volume.header["manufacturer_model"] == "Scanner 3000"
    assert volume.header["rows"] == 8 and volume.header["bits_stored"] == 12
    assert volume.header["transfer_syntax"] == "Explicit VR Little Endian"
    assert volume.header["pixel_spacing"] == [0.7, 0.7]
    assert "series_description" not in volume.header  # it carried the patient's given name
    _assert_clean(caplog.text + capsys.readouterr().err)


def test_series_description_filter():
    ds = _phi_slice()
    assert safe_description("AX T2 FLAIR", ds) == "AX T2 FLAIR"
    assert safe_description("Doe brain", ds) is None
    assert safe_description("CT 2019-03-04", ds) is None
    assert safe_description("SMITH^JOHN", ds) is None
    assert safe_description("ID 12345678", ds) is None
    assert "series_description" in header_summary(_phi_slice(description="AX SOFT TISSUE"))


def test_errors_and_series_lists_carry_no_phi(tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    truncated = tmp_path / "bad" / "t.dcm"
    truncated.parent.mkdir()
    _phi_slice().save_as(truncated, enforce_file_format=True)
    truncated.write_bytes(truncated.read_bytes()[:-30])
    with pytest.raises(ImageReadError) as caught:
        read_image(truncated)
    _assert_clean(str(caught.value))
    assert "truncated pixel data" in str(caught.value)
    header_only = tmp_path / "bad" / "h.dcm"
    header_only.write_bytes(truncated.read_bytes()[:400])
    with pytest.raises(ImageReadError) as caught:
        read_image(header_only)
    _assert_clean(str(caught.value))
    for k in range(2):
        folder = tmp_path / "two" / str(k)
        folder.mkdir(parents=True)
        _phi_slice(description=f"Janet series {k}").save_as(folder / "a.dcm", enforce_file_format=True)
    with pytest.raises(MultipleSeriesError) as caught:
        read_series(tmp_path / "two")
    _assert_clean(str(caught.value) + repr(caught.value.series) + repr(list_series(tmp_path / "two")))
    _assert_clean(caplog.text + capsys.readouterr().err)
