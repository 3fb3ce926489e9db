"""The number format and memory layout chosen at run time: CPU flags faked both ways, CUDA faked, the layout probe
and its cache, bf16 training resumed exactly, and what model.json records."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from safetensors.torch import load_file

from babyface import hardware
from babyface.config import TrainConfig
from babyface.errors import BabyfaceError
from babyface.hardware import CpuInfo, Precision, choose_channels_last, choose_precision, parse_cpuinfo
from babyface.models import create_model
from babyface.training.fit import fit

CPU = torch.device("cpu")
WITH_BF16 = CpuInfo("Fake EPYC", frozenset({"avx2", "avx512f", "avx512_bf16", "avx512_vnni"}), "AVX512", 2)
WITHOUT_BF16 = CpuInfo("Fake old EPYC", frozenset({"avx2", "fma"}), "AVX2", 2)

X86_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni
"""
ARM_CPUINFO = """processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd sve bf16 i8mm
"""


def test_cpuinfo_flags_are_read_on_x86_and_arm():
    model, flags = parse_cpuinfo(X86_CPUINFO)
    assert model == "AMD EPYC 9R14" and {"avx512_bf16", "avx512_vnni"} <= flags
    assert parse_cpuinfo(ARM_CPUINFO)[1] >= {"bf16", "i8mm"}


@pytest.mark.parametrize("cpu, expected", [(WITH_BF16, "bf16"), (WITHOUT_BF16, "fp32")])
def test_auto_picks_bf16_only_where_the_cpu_computes_it_natively(cpu, expected):
    choice = choose_precision("auto", CPU, cpu)
    assert choice.name == expected
    assert ("avx512_bf16" in choice.reason) == (expected == "bf16")


def test_amx_counts_as_native_bf16():
    assert choose_precision("auto", CPU, CpuInfo("Xeon", frozenset({"amx_bf16", "amx_tile"}), "AVX512", 2)).name == "bf16"


def test_explicit_bf16_without_native_support_warns_once_and_names_what_auto_would_pick(caplog):
    with caplog.at_level(logging.WARNING, logger="babyface"):
        choice = choose_precision("bf16", CPU, WITHOUT_BF16)
    assert choice.name == "bf16"
    [record] = caplog.records
    assert "emulated" in record.message and "auto would pick fp32" in record.message and "\n" not in record.message


def test_explicit_choices_are_kept_and_nothing_is_said_where_bf16_is_native(caplog):
    with caplog.at_level(logging.WARNING, logger="babyface"):
        assert choose_precision("bf16", CPU, WITH_BF16).name == "bf16"
        assert choose_precision("fp32", CPU, WITH_BF16).name == "fp32"
    assert not caplog.records


def test_unknown_precision_is_one_line():
    with pytest.raises(BabyfaceError, match="--precision 'fp8'"):
        choose_precision("fp8", CPU)


@pytest.mark.parametrize("bf16, expected", [(True, "bf16"), (False, "fp16")])
def test_auto_on_cuda_is_bf16_or_fp16_with_a_gradient_scaler(monkeypatch, bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    choice = choose_precision("auto", torch.device("cuda"))
    assert choice.name == expected and choice.needs_grad_scaler == (expected == "fp16")


def test_autocast_computes_in_the_chosen_dtype():
    layer = torch.nn.Linear(4, 4)
    with Precision("bf16").autocast(CPU):
        assert layer(torch.ones(2, 4)).dtype == torch.bfloat16
    with Precision("fp32").autocast(CPU):
        assert layer(torch.ones(2, 4)).dtype == torch.float32


def test_hardware_line_names_the_cpu_and_its_flags(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_info", lambda: WITH_BF16)
    line = hardware.describe_hardware(CPU)
    assert "Fake EPYC" in line and "native bf16 yes" in line and "int8 VNNI yes" in line and "AVX512" in line


# ---------------------------------------------------------------- layout

def test_explicit_layouts_are_not_measured(monkeypatch):
    monkeypatch.setattr(hardware, "_time_layouts", lambda *a, **k: pytest.fail("measured"))
    model = create_model("cnn", 3, 32)
    assert choose_channels_last("on", model, (4, 3, 32, 32), Precision("fp32"), CPU, train=True)[0] is True
    assert choose_channels_last("off", model, (4, 3, 32, 32), Precision("fp32"), CPU, train=True)[0] is False


@pytest.mark.parametrize("nhwc, expected", [(0.5, True), (0.97, False)])
def test_auto_layout_takes_channels_last_only_when_clearly_faster_and_remembers_it(monkeypatch, tmp_path, nhwc, expected):
    monkeypatch.setattr(hardware, "_time_layouts", lambda *a, **k: (1.0, nhwc))
    cache = tmp_path / "layouts.json"
    model = create_model("cnn", 3, 32)
    chosen, reason = choose_channels_last("auto", model, (4, 3, 32, 32), Precision("fp32"), CPU, train=True, cache=cache)
    assert chosen is expected and "measured" in reason
    monkeypatch.setattr(hardware, "_time_layouts", lambda *a, **k: pytest.fail("measured again"))
    assert choose_channels_last("auto", model, (4, 3, 32, 32), Precision("fp32"), CPU, train=True, cache=cache)[0] is expected
    assert len(json.loads(cache.read_text())) == 1


def test_layout_probe_leaves_the_model_and_the_random_state_alone():
    model = create_model("cnn", 3, 32).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    choose_channels_last("auto", model, (4, 3, 32, 32), Precision("fp32"), CPU, train=True)
    assert torch.equal(rng, torch.get_rng_state())
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert next(model.parameters()).is_contiguous()


# ---------------------------------------------------------------- training

def train(tiny_data, out, epochs, resume=False, **options):
    config = TrainConfig(data=str(tiny_data), out=str(out), model="cnn", epochs=epochs, seed=2, progress=False, **options)
    return fit(config, resume=resume)


def test_bf16_training_resumes_to_the_weights_of_an_uninterrupted_run(tiny_data, tmp_path):
    whole = train(tiny_data, tmp_path / "whole", 2, precision="bf16", channels_last="on")
    half = train(tiny_data, tmp_path / "half", 1, precision="bf16", channels_last="on")
    train(tiny_data, half, 2, resume=True, precision="bf16", channels_last="on")
    a, b = load_file(whole / "model.safetensors"), load_file(half / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(t.dtype == torch.float32 for t in a.values() if t.is_floating_point())  # weights are saved in fp32
    compute = json.loads((whole / "model.json").read_text())["compute"]
    assert compute["precision"] == "bf16" and compute["channels_last"] is True and compute["hardware"].startswith("CPU ")


def test_a_resumed_run_computes_as_it_began_whatever_the_options_now_say(tiny_data, tmp_path, caplog):
    run = train(tiny_data, tmp_path / "run", 1, precision="fp32", channels_last="off")
    with caplog.at_level(logging.INFO, logger="babyface"):
        train(tiny_data, run, 2, resume=True, precision="bf16", channels_last="on")
    compute = json.loads((run / "model.json").read_text())["compute"]
    assert compute["precision"] == "fp32" and compute["channels_last"] is False
    assert "as the run began (resumed)" in caplog.text


def test_config_yaml_of_earlier_versions_still_reads_channels_last_as_a_switch():
    assert TrainConfig(channels_last=True).channels_last == "on"
    assert TrainConfig(channels_last=False).channels_last == "off"
    with pytest.raises(BabyfaceError, match="--channels-last"):
        TrainConfig(channels_last="sometimes")
