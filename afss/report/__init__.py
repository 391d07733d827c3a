"""The run report: one self-contained HTML page of an `afss run` folder.

>>> from afss.report import build_report
>>> build_report("runs/demo")  # doctest: +SKIP
PosixPath('runs/demo/report.html')

The page shows the AP table per stage (teacher, refined, each student round, the supervised upper
bound), precision–recall curves, the val images where teacher and student disagree most, the pool
images the confidence filter dropped and why, score against IoU, the training curves, the config and
the timings. Images are inlined, there is no script and no URL: it opens offline, from anywhere.
Modules: `run_folder` (the layout, read tolerantly), `figures` (matplotlib), `gallery` (image
cards), `html` (page pieces), `build` (the page), `browser` (opens it in headless Chromium).
"""

from afss.report.build import MAX_CARDS, build_report
from afss.report.run_folder import RunFolder, Stage

__all__ = ["MAX_CARDS", "RunFolder", "Stage", "build_report"]
