"""`afss synth`: a procedural space-scene renderer with exact masks (test, demo and benchmark data).

CPU only (numpy + OpenCV). A scene is a spacecraft assembled from parts (bus, solar wings on booms,
dish, thrusters) in a random pose in front of deep space, the Earth and the sun, seen through a
pinhole camera and a noisy sensor. Masks come from the same z-buffer as the image.

    >>> from afss.synth import render_scene, render_dataset
    >>> rgb, labels = render_scene(0, size=256, domain="earth")
    >>> gt = render_dataset("out/synth", n=100, domain="mixed")  # doctest: +SKIP
"""

from afss.synth.dataset import render_dataset
from afss.synth.domains import DOMAINS, PRESETS, DomainPreset
from afss.synth.export import FORMATS
from afss.synth.scene import Scene, render, render_scene

__all__ = ["DOMAINS", "FORMATS", "PRESETS", "DomainPreset", "Scene", "render", "render_dataset", "render_scene"]
