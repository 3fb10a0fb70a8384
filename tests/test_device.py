"""--device: names, the fallback of ``auto`` when DGL cannot use a GPU torch sees, and which
GPU a parallel worker takes. This machine has no GPU; the cases where torch sees one are made
by patching torch's answers, while DGL's probe runs for real (and fails, as a CPU-only DGL
build does on a GPU machine)."""

import subprocess

import dgl
import pytest
import torch

from dgl_ssm_bench import device as devices
from dgl_ssm_bench.cli import main
from dgl_ssm_bench.device import check_device_name, resolve_device, use_gpu_of_worker


@pytest.fixture
def fresh_probe():
    devices._cuda_problem.cache_clear()
    yield
    devices._cuda_problem.cache_clear()


@pytest.fixture
def torch_sees_gpus(monkeypatch, fresh_probe):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_device_names():
    for name in ("auto", "cpu", "cuda", "cuda:0", "cuda:12"):
        assert check_device_name(name) == name
    for name in ("mps", "gpu", "cuda:", "cuda:x", "CPU", 0):
        with pytest.raises(ValueError, match=r"Unknown device .*Valid: auto, cpu, cuda, or cuda:N"):
            check_device_name(name)


def test_without_a_gpu_auto_is_the_cpu_and_cuda_is_refused(fresh_probe, recwarn):
    assert resolve_device("auto") == torch.device("cpu") and not recwarn.list
    for name in ("cuda", "cuda:1"):
        with pytest.raises(RuntimeError, match=f"device {name} was asked for, but torch sees no"):
            resolve_device(name)


def test_a_gpu_dgl_cannot_use_is_named_and_auto_falls_back_to_the_cpu(torch_sees_gpus):
    with pytest.warns(RuntimeWarning, match="--device auto runs on the CPU: DGL cannot put a"):
        assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(RuntimeError, match="DGL's PyPI build is CPU-only.*see README, GPU"):
        resolve_device("cuda")
    with pytest.raises(RuntimeError, match=r"torch sees 2 CUDA device\(s\), cuda:0 … cuda:1"):
        resolve_device("cuda:2")


def test_dgls_probe_of_a_gpu_runs_in_another_process(torch_sees_gpus, monkeypatch):
    # A CUDA context made by the probe would hold GPU memory in a parent that only checks
    # the option: here no graph may be moved in this process, while the answer is the same.
    moved = []
    monkeypatch.setattr(dgl.DGLGraph, "to", lambda graph, *args, **kwargs: moved.append(args))
    with pytest.warns(RuntimeWarning, match=r"DGL cannot put a graph on it \(.+\); DGL's PyPI"):
        assert resolve_device("auto") == torch.device("cpu")
    assert moved == []


def test_the_probes_reason_is_its_own_line_or_what_ended_it(torch_sees_gpus, monkeypatch):
    dgl_says = "Setting the default backend to pytorch."  # DGL's first import, on stdout
    for stdout, code, reason in [
        (f"{dgl_says}\ndgl-ssm probe: Device API cuda is not enabled.\n", 1,
         "(Device API cuda is not enabled.)"),
        (f"{dgl_says}\n", -11, "(the probe was killed by SIGSEGV)"),
        (f"{dgl_says}\n", 1, "(ImportError: libcudart.so.12)"),
    ]:  # fmt: skip
        done = subprocess.CompletedProcess(
            [], code, stdout, "Traceback\nImportError: libcudart.so.12\n"
        )
        monkeypatch.setattr(subprocess, "run", lambda args, done=done, **_: done)
        devices._cuda_problem.cache_clear()
        with pytest.raises(RuntimeError) as refused:
            resolve_device("cuda")
        assert f"DGL cannot put a graph on it {reason}; DGL's PyPI" in str(refused.value)


def test_parallel_workers_take_the_gpus_in_turn(torch_sees_gpus, monkeypatch):
    chosen = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    use_gpu_of_worker(1, "auto")  # DGL's CPU-only build: no GPU is made current, none used
    assert chosen == []
    # A CUDA build of DGL: its probe succeeds.
    monkeypatch.setattr(subprocess, "run", lambda args, **_: subprocess.CompletedProcess(args, 0))
    devices._cuda_problem.cache_clear()
    for index in range(5):
        use_gpu_of_worker(index, "auto")
    assert chosen == [0, 1, 0, 1, 0]
    for device in ("cpu", "cuda:1"):  # no CUDA context for CPU runs; cuda:N stays put
        use_gpu_of_worker(0, device)
    assert len(chosen) == 5


def test_a_bad_device_is_one_line_before_any_work(capsys):
    with pytest.raises(SystemExit) as exited:  # argparse: its usage line, then the error
        main(["run", "--device", "mps"])
    (error,) = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert exited.value.code == 2 and "--device: Unknown device 'mps'" in error


def test_a_gpu_index_followed_by_anything_is_no_device():
    for name in ("cuda:0x", "cuda:1 ", "cuda:1,2"):
        with pytest.raises(ValueError, match="Unknown device"):
            check_device_name(name)


def test_reproduce_runs_every_cell_on_the_device_asked_for(tmp_path, capsys, fresh_probe):
    # The plan's cells say "auto"; --device cuda is theirs, and without a GPU refused at once.
    argv = ["reproduce", "--part", "gpp", "--list", "--out", str(tmp_path)]
    assert main([*argv, "--device", "cuda"]) == 2
    assert "device cuda was asked for, but torch sees no CUDA device" in capsys.readouterr().err
    assert main([*argv, "--device", "cpu"]) == 0


def test_auto_and_cuda_run_on_the_gpu_a_worker_made_current(torch_sees_gpus, monkeypatch):
    # use_gpu_of_worker made GPU 1 current in worker 1: its runs go there, not to GPU 0.
    monkeypatch.setattr(subprocess, "run", lambda args, **_: subprocess.CompletedProcess(args, 0))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    for name in ("auto", "cuda"):
        assert resolve_device(name) == torch.device("cuda", 1)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
