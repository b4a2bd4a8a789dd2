"""Synthetic stimuli of the demo study: Pillow-drawn scenes, captions and AOIs.

Each scene holds 4–6 named objects drawn from simple shapes with colours and textures. One object
is central (large, near the middle of the picture); the others sit in slots near the edges. The
caption (rendered by the experiment below the picture, not in the PNG) names the central object
(condition ``central``), only a peripheral one (``peripheral``), or no object clearly
(``ambiguous``, e.g. "Something is on the table").

Word boxes are computed arithmetically with a fixed advance per character so that no font file is
needed and the layout is identical on every machine.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SCREEN_PX: tuple[int, int] = (1920, 1080)
SCREEN_MM: tuple[float, float] = (531.0, 299.0)
VIEWING_DISTANCE_MM: float = 650.0
IMAGE_SIZE_PX: tuple[int, int] = (1024, 768)
IMAGE_ORIGIN_PX: tuple[int, int] = (448, 80)

#: Caption layout: one line centred under the picture, 28 px glyphs with a fixed advance.
CAPTION_CENTER_Y_PX: float = 900.0
CAPTION_CHAR_ADVANCE_PX: float = 15.0
CAPTION_GLYPH_HEIGHT_PX: float = 28.0
#: Word AOIs are padded a little, as AOI tools usually do, so fixations on a word's edge still count.
WORD_PAD_X_PX: float = 4.0
WORD_PAD_Y_PX: float = 6.0

OBJECT_LABELS: tuple[str, ...] = (
    "dog",
    "cat",
    "car",
    "tree",
    "house",
    "lamp",
    "bicycle",
    "cup",
    "chair",
    "bird",
    "boat",
    "ball",
    "flower",
    "clock",
)

#: AOI outline kind per label: a mix of shapes, as AOI editors produce.
AOI_SHAPE: dict[str, str] = {
    "dog": "ellipse",
    "cat": "ellipse",
    "car": "rect",
    "tree": "polygon",
    "house": "polygon",
    "lamp": "polygon",
    "bicycle": "rect",
    "cup": "rect",
    "chair": "rect",
    "bird": "polygon",
    "boat": "polygon",
    "ball": "ellipse",
    "flower": "ellipse",
    "clock": "ellipse",
}

#: Aspect ratio (width / height) of each object's bounding box.
ASPECT: dict[str, float] = {
    "dog": 1.4,
    "cat": 1.2,
    "car": 1.8,
    "tree": 0.75,
    "house": 1.0,
    "lamp": 0.6,
    "bicycle": 1.6,
    "cup": 1.0,
    "chair": 0.7,
    "bird": 1.3,
    "boat": 1.3,
    "ball": 1.0,
    "flower": 0.7,
    "clock": 1.0,
}

#: Image-px centres of the slots where peripheral objects are placed.
PERIPHERAL_SLOTS: tuple[tuple[float, float], ...] = (
    (150.0, 125.0),
    (512.0, 105.0),
    (874.0, 125.0),
    (125.0, 384.0),
    (899.0, 384.0),
    (150.0, 645.0),
    (512.0, 665.0),
    (874.0, 645.0),
)

CENTRAL_TEMPLATES: tuple[str, ...] = (
    "A {obj} is in the middle",
    "The picture shows a {obj}",
    "There is a {obj} here",
    "You can see a {obj}",
    "This is a nice {obj}",
)
AMBIGUOUS_CAPTIONS: tuple[tuple[str, int], ...] = (
    # (caption, index of the vague noun that stands in for "the object")
    ("Something is on the table", 0),
    ("There is an object here", 3),
    ("Some thing can be seen", 1),
    ("An item is in the picture", 1),
    ("It shows a common thing", 4),
)

CONDITIONS: tuple[str, ...] = ("central", "peripheral", "ambiguous")


@dataclass(frozen=True)
class SceneObject:
    """One drawn object with its AOI outline in screen px."""

    label: str
    is_central: bool
    shape: str  # rect | polygon | ellipse
    bbox_px: tuple[float, float, float, float]  # x0, y0, x1, y1 in screen px
    points_px: tuple[float, ...]  # polygon: x0,y0,x1,y1,...; ellipse: cx,cy,rx,ry; rect: x0,y0,x1,y1
    interior_px: tuple[float, float]  # a point surely inside the outline


@dataclass(frozen=True)
class Stimulus:
    """A stimulus: picture, caption, condition and AOIs (screen px)."""

    stimulus_id: str
    condition: str
    caption: str
    words: tuple[str, ...]
    word_boxes_px: tuple[tuple[float, float, float, float], ...]
    central_object: str
    mentioned_object: str  # "" for ambiguous captions
    mention_word_index: int  # the word naming an object (the vague noun for ambiguous captions)
    objects: tuple[SceneObject, ...]
    background_seed: int

    @property
    def central_index(self) -> int:
        """Position of the central object in ``objects``."""
        return next(i for i, o in enumerate(self.objects) if o.is_central)

    @property
    def mention_object_index(self) -> int:
        """Object the mention word refers to: the named one, or the central one for ambiguous captions."""
        if not self.mentioned_object:
            return self.central_index
        return next(i for i, o in enumerate(self.objects) if o.label == self.mentioned_object)


def word_boxes(words: tuple[str, ...]) -> tuple[tuple[float, float, float, float], ...]:
    """Screen-px boxes ``(x0, y0, x1, y1)`` of caption words laid out in one centred line.

    Parameters
    ----------
    words:
        The caption split on spaces.

    Returns
    -------
    One padded glyph box per word.
    """
    lengths = np.array([len(w) for w in words], dtype=np.float64)
    n_chars = lengths.sum() + (len(words) - 1)
    left = SCREEN_PX[0] / 2.0 - n_chars * CAPTION_CHAR_ADVANCE_PX / 2.0
    starts = left + (np.concatenate([[0.0], np.cumsum(lengths + 1.0)[:-1]])) * CAPTION_CHAR_ADVANCE_PX
    ends = starts + lengths * CAPTION_CHAR_ADVANCE_PX
    y0 = CAPTION_CENTER_Y_PX - CAPTION_GLYPH_HEIGHT_PX / 2.0 - WORD_PAD_Y_PX
    y1 = CAPTION_CENTER_Y_PX + CAPTION_GLYPH_HEIGHT_PX / 2.0 + WORD_PAD_Y_PX
    return tuple(
        (float(a - WORD_PAD_X_PX), float(y0), float(b + WORD_PAD_X_PX), float(y1))
        for a, b in zip(starts, ends, strict=True)
    )


def _outline(label: str, x0: float, y0: float, x1: float, y1: float) -> tuple[str, tuple[float, ...]]:
    """AOI outline of an object drawn in the box, in the same coordinates as the box."""
    shape = AOI_SHAPE[label]
    w, h = x1 - x0, y1 - y0
    if shape == "ellipse":
        return shape, ((x0 + x1) / 2, (y0 + y1) / 2, w / 2, h / 2)
    if shape == "rect":
        return shape, (x0, y0, x1, y1)
    rel = {
        "house": [(0.0, 0.4), (0.5, 0.0), (1.0, 0.4), (1.0, 1.0), (0.0, 1.0)],
        "tree": [
            (0.5, 0.0),
            (0.95, 0.2),
            (1.0, 0.55),
            (0.62, 0.7),
            (0.62, 1.0),
            (0.38, 1.0),
            (0.38, 0.7),
            (0.0, 0.55),
            (0.05, 0.2),
        ],
        "lamp": [
            (0.2, 0.0),
            (0.8, 0.0),
            (1.0, 0.4),
            (0.58, 0.4),
            (0.58, 0.85),
            (0.9, 0.9),
            (0.9, 1.0),
            (0.1, 1.0),
            (0.1, 0.9),
            (0.42, 0.85),
            (0.42, 0.4),
            (0.0, 0.4),
        ],
        "bird": [
            (0.0, 0.45),
            (0.2, 0.2),
            (0.55, 0.0),
            (0.8, 0.25),
            (1.0, 0.4),
            (0.8, 0.6),
            (0.45, 1.0),
            (0.2, 0.75),
        ],
        "boat": [
            (0.45, 0.0),
            (0.55, 0.0),
            (0.9, 0.6),
            (1.0, 0.62),
            (0.8, 1.0),
            (0.2, 1.0),
            (0.0, 0.62),
            (0.45, 0.6),
        ],
    }[label]
    pts: list[float] = []
    for rx, ry in rel:
        pts += [x0 + rx * w, y0 + ry * h]
    return shape, tuple(pts)


def _shade(rgb: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return tuple(int(np.clip(c * factor, 0, 255)) for c in rgb)  # type: ignore[return-value]


def _draw_object(
    draw: ImageDraw.ImageDraw,
    label: str,
    box: tuple[float, float, float, float],
    colour: tuple[int, int, int],
) -> None:
    """Draw ``label`` as simple shapes into ``box`` (image px)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    dark = _shade(colour, 0.5)
    light = _shade(colour, 1.4)

    def r(a: float, b: float, c: float, d: float) -> list[float]:
        return [x0 + a * w, y0 + b * h, x0 + c * w, y0 + d * h]

    if label in ("dog", "cat"):
        draw.ellipse(r(0.15, 0.35, 0.85, 0.8), fill=colour, outline=dark, width=3)
        for lx in (0.22, 0.38, 0.62, 0.76):
            draw.rectangle(r(lx, 0.7, lx + 0.06, 1.0), fill=dark)
        draw.ellipse(r(0.0, 0.1, 0.38, 0.5), fill=colour, outline=dark, width=3)
        if label == "cat":
            draw.polygon(r(0.03, 0.2, 0.1, 0.0) + r(0.17, 0.15, 0.0, 0.0)[:2], fill=dark)
            draw.polygon(r(0.2, 0.15, 0.3, 0.0) + r(0.35, 0.22, 0.0, 0.0)[:2], fill=dark)
            draw.line(r(0.85, 0.55, 1.0, 0.2), fill=dark, width=6)
        else:
            draw.ellipse(r(0.0, 0.12, 0.1, 0.42), fill=dark)
            draw.ellipse(r(0.26, 0.12, 0.36, 0.42), fill=dark)
            draw.line(r(0.85, 0.5, 1.0, 0.35), fill=dark, width=8)
        draw.ellipse(r(0.1, 0.22, 0.15, 0.28), fill=(0, 0, 0))
    elif label == "car":
        draw.rounded_rectangle(
            r(0.0, 0.35, 1.0, 0.8), radius=int(0.1 * h), fill=colour, outline=dark, width=3
        )
        draw.polygon(r(0.2, 0.35, 0.32, 0.05) + r(0.7, 0.05, 0.82, 0.35), fill=light, outline=dark)
        for cx in (0.22, 0.78):
            draw.ellipse(r(cx - 0.12, 0.6, cx + 0.12, 1.0), fill=(30, 30, 30))
            draw.ellipse(r(cx - 0.05, 0.72, cx + 0.05, 0.88), fill=(180, 180, 180))
    elif label == "tree":
        draw.rectangle(r(0.4, 0.6, 0.6, 1.0), fill=(110, 70, 30))
        draw.ellipse(r(0.0, 0.0, 1.0, 0.72), fill=colour, outline=dark, width=3)
        for fx, fy in ((0.3, 0.25), (0.6, 0.2), (0.45, 0.45), (0.7, 0.45), (0.2, 0.45)):
            draw.ellipse(r(fx, fy, fx + 0.1, fy + 0.1), fill=light)
    elif label == "house":
        draw.rectangle(r(0.08, 0.4, 0.92, 1.0), fill=colour, outline=dark, width=3)
        draw.polygon(r(0.0, 0.4, 0.5, 0.0) + r(1.0, 0.4, 0.0, 0.0)[:2], fill=(150, 40, 40), outline=dark)
        draw.rectangle(r(0.42, 0.65, 0.58, 1.0), fill=dark)
        draw.rectangle(r(0.15, 0.5, 0.33, 0.65), fill=(200, 230, 255), outline=dark)
        draw.rectangle(r(0.67, 0.5, 0.85, 0.65), fill=(200, 230, 255), outline=dark)
    elif label == "lamp":
        draw.polygon(r(0.2, 0.0, 0.8, 0.0) + r(1.0, 0.4, 0.0, 0.4), fill=colour, outline=dark)
        draw.rectangle(r(0.45, 0.4, 0.55, 0.9), fill=(60, 60, 60))
        draw.ellipse(r(0.1, 0.86, 0.9, 1.0), fill=(60, 60, 60))
    elif label == "bicycle":
        for cx in (0.2, 0.8):
            draw.ellipse(r(cx - 0.2, 0.45, cx + 0.2, 1.0), outline=(20, 20, 20), width=6)
        draw.line(
            r(0.2, 0.72, 0.45, 0.35) + r(0.75, 0.35, 0.8, 0.72) + r(0.5, 0.72, 0.2, 0.72),
            fill=colour,
            width=7,
        )
        draw.line(r(0.45, 0.35, 0.5, 0.72), fill=colour, width=7)
        draw.line(r(0.7, 0.1, 0.75, 0.35), fill=dark, width=6)
        draw.rectangle(r(0.38, 0.25, 0.52, 0.32), fill=dark)
    elif label == "cup":
        draw.ellipse(r(0.0, 0.85, 1.0, 1.0), fill=light, outline=dark)
        draw.rectangle(r(0.15, 0.1, 0.75, 0.92), fill=colour, outline=dark, width=3)
        draw.arc(r(0.6, 0.3, 1.0, 0.7), start=-90, end=90, fill=dark, width=8)
        draw.line(r(0.15, 0.3, 0.75, 0.3), fill=light, width=5)
    elif label == "chair":
        draw.rectangle(r(0.1, 0.0, 0.9, 0.5), fill=colour, outline=dark, width=3)
        draw.rectangle(r(0.0, 0.5, 1.0, 0.62), fill=dark)
        for lx in (0.02, 0.86):
            draw.rectangle(r(lx, 0.62, lx + 0.12, 1.0), fill=dark)
        for sx in (0.3, 0.5, 0.7):
            draw.line(r(sx, 0.05, sx, 0.45), fill=light, width=4)
    elif label == "bird":
        draw.ellipse(r(0.15, 0.25, 0.85, 0.8), fill=colour, outline=dark, width=3)
        draw.polygon(r(0.0, 0.45, 0.2, 0.35) + r(0.2, 0.55, 0.0, 0.0)[:2], fill=(240, 170, 0))
        draw.polygon(r(0.45, 0.45, 0.55, 0.0) + r(0.8, 0.4, 0.0, 0.0)[:2], fill=dark)
        draw.line(r(0.45, 0.8, 0.45, 1.0), fill=(80, 60, 0), width=4)
        draw.ellipse(r(0.22, 0.35, 0.28, 0.42), fill=(0, 0, 0))
    elif label == "boat":
        draw.polygon(r(0.0, 0.62, 1.0, 0.62) + r(0.8, 1.0, 0.2, 1.0), fill=colour, outline=dark)
        draw.line(r(0.5, 0.0, 0.5, 0.62), fill=(80, 60, 30), width=6)
        draw.polygon(r(0.5, 0.02, 0.9, 0.58) + r(0.5, 0.58, 0.0, 0.0)[:2], fill=(245, 245, 235), outline=dark)
    elif label == "ball":
        draw.ellipse(r(0.0, 0.0, 1.0, 1.0), fill=colour, outline=dark, width=3)
        draw.arc(r(0.1, -0.3, 0.9, 0.5), start=20, end=160, fill=light, width=8)
        draw.arc(r(0.1, 0.5, 0.9, 1.3), start=200, end=340, fill=light, width=8)
    elif label == "flower":
        draw.line(r(0.5, 0.5, 0.5, 1.0), fill=(40, 140, 40), width=7)
        draw.ellipse(r(0.5, 0.7, 0.8, 0.8), fill=(40, 140, 40))
        for ang in np.linspace(0, 2 * np.pi, 7)[:-1]:
            cx, cy = 0.5 + 0.25 * np.cos(ang), 0.3 + 0.18 * np.sin(ang)
            draw.ellipse(r(cx - 0.2, cy - 0.13, cx + 0.2, cy + 0.13), fill=colour, outline=dark)
        draw.ellipse(r(0.38, 0.21, 0.62, 0.39), fill=(250, 210, 40))
    elif label == "clock":
        draw.ellipse(r(0.0, 0.0, 1.0, 1.0), fill=(245, 245, 240), outline=colour, width=max(4, int(0.08 * w)))
        for ang in np.linspace(0, 2 * np.pi, 13)[:-1]:
            draw.line(
                r(
                    0.5 + 0.38 * np.cos(ang),
                    0.5 + 0.38 * np.sin(ang),
                    0.5 + 0.43 * np.cos(ang),
                    0.5 + 0.43 * np.sin(ang),
                ),
                fill=(20, 20, 20),
                width=3,
            )
        draw.line(r(0.5, 0.5, 0.5, 0.18), fill=(20, 20, 20), width=6)
        draw.line(r(0.5, 0.5, 0.75, 0.55), fill=(20, 20, 20), width=5)
    else:  # pragma: no cover - OBJECT_LABELS is closed
        raise ValueError(label)


_PALETTE: tuple[tuple[int, int, int], ...] = (
    (200, 60, 50),
    (60, 110, 200),
    (240, 190, 40),
    (70, 160, 80),
    (150, 90, 170),
    (230, 130, 40),
    (120, 80, 50),
    (90, 180, 190),
    (210, 100, 150),
    (100, 100, 110),
)


def make_stimuli(n_stimuli: int, seed: int) -> list[Stimulus]:
    """Draw the design of ``n_stimuli`` scenes (objects, placement, caption, condition).

    Parameters
    ----------
    n_stimuli:
        Number of stimuli.
    seed:
        Study seed; stimuli use the stream ``default_rng([seed, 0, i])`` so each is independent.

    Returns
    -------
    The stimuli, ids ``s001``...
    """
    # Fixed condition shares (not sampled) so every study size has the same mix.
    shares = {"central": 0.81, "peripheral": 0.11, "ambiguous": 0.08}
    counts = {c: round(shares[c] * n_stimuli) for c in CONDITIONS}
    counts["central"] += n_stimuli - sum(counts.values())
    conditions = [c for c in CONDITIONS for _ in range(counts[c])]
    order = np.random.default_rng([seed, 0, 1_000_000]).permutation(n_stimuli)
    conditions = [conditions[i] for i in order]

    stimuli: list[Stimulus] = []
    ox, oy = IMAGE_ORIGIN_PX
    for i in range(n_stimuli):
        rng = np.random.default_rng([seed, 0, i])
        n_obj = int(rng.integers(4, 7))
        labels = [OBJECT_LABELS[j] for j in rng.choice(len(OBJECT_LABELS), size=n_obj, replace=False)]
        central = labels[0]
        slots = rng.choice(len(PERIPHERAL_SLOTS), size=n_obj - 1, replace=False)
        objects: list[SceneObject] = []
        for k, label in enumerate(labels):
            aspect = ASPECT[label]
            if k == 0:
                size = float(rng.uniform(250.0, 300.0))
                cx = 512.0 + float(rng.uniform(-60.0, 60.0))
                cy = 384.0 + float(rng.uniform(-40.0, 40.0))
            else:
                size = float(rng.uniform(115.0, 150.0))
                sx, sy = PERIPHERAL_SLOTS[int(slots[k - 1])]
                cx = sx + float(rng.uniform(-15.0, 15.0))
                cy = sy + float(rng.uniform(-10.0, 10.0))
            # size is the larger side, so every object fits its slot whatever its aspect
            w, h = (size, size / aspect) if aspect >= 1 else (size * aspect, size)
            x0, y0, x1, y1 = cx - w / 2 + ox, cy - h / 2 + oy, cx + w / 2 + ox, cy + h / 2 + oy
            box = tuple(round(v, 1) for v in (x0, y0, x1, y1))
            shape, pts = _outline(label, *box)
            interior = (round(box[0] + 0.5 * w, 1), round(box[1] + 0.7 * h, 1))
            objects.append(
                SceneObject(label, k == 0, shape, box, tuple(round(p, 1) for p in pts), interior)  # type: ignore[arg-type]
            )
        condition = conditions[i]
        if condition == "ambiguous":
            caption, mention = AMBIGUOUS_CAPTIONS[int(rng.integers(len(AMBIGUOUS_CAPTIONS)))]
            mentioned = ""
        else:
            template = CENTRAL_TEMPLATES[int(rng.integers(len(CENTRAL_TEMPLATES)))]
            mentioned = central if condition == "central" else labels[int(rng.integers(1, n_obj))]
            caption = template.format(obj=mentioned)
            mention = caption.split(" ").index(mentioned)
        words = tuple(caption.split(" "))
        stimuli.append(
            Stimulus(
                stimulus_id=f"s{i + 1:03d}",
                condition=condition,
                caption=caption,
                words=words,
                word_boxes_px=word_boxes(words),
                central_object=central,
                mentioned_object=mentioned,
                mention_word_index=mention,
                objects=tuple(objects),
                background_seed=int(rng.integers(2**31)),
            )
        )
    return stimuli


def render_png(stimulus: Stimulus) -> bytes:
    """Render the picture of ``stimulus`` (no caption) as deterministic PNG bytes.

    The scene is a sky/ground gradient with a table band, then each object with its own colour and a
    stripe or dot texture, so an image encoder sees different content per object.
    """
    width, height = IMAGE_SIZE_PX
    ox, oy = IMAGE_ORIGIN_PX
    rng = np.random.default_rng(stimulus.background_seed)
    horizon = int(rng.uniform(0.45, 0.6) * height)
    yy = np.arange(height, dtype=np.float32)[:, None]
    sky_top, sky_bottom = np.array([120, 170, 230]), np.array([200, 225, 245])
    ground_top, ground_bottom = np.array(rng.integers(90, 160, 3)), np.array(rng.integers(40, 100, 3))
    tsky = np.clip(yy / max(horizon, 1), 0, 1)
    tgr = np.clip((yy - horizon) / max(height - horizon, 1), 0, 1)
    sky = sky_top * (1 - tsky) + sky_bottom * tsky
    ground = ground_top * (1 - tgr) + ground_bottom * tgr
    rows = np.where(yy < horizon, sky, ground)  # (H, 3)
    xx = np.arange(width, dtype=np.float32)[None, :]
    # A low-contrast wood-grain texture on the ground keeps the background from being flat.
    grain = 6.0 * np.sin(xx / 23.0 + 3.0 * np.sin(yy / 41.0)) * (yy >= horizon)
    pixels = np.clip(rows[:, None, :] + grain[..., None], 0, 255).astype(np.uint8)
    img = Image.fromarray(np.broadcast_to(pixels, (height, width, 3)).copy(), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 5))):  # clouds
        cx, cy = rng.uniform(0, width), rng.uniform(0, horizon * 0.6)
        draw.ellipse([cx - 70, cy - 22, cx + 70, cy + 22], fill=(240, 244, 250))

    for obj in sorted(stimulus.objects, key=lambda o: o.is_central):
        colour = _PALETTE[int(rng.integers(len(_PALETTE)))]
        layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
        ldraw = ImageDraw.Draw(layer)
        box = (obj.bbox_px[0] - ox, obj.bbox_px[1] - oy, obj.bbox_px[2] - ox, obj.bbox_px[3] - oy)
        _draw_object(ldraw, obj.label, box, colour)
        # Texture only the object's bounding box: the rest of the layer is transparent anyway.
        cx0, cy0 = max(int(box[0]) - 4, 0), max(int(box[1]) - 4, 0)
        cx1, cy1 = min(int(box[2]) + 5, width), min(int(box[3]) + 5, height)
        arr = np.asarray(layer.crop((cx0, cy0, cx1, cy1))).astype(np.float32)
        gy, gx = np.mgrid[cy0:cy1, cx0:cx1].astype(np.float32)
        period = float(rng.uniform(7.0, 16.0))
        if rng.random() < 0.5:  # diagonal stripes
            texture = 0.85 + 0.15 * (np.sin((gx + gy) / period) > 0)
        else:  # dots
            texture = 1.0 - 0.18 * ((np.sin(gx / period * 2.0) > 0.7) & (np.sin(gy / period * 2.0) > 0.7))
        arr[..., :3] *= texture[..., None]
        patch = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGBA")
        img.paste(patch, (cx0, cy0), patch)

    buf = io.BytesIO()
    # No text chunks and a fixed compression level: same scene, same bytes.
    img.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()
