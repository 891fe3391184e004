"""scripts/translate_video.py: tracked slots, a playable mp4, and bad input (corrupt frames, undecodable video)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from conftest import ROOT
from masks_helpers import disc, save_untrained_instagan, write_png

sys.path.insert(0, str(ROOT / "scripts"))
import translate_video  # noqa: E402

SIZE = (48, 48)


def moving_disc_frames(root, n=20):
    """A red disc moving right past a blue one that grows, so that their area order flips half-way."""
    for i in range(n):
        image = np.full((*SIZE, 3), 90, np.uint8)
        moving = disc(SIZE, 30, 8 + i, 6)
        growing = disc(SIZE, 12, 36, 3 + i * 0.3) & ~moving
        image[moving], image[growing] = (220, 60, 50), (50, 110, 220)
        write_png(root / "frames" / f"f{i:03d}.png", image)
        for k, mask in enumerate(sorted([moving, growing], key=lambda m: -m.sum())):  # the dataset's order
            write_png(root / "masks" / f"f{i:03d}_{k}.png", mask.astype(np.uint8) * 255)
    return root / "frames", root / "masks"


def run(tmp_path, frames, masks, *extra):
    ckpt = tmp_path / "checkpoints"
    if not (ckpt / "gan").is_dir():
        save_untrained_instagan(ckpt)
    return translate_video.main(
        [
            "--input",
            str(frames),
            "--name",
            "gan",
            "--checkpoints_dir",
            str(ckpt),
            "--masks",
            str(masks),
            "--out",
            str(tmp_path / "out"),
            "--gpu_ids",
            "-1",
            *extra,
        ]
    )


@pytest.mark.slow
def test_twenty_frames_keep_their_slots_and_make_a_playable_mp4(tmp_path):
    import av

    frames, masks = moving_disc_frames(tmp_path)
    summary = run(tmp_path, frames, masks)
    assert summary["frames"] == 20 and summary["tracks"] == 2
    records = [json.loads(line) for line in (tmp_path / "out" / "tracks.jsonl").read_text().splitlines()]
    assert len(records) == 20
    areas = [r["slots"][0]["area"] for r in records]
    assert len(set(areas)) == 1  # slot 0 is the moving disc (constant area) in every frame ...
    assert all(r["slots"][0]["track"] == 0 and r["slots"][1]["track"] == 1 for r in records)
    assert records[-1]["slots"][1]["area"] > records[-1]["slots"][0]["area"]  # ... though it ends up the smaller
    for name in ("output.mp4", "side_by_side.mp4"):
        with av.open(str(tmp_path / "out" / name)) as container:
            decoded = list(container.decode(video=0))
        assert len(decoded) == 20
    assert decoded[0].width == 3 * SIZE[1]
    page = (tmp_path / "out" / "index.html").read_text()
    assert "side_by_side.mp4" in page and "00000_output.png" in page


def test_bad_frames_are_skipped_and_existing_output_is_kept(tmp_path):
    frames, masks = moving_disc_frames(tmp_path, n=3)
    (frames / "f001.png").write_bytes(b"not a png")  # a corrupt frame
    write_png(frames / "f003.png", np.zeros((*SIZE, 3), np.uint8))  # a frame without any instance
    with pytest.warns(UserWarning, match="f001.png"):
        summary = run(tmp_path, frames, masks)
    assert summary["frames"] == 3 and summary["skipped_frames"] == [str(frames / "f001.png")]
    assert summary["frames_without_instances"] == 1
    kept = (tmp_path / "out" / "output.mp4").read_bytes()
    with pytest.raises(SystemExit, match="--overwrite"):
        run(tmp_path, frames, masks)
    assert (tmp_path / "out" / "output.mp4").read_bytes() == kept


def test_a_video_that_cannot_be_decoded_stops_before_writing(tmp_path):
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    with pytest.raises(SystemExit, match="cannot decode video"):
        run(tmp_path, bad, tmp_path)
    assert not (tmp_path / "out").exists()
