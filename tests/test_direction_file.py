"""add's direction file (`--direction`, harness.intervene.edits.read_direction): what is refused, and how early.

Issue 25: a zero direction is refused (row 10: add would change nothing, and every claim would read 0 → 0); a
.npy's header is read before its data, so a large array of the wrong shape is refused without reading it, and a
.pt far larger than one vector is refused by its size (row 10); a direction that overflows float32 is named as
the direction's fault, not the strength's (row 7). Each is one InputError naming the file.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.errors import InputError
from harness.intervene.edits import read_direction

WIDTH = 384


def _refused(path, message: str) -> None:
    with pytest.raises(InputError) as caught:
        read_direction(path, WIDTH)
    text = str(caught.value)
    assert message in text and str(path) in text and "\n" not in text, text


@pytest.mark.parametrize("suffix", [".npy", ".pt"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_a_zero_direction_is_refused(tmp_path, suffix, dtype):
    path = tmp_path / f"zero{suffix}"
    value = np.zeros(WIDTH, dtype=dtype)
    np.save(path, value) if suffix == ".npy" else torch.save(torch.from_numpy(value), path)
    _refused(path, "is the zero vector: add would change nothing at any strength")


def test_a_vector_with_one_non_zero_entry_is_read(tmp_path):
    value = np.zeros(WIDTH, dtype=np.float32)
    value[7] = 1e-30
    np.save(tmp_path / "v.npy", value)
    vector, sha = read_direction(tmp_path / "v.npy", WIDTH)
    assert vector.dtype == torch.float32 and float(vector[7]) == pytest.approx(1e-30) and len(sha) == 64


def test_a_npy_of_the_wrong_shape_is_refused_from_its_header_before_its_data(tmp_path):
    """The header says (100000, 384) float64 (307 MB); the file holds the header alone. Reading the data first would
    fail as an unreadable file; the header-first check names the shape."""
    path = tmp_path / "big.npy"
    with path.open("wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "<f8", "fortran_order": False, "shape": (100_000, WIDTH)})
    assert path.stat().st_size < 200
    _refused(path, f"has shape (100000, {WIDTH}): give a 1-D vector of the model's width, shape ({WIDTH},)")


def test_a_npy_of_python_objects_is_refused_from_its_header(tmp_path):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"a": 1}] * WIDTH, dtype=object), allow_pickle=True)
    _refused(path, "holds Python objects, not a real vector")


def test_a_pt_far_larger_than_one_vector_is_refused_by_its_size(tmp_path):
    path = tmp_path / "big.pt"
    torch.save(torch.ones(64, WIDTH, dtype=torch.float64), path)  # 196 KB: more than 8·384 bytes + 64 KiB
    _refused(path, f"more than one vector of width {WIDTH} can take")


@pytest.mark.parametrize("suffix", [".npy", ".pt"])
def test_a_direction_beyond_float32s_range_is_the_directions_fault(tmp_path, suffix):
    path = tmp_path / f"huge{suffix}"
    value = np.full(WIDTH, 1e39)  # finite in float64, inf in float32 (the sweep's dtype)
    np.save(path, value) if suffix == ".npy" else torch.save(torch.from_numpy(value), path)
    with pytest.raises(InputError) as caught:
        read_direction(path, WIDTH)
    text = str(caught.value)
    assert "beyond float32's range (largest |v| is 1e+39" in text and "the direction, not the strength, overflows" in text
    assert "factor" not in text, text
