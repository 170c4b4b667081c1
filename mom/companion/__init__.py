"""The companion layer: what turns the library into the paper's tables and figures.

The notebooks use it; inside ``mom`` only the command line (``mom reproduce``) and
the studies' figures import it, inside functions. Import the modules themselves
(``from mom.companion import viz``): this file re-exports nothing, so that
``import mom.companion`` stays free of matplotlib.

- ``viz``: every figure, ``save_figure`` (PNG + SVG); re-exports the galleries
- ``gallery``: Figure 3 galleries
- ``widgets``: the interactive pool inspector
- ``ablation``: the anchor ablation (anchors x pools)
- ``runs``: end-to-end runs cached by configuration
- ``paper``: the paper's reported numbers and tables beside ours
- ``reproduce``: the papermill batch over the notebooks
"""
__all__ = ["viz", "gallery", "widgets", "ablation", "runs", "paper", "reproduce"]
