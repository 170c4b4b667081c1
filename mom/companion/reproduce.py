"""Batch regeneration: every notebook, executed with one parameter file.

``notebooks/NN_name.py`` (jupytext percent format) is the source. For each,
``reproduce`` writes the ``.ipynb`` into a build folder, executes it with
papermill (parameters: the params name, overrides and output folders) and
keeps the executed notebook. The notebooks themselves save figures (PNG + SVG)
and ``results/*.json`` (each with its config snapshot, see ``save_results``).

Layout under ``out_dir`` (default: the repository, with the HTML pages in
``build/executed``; outside a checkout, e.g. from an installed wheel, the current
directory)::

    figures/<params>/*.png|svg   results/<params>/*.json
    notebooks/executed/NN_name.ipynb, README.md   (the published copies, with outputs)
    executed/<params>/*.ipynb|html, index.html    runs/<params>/ (cached pipeline runs)

In the repository the published copies are ``notebooks/executed/`` (committed, so that
a repository host renders them), and the ``smoke`` parameters write under ``build/``
only: their figures, results and copies are never committed. Each published copy
carries, in its metadata (``mom``), the parameter file, the overrides, its runtime,
the machine (:func:`mom.companion.runinfo.hardware`) and the SHA-256 of every results
file it wrote, which is how ``tests/test_published.py`` checks that the copies and the
committed results come from the same run.

The notebooks' own ``figures_dir``, ``results_dir`` and ``runs_dir`` parameters
default to ``""``: ``notebook_dirs`` turns that into the same folders, so a
notebook opened in Jupyter writes where ``mom reproduce`` does, whatever the
kernel's working directory.
"""
from __future__ import annotations

import contextlib
import html
import os
import time
import urllib.parse
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..config import RunConfig, apply_overrides, config_to_dict, load_params
from ..io import atomic_write, env_info, save_json

__all__ = ["NOTEBOOK_DIR", "REPO_ROOT", "IN_CHECKOUT", "SMOKE", "NotebookError", "list_notebooks",
           "to_ipynb", "output_dirs", "notebook_dirs", "to_html", "write_index", "reproduce",
           "save_results", "TOLERANCE", "moved_numbers", "publish", "write_published_index"]

SMOKE = "smoke"  # the parameter file of the tests: its outputs stay out of the repository's folders

# How far a committed number may move when the same command runs on another machine
# (other CPU, BLAS or thread count) before `mom reproduce` reports it: percent points,
# by metric family. Measured: one run of the default moved NMI by 0.7 across machines.
TOLERANCE = {"nmi": 1.0, "recall": 0.5, "map": 0.5, "r_precision": 0.5}
# parts of a results file that are not results (settings, timings, per-epoch curves)
_NOT_RESULTS = ("config", "run_config", "env", "timings_s", "curves", "history", "seconds",
                "study_config", "protocol", "selection", "per_seed")

# figures must reach the executed notebook even when the caller set MPLBACKEND=Agg
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
# this file is mom/companion/reproduce.py; the package is mom/, the checkout above it
PACKAGE_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = PACKAGE_DIR.parent
# a source checkout (the notebooks beside the package) rather than an installed wheel
IN_CHECKOUT = (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "notebooks").is_dir()
# in a checkout, notebooks/; in a wheel, the copy shipped as package data (mom/notebooks is a
# symlink to ../notebooks in the repository, so both hold the same files)
NOTEBOOK_DIR = REPO_ROOT / "notebooks" if IN_CHECKOUT else PACKAGE_DIR / "notebooks"


class NotebookError(RuntimeError):
    """A notebook failed; ``.notebook``, ``.cell`` (execution count), ``.cell_index``."""

    def __init__(self, notebook: str, cell: int | None, cell_index: int | None, message: str):
        self.notebook, self.cell, self.cell_index = notebook, cell, cell_index
        super().__init__(f"notebook {notebook} failed in cell [{cell}] "
                         f"(cell index {cell_index}): {message}")


def list_notebooks(notebooks: Sequence[str] | None = None,
                   notebook_dir: str | Path | None = None) -> list[Path]:
    """The ``NN_name.py`` sources, sorted; ``notebooks`` selects by name or number
    prefix (``"01"``, ``"01_table1"``, ``"01_table1.py"``)."""
    folder = Path(notebook_dir) if notebook_dir else NOTEBOOK_DIR
    found = sorted(folder.glob("[0-9][0-9]_*.py"))
    if not found:
        raise FileNotFoundError(f"no notebooks (NN_name.py) in {folder}")
    if notebooks is None:
        return found
    chosen = []
    for want in notebooks:
        stem = Path(want).stem
        match = [p for p in found if p.stem == stem or p.stem.split("_", 1)[0] == stem]
        if len(match) != 1:
            raise ValueError(f"notebook {want!r} not found in {folder}; "
                             f"available: {[p.stem for p in found]}")
        chosen.append(match[0])
    return chosen


def to_ipynb(source: str | Path, target: str | Path, kernel_name: str = "python3") -> Path:
    """Convert a jupytext percent ``.py`` to ``.ipynb`` (atomic); check that exactly
    one cell is tagged ``parameters``."""
    import jupytext
    import nbformat
    nb = jupytext.read(source, fmt="py:percent")
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(f"{source}: expected exactly one cell tagged 'parameters', found {len(tagged)}")
    # the header's kernelspec (the kernel setup.sh installs), run on ``kernel_name``
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python",
                                 **nb.metadata.get("kernelspec", {}), "name": kernel_name}
    target = Path(target)
    with atomic_write(target, "w") as fh:
        nbformat.write(nb, fh)
    return target


def output_dirs(params: str, out_dir: str | Path | None = None) -> dict[str, Path]:
    """Folders one batch writes: figures, results, notebooks (executed, with their
    HTML), runs, and published (the executed copies a repository host shows).

    ``out_dir`` given: ``out_dir/{figures,results,executed,runs}/<params>`` and
    ``out_dir/notebooks/executed``. Without it, the repository (``REPO_ROOT``: its
    ``figures/``, ``results/``, ``notebooks/executed/``, ``runs/``; HTML in
    ``build/executed/<params>``), except that the ``smoke`` parameters' figures, results
    and copies go under ``build/``; outside a source checkout (an installed wheel), the
    current directory, laid out as for ``out_dir``."""
    name = Path(params).stem
    if out_dir is None and IN_CHECKOUT:
        root = REPO_ROOT / "build" if name == SMOKE else REPO_ROOT
        executed, runs = REPO_ROOT / "build" / "executed", REPO_ROOT / "runs"
    else:
        root = Path(out_dir) if out_dir is not None else Path.cwd()
        executed, runs = root / "executed", root / "runs"
    return {"figures": root / "figures" / name, "results": root / "results" / name,
            "notebooks": executed / name, "runs": runs / name,
            "published": root / "notebooks" / "executed"}


def notebook_dirs(params: str, figures_dir: str = "", results_dir: str = "",
                  runs_dir: str = "") -> tuple[str, str, str]:
    """A notebook's output folders from its parameters: ``""`` means the default one of
    ``output_dirs(params)`` (the repository's ``figures/<params>`` etc., absolute, so
    the kernel's working directory does not matter); anything else is kept as given.
    ``mom reproduce`` always passes all three."""
    default = output_dirs(params)
    return tuple(str(value) if value else str(default[key]) for key, value in
                 (("figures", figures_dir), ("results", results_dir), ("runs", runs_dir)))


def reproduce(params: str = "smoke", out_dir: str | Path | None = None,
              notebooks: Sequence[str] | None = None, *, overrides: Sequence[str] = (),
              kernel_name: str = "python3", notebook_dir: str | Path | None = None,
              timeout: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Execute the notebooks with ``params`` (smoke | default | paper | a YAML path).

    Each executed notebook is kept as ``.ipynb`` and as ``.html`` beside it, and
    ``index.html`` in the same folder links every notebook's HTML and the figures; the
    ``.ipynb``, with its run's record in its metadata, is also published (see
    ``output_dirs`` and :func:`publish`), and the published folder's ``README.md``
    lists every copy there with its parameters, runtime and machine.
    Returns ``{"params", "dirs", "notebooks": {name: {"path", "html", "published",
    "seconds"}}, "index", "figures", "results", "moved"}``. A failing notebook stops the
    batch with ``NotebookError`` naming the notebook and the cell (its HTML and the
    index are still written, to read the traceback in a browser; nothing is published).
    """
    apply_overrides(load_params(params), overrides)  # a bad name or override fails here, not in a kernel
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    sources = list_notebooks(notebooks, notebook_dir)
    dirs = output_dirs(params, out_dir)
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    parameters = {"params": str(params), "overrides": list(overrides),
                  "figures_dir": str(dirs["figures"]), "results_dir": str(dirs["results"]),
                  "runs_dir": str(dirs["runs"])}
    before = _load_results(dirs["results"])  # the committed numbers, to report what moved
    done: dict[str, Any] = {}
    from .runinfo import hardware
    machine = hardware()
    for src in sources:
        t0 = time.perf_counter()
        written_before = _file_stamps(dirs["results"])
        build = to_ipynb(src, dirs["notebooks"] / f".{src.stem}.source.ipynb", kernel_name)
        target = dirs["notebooks"] / f"{src.stem}.ipynb"
        try:
            with _kernel_env(MPLBACKEND=INLINE_BACKEND):
                # the caller's working directory: relative paths (a params file, data.root,
                # out_dir) mean in the kernel what they meant to the caller
                pm.execute_notebook(str(build), str(target), parameters=parameters,
                                    kernel_name=kernel_name, cwd=os.getcwd(),
                                    progress_bar=progress, execution_timeout=timeout)
        except PapermillExecutionError as exc:
            for write in (lambda: to_html(target), lambda: write_index(params, out_dir)):
                with contextlib.suppress(Exception):  # best effort: the error below matters more
                    write()
            raise NotebookError(src.stem, exc.exec_count, exc.cell_index,
                                f"{exc.ename}: {exc.evalue} (executed notebook: {target})") from exc
        finally:
            build.unlink(missing_ok=True)
        seconds = round(time.perf_counter() - t0, 1)
        record = {"params": Path(params).stem, "overrides": list(overrides), "seconds": seconds,
                  "finished": time.strftime("%Y-%m-%d %H:%M"), "hardware": machine,
                  "results": _written(dirs["results"], written_before)}
        published = publish(target, dirs["published"], record)
        page = to_html(target)
        done[src.stem] = {"path": str(target), "html": str(page), "published": str(published),
                          "seconds": seconds}
    if done:
        write_published_index(dirs["published"])
    index = write_index(params, out_dir)
    return {"params": str(params), "dirs": {k: str(v) for k, v in dirs.items()},
            "notebooks": done, "index": str(index),
            "figures": sorted(str(p) for p in dirs["figures"].glob("*.png")),
            "results": sorted(str(p) for p in dirs["results"].glob("*.json")),
            "moved": moved_numbers(before, _load_results(dirs["results"]))}


def _file_stamps(folder: Path) -> dict[str, tuple[int, int]]:
    """{file name: (mtime_ns, size)} of the results files in ``folder``."""
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(Path(folder).glob("*")) if p.is_file()}


def _written(folder: Path, before: Mapping[str, tuple[int, int]]) -> dict[str, str]:
    """{file name: SHA-256} of the files in ``folder`` written since ``before``."""
    from ..io import sha256_file
    return {name: sha256_file(Path(folder) / name)
            for name, stamp in _file_stamps(folder).items() if before.get(name) != stamp}


def publish(executed: str | Path, folder: str | Path, record: Mapping[str, Any]) -> Path:
    """Copy an executed notebook into ``folder`` (atomic), its metadata ``mom`` set to
    ``record`` (params, overrides, seconds, finished, hardware, results: {file:
    SHA-256}); the copy also gets it, so the build folder's copy says the same."""
    import nbformat
    nb = nbformat.read(str(executed), as_version=4)
    nb.metadata["mom"] = dict(record)
    for path in (Path(executed), Path(folder) / Path(executed).name):
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "w") as fh:
            nbformat.write(nb, fh)
    return Path(folder) / Path(executed).name


def write_published_index(folder: str | Path) -> Path:
    """``folder/README.md``: a table of the published copies there, each with its
    parameter file, runtime, machine and date, read from their metadata (atomic)."""
    import nbformat

    from .runinfo import describe_hardware, format_seconds
    folder = Path(folder)
    lines = ["# Executed notebooks", "",
             "Written by `mom reproduce` (`mom/companion/reproduce.py`); each runtime and "
             "machine is the one recorded in the notebook's metadata by the run that wrote it.",
             "", "| notebook | parameters | runtime | machine | finished |", "|---|---|---|---|---|"]
    for path in sorted(folder.glob("[0-9][0-9]_*.ipynb")):
        rec = nbformat.read(str(path), as_version=4).metadata.get("mom", {})
        params = rec.get("params", "?") + (f" + {', '.join(rec['overrides'])}"
                                           if rec.get("overrides") else "")
        machine = describe_hardware(rec["hardware"]) if rec.get("hardware") else "?"
        runtime = format_seconds(rec["seconds"]) if "seconds" in rec else "?"
        lines.append(f"| [{path.stem}]({path.name}) | `{params}` | {runtime} | {machine} | "
                     f"{rec.get('finished', '?')} |")
    target = folder / "README.md"
    with atomic_write(target, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return target


def _load_results(folder: Path) -> dict[str, Any]:
    from ..io import load_json
    out = {}
    for p in sorted(Path(folder).glob("*.json")):
        try:
            out[p.name] = load_json(p)
        except ValueError:
            continue
    return out


def _family(path: Sequence[str]) -> str | None:
    for part in reversed(path):
        for fam in TOLERANCE:
            if str(part).startswith(fam):
                return fam
    return None


def moved_numbers(before: dict[str, Any], after: dict[str, Any],
                  tolerance: dict[str, float] = TOLERANCE) -> list[dict[str, Any]]:
    """Metrics present in both result sets that moved by more than their tolerance.

    ``before``/``after``: ``{file name: parsed JSON}``. Returns one record per moved
    number: ``{"file", "key" (dotted path), "before", "after", "tolerance"}``. Std,
    interval bounds and p values are compared like their metric.
    """
    moved: list[dict[str, Any]] = []

    def walk(a: Any, b: Any, path: list[str], name: str) -> None:
        if path and path[-1] in _NOT_RESULTS:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for k in a.keys() & b.keys():
                walk(a[k], b[k], path + [str(k)], name)
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b)):
                walk(x, y, path + [str(i)], name)
        elif isinstance(a, (int, float)) and isinstance(b, (int, float)) \
                and not isinstance(a, bool) and not isinstance(b, bool):
            fam = _family(path)
            if fam is not None and path[-1] not in ("p", "p_t", "n") and \
                    abs(float(a) - float(b)) > tolerance[fam]:
                moved.append({"file": name, "key": ".".join(path), "before": a, "after": b,
                              "tolerance": tolerance[fam]})

    for name in sorted(before.keys() & after.keys()):
        walk(before[name], after[name], [], name)
    return moved


def to_html(notebook: str | Path, target: str | Path | None = None) -> Path:
    """Write an executed ``.ipynb`` as HTML (nbconvert's ``HTMLExporter``, figures
    embedded) to ``target`` (default: beside it, ``.html``); atomic."""
    from nbconvert import HTMLExporter
    notebook = Path(notebook)
    target = Path(target) if target is not None else notebook.with_suffix(".html")
    body, _ = HTMLExporter().from_filename(str(notebook))
    with atomic_write(target, "w") as fh:
        fh.write(body)
    return target


_INDEX_CSS = ("body{font-family:sans-serif;margin:2em;max-width:80em}"
              "figure{display:inline-block;vertical-align:top;margin:.5em;text-align:center}"
              "img{max-width:320px;max-height:240px;border:1px solid #ccc}figcaption{font-size:small}")


def write_index(params: str, out_dir: str | Path | None = None) -> Path:
    """Write ``index.html`` in the executed-notebooks folder of ``params`` (see
    ``output_dirs``): every notebook's HTML (and ``.ipynb``) found there, each followed
    by the PNG figures of ``figures/<params>/`` that carry its number prefix
    (``00_pools.png`` under ``00_walkthrough``), then any other figures and the result
    files. Links are relative, so the folder tree can be moved or served as is; atomic."""
    dirs = output_dirs(params, out_dir)
    folder = dirs["notebooks"]
    folder.mkdir(parents=True, exist_ok=True)
    pages = sorted(folder.glob("[0-9][0-9]_*.html"))
    figures = sorted(dirs["figures"].glob("*.png"))
    results = sorted(dirs["results"].glob("*.json"))

    def link(path: Path) -> str:  # relative, URL-quoted, HTML-escaped
        return html.escape(urllib.parse.quote(Path(os.path.relpath(path, folder)).as_posix()))

    def gallery(pngs: list[Path]) -> str:
        return "".join(f'<figure><a href="{link(p)}"><img src="{link(p)}" alt="{html.escape(p.stem)}">'
                       f"</a><figcaption>{html.escape(p.name)}</figcaption></figure>" for p in pngs)

    name = html.escape(Path(params).stem)
    parts = ["<!DOCTYPE html>", '<html><head><meta charset="utf-8">',
             f"<title>mom reproduce: {name}</title><style>{_INDEX_CSS}</style></head><body>",
             f"<h1>mom reproduce &middot; params <code>{name}</code></h1>",
             f"<p>Written {html.escape(time.strftime('%Y-%m-%d %H:%M:%S'))}.</p>"]
    shown: set[Path] = set()
    for page in pages:
        prefix = page.stem.split("_", 1)[0] + "_"
        mine = [p for p in figures if p.name.startswith(prefix)]
        shown.update(mine)
        ipynb = page.with_suffix(".ipynb")
        extra = f' (<a href="{link(ipynb)}">.ipynb</a>)' if ipynb.is_file() else ""
        parts.append(f'<h2><a href="{link(page)}">{html.escape(page.stem)}</a>{extra}</h2>')
        parts.append(gallery(mine) if mine else "<p>No figures.</p>")
    rest = [p for p in figures if p not in shown]
    if rest:
        parts += ["<h2>Other figures</h2>", gallery(rest)]
    if results:
        parts += ["<h2>Results</h2><ul>"] + [
            f'<li><a href="{link(p)}">{html.escape(p.name)}</a></li>' for p in results] + ["</ul>"]
    parts.append("</body></html>\n")
    target = folder / "index.html"
    with atomic_write(target, "w") as fh:
        fh.write("\n".join(parts))
    return target


@contextlib.contextmanager
def _kernel_env(**values: str):
    """Set environment variables for the kernels started inside; restore them after."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def save_results(results_dir: str | Path, name: str, payload: dict[str, Any],
                 cfg: RunConfig) -> Path:
    """Write ``results_dir/<name>.json``: ``payload`` plus the config snapshot,
    the params name and the environment."""
    path = Path(results_dir) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_json(path, {**payload, "params": cfg.name, "config": config_to_dict(cfg),
                     "env": env_info()})
    return path
