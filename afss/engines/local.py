"""The local engine: this process, one batch at a time, the next batch decoded on a thread meanwhile."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from afss.engines.base import load_rgb_file
from afss.types import ImageLabels, LabelSet

__all__ = ["LocalEngine"]


class LocalEngine:
    name = "local"

    def run(self, images: LabelSet, todo: Sequence[ImageLabels], job: Any, *,
            batch_size: int) -> Iterator[list[ImageLabels]]:
        def load(batch: Sequence[ImageLabels]) -> list:
            return [load_rgb_file(images.image_path(im), im) for im in batch]

        batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="afss-load") as loader:
            pending = loader.submit(load, batches[0]) if batches else None
            for k, batch in enumerate(batches):
                loaded = pending.result()
                pending = loader.submit(load, batches[k + 1]) if k + 1 < len(batches) else None
                yield list(job(batch, loaded))
