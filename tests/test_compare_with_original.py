"""scripts/compare_with_original.py's verdict cannot pass by accident: a NaN, a shape mismatch or a structural note
fails it loudly. These tests feed its comparison functions directly; they need no checkout of the 2018 code."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cmp():
    spec = importlib.util.spec_from_file_location("compare_with_original", ROOT / "scripts/compare_with_original.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def verdict(cmp, diffs, tol=1e-7, notes=()):
    return cmp.judge("case", torch.float64, diffs, dict.fromkeys(diffs, tol), list(notes))


def test_agreement_within_the_tolerance_passes_and_beyond_it_fails(cmp):
    close, far = cmp.Diff(), cmp.Diff()
    close.add(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0 + 1e-12]), "x")
    far.add(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.1]), "y")
    assert verdict(cmp, {"close": close})[0]
    ok, lines = verdict(cmp, {"close": close, "far": far})
    assert not ok and "<-- FAIL" in lines[1] and "<-- FAIL" not in lines[0]


@pytest.mark.parametrize("side", ["ours", "original"])
def test_a_nan_fails_even_after_good_items_and_in_an_unjudged_group(cmp, side):
    d = cmp.Diff()
    d.add(torch.ones(3), torch.ones(3), "good")
    bad = torch.tensor([1.0, math.nan, 1.0])
    d.add(*((bad, torch.ones(3)) if side == "ours" else (torch.ones(3), bad)), "bad")
    d.add(torch.ones(3), torch.ones(3), "good again")
    assert d.broken and d.rel == math.inf and "bad" in d.worst and side in d.worst
    ok, lines = verdict(cmp, {"losses": d})
    assert not ok and "<-- FAIL" in lines[0]
    assert not verdict(cmp, {"info": d}, tol=None)[0]  # not judged by value, still failed by the NaN
    scalar = cmp.Diff()
    scalar.add(math.nan, 0.5, "loss D_A")  # the recorded losses are Python floats
    assert not verdict(cmp, {"losses": scalar})[0]


def test_a_group_whose_every_item_has_a_mismatched_shape_is_reported_and_fails(cmp):
    d = cmp.Diff()
    d.add(torch.ones(1, 4, 8, 8), torch.ones(1, 5, 8, 8), "real_A_segs")
    d.add(torch.ones(2), torch.ones(3), "step 1 fake_B")
    assert d.n == 2 and len(d.broken) == 2  # counted, so the group is kept in the report
    ok, lines = verdict(cmp, {"selected masks": d})
    assert not ok
    assert "shape (1, 4, 8, 8) vs (1, 5, 8, 8)" in lines[0] and "<-- FAIL" in lines[0]
    assert "shape (2,) vs (3,)" in lines[1]  # every broken item is listed


def test_a_structural_note_fails(cmp):
    d = cmp.Diff()
    d.add(torch.ones(2), torch.ones(2), "x")
    ok, lines = verdict(cmp, {"g": d}, notes=["loss (1, 'idt_A') only in the original"])
    assert not ok and lines[-1].endswith("<-- FAIL")
