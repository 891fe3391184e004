"""Translate a video (or a folder of frames) frame by frame with a trained InstaGAN (paper §4.5).

    python scripts/translate_video.py --input clip.mp4 --name shp2gir_coco_instagan --masks maskrcnn --classes sheep
    python scripts/translate_video.py --input frames/ --name toy_instagan --masks predict:toy_masks
    python scripts/translate_video.py --input frames/ --name toy_instagan --masks masks/   # <frame stem>_<k>.png

Each frame is resized to the run's --fineSizeH x --fineSizeW (read from its train_opt.json, like the network
options), its instance masks are read or predicted, and the instances are *tracked*: an instance takes the slot
of the previous frames' instance it overlaps most (IoU matching, ``models/instances.InstanceTracker``), so it keeps
its slot, and its place in the sequential translation, from frame to frame (``--set_order given``) instead of
being re-sorted by area in every frame. Up to ``--ins_max`` slots.

Written to ``--out`` (default ``<results_dir>/<name>/video_<input stem>``): ``frames/<i>_{input,overlay,output}.png``,
``output.mp4`` (the translation), ``side_by_side.mp4`` (input | tracked masks | output), ``tracks.json`` (per frame,
each slot's track id and area) and ``index.html``. Frames are streamed: memory does not grow with their number.

Bad input: a video that cannot be decoded stops before anything is written; a frame of a folder that cannot be read
is skipped (named in the summary); a decoding error in the middle of a video ends the run with the frames so far
written and playable; a frame without any instance is translated as a whole with zero instances; an existing
``--out`` is never overwritten without ``--overwrite``. Other options (``--ins_max 8``, ``--gpu_ids 0``, ...) go to
test.py's option parser.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import warnings
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data.image_folder import index_masks, make_dataset  # noqa: E402
from data.mask_source import PREDICT  # noqa: E402
from models.instances import InstanceTracker  # noqa: E402
from models.predictors import MASKRCNN, add_predictor_options, build_predictor  # noqa: E402
from models.translate import load_translation_model, overlay, translate  # noqa: E402
from util.html import HTML  # noqa: E402
from util.progress import Progress  # noqa: E402


class VideoError(RuntimeError):
    """The input cannot be read; the message names it and the fix."""


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--input", required=True, type=Path, help="a video file (mp4, avi, ...) or a folder of frames")
    parser.add_argument("--name", required=True, help="the InstaGAN run (checkpoints/<name>)")
    parser.add_argument(
        "--masks",
        required=True,
        help="a folder of <frame stem>_<k>.png masks, predict:NAME / NAME (a --model mask_predictor run) or maskrcnn",
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder (<results_dir>/<name>/video_<stem>)")
    parser.add_argument("--overwrite", action="store_true", help="replace the contents of an existing --out")
    parser.add_argument("--fps", type=float, default=0, help="frame rate of the mp4s (default: the video's, or 10)")
    parser.add_argument("--max_frames", type=int, default=0, help="stop after this many frames (0: all)")
    parser.add_argument("--match_iou", type=float, default=0.2, help="tracking: least IoU to keep an instance's slot")
    parser.add_argument("--patience", type=int, default=5, help="tracking: frames a lost instance's slot is kept")
    parser.add_argument("--page_every", type=int, default=0, help="frames shown on the page: every n-th (0: ~12)")
    parser.add_argument("--checkpoints_dir", default="./checkpoints")
    parser.add_argument("--results_dir", default="./results")
    add_predictor_options(parser)
    return parser.parse_known_args(argv)


# ---------------------------------------------------------------------------------------------------- frames


def open_video(path: Path):
    """The PyAV container and the number of frames (0 when unknown); decodes the first frame to fail early."""
    import av

    try:
        container = av.open(str(path))
        if not container.streams.video:
            raise VideoError(f"{path} has no video stream")
        stream = container.streams.video[0]
        next(container.decode(stream))
        container.seek(0)
    except VideoError:
        raise
    except Exception as e:  # PyAV's errors for missing codecs, damaged or non-video files
        raise VideoError(
            f"cannot decode video {path} ({type(e).__name__}: {e}); convert it, e.g. `ffmpeg -i {path} -c:v libx264 "
            "fixed.mp4`, or extract its frames into a folder and pass that"
        ) from e
    return container, stream.frames or 0, float(stream.average_rate or 0)


def frames_from_folder(folder: Path, bad: list[str]) -> Iterator[tuple[str, Image.Image]]:
    for path in make_dataset(folder):
        try:
            with Image.open(path) as im:
                image = im.convert("RGB")
        except Exception as e:  # skip a damaged frame, name it in the summary
            warnings.warn(f"skipping frame {path}: cannot read it ({type(e).__name__}: {e})", stacklevel=2)
            bad.append(str(path))
            continue
        yield path.stem, image


def frames_from_video(container, errors: list[str]) -> Iterator[tuple[str, Image.Image]]:
    try:
        for i, frame in enumerate(container.decode(video=0)):
            yield f"frame_{i:05d}", frame.to_image()
    except Exception as e:  # damaged in the middle: what was decoded is kept
        errors.append(f"decoding stopped after a damaged part of the video ({type(e).__name__}: {e})")
    finally:
        container.close()


# ---------------------------------------------------------------------------------------------------- masks


class FolderMasks:
    """Masks ``<frame stem>_<k>.png`` from a folder (any size: resized with the frame)."""

    def __init__(self, folder: Path):
        if not folder.is_dir():
            raise VideoError(f"--masks {folder} is not a folder, a predict:NAME nor maskrcnn")
        self.index = index_masks(folder)

    def __call__(self, stem: str, image: Image.Image) -> list[np.ndarray]:
        masks = []
        for k in sorted(self.index.get(stem, {})):
            path = self.index[stem][k]
            try:
                with Image.open(path) as im:
                    masks.append(np.asarray(im.convert("L").resize(image.size, Image.NEAREST)) > 127)
            except Exception as e:
                warnings.warn(f"skipping mask {path}: cannot read it ({type(e).__name__}: {e})", stacklevel=2)
        return [m for m in masks if m.any()]


def mask_source(spec: str, args, device, domain: str):
    name = spec[len(PREDICT) :] if spec.startswith(PREDICT) else spec
    if name == MASKRCNN or spec.startswith(PREDICT) or (Path(args.checkpoints_dir) / name / "train_opt.json").is_file():
        predictor = build_predictor(name, args, device)
        return lambda stem, image: predictor(image, domain)
    return FolderMasks(Path(spec))


# ---------------------------------------------------------------------------------------------------- output


class Mp4Writer:
    """H.264 mp4 through PyAV, written to a temporary name and renamed on ``close`` (a crash leaves no half file
    under the final name). Frames must share one even-sided size (odd sides are padded by one pixel)."""

    def __init__(self, path: Path, fps: float):
        import av

        self.path, self.tmp = path, path.with_name(f".{path.name}.tmp")
        self.container = av.open(str(self.tmp), "w", format="mp4")
        self.stream = self.container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        self.stream.pix_fmt = "yuv420p"
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        import av

        h, w = image.shape[:2]
        image = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        if self.frames == 0:
            self.stream.height, self.stream.width = image.shape[:2]
        for packet in self.stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self.frames:
            for packet in self.stream.encode():
                self.container.mux(packet)
        self.container.close()
        if self.frames:
            self.tmp.replace(self.path)
        else:
            self.tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict:
    args, rest = parse_args(argv)
    src = args.input
    if not src.exists():
        raise SystemExit(f"--input {src} does not exist; pass a video file or a folder of frames")
    bad: list[str] = []
    errors: list[str] = []
    fps = args.fps
    try:
        if src.is_dir():
            total = len(make_dataset(src))
            if total == 0:
                raise VideoError(f"--input {src} holds no image files (.png, .jpg, ...)")
            frames = frames_from_folder(src, bad)
        else:
            container, total, rate = open_video(src)
            fps = fps or rate
            frames = frames_from_video(container, errors)
    except VideoError as e:
        raise SystemExit(str(e)) from None
    fps = fps or 10.0
    if args.max_frames:
        total = min(total, args.max_frames) if total else args.max_frames

    extra = ["--results_dir", args.results_dir, *rest]
    opt, model, device = load_translation_model(args.name, str(src), args.checkpoints_dir, extra, set_order="given")
    out = args.out or Path(args.results_dir) / args.name / f"video_{src.stem}"
    if out.exists() and any(out.iterdir()):
        if not args.overwrite:
            raise SystemExit(f"--out {out} exists and is not empty; pass --overwrite to replace it, or another --out")
        shutil.rmtree(out)
    domain = "A" if opt.direction == "AtoB" else "B"
    masks_of = mask_source(args.masks, args, device, domain)  # fails here, before anything is written
    size = (opt.fineSizeW, opt.fineSizeH)
    tracker = InstanceTracker(opt.ins_max, args.match_iou, args.patience)

    (out / "frames").mkdir(parents=True, exist_ok=True)
    video = Mp4Writer(out / "output.mp4", fps)
    side = Mp4Writer(out / "side_by_side.mp4", fps)
    tracks, shown = [], []
    every = args.page_every or max(1, (total or 12) // 12)
    no_instances = 0
    start = time.perf_counter()
    progress = Progress(total=total or None, desc="video")
    try:
        with open(out / "tracks.jsonl", "w") as log:
            for i, (stem, image) in enumerate(frames):
                if args.max_frames and i >= args.max_frames:
                    break
                image = image.resize(size, Image.BICUBIC)
                masks = [m for m in masks_of(stem, image) if m.shape == (size[1], size[0])]
                slots = tracker.update(masks)
                no_instances += not masks
                frame_in, frame_out = np.asarray(image), translate(model, opt, image, slots)
                frame_ov = overlay(frame_in, slots)
                for label, im in (("input", frame_in), ("overlay", frame_ov), ("output", frame_out)):
                    Image.fromarray(im).save(out / "frames" / f"{i:05d}_{label}.png")
                video.write(frame_out)
                side.write(np.concatenate([frame_in, frame_ov, frame_out], axis=1))
                record = {
                    "frame": i,
                    "stem": stem,
                    "slots": [
                        None if m is None else {"track": tracker.ids[s], "area": int(m.sum())}
                        for s, m in enumerate(slots)
                    ],
                }
                log.write(json.dumps(record) + "\n")
                tracks.append(record)
                if i % every == 0:
                    shown.append(i)
                progress.update()
    finally:
        progress.close()
        video.close()
        side.close()
    summary = {
        "frames": video.frames,
        "fps": fps,
        "frames_without_instances": no_instances,
        "skipped_frames": bad,
        "errors": errors,
        "instances_dropped": tracker.dropped,
        "tracks": tracker.next_id,
        "seconds": round(time.perf_counter() - start, 1),
        "out": str(out),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    write_page(out, args, shown, summary)
    print(
        f"translated {video.frames} frames in {summary['seconds']} s ({summary['tracks']} tracked instances, "
        f"{no_instances} frames without any, {len(bad)} unreadable frames skipped)"
    )
    print(f"  video: {out / 'output.mp4'}\n  side by side: {out / 'side_by_side.mp4'}\n  page: {out / 'index.html'}")
    for e in errors:
        print(f"  warning: {e}; the {video.frames} frames before it are written")
    if video.frames == 0:
        raise SystemExit(f"no frame of {src} could be translated ({', '.join(bad[:3]) or 'no frames'})")
    return summary


def write_page(out: Path, args, shown: list[int], summary: dict) -> Path:
    page = HTML(out, f"{args.name}: {args.input.name}")
    page.add_text(
        f"{summary['frames']} frames at {summary['fps']:g} fps, masks from {args.masks}; "
        f"{summary['tracks']} tracked instances, {summary['frames_without_instances']} frames without any. "
        "Left to right: input, tracked instances (one colour per slot), translation."
    )
    page.add_raw('<video src="side_by_side.mp4" controls loop autoplay muted style="width: 768px"></video>')
    images_dir = page.get_image_dir()
    for i in shown:
        names = []
        for label in ("input", "overlay", "output"):
            name = f"{i:05d}_{label}.png"
            shutil.copyfile(out / "frames" / name, images_dir / name)
            names.append(name)
        page.add_header(f"frame {i}")
        page.add_images(names, ["input", "tracked instances", "output"], names, width=256)
    return page.save()


if __name__ == "__main__":
    main()
