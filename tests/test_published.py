"""What the repository publishes, checked against itself: an executed copy of every
notebook in step with the committed results, figures that are referenced and distinct,
and the statements of the README and the parameter files against the numbers.

The executed copies (``notebooks/executed/``) are written by ``mom reproduce`` on a
real parameter file, never ``smoke``; after a change to a notebook or its results, run
the command docs/results.md gives (for the whole set: ``.venv/bin/mom reproduce
--params default``, then the notebooks another parameter file publishes) and commit
``notebooks/executed/``, ``results/`` and ``figures/`` together.
"""
from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import jupytext
import nbformat
import pytest

from mom.companion.claims import BEGIN, END, claims, markdown
from mom.companion.reproduce import REPO_ROOT, SMOKE, list_notebooks
from mom.io import load_json, sha256_file

NOTEBOOKS = list_notebooks()
EXECUTED = REPO_ROOT / "notebooks" / "executed"
README = REPO_ROOT / "README.md"
FIX = ("run `.venv/bin/mom reproduce --params PARAMS --notebooks NAME` (docs/results.md: "
       "Regenerating) and commit notebooks/executed/, results/ and figures/ together")


def _tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_has_an_executed_copy_in_step_with_the_committed_results(source):
    copy = EXECUTED / f"{source.stem}.ipynb"
    assert copy.is_file(), f"{source.name} has no executed copy {copy}: {FIX}"
    nb = nbformat.read(copy, as_version=4)
    record = nb.metadata.get("mom")
    assert record, f"{copy.name} was not written by mom reproduce: {FIX}"
    params = record["params"]
    assert params != SMOKE, f"{copy.name} ran the smoke parameters: publish a real parameter file"
    assert record["overrides"] == [], f"{copy.name} ran with overrides {record['overrides']}"
    # the parameters papermill injected are the ones recorded
    injected = [c for c in nb.cells if "injected-parameters" in _tags(c)]
    assert len(injected) == 1, f"{copy.name}: not executed by papermill"
    values = {node.targets[0].id: ast.literal_eval(node.value)
              for node in ast.parse(injected[0].source).body}
    assert Path(values["params"]).stem == params and values["overrides"] == []
    # the code that ran is the notebook's code as committed
    ran = [c.source for c in nb.cells if c.cell_type == "code" and "injected-parameters" not in _tags(c)]
    now = [c.source for c in jupytext.read(source, fmt="py:percent").cells if c.cell_type == "code"]
    assert ran == now, f"{source.name} changed since its executed copy ran: {FIX}"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.get("execution_count"), f"{copy.name}: a cell did not run"
            assert not [o for o in cell.outputs if o.output_type == "error"], copy.name
    # every results file it wrote is the committed one, of these parameters
    assert record["results"], f"{copy.name} wrote no results file"
    for name, digest in record["results"].items():
        path = REPO_ROOT / "results" / params / name
        assert path.is_file(), f"{copy.name} wrote {path}, which is not committed: {FIX}"
        assert sha256_file(path) == digest, (f"{path} is not the file the run of {copy.name} "
                                             f"wrote: {FIX}")
        if path.suffix == ".json":
            data = load_json(path)
            assert data["params"] == params and data["config"]["name"] == params, path


def _figures() -> list[Path]:
    return sorted(p for p in (REPO_ROOT / "figures").rglob("*") if p.is_file())


def test_no_smoke_output_among_the_committed_results():
    for folder in ("figures", "results"):
        assert not (REPO_ROOT / folder / SMOKE).exists(), \
            f"{folder}/{SMOKE}: the smoke parameters write under build/, never here"


def test_every_committed_figure_is_referenced_and_none_is_a_copy():
    figures = _figures()
    assert figures, "no figure committed"
    sources = [p.read_text() for p in NOTEBOOKS]
    docs = [README.read_text()] + [p.read_text() for p in (REPO_ROOT / "docs").glob("*.md")]
    unreferenced = []
    for fig in figures:
        rel = fig.relative_to(REPO_ROOT).as_posix()
        # a notebook saves it (save_figure(fig, f"{figures_dir}/<stem>")), or a page links it
        if not any(f'/{fig.stem}"' in s for s in sources) and not any(rel in d for d in docs):
            unreferenced.append(rel)
    assert not unreferenced, f"figures that no notebook writes and no page shows: {unreferenced}"
    digests: dict[str, str] = {}
    for fig in figures:
        digest = hashlib.sha256(fig.read_bytes()).hexdigest()
        assert digest not in digests, f"{fig.relative_to(REPO_ROOT)} is a copy of {digests[digest]}"
        digests[digest] = str(fig.relative_to(REPO_ROOT))


def test_the_readme_claims_table_is_the_one_the_committed_results_give():
    text = README.read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    block = text.split(BEGIN)[1].split(END)[0].strip()
    assert block == markdown(claims(REPO_ROOT / "results")), \
        "the README's claims table is stale: python -m mom.companion.claims --write README.md"
    assert "not run here" in block and "CUB-200-2011" in block and "Oxford5k" in block


def test_the_readme_is_a_front_page():
    text = README.read_text()
    lines = text.splitlines()
    assert len(lines) <= 210, f"README.md has {len(lines)} lines; the rest belongs in docs/"
    assert ".venv/bin/python -m pytest -q" in text  # the command .ci/run runs
    for source in NOTEBOOKS:  # each notebook linked by its executed copy
        assert f"notebooks/executed/{source.stem}.ipynb" in text, source.stem
    for page in ("docs/results.md", "docs/cli.md", "docs/scale.md", "docs/method.md",
                 "docs/design.md"):
        assert f"({page})" in text and (REPO_ROOT / page).is_file(), page


HISTORY = ("landing", "the issue's", "first default", "earlier commits", "this session")


@pytest.mark.parametrize("page", ["README.md", "docs/results.md", "docs/cli.md", "docs/scale.md",
                                  "docs/method.md", "docs/design.md",
                                  *[f"notebooks/{p.name}" for p in NOTEBOOKS]])
def test_no_page_speaks_of_the_projects_own_history(page):
    text = (REPO_ROOT / page).read_text().lower()
    found = [w for w in HISTORY if w in text]
    assert not found, f"{page} speaks of the project's history: {found}; say what is measured"


def test_the_default_parameter_comments_give_the_committed_depths():
    text = (REPO_ROOT / "params" / "default.yaml").read_text()
    depths = load_json(REPO_ROOT / "results" / "default" / "study_none.json")["depths"]
    assert f"c {depths['value']:.1f}: k+ {depths['k_pos']})" in text
    assert f"(here {depths['k_neg']})" in text


def test_the_omniglot_rows_are_the_committed_selection():
    """params/omniglot.yaml's rows are what its validation study selected."""
    from mom.config import load_params
    selected = load_json(REPO_ROOT / "results" / "omniglot" / "study.json")["selected"]
    rows = load_params("omniglot").rows
    for row, chosen in selected.items():
        assert {f"train.{k}": v for k, v in rows.of(row).items()} == chosen, row
