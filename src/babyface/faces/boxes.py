"""A detected face's box and the geometry done with it: the square cut around it, its alignment, its overlap."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FaceBox:
    """A face in pixel coordinates of the image it was found in; ``score`` is the detector's confidence."""

    left: float
    top: float
    right: float
    bottom: float
    score: float

    @property
    def side(self) -> float:
        return max(self.right - self.left, self.bottom - self.top)

    @property
    def area(self) -> float:
        return max(0.0, self.right - self.left) * max(0.0, self.bottom - self.top)

    def square(self, margin: float, width: int, height: int) -> tuple[int, int, int, int]:
        """A square around the face, ``margin`` of its size added on every side, shifted to stay inside the image."""
        side = round(min(self.side * (1 + 2 * margin), width, height))
        cx, cy = (self.left + self.right) / 2, (self.top + self.bottom) / 2
        left = min(max(round(cx - side / 2), 0), width - side)
        top = min(max(round(cy - side / 2), 0), height - side)
        return left, top, left + side, top + side

    def reshaped(self, width_factor: float, height_factor: float, shift_down: float) -> "FaceBox":
        """The box resized about its centre and moved down by ``shift_down`` of its height (up when negative)."""
        width, height = self.right - self.left, self.bottom - self.top
        cx, cy = (self.left + self.right) / 2, (self.top + self.bottom) / 2 + shift_down * height
        half_w, half_h = width * width_factor / 2, height * height_factor / 2
        return FaceBox(cx - half_w, cy - half_h, cx + half_w, cy + half_h, self.score)

    def scaled(self, factor: float) -> "FaceBox":
        return FaceBox(self.left * factor, self.top * factor, self.right * factor, self.bottom * factor, self.score)

    def iou(self, other: "FaceBox") -> float:
        """Intersection over union of the two boxes (0 when they do not overlap)."""
        inter = FaceBox(max(self.left, other.left), max(self.top, other.top), min(self.right, other.right), min(self.bottom, other.bottom), 0)
        union = self.area + other.area - inter.area
        return inter.area / union if union > 0 else 0.0
