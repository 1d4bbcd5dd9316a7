"""The picture of `resnas activations`: feature maps unit by unit, networks side by side.

PNG: one panel per network; its top row holds the input images, then one row per chosen depth (the
stem's output, then each unit's) with, for each image, the maps of that depth's `channels` strongest
channels (by mean absolute activation over all the images: the same channels, in the same order, for
every image), so reading down a column group is following one image through the network. Each map is
scaled to its own range (viridis: dark low, yellow high) and enlarged to a common cell, so a 7x7 map
is as easy to read as a 28x28 one. HTML: the same picture, then every channel of every depth, one strip a depth.
"""

from __future__ import annotations

import base64
import html
import io
import textwrap
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..inspect.activations import Activations, UnitMaps
from ..memory import check_need
from .page import check_plot_file, save

GAP, GROUP_GAP = 1, 6  # pixels between maps, and between one image's maps and the next's


def cell_size(acts: list[Activations]) -> int:
    """The side of one map in the picture: the input's side, kept between 24 and 64 pixels."""
    return max(24, min(64, max(a.images.shape[-1] for a in acts)))


def _tile(m: torch.Tensor, size: int) -> np.ndarray:
    """One map scaled to [0, 1] by its own range (a constant map is mid-grey) and enlarged to size x size."""
    lo, hi = float(m.min()), float(m.max())
    m = (m - lo) / (hi - lo) if hi > lo else torch.full_like(m, 0.5)
    return F.interpolate(m[None, None], size=(size, size), mode="nearest")[0, 0].numpy()


def _input(img: torch.Tensor, size: int) -> np.ndarray:
    """An input image (uint8, C x H x W) as RGB in [0, 1], size x size."""
    x = img.float()[None] / 255
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)[0].clamp(0, 1)
    return (x.repeat(3, 1, 1) if x.shape[0] == 1 else x[:3]).permute(1, 2, 0).numpy()


def _colour(tiles: np.ndarray) -> np.ndarray:
    from matplotlib import colormaps

    return colormaps["viridis"](tiles)[..., :3]


def grid(a: Activations, channels: int, size: int) -> tuple[np.ndarray, list[str]]:
    """The panel of one network as an RGB array, and the label of each of its rows (input, then depths)."""
    n, k = len(a.labels), channels
    width = n * (k * (size + GAP) - GAP) + (n - 1) * GROUP_GAP
    rows = 1 + len(a.units)
    out = np.ones((rows * (size + GAP) - GAP, width, 3))
    group = k * (size + GAP) - GAP + GROUP_GAP
    for i in range(n):
        out[:size, i * group : i * group + size] = _input(a.images[i], size)
    labels = ["input"]
    for r, u in enumerate(a.units, 1):
        chosen = u.strongest(k)
        y = r * (size + GAP)
        for i in range(n):
            for j, c in enumerate(chosen):
                x = i * group + j * (size + GAP)
                out[y : y + size, x : x + size] = _colour(_tile(u.maps[i, c], size))
        c_, h, w = u.maps.shape[1:]
        labels.append(f"{u.depth}: {u.name}  {c_}x{h}x{w}")
    return out, labels


def activation_figure(acts: list[Activations], channels: int = 8):
    """One panel per network, side by side (the same images in the same order)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = cell_size(acts)
    k = max(1, min(channels, min(u.maps.shape[1] for a in acts for u in a.units)))
    panels = [grid(a, k, size) for a in acts]
    height = max(p[0].shape[0] for p in panels)
    inches = max(p[0].shape[1] for p in panels) / 45
    wide = inches * len(acts) + 2.2 * len(acts)
    title = textwrap.wrap(
        f"feature maps after the stem and each unit ({acts[0].dataset}): per depth its {k} strongest channels over "
        "these images, the same channels for every image; each map on its own scale",
        width=max(30, int(wide * 11)),  # about the characters an inch holds at 10 points
    )
    top = 0.3 + 0.2 * len(title)  # inches above the panels for the title
    fig, axes = plt.subplots(1, len(acts), figsize=(wide, 1.0 + top + height / 45), squeeze=False)
    for ax, a, (img, labels) in zip(axes[0], acts, panels):
        ax.imshow(img, interpolation="nearest")
        ax.set_yticks([r * (size + GAP) + size / 2 for r in range(len(labels))], labels, fontsize=7)
        group = k * (size + GAP) - GAP + GROUP_GAP
        names = [a.class_names[y] if y < len(a.class_names) else str(y) for y in a.labels]
        ax.set_xticks([i * group + (group - GROUP_GAP) / 2 for i in range(len(names))], names, fontsize=8)
        ax.xaxis.tick_top()
        ax.tick_params(length=0)
        for side in ax.spines.values():
            side.set_visible(False)
        ax.set_title(f"{_short(a.label)}: {a.arch.summary()}", fontsize=9, pad=18)
    fig.suptitle("\n".join(title), fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - top / fig.get_figheight()))
    return fig


def _short(label: str) -> str:
    """A checkpoint's path as its last two parts (study/trial-00006), a name as it is."""
    parts = Path(label).parts
    return "/".join(parts[-2:]) if len(parts) > 2 else label


def _strip(u: UnitMaps, size: int, per_row: int = 32) -> bytes:
    """Every channel of one depth, one block of rows per image, as a PNG."""
    import matplotlib.pyplot as plt

    n, c = u.maps.shape[:2]
    lines = -(-c // per_row)
    cols = min(c, per_row)
    out = np.ones((n * (lines * (size + GAP)) + (n - 1) * GROUP_GAP, cols * (size + GAP) - GAP, 3))
    for i in range(n):
        top = i * (lines * (size + GAP) + GROUP_GAP)
        for ch in range(c):
            y, x = top + (ch // per_row) * (size + GAP), (ch % per_row) * (size + GAP)
            out[y : y + size, x : x + size] = _colour(_tile(u.maps[i, ch], size))
    buf = io.BytesIO()
    plt.imsave(buf, out, format="png")
    return buf.getvalue()


DPI = 130  # what page.save draws a figure at: 130/45 canvas pixels per grid pixel, each way
DRAW_BYTES = 90  # per canvas pixel while matplotlib resamples the panels into it (float64 RGBA, and copies)
STRIP_BYTES = 32  # per pixel of one HTML strip: its float64 RGB array, then the PNG made of it


def picture_note(acts: list[Activations], path: str | Path, channels: int = 8, field: str = "--out") -> str | None:
    """Estimate the memory that drawing `acts` into `path` takes, from the figure's size in pixels (it, not
    the maps, is what grows: 64 images of resnet56 drew 146 M pixels in 12 GB); refuse it when that is more
    than the memory available, and return a note to print when it takes over half of it (None otherwise).
    DRAW_BYTES was measured as the peak RSS of drawing, over the RSS before it: 88-90 bytes a pixel."""
    size = cell_size(acts)
    k = max(1, min(channels, min(u.maps.shape[1] for a in acts for u in a.units)))
    n, rows = max(len(a.labels) for a in acts), max(1 + len(a.units) for a in acts)
    grid_w, grid_h = n * (k * (size + GAP) - GAP) + (n - 1) * GROUP_GAP, rows * (size + GAP) - GAP
    wide, high = round((grid_w / 45 + 2.2) * len(acts) * DPI), round((grid_h / 45 + 1.5) * DPI)
    need, basis = wide * high * DRAW_BYTES, f"a {wide:,} x {high:,}-pixel figure x {DRAW_BYTES} bytes a pixel to draw"
    if Path(path).suffix.lower() == ".html":  # then every channel, one strip a depth after another
        cell = min(size, 32) + GAP
        channel_counts = [u.maps.shape[1] for a in acts for u in a.units]
        strip = max(n * -(-c // 32) * cell * min(c, 32) * cell for c in channel_counts)
        need = max(need, strip * STRIP_BYTES)
    return check_need(
        need,
        f"drawing {Path(path).name}",
        basis,
        field=field,
        fix="show fewer --images, --units or --channels (or fewer networks at once)",
    )


def save_activations(acts: list[Activations], path: str | Path, channels: int = 8, field: str = "--out") -> Path:
    """The picture as an image, or an HTML page: the picture, then every channel of every depth; refused
    before drawing when that would not fit in memory (`picture_note`)."""
    path = check_plot_file(path, field)
    picture_note(acts, path, channels, field)
    fig = activation_figure(acts, channels)
    sections = ""
    if path.suffix.lower() == ".html":
        size = min(cell_size(acts), 32)
        for a in acts:
            sections += f"<h2>{html.escape(a.label)}: {html.escape(a.arch.summary())}</h2>"
            for u in a.units:
                png = base64.b64encode(_strip(u, size)).decode()
                c_, h, w = u.maps.shape[1:]
                sections += (
                    f"<h3>depth {u.depth}: {html.escape(u.name)} ({c_} channels, {h}x{w}); "
                    f"one block of rows per image</h3><img src='data:image/png;base64,{png}'>"
                )
    title = "feature maps: " + ", ".join(a.label for a in acts)
    return save(fig, path, title=title, tables_html=sections, field=field)


__all__ = ["activation_figure", "grid", "picture_note", "save_activations"]
