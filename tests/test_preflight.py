"""What a config is checked for before its dataset loads: splits, energy options, parameters that fit in memory."""

from __future__ import annotations

import textwrap

import pytest
import torch

from continuous_gnn.fields.registry import FLOWS
from continuous_gnn.training import RunConfig, build_model, check_before_loading, preflight
from continuous_gnn.training.preflight import check_splits, flow_parameters, missing_splits, training_bytes


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_the_meta_count_is_the_built_flows_parameter_count(name):
    config = RunConfig(energy=name, hidden=8)
    built = build_model(config, num_features=5, num_classes=3).flow
    assert flow_parameters(config) == sum(p.numel() for p in built.parameters())


def test_time_dependent_weights_count_every_piece():
    one = flow_parameters(RunConfig(hidden=8))
    assert flow_parameters(RunConfig(hidden=8, time_dependent=True, time=3.0, step_size=0.5)) == 6 * one


def test_missing_splits_are_named_compactly():
    assert missing_splits([0, 1, 9], 10) is None
    assert missing_splits([3, 12], 10) == "[12]"
    assert missing_splits(range(0, 51), 10) == "10..50"
    assert missing_splits([10, 12, 14, 16, 18, 20], 10) == "[10, 12, 14, 16, 18, 20]"
    with pytest.raises(ValueError, match=r"dataset 'texas' has splits 0..9; split\(s\) 10..50 do not exist"):
        check_splits("texas", range(51), 10)


def test_a_flow_too_large_for_the_memory_is_refused_before_anything_is_allocated(monkeypatch):
    config = RunConfig(hidden=1024)
    needed = training_bytes(flow_parameters(config))
    assert needed >= 16 * 1024 * 1024  # W alone is 1024 x 1024 float32, held four times
    monkeypatch.setattr(preflight, "available_memory", lambda device: needed // 2)
    with pytest.raises(ValueError, match=r"has 1,050,625 parameters, and training them holds at least 16.0 MiB "
                                         r"\(weights, gradients .*\), but 8.0 MiB of memory is available on cpu; "
                                         r"lower hidden$"):
        check_before_loading(config)
    monkeypatch.setattr(preflight, "available_memory", lambda device: needed - 1)
    with pytest.raises(ValueError, match="lower hidden"):
        check_before_loading(config)
    monkeypatch.setattr(preflight, "available_memory", lambda device: needed)
    check_before_loading(config)
    monkeypatch.setattr(preflight, "available_memory", lambda device: None)  # unknown: not checked
    check_before_loading(config)


def test_the_hosts_available_memory_is_read():
    available = preflight.available_memory(torch.device("cpu"))
    assert available is None or 0 < available
    assert preflight.available_memory(torch.device("meta")) is None


def test_energy_options_and_splits_are_checked(monkeypatch):
    with pytest.raises(ValueError, match="heads must be a positive integer, got 0"):
        check_before_loading(RunConfig(energy="attention_dirichlet", energy_options={"heads": 0}))
    with pytest.raises(ValueError, match=r"split\(s\) \[10\] do not exist"):
        check_before_loading(RunConfig(dataset="texas", splits=(0, 10)), num_splits=10)
    check_before_loading(RunConfig(dataset="texas", splits=(0, 10)))  # the split count is not known: not checked


def test_a_device_the_machine_lacks_is_refused_before_loading(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="device 'cuda:1' was requested but CUDA is not available; use --device cpu"):
        check_before_loading(RunConfig(device="cuda:1"))
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ValueError, match="device 'mps' was requested but MPS is not available"):
        check_before_loading(RunConfig(device="mps"))


def test_a_user_class_that_needs_real_tensors_to_build_is_left_to_the_build(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "reads_a_value.py").write_text(textwrap.dedent('''
        import torch
        from torch import nn
        from continuous_gnn.energies import Energy


        class ReadsAValue(Energy):
            def __init__(self, channels):
                super().__init__()
                self.scale = nn.Parameter(torch.ones(()))
                self.start = float(self.scale.item())  # cannot be read on the meta device

            def energy(self, x, graph, x0=None):
                return self.scale * x.square().sum()
    '''))
    config = RunConfig(energy="reads_a_value:ReadsAValue")
    with pytest.raises((RuntimeError, NotImplementedError)):
        flow_parameters(config)
    check_before_loading(config)
    assert build_model(config, 4, 3).energy.start == 1.0


def test_the_cli_checks_splits_options_and_memory_before_reading_data(tmp_path, capsys):
    from continuous_gnn.cli import main

    # The data root does not exist: each error comes before any data is read.
    base = ["train", "--dataset", "texas", "--data-root", str(tmp_path / "none"), "--no-download",
            "--out", str(tmp_path / "r.json")]
    assert main([*base, "--splits", "0-50"]) == 2
    assert "dataset 'texas' has splits 0..9; split(s) 10..50 do not exist" in capsys.readouterr().err
    assert main([*base, "--energy", "attention_dirichlet", "--energy-option", "heads=0"]) == 2
    assert "heads must be a positive integer, got 0" in capsys.readouterr().err
    assert main([*base, "--hidden", "65536"]) == 2  # 4.3e9 parameters: 64 GiB before any activation
    assert "training them holds at least 64.0 GiB" in capsys.readouterr().err

    # study: the depth sweep's fresh models are only evaluated (float32 and a float64 copy); the homophily sweep
    # trains; both before any data is read or drawn
    study = ["study", "--data-root", str(tmp_path / "none"), "--hidden", "65536", "--quiet"]
    assert main([*study, "--dataset", "texas", "--out", str(tmp_path / "s")]) == 2
    assert "the work holds at least 48.0 GiB (3 float32 copies)" in capsys.readouterr().err
    assert main(["study", "--homophily-sweep", "0.5", "--hidden", "65536", "--quiet", "--out", str(tmp_path / "h")]) == 2
    assert "training them holds at least 64.0 GiB" in capsys.readouterr().err
    assert not (tmp_path / "s").exists() and not (tmp_path / "h").exists()


def test_the_number_of_copies_is_checked():
    for copies in (0, True, 2.0):
        with pytest.raises(ValueError, match="copies must be a positive int"):
            check_before_loading(RunConfig(), copies=copies)


def test_tune_checks_the_widest_hidden_of_its_search_space(monkeypatch):
    from continuous_gnn.cli.common import UsageError
    from continuous_gnn.cli.tune import _check_widest
    from continuous_gnn.training.search import largest_draw

    base = RunConfig(hidden=32)
    space = {"hidden": ("categorical", (32, 1024))}
    monkeypatch.setattr(preflight, "available_memory", lambda device: training_bytes(flow_parameters(base)) * 4)
    with pytest.raises(UsageError, match=r"a trial may draw hidden = 1024 from the search space, and then: the graff "
                                         r"flow of width hidden = 1024 .*narrow the space's choices of hidden, or "
                                         r"keep it out of the search$"):
        _check_widest(base, space)
    _check_widest(base, {"hidden": ("categorical", (16, 32))})  # no wider than the start, which was checked
    _check_widest(base, {"lr": ("uniform", (0.001, 0.01))})
    # Time-dependent weights: one W per piece, so a longer time with a shorter step draws more parameters; the
    # shortest step is found whether it comes before or after the longest time in the space.
    timed = RunConfig(hidden=32, time_dependent=True, time=1.0, step_size=1.0)
    for space in ({"step_size": ("categorical", (0.25, 1.0)), "time": ("uniform", (1.0, 8.0))},
                  {"time": ("uniform", (1.0, 8.0)), "step_size": ("categorical", (1.0, 0.25))}):
        largest, drawn = largest_draw(timed, space)
        assert drawn == {"step_size": 0.25, "time": 8.0}
        assert flow_parameters(largest) == 32 * flow_parameters(timed)
        with pytest.raises(UsageError, match=r"a trial may draw (step_size = 0.25, time = 8.0|time = 8.0, step_size "
                                             r"= 0.25) from .* or time_pieces; narrow the space's choices of "
                                             r"(step_size, time|time, step_size), or keep them out of the search$"):
            _check_widest(timed, space)
    monkeypatch.setattr(preflight, "available_memory", lambda device: None)
    _check_widest(base, space)
