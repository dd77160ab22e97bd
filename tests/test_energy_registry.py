"""Every energy and field by name, a user's class by import path, options from TOML tables and flags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

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


def _start_training(tmp_path: Path, out: Path, *flags: str, script: bool = False) -> subprocess.Popen:
    """``train`` in ``tmp_path``, where the user's module lies: under ``python -m`` with the folder on PYTHONPATH,
    or (``script``) as the installed ``continuous-gnn`` script, which finds it in the folder it runs from."""
    env = dict(os.environ)
    if script:
        program = [str(Path(sys.executable).with_name("continuous-gnn"))]
    else:
        program = [sys.executable, "-m", "continuous_gnn"]
        env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    return subprocess.Popen([*program, "train", "--dataset", "texas", "--splits", "0", "--epochs", "3", "--hidden", "8",
                             "--quiet", "--out", str(out), *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)


@pytest.mark.data
def test_a_user_energy_trains_from_the_command_line(tmp_path, data_root):
    (tmp_path / "user_energies.py").write_text(USER_MODULE)
    config = tmp_path / "user.toml"
    config.write_text('energy = "user_energies:ScaledDirichlet"\n\n[energy_options]\nscale = 0.5\nwell = 0.1\n')
    # The three commands run side by side: each spends most of its time importing torch and torch_geometric.
    common = ("--config", str(config), "--data-root", str(data_root))
    outs = [tmp_path / "direct.json", tmp_path / "adjoint.json", tmp_path / "bad.json"]
    processes = [_start_training(tmp_path, outs[0], *common),
                 _start_training(tmp_path, outs[1], *common, "--adjoint", "--method", "rk4", "--step-size", "0.5",
                                 "--energy-option", "well=0.2", script=True),
                 _start_training(tmp_path, outs[2], *common, "--energy", "user_energies:Nope")]
    (_, direct_err), (_, adjoint_err), (_, bad_err) = [p.communicate(timeout=300) for p in processes]
    assert processes[0].returncode == 0, direct_err
    assert processes[1].returncode == 0, adjoint_err
    direct, adjoint = json.loads(outs[0].read_text()), json.loads(outs[1].read_text())
    assert direct["config"]["energy"] == "user_energies:ScaledDirichlet"
    assert direct["config"]["energy_options"] == {"scale": 0.5, "well": 0.1}
    assert direct["splits"][0]["nfe_backward"] == [0, 0, 0]
    assert adjoint["config"]["energy_options"] == {"scale": 0.5, "well": 0.2}
    assert all(n > 0 for n in adjoint["splits"][0]["nfe_backward"])
    assert processes[2].returncode == 2 and "has no class 'Nope'" in bad_err and "Traceback" not in bad_err
    assert not outs[2].exists()


@pytest.mark.data
def test_a_user_energys_default_record_name_has_no_colon(tmp_path, data_root, monkeypatch):
    from continuous_gnn.cli import main

    (tmp_path / "user_energies.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "runs"
    out.mkdir()
    assert main(["train", "--dataset", "texas", "--splits", "0", "--epochs", "1", "--hidden", "8", "--quiet",
                 "--energy", "user_energies:ScaledDirichlet", "--data-root", str(data_root), "--out", str(out)]) == 0
    (record,) = out.iterdir()
    assert record.name.startswith("texas-user_energies_scaleddirichlet-") and ":" not in record.name
    assert json.loads(record.read_text())["config"]["energy"] == "user_energies:ScaledDirichlet"


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


@pytest.mark.parametrize("name, options, message", [
    ("attention_dirichlet", {"source": "False"}, r"option 'source' must be true or false; got 'False' \(TOML booleans"),
    ("allen_cahn", {"learnable": "no"}, "option 'learnable' must be true or false"),
    ("second_order", {"learnable": 1}, "option 'learnable' must be true or false"),
    ("graff", {"omega_value": "abc"}, "option 'omega_value' must be a number; got 'abc'"),
    ("attention_dirichlet", {"heads": 2.0}, "option 'heads' must be an integer; got 2.0"),
    ("grand_nl", {"key_channels": "abc"}, "option 'key_channels' must be an integer"),
    ("graff", {"w": 3}, "option 'w' must be a string"),
    ("dirichlet", {"foo": 1}, r"has no option\(s\) \['foo'\]; its options are: none"),
])
def test_an_option_of_the_wrong_type_is_refused_before_anything_is_built(name, options, message):
    # A value that is no TOML literal arrives as a string; taken as it is, `source="False"` is truthy and built the
    # energy with the source term on.
    with pytest.raises(ValueError, match=message):
        check_options(name, options)
    with pytest.raises(ValueError, match=message):
        RunConfig(energy=name, energy_options=options)


def test_options_of_the_declared_types_are_accepted():
    check_options("graff", {"omega_value": 2, "source": False, "w": "sum"})  # an integer is a number
    check_options("grand_nl", {"key_channels": None, "heads": 2})
    check_options("second_order", {"inner": "dirichlet", "damping": 0.5, "learnable": True})


def test_a_user_module_or_class_that_cannot_work_is_named_before_training(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "broken_syntax.py").write_text("def oops(:\n")
    (tmp_path / "raises_on_import.py").write_text("raise RuntimeError('no GPU here')\n")
    (tmp_path / "odd_energies.py").write_text(USER_MODULE + textwrap.dedent('''
        from continuous_gnn.fields import Field


        class NoEnergy(Energy):
            pass


        class NoForward(Field):
            pass


        class NeedsAlpha(Energy):
            def __init__(self, channels, alpha):
                super().__init__()
                self.channels, self.alpha = channels, alpha

            def energy(self, x, graph, x0=None):
                return self.alpha * x.square().sum()


        class RefusesAlpha(NeedsAlpha):
            def __init__(self, channels, alpha):
                if alpha < 0:
                    raise ValueError("alpha must be >= 0")
                super().__init__(channels, alpha)
    '''))
    with pytest.raises(ValueError, match="importing module 'broken_syntax' failed with SyntaxError"):
        flow_class("broken_syntax:Anything")
    with pytest.raises(ValueError, match="importing module 'raises_on_import' failed with RuntimeError: no GPU here"):
        flow_class("raises_on_import:Anything")
    with pytest.raises(ValueError, match=r"NoEnergy does not define energy\(x, graph, x0=None\)"):
        RunConfig(energy="odd_energies:NoEnergy")
    with pytest.raises(ValueError, match=r"NoForward does not define forward"):
        RunConfig(energy="odd_energies:NoForward")
    with pytest.raises(ValueError, match=r"needs the option\(s\) \['alpha'\]"):
        RunConfig(energy="odd_energies:NeedsAlpha")
    config = RunConfig(energy="odd_energies:NeedsAlpha", energy_options={"alpha": 0.5})
    assert build_model(config, 4, 3).energy.alpha == 0.5
    with pytest.raises(ValueError, match=r"^energy 'odd_energies:RefusesAlpha': its constructor refused the options "
                                         r"\{'alpha': -1.0, 'channels': 64\}: alpha must be >= 0$"):
        build_model(RunConfig(energy="odd_energies:RefusesAlpha", energy_options={"alpha": -1.0}), 4, 3)


def test_the_cli_refuses_a_bad_energy_option_before_reading_data(tmp_path, capsys):
    from continuous_gnn.cli import main

    argv = ["train", "--dataset", "texas", "--energy", "attention_dirichlet", "--energy-option", "source=False",
            "--data-root", str(tmp_path / "none"), "--no-download", "--out", str(tmp_path / "r.json")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "option 'source' must be true or false" in err and "Traceback" not in err


def test_the_cli_refuses_graff_fields_typed_for_an_energy_that_does_not_read_them(tmp_path, capsys):
    from continuous_gnn.cli import main

    base = ["train", "--dataset", "texas", "--data-root", str(tmp_path / "none"), "--no-download",
            "--out", str(tmp_path / "r.json")]
    assert main([*base, "--energy", "dirichlet", "--w", "sum"]) == 2
    err = capsys.readouterr().err
    assert "--w configures the GRAFF energy, but the energy is 'dirichlet', which does not read it" in err
    assert main([*base, "--energy", "second_order", "--energy-option", "inner=dirichlet", "--omega", "zero",
                 "--no-source"]) == 2
    assert "--omega, --source configure the GRAFF energy, but the energy is second_order over 'dirichlet'" in (
        capsys.readouterr().err)
    # GRAFF reads them, also as second_order's default inner energy: no usage error (the missing data stops it).
    for energy in ("graff", "second_order"):
        main([*base, "--energy", energy, "--w", "sum"])
        assert "configures the GRAFF energy" not in capsys.readouterr().err
    # Set by a file (presets and saved configs carry every field), they are noted, not refused.
    config = tmp_path / "grand.toml"
    config.write_text('energy = "attention_dirichlet"\nw = "diag_dom"\nw_learnable = false\n')
    main([*base, "--config", str(config)])
    err = capsys.readouterr().err
    assert ("note: the energy is 'attention_dirichlet', so w_learnable = false, a field of the GRAFF energy, "
            "changes nothing") in err


def test_a_whole_number_for_a_float_option_is_passed_as_a_float(tmp_path, monkeypatch):
    (tmp_path / "typed_energies.py").write_text(textwrap.dedent('''
        import torch
        from torch import nn
        from continuous_gnn.energies import Energy


        class Typed(Energy):
            def __init__(self, scale: float = 1.0, steps: int = 1):
                super().__init__()
                self.scale = nn.Parameter(torch.tensor(scale))  # an int here would make an integer tensor
                self.steps = steps

            def energy(self, x, graph, x0=None):
                return 0.5 * self.scale * (x * graph.laplacian(x)).sum()
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    built = build_named("typed_energies:Typed", 4, {"scale": 2, "steps": 3})  # as TOML or --energy-option give them
    assert built.scale.dtype == torch.float32 and built.scale.item() == 2.0
    assert built.steps == 3 and isinstance(built.steps, int)


def test_an_unknown_graff_option_names_the_one_table_option_and_the_config_fields():
    # The constructor's list named w, omega, ... as options, which the config then refused as config fields.
    with pytest.raises(ValueError, match=r"energy 'graff' has no option\(s\) \['bogus'\]; its \[energy_options\] "
                                         r"take only omega_value, and its other settings are config fields at the "
                                         r"top level: w, omega, source, w_learnable"):
        RunConfig(energy="graff", energy_options={"bogus": 1})
    assert RunConfig(energy="graff", w="sum", energy_options={"omega_value": 2.0}).energy_options == {"omega_value": 2.0}
