"""The top-level API: one shape, ``stage(data, cfg, *, ...)``, every name lazily importable."""
import importlib
import inspect
import subprocess
import sys
import types

import mom


def test_every_public_name_resolves_and_no_module_shadows_a_function():
    for name in mom.__all__:
        assert getattr(mom, name) is not None, name
    for module in ("extract", "finetune", "metrics", "mining", "pipeline", "studies"):
        importlib.import_module(f"mom.{module}")  # a submodule import sets mom.<module>
    for name in ("embed", "mine", "fit", "evaluate", "run", "study", "build_splits"):
        assert inspect.isfunction(getattr(mom, name)), name
        assert not isinstance(getattr(mom, name), types.ModuleType)


def test_stages_take_their_config_second_and_no_config_field_as_a_keyword():
    for fn, cfg_type in ((mom.embed, "EmbedConfig"), (mom.mine, "MiningConfig"),
                         (mom.fit, "TrainConfig"), (mom.evaluate, "EvalConfig")):
        params = list(inspect.signature(fn).parameters.values())
        cfg = [p for p in params if cfg_type in str(p.annotation)]
        assert cfg and cfg[0].name == "cfg", fn.__name__
    embed = inspect.signature(mom.embed).parameters
    assert not {"backbone", "pooling", "image_size", "batch_size"} & set(embed)
    assert embed["device"].default is None and embed["device"].kind is inspect.Parameter.KEYWORD_ONLY


def test_importing_mom_does_not_import_torch():
    code = "import sys, mom; mom.EmbedConfig(); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
