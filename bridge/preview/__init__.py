"""Previews: a slide drawn as a picture with a scale bar, its annotations and its label."""

from .render import Preview, ScaleBar, choose_image, render, round_length

__all__ = ["Preview", "ScaleBar", "choose_image", "render", "round_length"]
