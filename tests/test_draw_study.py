"""scripts/draw_study.py: notebook 01's study figures from a committed study file, and one
named error for a file that is not one."""
import importlib.util

from mom.companion.reproduce import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "draw_study.py"


def _script():
    spec = importlib.util.spec_from_file_location("draw_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_it_draws_the_four_study_figures_of_a_committed_study(tmp_path, capsys):
    study = REPO_ROOT / "results" / "omniglot" / "study.json"
    assert _script().main([str(study), str(tmp_path / "fig")]) == 0
    names = ("01_table1", "01_study_rows", "01_study_paired", "01_study_curves")
    for name in names:
        for ext in ("png", "svg"):
            assert (tmp_path / "fig" / f"{name}.{ext}").stat().st_size > 0, (name, ext)
    assert capsys.readouterr().out.split() == [f"{tmp_path / 'fig'}/{n}.png" for n in names]


def test_a_label_free_study_adds_its_paired_figure(tmp_path, capsys):
    study = REPO_ROOT / "results" / "default" / "study.json"  # default: both files committed
    none = REPO_ROOT / "results" / "default" / "study_none.json"
    assert _script().main([str(study), str(tmp_path), "--none", str(none)]) == 0
    assert capsys.readouterr().out.split()[-1] == f"{tmp_path}/01_study_none_paired.png"
    assert (tmp_path / "01_study_none_paired.svg").stat().st_size > 0


def test_a_file_that_is_not_a_study_is_one_named_error(tmp_path, capsys):
    bad = tmp_path / "study.json"
    bad.write_text('{"rows": {}}')
    assert _script().main([str(bad), str(tmp_path / "fig")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"draw_study: {bad} is not a readable study file") and err.count("\n") == 1
    assert not (tmp_path / "fig").exists()
    assert _script().main([str(tmp_path / "missing.json"), str(tmp_path / "fig")]) == 2
    assert "missing.json is not a readable study file" in capsys.readouterr().err
    study = REPO_ROOT / "results" / "omniglot" / "study.json"
    assert _script().main([str(study), str(tmp_path / "fig"), "--none", str(bad)]) == 2
    assert f"{bad} is not a readable study file" in capsys.readouterr().err
    assert not (tmp_path / "fig").exists()  # nothing drawn before every file is read
