"""Every energy and field by name, a user's class by import path, options from TOML tables and flags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from continuous_gnn.energies import Energy
from continuous_gnn.fields import Field
from continuous_gnn.fields.registry import FLOWS, build_named, check_options, flow_class
from continuous_gnn.training import RunConfig, build_model, config_to_toml, read_config_file, resolve_config
from continuous_gnn.training.config_io import dropped_energy_options

USER_MODULE = textwrap.dedent('''
    import torch
    from torch import nn
    from continuous_gnn.energies import Energy


    class ScaledDirichlet(Energy):
        """Only energy(): autograd gives the gradient."""

        def __init__(self, channels, scale=1.0, well=0.0):
            super().__init__()
            self.channels = channels
            self.scale = nn.Parameter(torch.tensor(float(scale)))
            self.well = float(well)

        def energy(self, x, graph, x0=None):
            self.check_input(x, graph)
            return 0.5 * self.scale * (x * graph.laplacian(x)).sum() + self.well * torch.log(torch.cosh(x)).sum()
''')


@pytest.mark.parametrize("name", list(FLOWS))
def test_every_name_builds_a_model(name):
    config = RunConfig(energy=name, hidden=6)
    model = build_model(config, 4, 3)
    assert isinstance(model.flow, Field)
    built = build_named(name, 6)
    assert isinstance(built, (Energy, Field)) and (built.channels in (None, 6))


def test_unknown_names_and_bad_paths_say_what_is_wrong(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"unknown energy 'atention_dirichlet' \(did you mean 'attention_dirichlet'\?\); "
                                         r"choose one of: graff, dirichlet"):
        RunConfig(energy="atention_dirichlet")
    with pytest.raises(ValueError, match="cannot import module 'no_such_module'"):
        flow_class("no_such_module:Thing")
    (tmp_path / "user_energies.py").write_text(USER_MODULE + "\nclass NotAnEnergy:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="has no class 'Missing'"):
        flow_class("user_energies:Missing")
    with pytest.raises(ValueError, match="NotAnEnergy is not a continuous_gnn Energy or Field"):
        flow_class("user_energies:NotAnEnergy")
    with pytest.raises(ValueError, match="must read module.path:ClassName"):
        flow_class("user_energies:")
    with pytest.raises(ValueError, match=r"has no option\(s\) \['heads'\]; its options are: scale, well"):
        check_options("user_energies:ScaledDirichlet", {"heads": 2})
    assert flow_class("user_energies:ScaledDirichlet").__name__ == "ScaledDirichlet"


def test_options_come_from_a_toml_table_and_from_flags(tmp_path):
    path = tmp_path / "acmp.toml"
    path.write_text('dataset = "texas"\nenergy = "allen_cahn"\n\n[energy_options]\nwell = 0.5\nlearnable = false\n')
    layer = read_config_file(path)
    config = resolve_config(layer, {"energy_options": {"repulsion": 2.0}})
    assert config.energy_options == {"well": 0.5, "learnable": False, "repulsion": 2.0}
    model = build_model(config.replace(hidden=4), 3, 2)
    beta, delta = model.energy.coefficients()
    assert float(beta[0]) == 2.0 and float(delta[0]) == 0.5 and not model.energy.learnable
    # The TOML writer puts the options in their table, and reading it back gives the same config.
    written = tmp_path / "written.toml"
    written.write_text(config_to_toml(config))
    assert resolve_config(read_config_file(written)) == config
    # Choosing another energy in a higher layer drops the options of the one it replaced, and says which.
    assert resolve_config(layer, {"energy": "dirichlet"}).energy_options == {}
    assert dropped_energy_options(layer, {"energy": "dirichlet"}, sources=["file", "flags"]) == [
        ("file", "allen_cahn", ["learnable", "well"])]
    assert dropped_energy_options(layer, {"energy_options": {"repulsion": 2.0}}) == []
    assert dropped_energy_options(layer, {"energy": "allen_cahn"}) == []  # the same energy chosen again
    bad = tmp_path / "bad.toml"
    bad.write_text('[energy_options]\nwell = {a = 1}\n')
    with pytest.raises(ValueError, match="energy_options.well must be a number, string, boolean"):
        read_config_file(bad)
    nested = tmp_path / "nested.toml"
    nested.write_text('[other]\nx = 1\n')
    with pytest.raises(ValueError, match=r"tables \['other'\] are not supported.*\[energy_options\]"):
        read_config_file(nested)


def _train(tmp_path: Path, *flags: str) -> dict:
    out = tmp_path / f"record{len(list(tmp_path.glob('record*')))}.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "continuous_gnn", "train", "--dataset", "texas", "--splits", "0",
                           "--epochs", "3", "--hidden", "8", "--quiet", "--out", str(out), *flags],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())


@pytest.mark.data
def test_a_user_energy_trains_from_the_command_line(tmp_path, data_root):
    (tmp_path / "user_energies.py").write_text(USER_MODULE)
    config = tmp_path / "user.toml"
    config.write_text('energy = "user_energies:ScaledDirichlet"\n\n[energy_options]\nscale = 0.5\nwell = 0.1\n')
    direct = _train(tmp_path, "--config", str(config), "--data-root", str(data_root))
    assert direct["config"]["energy"] == "user_energies:ScaledDirichlet"
    assert direct["config"]["energy_options"] == {"scale": 0.5, "well": 0.1}
    assert direct["splits"][0]["nfe_backward"] == [0, 0, 0]
    adjoint = _train(tmp_path, "--config", str(config), "--data-root", str(data_root), "--adjoint",
                     "--method", "rk4", "--step-size", "0.5", "--energy-option", "well=0.2")
    assert adjoint["config"]["energy_options"] == {"scale": 0.5, "well": 0.2}
    assert all(n > 0 for n in adjoint["splits"][0]["nfe_backward"])
    bad = subprocess.run([sys.executable, "-m", "continuous_gnn", "train", "--dataset", "texas", "--energy",
                          "user_energies:Nope", "--data-root", str(data_root)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(tmp_path)}, cwd=tmp_path, timeout=120)
    assert bad.returncode == 2 and "has no class 'Nope'" in bad.stderr and "Traceback" not in bad.stderr


def test_the_cli_names_energy_options_that_another_energy_leaves_behind(tmp_path, capsys):
    from continuous_gnn.cli import main

    config = tmp_path / "acmp.toml"
    config.write_text('dataset = "texas"\nenergy = "allen_cahn"\n\n[energy_options]\nwell = 0.5\n')
    # The data root does not exist: the note comes from resolving the config, before any data is read.
    argv = ["train", "--config", str(config), "--energy", "dirichlet", "--data-root", str(tmp_path / "none"),
            "--no-download", "--out", str(tmp_path / "r.json")]
    main(argv)
    err = capsys.readouterr().err
    assert (f"note: the energy is dirichlet, so the allen_cahn options of the config file {config} (well) do not "
            "apply") in err
    main(argv[:3] + argv[5:])
    assert "note:" not in capsys.readouterr().err
