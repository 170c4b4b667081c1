"""The papermill batch on tiny notebooks: outputs, parameters, HTML and index, failures
naming the cell; the notebooks' output folders; the notebooks inside the wheel."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
import urllib.parse
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

import mom.companion.reproduce
from mom.companion.reproduce import (REPO_ROOT, NotebookError, list_notebooks, notebook_dirs,
                                     output_dirs, reproduce, save_results, to_ipynb, write_index)
from mom.config import load_params
from mom.io import load_json

HEADER = "# %% [markdown]\n# A tiny notebook\n\n"
PARAMS = textwrap.dedent('''\
    # %% tags=["parameters"]
    params = "smoke"
    overrides = []
    figures_dir = "figs"
    results_dir = "res"
    runs_dir = "runs"
    progress = False
''')
GOOD = textwrap.dedent('''\
    # %%
    import matplotlib.pyplot as plt
    from mom.companion import viz
    from mom.companion.reproduce import save_results
    from mom.config import apply_overrides, load_params
    cfg = apply_overrides(load_params(params), overrides)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [cfg.train.epochs, 0])
    viz.save_figure(fig, f"{figures_dir}/tiny")
    save_results(results_dir, "tiny", {"epochs": cfg.train.epochs}, cfg)
''')
BAD = "# %%\nx = 1\n\n# %%\nraise RuntimeError('broken on purpose')\n"


def write(folder, name, *cells):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(HEADER + "\n".join(cells))
    return path


def test_list_notebooks_selects_by_name_or_number(tmp_path):
    for name in ("00_a", "01_b", "02_c"):
        write(tmp_path, name, PARAMS)
    (tmp_path / "helper.py").write_text("x = 1\n")  # not a notebook: no NN_ prefix
    assert [p.stem for p in list_notebooks(notebook_dir=tmp_path)] == ["00_a", "01_b", "02_c"]
    assert [p.stem for p in list_notebooks(["02", "00_a.py"], tmp_path)] == ["02_c", "00_a"]
    with pytest.raises(ValueError, match="'03' not found.*00_a"):
        list_notebooks(["03"], tmp_path)
    with pytest.raises(FileNotFoundError):
        list_notebooks(notebook_dir=tmp_path / "empty")


def test_to_ipynb_requires_exactly_one_parameters_cell(tmp_path):
    ok = to_ipynb(write(tmp_path, "00_ok", PARAMS, GOOD), tmp_path / "ok.ipynb")
    nb = nbformat.read(ok, as_version=4)
    assert nb.metadata.kernelspec.name == "python3"
    assert [c.metadata.get("tags") for c in nb.cells if c.cell_type == "code"][0] == ["parameters"]
    with pytest.raises(ValueError, match="found 0"):
        to_ipynb(write(tmp_path, "01_none", GOOD), tmp_path / "none.ipynb")
    with pytest.raises(ValueError, match="found 2"):
        to_ipynb(write(tmp_path, "02_two", PARAMS, PARAMS), tmp_path / "two.ipynb")
    assert not (tmp_path / "none.ipynb").exists()


def test_output_dirs_layout(tmp_path):
    d = output_dirs("smoke", tmp_path)
    assert d["figures"] == tmp_path / "figures" / "smoke"
    assert d["results"] == tmp_path / "results" / "smoke"
    assert d["notebooks"] == tmp_path / "executed" / "smoke"
    assert d["published"] == tmp_path / "notebooks" / "executed"
    default = output_dirs("paper")  # the repository: HTML pages under build/
    assert default["figures"] == REPO_ROOT / "figures" / "paper"
    assert default["runs"] == REPO_ROOT / "runs" / "paper"
    assert default["notebooks"] == REPO_ROOT / "build" / "executed" / "paper"
    assert default["published"] == REPO_ROOT / "notebooks" / "executed"  # committed copies
    smoke = output_dirs("smoke")  # the tests' parameters never write the committed folders
    assert smoke["figures"] == REPO_ROOT / "build" / "figures" / "smoke"
    assert smoke["results"] == REPO_ROOT / "build" / "results" / "smoke"
    assert smoke["published"] == REPO_ROOT / "build" / "notebooks" / "executed"
    assert output_dirs("my/own.yaml", "out")["results"] == Path("out") / "results" / "own"


def test_output_dirs_outside_a_checkout_use_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(mom.companion.reproduce, "IN_CHECKOUT", False)  # as from an installed wheel
    monkeypatch.chdir(tmp_path)
    d = output_dirs("smoke")
    assert d["figures"] == tmp_path / "figures" / "smoke"
    assert d["notebooks"] == tmp_path / "executed" / "smoke"


def test_notebook_dirs_resolve_against_the_repository_not_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a kernel started in notebooks/ or anywhere else
    figures, results, runs = notebook_dirs("default")  # the parameters' defaults: ""
    assert figures == str(REPO_ROOT / "figures" / "default")
    assert results == str(REPO_ROOT / "results" / "default")
    assert runs == str(REPO_ROOT / "runs" / "default")
    assert notebook_dirs("smoke")[0] == str(REPO_ROOT / "build" / "figures" / "smoke")
    assert notebook_dirs("default", "", "res", "/abs/runs") == (
        str(REPO_ROOT / "figures" / "default"), "res", "/abs/runs")  # given ones are kept
    assert notebook_dirs("params/paper.yaml")[0] == str(REPO_ROOT / "figures" / "paper")


class _Links(HTMLParser):
    """(tag, attribute value) of every href and src, in document order."""

    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        self.links += [(tag, v) for k, v in attrs if k in ("href", "src")]


def links_of(page: Path) -> list[tuple[str, str]]:
    parser = _Links()
    parser.feed(page.read_text())
    return [(tag, urllib.parse.unquote(value)) for tag, value in parser.links]


def test_write_index_links_each_notebook_then_its_figures(tmp_path):
    d = output_dirs("smoke", tmp_path / "out")
    for folder in d.values():
        folder.mkdir(parents=True)
    for name in ("00_a.html", "00_a.ipynb", "01_b.html"):
        (d["notebooks"] / name).write_text("x")
    (d["notebooks"] / ".00_a.source.ipynb").write_text("x")  # a build copy: not listed
    for name in ("00_x.png", "00_x.svg", "01_y.png", "07_z & more.png"):
        (d["figures"] / name).write_bytes(b"png")
    (d["results"] / "table.json").write_text("{}")
    index = write_index("smoke", tmp_path / "out")
    assert index == d["notebooks"] / "index.html"
    links = links_of(index)
    for _, href in links:  # relative links that resolve from the index's folder
        assert not os.path.isabs(href) and (index.parent / href).is_file(), href
    hrefs = [Path(h).name for tag, h in links if tag == "a"]
    assert hrefs == ["00_a.html", "00_a.ipynb", "00_x.png", "01_b.html", "01_y.png",
                     "07_z & more.png", "table.json"]
    assert {Path(s).name for tag, s in links if tag == "img"} == {
        "00_x.png", "01_y.png", "07_z & more.png"}
    assert "Other figures" in index.read_text()
    assert sorted(p.name for p in d["notebooks"].iterdir()) == [
        ".00_a.source.ipynb", "00_a.html", "00_a.ipynb", "01_b.html", "index.html"]  # no temp file


def _copy_source_tree(dest: Path) -> Path:
    """The files a wheel is built from (package, notebooks, metadata) copied to dest."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO_ROOT / name, dest / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.ipynb", ".ipynb_checkpoints")
    shutil.copytree(REPO_ROOT / "mom", dest / "mom", symlinks=True, ignore=skip)
    shutil.copytree(REPO_ROOT / "notebooks", dest / "notebooks", ignore=skip)
    return dest


def test_the_wheel_ships_the_notebooks_and_reproduce_finds_them(tmp_path):
    pytest.importorskip("setuptools", reason="setuptools (the build backend) is not installed")
    link = REPO_ROOT / "mom" / "notebooks"  # the package's view of notebooks/
    assert link.is_symlink() and link.resolve() == (REPO_ROOT / "notebooks").resolve()
    src = _copy_source_tree(tmp_path / "src")
    build = subprocess.run(  # the build backend itself: no pip, no index, no isolation
        [sys.executable, "-c", "from setuptools import build_meta as b; print(b.build_wheel('dist'))"],
        cwd=src, capture_output=True, text=True, timeout=180)
    assert build.returncode == 0, build.stderr[-3000:]
    wheel = src / "dist" / build.stdout.strip().splitlines()[-1]
    names = zipfile.ZipFile(wheel).namelist()
    expected = sorted(p.name for p in list_notebooks())
    assert sorted(n.split("/")[-1] for n in names if n.startswith("mom/notebooks/")) == expected
    assert "mom/params/smoke.yaml" in names

    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere.mkdir()
    probe = textwrap.dedent("""\
        import json, mom, mom.companion.reproduce as r
        from mom.config import load_params
        load_params("smoke")
        r.to_ipynb(r.list_notebooks(["04"])[0], "04.ipynb")
        print(json.dumps({"mom": mom.__file__, "in_checkout": r.IN_CHECKOUT,
                          "notebooks": [p.name for p in r.list_notebooks()],
                          "folder": str(r.NOTEBOOK_DIR), "figures": str(r.output_dirs("smoke")["figures"])}))
    """)
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = subprocess.run([sys.executable, "-c", probe], cwd=elsewhere, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert Path(found["mom"]).is_relative_to(site)  # the wheel's mom, not the checkout's
    assert found["in_checkout"] is False
    assert Path(found["folder"]) == site / "mom" / "notebooks"
    assert found["notebooks"] == expected
    assert Path(found["figures"]) == elsewhere / "figures" / "smoke"  # not inside site-packages
    assert (elsewhere / "04.ipynb").is_file()


def test_bad_params_fail_before_any_kernel(tmp_path):
    write(tmp_path / "src", "00_a", PARAMS, GOOD)
    with pytest.raises(FileNotFoundError, match="nosuch"):
        reproduce("nosuch", tmp_path / "out", notebook_dir=tmp_path / "src", progress=False)
    with pytest.raises(ValueError, match="no field"):
        reproduce("smoke", tmp_path / "out", notebook_dir=tmp_path / "src", progress=False,
                  overrides=["train.epoch=2"])
    assert not (tmp_path / "out").exists()


def test_save_results_records_the_config(tmp_path):
    cfg = load_params("smoke")
    path = save_results(tmp_path / "r", "x", {"value": 1.5}, cfg)
    data = load_json(path)
    assert data["value"] == 1.5 and data["params"] == "smoke"
    assert data["config"]["train"]["epochs"] == cfg.train.epochs
    assert "python" in data["env"]


@pytest.mark.slow
def test_batch_writes_outputs_and_stops_at_the_failing_cell(tmp_path, monkeypatch):
    src = tmp_path / "src"
    write(src, "00_good", PARAMS, GOOD)
    write(src, "01_bad", PARAMS, BAD)
    write(src, "02_never", PARAMS, GOOD)
    out = tmp_path / "out"
    monkeypatch.chdir(tmp_path)  # relative paths are the caller's: "out", "my.yaml"
    (tmp_path / "my.yaml").write_text("name: mine\ntrain:\n  epochs: 7\n")
    summary = reproduce("my.yaml", "out", ["00"], notebook_dir=src, progress=False,
                        overrides=["train.epochs=3"])
    assert list(summary["notebooks"]) == ["00_good"]
    assert (out / "figures" / "my" / "tiny.png").is_file()
    assert (out / "figures" / "my" / "tiny.svg").is_file()
    result = load_json(out / "results" / "my" / "tiny.json")
    assert result["epochs"] == 3 and result["config"]["train"]["epochs"] == 3  # overrides passed
    assert result["params"] == "mine"
    executed = nbformat.read(out / "executed" / "my" / "00_good.ipynb", as_version=4)
    shown = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs
             if "image/png" in o.get("data", {})]
    assert len(shown) == 1  # inline figures even though the tests run with MPLBACKEND=Agg
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and json.dumps("out/figures/my") in injected[0].source
    assert not list((out / "executed" / "my").glob(".*.ipynb"))  # build copies removed
    page = out / "executed" / "my" / "00_good.html"  # the executed notebook as HTML, beside it
    assert Path(summary["notebooks"]["00_good"]["html"]).resolve() == page
    assert "data:image/png;base64," in page.read_text()  # the figure, embedded
    index = out / "executed" / "my" / "index.html"
    assert Path(summary["index"]).resolve() == index
    links = [href for _, href in links_of(index)]
    assert "00_good.html" in links and "00_good.ipynb" in links
    assert "../../figures/my/tiny.png" in links and (index.parent / "../../figures/my/tiny.png").is_file()
    # the published copy: the executed notebook with its run's record in its metadata
    published = out / "notebooks" / "executed" / "00_good.ipynb"
    assert Path(summary["notebooks"]["00_good"]["published"]).resolve() == published
    copy = nbformat.read(published, as_version=4)
    assert [c.source for c in copy.cells] == [c.source for c in executed.cells]
    record = copy.metadata["mom"]
    assert record["params"] == "my" and record["overrides"] == ["train.epochs=3"]
    assert record["seconds"] > 0 and record["hardware"]["cores"] >= 1 and record["hardware"]["cpu"]
    from mom.io import sha256_file
    assert record["results"] == {"tiny.json": sha256_file(out / "results" / "my" / "tiny.json")}
    listing = (out / "notebooks" / "executed" / "README.md").read_text()
    assert "| [00_good](00_good.ipynb) | `my + train.epochs=3` |" in listing

    with pytest.raises(NotebookError) as info:
        reproduce("smoke", out, notebook_dir=src, progress=False)
    err = info.value
    # executed cells: parameters [1], injected [2], x = 1 [3], raise [4]; markdown is index 0
    assert (err.notebook, err.cell, err.cell_index) == ("01_bad", 4, 4)
    assert "01_bad" in str(err) and "broken on purpose" in str(err) and "[4]" in str(err)
    assert not (out / "executed" / "smoke" / "02_never.ipynb").exists()  # the batch stopped
    assert not (out / "notebooks" / "executed" / "01_bad.ipynb").exists()  # a failure is not published
    failed = out / "executed" / "smoke" / "01_bad.html"  # the traceback, readable in a browser
    assert "broken on purpose" in failed.read_text()
    links = [href for _, href in links_of(out / "executed" / "smoke" / "index.html")]
    assert "00_good.html" in links and "01_bad.html" in links and "02_never.html" not in links


def test_moved_numbers_reports_only_results_beyond_tolerance():
    from mom.companion.reproduce import TOLERANCE, moved_numbers
    before = {"study.json": {"rows": {"mom": {"nmi": {"mean": 60.0, "ci95": [59.0, 61.0], "n": 5},
                                              "recall@1": {"mean": 92.0, "n": 5}}},
                             "paired": {"mom-initial": {"nmi": {"mean": 1.0, "p": 0.06}}},
                             "timings_s": {"total": 100.0}, "config": {"train": {"lr": 0.1}}},
              "old_only.json": {"nmi": 1.0}}
    after = {"study.json": {"rows": {"mom": {"nmi": {"mean": 61.5, "ci95": [59.5, 61.0], "n": 6},
                                             "recall@1": {"mean": 92.4, "n": 5}}},
                            "paired": {"mom-initial": {"nmi": {"mean": 1.0, "p": 0.5}}},
                            "timings_s": {"total": 300.0}, "config": {"train": {"lr": 0.5}}}}
    moved = moved_numbers(before, after)
    assert [(m["key"], m["before"], m["after"]) for m in moved] == [
        ("rows.mom.nmi.mean", 60.0, 61.5)]
    assert moved[0]["tolerance"] == TOLERANCE["nmi"] and moved[0]["file"] == "study.json"
    assert moved_numbers(before, before) == []
