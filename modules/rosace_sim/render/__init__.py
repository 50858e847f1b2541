"""The simulator's spectrum renderer: long-slit frames that know their truth.

``Renderer(instrument)`` renders science, arc, flat, bias and dark frames of a
set-up in ``resources/instruments``; :class:`~.stars.Star` describes what is
on the slit; :func:`~.guider.render_guide_image` draws the slit-jaw view.
The truth record of every frame is documented in ``docs/dev/truth.md``.
"""

from .spectrum import Renderer, barycentric_correction, heliocentric_correction
from .stars import BeEmission, RVCurve, Star

__all__ = ["Renderer", "Star", "BeEmission", "RVCurve", "barycentric_correction", "heliocentric_correction"]
