"""The companion layer: what turns the library into the paper's tables and figures.

The notebooks use it; inside ``mom`` only the command line (``mom reproduce``, the
figures of ``mom study``) imports it, inside functions. Import the modules themselves
(``from mom.companion import viz``): this file re-exports nothing, so that
``import mom.companion`` stays free of matplotlib.

- ``viz``: every figure, held to one standard, ``save_figure`` (PNG + SVG); re-exports the galleries
- ``gallery``: Figure 3 galleries
- ``widgets``: the interactive pool inspector
- ``ablation``: the anchor ablation (anchors x pools)
- ``runs``: end-to-end runs cached by configuration
- ``paper``: the paper's reported numbers and tables beside ours
- ``claims``: the verdict rule and the claims table of the committed results
- ``runinfo``: where and how long a notebook ran, read from the machine
- ``depth_grid``: notebook 05's grid and class-size studies
- ``reproduce``: the papermill batch over the notebooks, and the published executed copies
"""
__all__ = ["viz", "gallery", "widgets", "ablation", "runs", "paper", "claims", "runinfo",
           "depth_grid", "reproduce"]
