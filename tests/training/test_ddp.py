"""Two processes on CPU (gloo): gradients synchronised, the ConStyle queue gathered, only rank 0 writes;
the smoke config under torchrun."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import torch
import torch.multiprocessing as mp
from training_setup import REPO, tiny_raw_config

from irconstyle.training import Trainer, config_from_dict
from irconstyle.training.checkpointing import latest_checkpoint, load_training_checkpoint, periodic_name
from irconstyle.training.config import load_config
from irconstyle.training.data import build_train_dataset
from irconstyle.training.distributed import shutdown_distributed

WORLD_SIZE = 2


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _rank_main(rank: int, port: int, raw_config: dict, output: str, summaries: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
        WORLD_SIZE=str(WORLD_SIZE),
    )
    try:
        trainer = Trainer(config_from_dict(raw_config), output_dir=output, progress=False)
        result = trainer.run()
        torch.save(
            {"iteration": result.iteration, "model": trainer.model.state_dict(),
             "optimizer": trainer.optimizer.state_dict()},
            os.path.join(summaries, f"rank{rank}.pt"),
        )
    finally:
        shutdown_distributed()


def test_two_gloo_processes_train_in_lockstep(tmp_path):
    batch, iterations = 2, 3
    raw = tiny_raw_config(**{"train.total_iters": iterations, "threads": 1, "data.train.batch_size": batch})
    output, summaries = tmp_path / "run", tmp_path / "summaries"
    summaries.mkdir()
    mp.start_processes(
        _rank_main, args=(_free_port(), raw, str(output), str(summaries)), nprocs=WORLD_SIZE, start_method="spawn"
    )
    ranks = [torch.load(summaries / f"rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]
    assert [r["iteration"] for r in ranks] == [iterations] * WORLD_SIZE
    # Same weights, buffers of the contrastive module and optimiser state on both ranks.
    for name, tensor in ranks[0]["model"].items():
        if ".running_" in name or "num_batches_tracked" in name:
            continue  # BatchNorm statistics are per rank (rank 0's are saved)
        assert torch.equal(tensor, ranks[1]["model"][name]), name
    # Every step enqueued the latents of both ranks' batches.
    queue_size = raw["model"]["constyle"]["queue_size"]
    assert int(ranks[0]["model"]["constyle.queue_ptr"]) == iterations * batch * WORLD_SIZE % queue_size
    # Only rank 0 wrote: one log, checkpoints that record the world size and both ranks' RNG states.
    checkpoint = load_training_checkpoint(output / "checkpoints" / periodic_name(iterations))
    assert checkpoint["world_size"] == WORLD_SIZE and len(checkpoint["rng"]) == WORLD_SIZE
    assert not torch.equal(checkpoint["rng"][0]["mixup_generator"], checkpoint["rng"][1]["mixup_generator"])
    assert sorted(p.name for p in output.iterdir()) == [
        "checkpoints", "config.yaml", "model_final.safetensors", "train.log"
    ]


def test_a_few_photos_fill_the_global_batch_of_any_number_of_processes(monkeypatch):
    monkeypatch.chdir(REPO)  # the config's folders are relative to the repository root
    config = load_config(REPO / "configs" / "smoke.yaml")
    photos = len(build_train_dataset(config))
    batch = config.data.train.batch_size
    assert photos < batch * 2  # the smoke set alone cannot fill two processes' batches
    for world_size in (1, 2, 4, 7):
        dataset = build_train_dataset(config, world_size)
        assert len(dataset) >= batch * world_size and len(dataset) % photos == 0
        assert len(dataset) - photos < batch * world_size  # no more repeats than one global batch needs


def test_smoke_config_trains_under_torchrun_with_two_processes(tmp_path):
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(WORLD_SIZE),
        "-m", "irconstyle", "train", "configs/smoke.yaml", "--output", str(tmp_path), "--quiet",
    ]
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert (tmp_path / "model_best.safetensors").is_file() and (tmp_path / "model_final.safetensors").is_file()
    checkpoint = load_training_checkpoint(latest_checkpoint(tmp_path / "checkpoints"))
    assert checkpoint["world_size"] == WORLD_SIZE and checkpoint["iteration"] == 30
    assert "each epoch visits every image 2 times" in (tmp_path / "train.log").read_text()
