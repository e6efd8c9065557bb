"""Video input: streaming RGB frames from any container PyAV reads, or from raw I420 YUV files.

Frames are numpy ``uint8`` arrays of shape ``(H, W, 3)`` (RGB), yielded one at a time, so a
long video never sits in memory. Optional Promptus preprocessing: a centred square crop, then a
resize (bicubic, by libswscale) to ``resize x resize`` (512 for Promptus).

Raw ``.yuv`` files have no header: they are read as planar 4:2:0 (I420), 8 bit, with the size
given as ``size="WxH"`` (or ``(W, H)``) and the rate as ``fps``; when omitted, both are taken
from the file name if it contains them (``clip_320x192_12fps.yuv``).

``fps`` means two things: for a raw file it declares the file's frame rate; for a container it
asks for rate conversion (each output frame at time ``j / fps`` shows the latest source frame
at or before it, so frames are dropped or repeated). ``None`` keeps the source rate.

Every problem with the input file raises :class:`abr.errors.InputError` naming the file.
PyAV is imported on first use.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from abr.errors import InputError
from abr.io import write_atomic

__all__ = ["RAW_SUFFIXES", "VideoInfo", "crop_resize", "iter_frames", "probe", "write_video"]

#: File suffixes read as raw I420 (anything else goes to PyAV).
RAW_SUFFIXES = (".yuv",)

PathLike = str | os.PathLike[str]
Size = str | tuple[int, int] | None


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """What :func:`probe` finds out about a video.

    :param path: the file.
    :param width: frame width in pixels (before any crop or resize).
    :param height: frame height in pixels.
    :param fps: frame rate (source rate; the declared rate for raw files).
    :param frames: number of frames (exact for raw files; from the container's index or by
        counting packets otherwise).
    :param codec: codec name (``rawvideo`` for raw YUV).
    """

    path: Path
    width: int
    height: int
    fps: float
    frames: int
    codec: str

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps


def _is_raw(path: Path) -> bool:
    return path.suffix.lower() in RAW_SUFFIXES


def _parse_size(size: Size, path: Path) -> tuple[int, int]:
    if size is None:
        m = re.search(r"(\d+)x(\d+)", path.name)
        if not m:
            raise InputError("raw YUV input needs its frame size: pass size='WxH' (e.g. --size 320x192)", path=path)
        w, h = int(m.group(1)), int(m.group(2))
    elif isinstance(size, str):
        m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", size)
        if not m:
            raise InputError(f"size must look like WxH (e.g. 320x192), got {size!r}", path=path)
        w, h = int(m.group(1)), int(m.group(2))
    else:
        w, h = (int(v) for v in size)
    if w <= 0 or h <= 0 or w % 2 or h % 2:
        raise InputError(f"raw I420 frames need a positive even width and height, got {w}x{h}", path=path)
    return w, h


def _raw_fps(fps: float | None, path: Path) -> float:
    if fps is None:
        m = re.search(r"(\d+(?:\.\d+)?)\s*fps", path.name, flags=re.IGNORECASE)
        if not m:
            raise InputError("raw YUV input needs its frame rate: pass fps (e.g. --fps 30)", path=path)
        fps = float(m.group(1))
    return _check_fps(fps, path)


def _check_fps(fps: float, path: Path) -> float:
    if not (fps > 0 and np.isfinite(fps)):
        raise InputError(f"fps must be positive, got {fps!r}", path=path)
    return float(fps)


def _existing(path: PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputError("video file not found", path=path)
    if not path.is_file():
        raise InputError("not a regular file", path=path)
    return path


def _open_container(path: Path) -> tuple[Any, Any]:
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot open as a video ({_reason(exc)})", path=path) from None
    if not container.streams.video:
        container.close()
        raise InputError("the file has no video stream", path=path)
    return container, container.streams.video[0]


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return re.sub(r"\s*:\s*'[^']*'$", "", text).strip() or type(exc).__name__


def _raw_geometry(path: Path, size: Size) -> tuple[int, int, int]:
    """Width, height and frame count of a raw I420 file (the length must be whole frames)."""
    w, h = _parse_size(size, path)
    frame_bytes = w * h * 3 // 2
    n_bytes = path.stat().st_size
    if n_bytes == 0 or n_bytes % frame_bytes:
        raise InputError(
            f"size {n_bytes} B is not a whole number of {w}x{h} I420 frames ({frame_bytes} B each); check the size",
            path=path,
        )
    return w, h, n_bytes // frame_bytes


def probe(path: PathLike, *, size: Size = None, fps: float | None = None) -> VideoInfo:
    """Size, rate and frame count of a video without decoding it.

    :param size: frame size of a raw ``.yuv`` file (``"WxH"`` or ``(W, H)``); an error for containers.
    :param fps: frame rate of a raw ``.yuv`` file; not used for containers (``info.fps`` is the source rate).
    :raises InputError: missing, unreadable or malformed file.
    """
    path = _existing(path)
    if _is_raw(path):
        w, h, frames = _raw_geometry(path, size)
        return VideoInfo(path, w, h, _raw_fps(fps, path), frames, "rawvideo")
    if size is not None:
        raise InputError("size is only for raw .yuv input; containers carry their own frame size", path=path)
    import av

    container, stream = _open_container(path)
    try:
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate or float(rate) <= 0:
            raise InputError("the video stream states no frame rate", path=path)
        frames = int(stream.frames or 0)
        if frames <= 0:  # no index: count packets (demuxing only, no decoding)
            try:
                frames = sum(1 for p in container.demux(stream) if p.size > 0)
            except av.FFmpegError as exc:
                raise InputError(f"cannot read the video stream ({_reason(exc)})", path=path) from None
        if frames <= 0:
            raise InputError("the video stream holds no frames", path=path)
        return VideoInfo(path, int(stream.width), int(stream.height), float(rate), frames, stream.codec_context.name)
    finally:
        container.close()


def crop_resize(rgb: np.ndarray, crop_square: bool, resize: tuple[int, int] | None) -> np.ndarray:
    """One ``(H, W, 3)`` frame: optionally its centred square, then resized (bicubic, libswscale) to ``(W, H)``."""
    if crop_square:
        h, w = rgb.shape[:2]
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        rgb = rgb[top : top + s, left : left + s]
    if resize is not None and (rgb.shape[1], rgb.shape[0]) != resize:
        import av

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        rgb = frame.reformat(width=resize[0], height=resize[1], interpolation="BICUBIC").to_ndarray()
    return rgb


def _resize_arg(resize: int | tuple[int, int] | None, path: Path) -> tuple[int, int] | None:
    if resize is None:
        return None
    w, h = (resize, resize) if isinstance(resize, int) else (int(resize[0]), int(resize[1]))
    if w <= 0 or h <= 0:
        raise InputError(f"resize must be positive, got {resize!r}", path=path)
    return w, h


def iter_frames(
    path: PathLike,
    *,
    size: Size = None,
    fps: float | None = None,
    crop_square: bool = False,
    resize: int | tuple[int, int] | None = None,
    max_frames: int | None = None,
) -> Iterator[np.ndarray]:
    """Yield the frames of ``path`` as ``uint8`` RGB arrays ``(H, W, 3)``, one at a time.

    :param size: frame size of a raw ``.yuv`` file, ``"WxH"`` or ``(W, H)`` (else from the file name).
    :param fps: raw files: their frame rate (else from the file name; frames do not depend on it);
        containers: convert to this rate by dropping or repeating frames. ``None``: the source rate.
    :param crop_square: cut the centred square of side ``min(H, W)`` (Promptus preprocessing).
    :param resize: output size after the crop: one int for a square, or ``(W, H)``; bicubic.
    :param max_frames: stop after this many output frames.
    :raises InputError: the file is missing, unreadable, malformed, or fails to decode (names the file
        and, for decode failures, the frame).
    """
    path = _existing(path)
    out_size = _resize_arg(resize, path)
    if max_frames is not None and max_frames < 0:
        raise InputError(f"max_frames must be >= 0, got {max_frames}", path=path)
    if max_frames == 0:
        return
    source = _raw_frames(path, size, fps) if _is_raw(path) else _container_frames(path, size, fps)
    count = 0
    try:
        for rgb in source:
            yield crop_resize(rgb, crop_square, out_size)
            count += 1
            if max_frames is not None and count >= max_frames:
                return
    finally:
        source.close()


def _raw_frames(path: Path, size: Size, fps: float | None) -> Iterator[np.ndarray]:
    import av

    if fps is not None:
        _check_fps(fps, path)  # frames do not depend on the rate, but a bad value is still an error
    w, h, frames = _raw_geometry(path, size)
    frame_bytes = w * h * 3 // 2
    with path.open("rb") as fh:
        for _ in range(frames):
            buf = fh.read(frame_bytes)
            if len(buf) != frame_bytes:
                raise InputError("file ended inside a frame (was it truncated while reading?)", path=path)
            planes = np.frombuffer(buf, dtype=np.uint8).reshape(h * 3 // 2, w)
            yield av.VideoFrame.from_ndarray(planes, format="yuv420p").to_ndarray(format="rgb24")


def _container_frames(path: Path, size: Size, fps: float | None) -> Iterator[np.ndarray]:
    import av

    if size is not None:
        raise InputError("size is only for raw .yuv input; containers carry their own frame size", path=path)
    container, stream = _open_container(path)
    stream.thread_type = "AUTO"
    src_rate = stream.average_rate or stream.guessed_rate
    # rate conversion by source index: output frame j shows source frame floor(j * src / out)
    ratio = None
    if fps is not None and src_rate:
        out_rate = Fraction(_check_fps(fps, path)).limit_denominator(1001 * 1000)
        ratio = Fraction(src_rate) / out_rate
    index = 0
    next_out = 0  # index of the next output frame
    try:
        decoded = container.decode(stream)
        while True:
            try:
                frame = next(decoded)
            except StopIteration:
                break
            except av.FFmpegError as exc:
                raise InputError(f"cannot decode frame {index} ({_reason(exc)})", path=path) from None
            rgb = frame.to_ndarray(format="rgb24")
            if ratio is None:
                yield rgb
            else:
                # emit for every output j with floor(j * ratio) == index (invariant: next_out * ratio >= index)
                while next_out * ratio < index + 1:
                    yield rgb
                    next_out += 1
            index += 1
    finally:
        container.close()
    if index == 0:
        raise InputError("the video stream decoded to no frames", path=path)


def write_video(
    path: PathLike,
    frames: Iterable[np.ndarray],
    fps: float,
    *,
    codec: str = "libx264",
    options: dict[str, str] | None = None,
    pix_fmt: str = "yuv420p",
) -> int:
    """Write uint8 RGB frames ``(H, W, 3)`` to a video file (container from the suffix); returns the frame count.

    For viewing decoded output and for making test clips. ``options`` go to the encoder (default for
    libx264/libx265: ``crf=18``, near-transparent). With ``yuv420p`` sizes must be even; ``codec="ffv1",
    pix_fmt="yuv444p"`` is lossless. Written atomically: an interrupted write leaves no partial file.
    """
    path = Path(path)
    rate = Fraction(_check_fps(fps, path)).limit_denominator(1001)
    count = 0

    def write(tmp: Path) -> None:
        import av

        nonlocal count
        with av.open(str(tmp), "w", format=_container(path)) as container:
            stream = None
            for rgb in frames:
                rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
                if stream is None:
                    stream = container.add_stream(codec, rate=rate)
                    stream.height, stream.width = rgb.shape[:2]
                    stream.pix_fmt = pix_fmt
                    stream.options = dict(options or ({"crf": "18"} if codec in ("libx264", "libx265") else {}))
                container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
                count += 1
            if stream is not None:
                container.mux(stream.encode(None))
        if count == 0:
            raise InputError("no frames to write", path=path)

    write_atomic(path, write, suffix=path.suffix)
    return count


def _container(path: Path) -> str | None:
    """PyAV container format for a file suffix (None: let FFmpeg guess from the name)."""
    return {".mp4": "mp4", ".mkv": "matroska", ".avi": "avi", ".mov": "mov", ".webm": "webm"}.get(path.suffix.lower())
