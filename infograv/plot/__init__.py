"""Figures in one paper style (vector PDF and PNG)."""

from ._style import paper_style as paper_style, save_figure as save_figure
