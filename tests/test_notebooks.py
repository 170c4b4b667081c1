"""The notebooks: one flat parameters cell, output folders resolved by mom, logic only in
mom, and a full smoke batch (executed notebooks, their HTML and the index)."""
import ast
import re
import time
import urllib.parse
from pathlib import Path

import jupytext
import nbformat
import pytest
from papermill.translators import PythonTranslator

from mom.companion.reproduce import list_notebooks, reproduce
from mom.io import load_json

NOTEBOOKS = list_notebooks()
COMMON = {"params": str, "overrides": list, "figures_dir": str, "results_dir": str,
          "runs_dir": str, "progress": bool}
EXPECTED = ["00_walkthrough", "01_table1", "02_anchor_ablation", "03_figure3_galleries",
            "04_pool_inspector", "05_pool_depths"]


def code_cells(path):
    nb = jupytext.read(path, fmt="py:percent")
    return [c for c in nb.cells if c.cell_type == "code"]


def test_the_six_notebooks_exist():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_one_flat_typed_parameters_cell(path):
    cells = code_cells(path)
    tagged = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    values = {}
    for node in ast.parse(tagged[0].source).body:  # only `name = literal` lines
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, ast.dump(node)
        values[node.targets[0].id] = ast.literal_eval(node.value)
    # papermill must read every one of them (it skips a line with a second "=")
    assert [p.name for p in PythonTranslator.inspect(tagged[0])] == list(values)
    for name, kind in COMMON.items():
        assert isinstance(values.get(name), kind), (name, values.get(name))
    # a real parameter file by default (the exhibit they publish); the smoke batch injects smoke
    assert values["params"] in ("omniglot", "default") and values["overrides"] == []
    for name, value in values.items():  # flat: scalars, or a list of strings
        assert isinstance(value, (str, bool, int, float)) or (
            isinstance(value, list) and all(isinstance(v, str) for v in value)), name
    # output folders: empty = the repository's (or reproduce's --out), never the kernel's cwd
    assert [values[k] for k in ("figures_dir", "results_dir", "runs_dir")] == ["", "", ""]


RESOLVE = "figures_dir, results_dir, runs_dir = notebook_dirs(params, figures_dir, results_dir, runs_dir)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_output_folders_resolved_before_use(path):
    """The first code cell after the parameters turns the empty folders into real ones
    (mom.companion.reproduce.notebook_dirs), before any other line reads them."""
    cells = code_cells(path)
    first = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])) + 1
    lines = cells[first].source.splitlines()
    assert RESOLVE in lines, f"{path.stem}: the first code cell does not call notebook_dirs"
    before = "\n".join(lines[:lines.index(RESOLVE)])
    for name in ("figures_dir", "results_dir", "runs_dir"):
        assert name not in before, f"{path.stem}: {name} used before notebook_dirs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_logic_lives_in_mom(path):
    for cell in code_cells(path):
        tree = ast.parse(cell.source)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                assert node.end_lineno - node.lineno < 10, f"{path.stem}: {node.name} belongs in mom"
            if isinstance(node, ast.Import):
                roots = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = {node.module.split(".")[0]}
            else:
                continue
            assert roots <= {"mom", "numpy"}, f"{path.stem} imports {roots}"


def _open_and_save_as_jupyterlab_does(path: Path, folder: Path) -> str:
    """The text a notebook file holds after JupyterLab opened it and saved it (as its
    autosave does a couple of minutes after opening), without a browser: read through
    jupytext's contents manager, the kernelspec replaced by the installed ``python3``
    kernel's (JupyterLab's ``NotebookPanel._updateSpec``), ``language_info`` set as the
    kernel reports it (``_updateLanguage``), saved through the same manager."""
    import platform
    import shutil

    from ipykernel.ipkernel import IPythonKernel
    from jupyter_client.kernelspec import KernelSpecManager
    from jupytext import TextFileContentsManager
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, folder / path.name)
    manager = TextFileContentsManager(root_dir=str(folder))
    nb = manager.get(path.name, content=True, type="notebook")["content"]
    spec = KernelSpecManager().get_kernel_spec("python3")
    nb["metadata"]["kernelspec"] = {"name": "python3", "display_name": spec.display_name,
                                    "language": spec.language}
    nb["metadata"]["language_info"] = {**IPythonKernel.language_info,
                                       "version": platform.python_version()}
    manager.save({"type": "notebook", "format": "json", "content": nb}, path.name)
    return (folder / path.name).read_text()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_opening_a_notebook_in_jupyterlab_leaves_the_file_unchanged(path, tmp_path):
    """The header holds what a save writes: the kernelspec of the kernel setup.sh
    installs (display name "Python 3 (ipykernel)"), jupytext's format_version, and a
    filter that keeps jupytext's own version out of the file (it differs from one
    installation to the next). So the autosave after opening writes the same bytes and
    git sees no change."""
    assert _open_and_save_as_jupyterlab_does(path, tmp_path / "lab") == path.read_text()
    # what the header prevents: without the format version, the save rewrites the file
    text = path.read_text().replace("#       format_version: '1.3'\n", "")
    stale = tmp_path / "stale" / path.name
    stale.parent.mkdir()
    stale.write_text(text)
    assert _open_and_save_as_jupyterlab_does(stale, tmp_path / "lab2") != text


@pytest.mark.slow
def test_all_notebooks_run_with_smoke_params(tmp_path):
    t0 = time.perf_counter()
    summary = reproduce("smoke", tmp_path, progress=False)
    seconds = time.perf_counter() - t0
    print(f"smoke batch: {seconds:.0f} s", {k: v["seconds"] for k, v in summary["notebooks"].items()})
    assert list(summary["notebooks"]) == EXPECTED
    for name, info in summary["notebooks"].items():
        nb = nbformat.read(info["path"], as_version=4)
        assert all(c.get("execution_count") for c in nb.cells if c.cell_type == "code"), name
        pngs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
                if "image/png" in o.get("data", {})]
        assert pngs, f"{name} shows no figure"
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
                  if o.output_type == "error"]
        assert not errors, name
        page = Path(info["html"])  # the same notebook as HTML, beside it, figures embedded
        assert page == Path(info["path"]).with_suffix(".html")
        assert "data:image/png;base64," in page.read_text(), name
    figures = tmp_path / "figures" / "smoke"
    index = Path(summary["index"])
    assert index == tmp_path / "executed" / "smoke" / "index.html"
    linked = {(index.parent / urllib.parse.unquote(href)).resolve()
              for href in re.findall(r'href="([^"]+)"', index.read_text())}
    assert {Path(i["html"]).resolve() for i in summary["notebooks"].values()} <= linked
    assert {p.resolve() for p in figures.glob("*.png")} <= linked
    stems = {p.stem for p in figures.glob("*.png")}
    assert stems == {p.stem for p in figures.glob("*.svg")}
    for prefix in ("00_", "01_", "02_", "03_", "04_", "05_"):
        assert any(s.startswith(prefix) for s in stems), prefix
    results = {p.stem: load_json(p) for p in (tmp_path / "results" / "smoke").glob("*.json")}
    assert set(results) == {"00_walkthrough", "table1", "study", "study_none", "anchor_budget",
                            "figure3", "pool_inspector", "pool_depths"}
    # every notebook starts with its machine and ends with its runtime and verdicts
    for name, info in summary["notebooks"].items():
        nb = nbformat.read(info["path"], as_version=4)
        text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                         for o in c.outputs if o.output_type == "stream")
        assert "params 'smoke'; started " in text and " cores of " in text, name
        assert "this run of params 'smoke' took " in text, name
        last = [c for c in nb.cells if c.cell_type == "markdown"][-1].source
        assert last.startswith("## What this run shows"), name
    assert set(results["study"]["rows"]) == {"initial", "euclidean", "mom"}
    assert results["study"]["rows"]["mom"]["recall@1"]["n"] == 2  # the smoke study's seeds
    for name, data in results.items():
        assert data["params"] == "smoke" and data["config"]["name"] == "smoke", name
    table = {r["method"]: r for r in results["table1"]["rows"]}
    assert {"initial", "euclidean", "mom", "MoM (paper)"} <= set(table)
    assert table["MoM (paper)"]["recall@1"] == 45.3
    budget = results["anchor_budget"]
    assert set(budget["cells"]) == {"stationary", "random"}
    assert all(0 <= budget["cells"][a][p]["recall@1"]["mean"] <= 100
               for a in budget["cells"] for p in ("euclidean", "mom"))
    assert "stationary-random (mom)" in budget["paired"]
    fig3 = results["figure3"]
    assert set(fig3["row_rates"]) == {"P+", "NN^e_3", "P-", "X \\ NN^e_3"}
    assert set(fig3["hardness"]["violated"]) == {"mom", "euclidean"}
    depths = results["pool_depths"]
    auto = [r for r in depths["grid"] if r["rule"] == "auto"]
    assert auto and all(r["k_pos"] >= 1 and r["statistic"] == "typical_community_size" for r in auto)
    # smoke adapts the graph (mining.adapt_k_graph) and its 12 x 5 cell's graph shrinks, so
    # that cell is also trained with the graph fixed
    assert {s["recipe"] for s in depths["studies"]} == {"params", "fixed 100/1250, no guard",
                                                         "fixed k_graph"}
    adapted = [r for r in depths["grid"] if r["rule"] == "auto+k_graph"]
    assert adapted and all(5 <= r["k_graph"] <= 8 and r["k_graph_value"] > 0 for r in adapted)
    contrast = depths["contrasts"]  # params - fixed k_graph, MoM row, paired per seed
    assert [(c["per_class"], c["classes"]) for c in contrast] == [(12, 5)]
    assert contrast[0]["recall@1"]["n"] == 2 and contrast[0]["b"] == "fixed k_graph"
    done = [s for s in depths["studies"] if not s["note"]]
    assert done and all(s["rows"]["mom"]["recall@1"]["n"] == 2 for s in done)
