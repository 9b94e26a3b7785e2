"""One rule for every ``*_every_kimg`` of a config: an event is due when the images seen cross a multiple
of ``every_kimg * 1000``, counted from the start of training (not of a stage, not of a resume)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Cadence:
    """Every ``every_kimg`` thousand images; 0 (or less) = never."""

    every_kimg: float

    @property
    def every_images(self) -> int:
        return max(0, round(float(self.every_kimg) * 1000))

    def due(self, images_before: int, images_after: int) -> bool:
        """Whether a step that took the count from ``images_before`` to ``images_after`` crossed a multiple."""
        every = self.every_images
        return every > 0 and images_after // every > images_before // every
