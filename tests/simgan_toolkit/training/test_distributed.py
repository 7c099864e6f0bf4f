"""Multi-process SimGAN with DDP: two CPU processes (gloo), started as torchrun would start them.

One launch (module fixture, ~15 s on 2 cores) runs ``ddp_worker.py`` on ranks 0 and 1: a tiny
trainer interrupted and resumed from rank 0's checkpoint, then the whole job through the CLI.
Each rank saves its weights, the records it logged and every write it made under the run
folders (an audit hook) into a results folder; the tests compare them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from simgan_toolkit.errors import ConfigError
from simgan_toolkit.training import distributed as dist_utils

WORKER = Path(__file__).with_name("ddp_worker.py")
WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("ddp")
    out, results = base / "out", base / "results"
    results.mkdir()
    port = _free_port()
    procs = []
    for rank in range(WORLD):
        env = {
            **os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(WORLD), "LOCAL_WORLD_SIZE": str(WORLD),
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1",
        }
        log = (base / f"rank{rank}.log").open("w")
        procs.append((subprocess.Popen([sys.executable, str(WORKER), str(out), str(results)], env=env, stdout=log,
                                       stderr=subprocess.STDOUT, cwd=base), log))
    try:
        codes = [p.wait(timeout=180) for p, _ in procs]
    finally:
        for p, log in procs:
            if p.poll() is None:
                p.kill()
            log.close()
    logs = "\n".join(f"--- rank {r}\n" + (base / f"rank{r}.log").read_text()[-4000:] for r in range(WORLD))
    assert codes == [0] * WORLD, logs
    ranks = [torch.load(results / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    return {"out": out, "ranks": ranks, "logs": logs}


def _same_weights(a, b) -> bool:
    return all(a[net].keys() == b[net].keys() and all(torch.equal(a[net][k], b[net][k]) for k in a[net])
               for net in ("refiner", "discriminator"))


def test_weights_stay_identical_across_ranks(ddp_run):
    r0, r1 = ddp_run["ranks"]
    assert r0["trainer"]["distributed"] and r0["trainer"]["world_size"] == WORLD
    assert _same_weights(r0["trainer"]["interrupted"], r1["trainer"]["interrupted"])
    assert _same_weights(r0["trainer"]["final"], r1["trainer"]["final"])  # after resuming from rank 0's checkpoint
    assert r0["pipeline"]["distributed"] and r1["pipeline"]["distributed"]
    assert _same_weights(r0["pipeline"]["final"], r1["pipeline"]["final"])


def test_ranks_draw_their_own_batches_and_log_the_same_averaged_records(ddp_run):
    r0, r1 = ddp_run["ranks"]
    assert not torch.equal(r0["trainer"]["first_batch"], r1["trainer"]["first_batch"])
    # on_log saw the same records everywhere (all-reduced means), up to the interrupt.
    assert r0["trainer"]["records"] == r1["trainer"]["records"]
    assert (r0["trainer"]["records"][-1]["phase"], r0["trainer"]["records"][-1]["step"]) == ("adversarial", 3)
    records = [json.loads(line) for line in (ddp_run["out"] / "trainer" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["phase"], r["step"]) for r in records] == (
        [("refiner_pretrain", 1), ("refiner_pretrain", 2), ("discriminator_pretrain", 1), ("discriminator_pretrain", 2)]
        + [("adversarial", i) for i in range(1, 6)]
    )
    # The resumed run kept the records up to its checkpoint (adversarial 2) from the first run.
    assert records[:6] == r0["trainer"]["records"][:6]


def test_every_rank_resumes_from_rank_0s_checkpoint_with_its_own_streams(ddp_run):
    r0, r1 = ddp_run["ranks"]
    for r in (r0, r1):
        assert r["trainer"]["resumed_from"] == ("adversarial", 2)
        assert r["trainer"]["phase_step"] == ("adversarial", 5)
    assert not torch.equal(r0["trainer"]["index_gen"], r1["trainer"]["index_gen"])
    state = torch.load(ddp_run["out"] / "trainer" / "checkpoints" / "last.pt", weights_only=False)
    assert (state["phase"], state["step"]) == ("adversarial", 5)
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in state["refiner"])  # the plain modules
    for k, v in r0["trainer"]["final"]["refiner"].items():
        assert torch.equal(state["refiner"][k], v)


def test_only_rank_0_writes_files(ddp_run):
    r0, r1 = ddp_run["ranks"]
    assert r1["writes"] == []
    written = {Path(w.split(" ", 1)[1]).name for w in r0["writes"]}
    assert {"metrics.jsonl", "config.json", "last.pt", "summary.json", "refined.h5"} <= written
    pipeline = ddp_run["out"] / "pipeline"
    for name in ("config.json", "summary.json", "refined.h5", "metrics.jsonl", "checkpoints/last.pt",
                 "estimators/synthetic.pt", "estimators/refined.json", "samples/step_000004.png"):
        assert (pipeline / name).is_file(), name
    summary = json.loads((pipeline / "summary.json").read_text())
    assert summary["environment"]["world_size"] == WORLD
    assert set(summary["estimators"]) == {"synthetic", "refined", "target"}
    assert r0["pipeline"]["code"] == 0 and r1["pipeline"]["code"] == 0
    assert "[simgan]" in ddp_run["logs"].split("--- rank 1")[0]
    assert "[simgan]" not in ddp_run["logs"].split("--- rank 1")[1]  # rank 1 prints nothing


# ---------------------------------------------------------------------- in-process unit tests
def test_single_process_is_not_distributed(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert dist_utils.setup("cpu") is None
    assert (dist_utils.rank(), dist_utils.world_size(), dist_utils.is_main()) == (0, 1, True)
    dist_utils.barrier()  # no-op
    assert dist_utils.broadcast_object("x") == "x"
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    assert dist_utils.setup("auto") is None  # no MASTER_ADDR/PORT: not torchrun
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    assert dist_utils.launched_by_torchrun()  # torchrun --nproc_per_node 1: a one-process group


def test_rank_devices(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert dist_utils.rank_device("cpu", 1) == torch.device("cpu")
    with pytest.raises(ConfigError, match="names one GPU"):
        dist_utils.rank_device("cuda:1", 0)
    with pytest.raises(ConfigError, match="'cuda' or 'cpu'"):
        dist_utils.rank_device("meta", 0)
    if not torch.cuda.is_available():
        assert dist_utils.rank_device("auto", 3) == torch.device("cpu")
        with pytest.raises(ConfigError, match="CUDA is not available"):
            dist_utils.rank_device("cuda", 0)


def test_bad_torchrun_environment_is_a_config_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ConfigError, match="WORLD_SIZE"):
        dist_utils.setup("cpu")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(ConfigError, match="RANK"):
        dist_utils.setup("cpu")


def test_distributed_trainer_needs_a_process_group(tiny_config, make_trainer, monkeypatch):
    from simgan_toolkit.training import trainer as trainer_module

    real_init = trainer_module.SimGANTrainer.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, distributed=True, **kwargs)

    monkeypatch.setattr(trainer_module.SimGANTrainer, "__init__", init)
    with pytest.raises(ValueError, match="process group"):
        make_trainer(tiny_config())
