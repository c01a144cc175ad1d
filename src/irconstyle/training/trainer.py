"""The training loop: the joint ConStyle recipe as published, resumable to the bit, one process or DDP.

Per iteration ``t`` (1-based): freeze ConStyle once ``t > constyle_iters``; take the next batch of this
rank's shard; optional mixup; forward and losses; stop on a non-finite loss before anything is updated;
backward (DDP all-reduces the gradients); optional gradient clipping; AdamW step; scheduler step; EMA
update. Then, on schedule: log, validate the EMA model (rank 0), save the best, save a checkpoint.

Everything that decides what happens next lives in the checkpoint (weights, EMA, optimiser, scheduler, the
ConStyle queue and pointer as model buffers, the iteration, every RNG of every rank, the freeze flag and the
best score), and the data order is a pure function of ``(seed, epoch)``, with per-sample randomness a
function of ``(seed, epoch, index)``. A run killed at any point and resumed from its last checkpoint
therefore retraces the uninterrupted run exactly (bitwise in a single CPU process).
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from irconstyle.models.checkpoint import CheckpointError, load_constyle
from irconstyle.models.constyle import ConStyleRestorer
from irconstyle.models.registry import MODELS, BuildConfig
from irconstyle.training import checkpointing
from irconstyle.training.config import config_from_dict
from irconstyle.training.data import build_train_dataset, build_val_dataset
from irconstyle.training.distributed import (
    DistributedContext,
    EpochKeyedDataset,
    ShardedBatchSampler,
    all_reduce_mean,
    barrier,
    batches_per_epoch,
    gather_objects,
    init_distributed,
)
from irconstyle.training.ema import ModelEMA
from irconstyle.training.objective import DetectionObjective, PrompterObjective, TrainingObjective
from irconstyle.training.schedule import CosineAnnealingRestartCyclicLR, scheduled_lr
from irconstyle.training.schema import ConfigError, TrainingConfig, save_config
from irconstyle.training.validation import classification_accuracy, evaluate

CALIBRATION_EPOCH = 2**31 - 1  # the data "epoch" whose samples recalibrate BatchNorm; never reached in training

logger = logging.getLogger("irconstyle.training")

# Settings that may change between a run and its resumption (where things are, how often to report, the
# validation set); any other difference would break the exact continuation and is an error.
RESUMABLE_CHANGES = (
    "name", "device", "threads", "train.total_iters", "checkpoint.", "log.", "val.every", "val.samples", "val.tile",
    "data.val",
    "data.train.num_workers", "data.train.options.root", "data.train.options.clean_dirs",
    "data.train.options.lq_dir", "data.train.options.gt_dir", "data.train.options.cache",
    "train.ema.recalibrate_batches", "model.init_from", "model.init_deeper", "model.constyle.pretrained",
    "model.init_encoder_from",
)

# Settings that may change when they only alter iterations not yet run: re-planning a run's length, learning
# rates and freeze point keeps it the same run as if started with the new config (see ``_same_past``).
FUTURE_CHANGES = ("train.schedule.", "train.constyle_iters")


class TrainingDivergedError(RuntimeError):
    """The loss (or gradient norm) became NaN or infinite; training stopped before updating the weights."""


@dataclass(frozen=True)
class BestRecord:
    metric: str
    value: float
    iteration: int


@dataclass(frozen=True)
class TrainingResult:
    """How a run ended and where its files are."""

    iteration: int
    status: Literal["completed", "interrupted"]
    output_dir: Path
    last_checkpoint: Path | None
    best: BestRecord | None
    final_weights: Path | None


class Trainer:
    """Trains one model from a :class:`TrainingConfig`; :meth:`run` does the whole job.

    ``resume`` is ``None`` (fresh run: the output folder must hold no checkpoints), ``"auto"`` (continue
    from the newest checkpoint in the output folder, or start fresh when there is none) or a checkpoint path.
    ``progress`` shows a tqdm bar (rank 0 only). Messages go to the ``irconstyle.training`` logger and to
    ``train.log`` in the output folder; TensorBoard files go to ``tensorboard/``.
    """

    def __init__(
        self,
        config: TrainingConfig,
        *,
        output_dir: str | Path,
        resume: str | Path | None = None,
        progress: bool = True,
        context: DistributedContext | None = None,
    ) -> None:
        self.config = config
        self.output_dir = Path(output_dir)
        self.checkpoint_dir = self.output_dir / "checkpoints"
        self.resume = resume
        self.progress = progress
        self.context = context
        self._stop_signal: int | None = None

    # -----------------------------------------------------------------------------------------------------
    # Setup

    def run(self) -> TrainingResult:
        context = self.context or init_distributed(self.config.device)
        self.context = context
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        file_handler = self._start_logging()
        previous_handlers = self._install_signal_handlers()
        writer = None
        try:
            self._setup()
            writer = self._open_tensorboard()
            return self._train(writer)
        finally:
            if writer is not None:
                writer.close()
            self._restore_signal_handlers(previous_handlers)
            if file_handler is not None:
                logger.removeHandler(file_handler)
                file_handler.close()

    def _start_logging(self) -> logging.Handler | None:
        if not self.context.is_main:
            return None
        self.output_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.output_dir / "train.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        return handler

    def _setup(self) -> None:
        config, context = self.config, self.context
        resume_state = self._find_resume_state()
        _seed_everything(config.seed)

        self.train_set, self.val_set = self._build_datasets()  # before the model: a prompter's head fits its classes
        model = self._build_model()
        if resume_state is None and config.model.init_from is not None:
            self._initialise_from(model, Path(config.model.init_from), deeper=config.model.init_deeper)
        prompter, encoder_from = config.model.constyle.pretrained, config.model.init_encoder_from
        if resume_state is None and prompter is not None:
            self._start_encoder_from(model.constyle, Path(prompter), "model.constyle.pretrained")
        if resume_state is None and encoder_from is not None:
            self._start_encoder_from(model.encoder, Path(encoder_from), "model.init_encoder_from")
        self.model = model.to(context.device)
        self.is_constyle = isinstance(model, ConStyleRestorer)
        self.detects = config.train.objective == "detect"
        self.prompts = config.train.objective == "prompter"
        if self.prompts:
            self.objective = PrompterObjective(
                self.model, config.train.losses, class_iters=config.train.class_iters, kl_iters=config.train.kl_iters
            )
        else:
            objective_class = DetectionObjective if self.detects else TrainingObjective
            self.objective = objective_class(self.model, config.train.losses)
        repeats = getattr(self.train_set, "repeats", 1)
        if repeats > 1:
            logger.info(
                "the training set is smaller than one global batch of %d: each epoch visits every image %d times, "
                "each visit a separate random draw",
                config.data.train.batch_size * context.world_size, repeats,
            )
        self.batches_per_epoch = batches_per_epoch(
            len(self.train_set), batch_size=config.data.train.batch_size, world_size=context.world_size
        )

        self.optimizer = self._build_optimizer()
        schedule = config.train.schedule
        self.scheduler = CosineAnnealingRestartCyclicLR(
            self.optimizer,
            periods=schedule.periods,
            restart_weights=schedule.restart_weights,
            eta_mins=schedule.eta_mins,
            warmup_iters=schedule.warmup_iters,
        )
        ema = config.train.ema
        self.ema = (
            ModelEMA(self.model, decay=ema.decay, include_buffers=ema.buffers, warmup=ema.warmup)
            if context.is_main
            else None
        )
        self._calibration: list[torch.Tensor] | None = None
        self._evaluation_cache: tuple[int, nn.Module] | None = None
        # Mixup draws from its own generators so that nothing else shifts its random stream.
        self.mixup_random = random.Random(config.seed + 1000 * context.rank)
        self.mixup_generator = torch.Generator().manual_seed(config.seed + 1000 * context.rank + 1)
        self.frozen = False
        self.best: BestRecord | None = None
        self.iteration = 0
        if resume_state is not None:
            self._load_state(resume_state)
        else:
            logger.info("starting a new run in %s", self.output_dir)
        if context.is_main:
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            checkpointing.remove_stale_temporaries(self.checkpoint_dir)
            save_config(config, self.output_dir / "config.yaml")
        self._wrap_for_distributed()

    def _find_resume_state(self) -> dict[str, Any] | None:
        existing = checkpointing.latest_checkpoint(self.checkpoint_dir)
        if self.resume is None:
            if existing is not None:
                raise checkpointing.TrainingCheckpointError(
                    f"{self.output_dir} already holds checkpoints (newest: {existing.name}); continue the run "
                    "with --resume auto, or choose another --output folder"
                )
            return None
        if self.resume == "auto":
            if existing is None:
                logger.info("--resume auto: no checkpoint in %s yet, starting from scratch", self.checkpoint_dir)
                return None
            path = existing
        else:
            path = Path(self.resume)
        state = checkpointing.load_training_checkpoint(path)
        later = [p.name for i, p in checkpointing.periodic_checkpoints(self.checkpoint_dir) if i > state["iteration"]]
        if later:
            raise checkpointing.TrainingCheckpointError(
                f"{self.checkpoint_dir} holds checkpoints past iteration {state['iteration']} of {path.name} "
                f"({', '.join(later)}), from the continuation being replaced; delete them or resume into "
                "another --output folder"
            )
        logger.info("resuming from %s (iteration %d)", path, state["iteration"])
        self._check_resumable(state, path)
        return state

    def _check_resumable(self, state: dict[str, Any], path: Path) -> None:
        # Read through today's schema, so that settings added since the checkpoint count at their defaults.
        saved_config = config_from_dict(state["config"], source=f"{path}: the config it was trained with")
        saved_tree, current_tree = saved_config.to_dict(), self.config.to_dict()
        saved, current = _flatten(saved_tree), _flatten(current_tree)
        changed = sorted(
            key
            for key in set(saved) | set(current)
            if saved.get(key) != current.get(key) and not any(_matches(key, p) for p in RESUMABLE_CHANGES)
        )
        future = [k for k in changed if any(_matches(k, p) for p in FUTURE_CHANGES)]
        if future and _same_past(saved_tree["train"], current_tree["train"], state["iteration"]):
            changed = [k for k in changed if k not in future]
        if changed:
            details = "; ".join(f"{k}: checkpoint {saved.get(k)!r}, now {current.get(k)!r}" for k in changed)
            raise checkpointing.TrainingCheckpointError(
                f"{path}: the config differs from the one the checkpoint was trained with ({details}); "
                "resume with the same settings or start a new run in another --output folder"
            )
        if state["world_size"] != self.context.world_size:
            raise checkpointing.TrainingCheckpointError(
                f"{path}: written by a run with {state['world_size']} process(es), resumed with "
                f"{self.context.world_size}; resume with the same number of processes to continue the exact "
                "data order and random streams"
            )
        if state["iteration"] > self.config.train.total_iters:
            raise checkpointing.TrainingCheckpointError(
                f"{path}: is at iteration {state['iteration']}, past train.total_iters = "
                f"{self.config.train.total_iters}"
            )

    def _build_model(self) -> nn.Module:
        config = self.config
        kwargs = dict(config.model.options)
        factory = MODELS[config.model.name].factory
        constyle = config.model.constyle
        constyle_options = {
            "queue_size": constyle.queue_size,
            "momentum": constyle.momentum,
            "temperature": constyle.temperature,
            "normalize_latents": constyle.normalize_latents,
            "enqueue": constyle.enqueue,
        }
        if isinstance(factory, type) and issubclass(factory, ConStyleRestorer):
            self._check_queue_holds_a_batch()
            kwargs.update(contrastive=True, constyle_options=constyle_options)
        elif config.train.objective == "prompter":  # ConStyle v2's stage 1: the head has the data's classes
            self._check_queue_holds_a_batch()
            kwargs.update(contrastive=True, classes=len(self.train_set.classes), **constyle_options)
        self.build_config = BuildConfig.create(config.model.name, **kwargs)
        model = self.build_config.build()
        check_input_sizes(config, model)
        return model

    def _check_queue_holds_a_batch(self) -> None:
        queue_size = self.config.model.constyle.queue_size
        needed = self.config.data.train.batch_size * self.context.world_size
        if queue_size < needed:
            raise ConfigError(
                f"model.constyle.queue_size ({queue_size}) must hold at least one global batch "
                f"(batch_size × processes = {needed})"
            )

    def _initialise_from(self, model: nn.Module, path: Path, *, deeper: bool) -> None:
        try:
            new_blocks = checkpointing.load_initial_weights(model, self.build_config, path, deeper=deeper)
        except CheckpointError as error:
            raise ConfigError(f"model.init_from: {error}") from None
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        logger.info("starting from the weights in %s (sha256 %s)", path, digest[:16])
        if new_blocks:
            logger.info("%d new blocks start as the identity: %s", len(new_blocks), ", ".join(new_blocks))

    @staticmethod
    def _start_encoder_from(target: nn.Module, path: Path, key: str) -> None:
        """A new run's ConStyle encoder (``target``: a restorer's ConStyle or a bare encoder) from the file ``key``
        names (see :func:`~irconstyle.models.checkpoint.load_constyle`)."""
        try:
            load_constyle(target, path)
        except CheckpointError as error:
            raise ConfigError(f"{key}: {error}") from None
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        logger.info("%s: the ConStyle encoder starts from the one in %s (sha256 %s)", key, path, digest[:16])

    def _build_datasets(self) -> tuple[Dataset, Dataset | None]:
        """The datasets from their config sections; a folder, file or option they reject is a config error."""
        try:
            train = build_train_dataset(self.config, self.context.world_size)
        except ValueError as error:  # DatasetError, ImageReadError, bad task or level
            raise ConfigError(f"data.train: {error}") from None
        if self.config.data.val is None:
            return train, None
        try:
            return train, build_val_dataset(self.config)
        except ValueError as error:
            raise ConfigError(f"data.val: {error}") from None

    def _encoder_parameters(self) -> list[nn.Parameter]:
        return list(self.model.constyle.encoder.parameters()) if self.is_constyle else []

    def _build_optimizer(self) -> torch.optim.Optimizer:
        """AdamW over every trainable parameter: group 0 the body, group 1 the ConStyle query encoder."""
        encoder_ids = {id(p) for p in self._encoder_parameters()}
        body = [p for p in self.model.parameters() if p.requires_grad and id(p) not in encoder_ids]
        groups = [{"params": body}]
        if encoder_ids:
            groups.append({"params": self._encoder_parameters()})
        options = self.config.train.optimizer
        return torch.optim.AdamW(  # foreach: one multi-tensor update instead of a loop over tensors, also on CPU
            groups, lr=options.lr, weight_decay=options.weight_decay, betas=options.betas, eps=options.eps,
            foreach=True,
        )

    def _wrap_for_distributed(self) -> None:
        """DDP around the objective; rebuilt at the freeze because the set of trainable parameters changes.

        Buffers are not broadcast at every step: the ConStyle queue is kept identical on all ranks by
        gathering the enqueued entries, and BatchNorm statistics stay per rank (rank 0's are saved).
        """
        self.forward_module: nn.Module = self.objective
        if self.context.is_distributed:
            device_ids = [self.context.device.index] if self.context.device.type == "cuda" else None
            self.forward_module = DistributedDataParallel(
                self.objective, device_ids=device_ids, broadcast_buffers=False
            )

    # -----------------------------------------------------------------------------------------------------
    # Freeze, state, resume

    def _freeze_constyle(self) -> None:
        """After ``constyle_iters``: drop the ConStyle losses and take the encoder out of the optimiser.

        ``freeze: eval`` (default) also puts the encoder in eval mode and stops running the momentum encoder
        and queue; ``freeze: published`` keeps them running in train mode as the authors' code does.
        """
        self.frozen = True
        self.model.constyle.requires_grad_(False)
        encoder_group = self.optimizer.param_groups.pop(1)
        for parameter in encoder_group["params"]:
            self.optimizer.state.pop(parameter, None)
        del self.scheduler.base_lrs[1]
        self.scheduler._last_lr = self.scheduler._last_lr[:1]
        self.objective.use_constyle_losses = False
        self.objective.encoder_in_eval = self.config.train.freeze == "eval"
        self._set_train_mode()

    def _set_train_mode(self) -> None:
        self.model.train()
        if self.frozen and self.objective.encoder_in_eval:
            self.model.constyle.eval()

    def _should_freeze(self, iteration: int) -> bool:
        limit = 0 if self.config.model.constyle.freeze else self.config.train.constyle_iters
        return self.is_constyle and not self.frozen and limit is not None and iteration > limit

    def _rng_snapshot(self) -> dict[str, Any]:
        return {
            "global": checkpointing.capture_rng_state(),
            "mixup_random": self.mixup_random.getstate(),
            "mixup_generator": self.mixup_generator.get_state(),
        }

    def _state(self, rng_states: list[dict[str, Any]]) -> dict[str, Any]:
        epoch, batch = divmod(self.iteration, self.batches_per_epoch)
        best = self.best
        return {
            "format": checkpointing.CHECKPOINT_FORMAT,
            "version": checkpointing.CHECKPOINT_VERSION,
            "iteration": self.iteration,
            "epoch": epoch,
            "batch_in_epoch": batch,
            "batches_per_epoch": self.batches_per_epoch,
            "world_size": self.context.world_size,
            "config": self.config.to_dict(),
            "architecture": self.build_config.to_dict(),
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "frozen": self.frozen,
            "best": None if best is None else {"metric": best.metric, "value": best.value, "iteration": best.iteration},
            "rng": rng_states,
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        if state["batches_per_epoch"] != self.batches_per_epoch:
            raise checkpointing.TrainingCheckpointError(
                f"the checkpoint's training set gave {state['batches_per_epoch']} batches per epoch, this one "
                f"gives {self.batches_per_epoch}: the training data changed; resume with the same data"
            )
        self.model.load_state_dict(state["model"], strict=True)
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        if state["frozen"]:
            self._freeze_constyle()
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        for group, lr in zip(self.optimizer.param_groups, self.scheduler.get_lr(), strict=True):
            group["lr"] = lr  # the config may have re-planned the rates from here on
        self.iteration = state["iteration"]
        if state["best"] is not None:
            self.best = BestRecord(**state["best"])
        rng = state["rng"][self.context.rank]
        checkpointing.restore_rng_state(rng["global"])
        self.mixup_random.setstate(rng["mixup_random"])
        self.mixup_generator.set_state(rng["mixup_generator"])

    def _save_checkpoint(self, *, best: bool = False) -> Path | None:
        """Collective: every rank contributes its RNG state; rank 0 writes."""
        rng_states = gather_objects(self._rng_snapshot(), self.context)
        path = None
        if self.context.is_main:
            state = self._state(rng_states)
            if best:
                path = self.checkpoint_dir / checkpointing.BEST_NAME
                checkpointing.atomic_save(state, path)
                best_weights = self.output_dir / "model_best.safetensors"
                checkpointing.export_inference_weights(
                    self._evaluation_model(), self.build_config, best_weights, native_tile=self.config.val.tile
                )
            else:
                path = self.checkpoint_dir / checkpointing.periodic_name(self.iteration)
                checkpointing.atomic_save(state, path)
                checkpointing.prune_checkpoints(self.checkpoint_dir, self.config.checkpoint.keep_last)
            logger.info("iteration %d: saved %s", self.iteration, path)
        barrier(self.context)
        return path

    # -----------------------------------------------------------------------------------------------------
    # The loop

    def _batches(self) -> Iterator[dict[str, torch.Tensor]]:
        """This rank's batches from the current position on, epoch after epoch, from one DataLoader.

        Workers persist across epochs (so a dataset's image cache survives) and every sample is requested
        by its (epoch, index) key, so which worker builds it does not matter.
        """
        config = self.config.data.train
        epoch, start_batch = divmod(self.iteration, self.batches_per_epoch)
        sampler = ShardedBatchSampler(
            len(self.train_set),
            batch_size=config.batch_size,
            seed=self.config.seed,
            rank=self.context.rank,
            world_size=self.context.world_size,
            start_epoch=epoch,
            start_batch=start_batch,
        )
        loader = DataLoader(
            EpochKeyedDataset(self.train_set),
            batch_sampler=sampler,
            num_workers=config.num_workers,
            persistent_workers=config.num_workers > 0,
            worker_init_fn=_worker_ignores_interrupts,
            generator=torch.Generator().manual_seed(self.config.seed),
            pin_memory=self.context.device.type == "cuda",
        )
        return iter(loader)

    def _mixup(self, degraded: torch.Tensor, clean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """With ``use_identity`` half the batches are left alone (as published); otherwise all are mixed."""
        options = self.config.train.mixup
        if options.use_identity and self.mixup_random.randint(0, 1) == 1:
            return degraded, clean
        lam = self.mixup_random.betavariate(options.beta, options.beta)
        order = torch.randperm(degraded.shape[0], generator=self.mixup_generator).to(degraded.device)
        return lam * degraded + (1 - lam) * degraded[order], lam * clean + (1 - lam) * clean[order]

    def _train(self, writer: Any) -> TrainingResult:
        config, context = self.config, self.context
        total = config.train.total_iters
        self._set_train_mode()
        bar = None
        if self.progress and context.is_main:
            bar = tqdm(total=total, initial=self.iteration, unit="it", dynamic_ncols=True, desc=config.name)
        meter = _LossMeter()
        batches = self._batches()
        last_checkpoint = checkpointing.latest_checkpoint(self.checkpoint_dir) if context.is_main else None
        status: Literal["completed", "interrupted"] = "completed"
        try:
            while self.iteration < total:
                batch = next(batches)
                self.iteration += 1
                if self.prompts:
                    self.objective.iteration = self.iteration
                if self._should_freeze(self.iteration):
                    self._freeze_constyle()
                    self._wrap_for_distributed()
                    logger.info("iteration %d: ConStyle encoder frozen (%s)", self.iteration, config.train.freeze)
                losses, stop = self._step(batch)
                meter.add(losses)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix({name: f"{value:.4g}" for name, value in losses.items()}, refresh=False)
                if self.iteration % config.log.every == 0 or self.iteration == total:
                    self._log(meter.mean(), writer)
                    meter = _LossMeter()
                validated = self.val_set is not None and (
                    self.iteration % config.val.every == 0 or self.iteration == total
                )
                if validated:
                    self._validate(writer)
                if self.iteration % config.checkpoint.every == 0 or self.iteration == total or stop:
                    last_checkpoint = self._save_checkpoint()
                if stop:
                    status = "interrupted"
                    break
        except TrainingDivergedError as error:
            saved = f"the last good checkpoint is {last_checkpoint}" if last_checkpoint else "no checkpoint was saved"
            message = f"{error}; training stopped, {saved}"
            logger.error(message)
            raise TrainingDivergedError(message) from None
        finally:
            del batches  # shuts the data workers down
            if bar is not None:
                bar.close()
        final = None
        if status == "interrupted":
            signal_name = signal.Signals(self._stop_signal).name if self._stop_signal else "a signal on another rank"
            logger.info(
                "stopped by %s at iteration %d; checkpoint %s; continue with --resume auto",
                signal_name, self.iteration, last_checkpoint,
            )
        elif context.is_main:
            final = self.output_dir / "model_final.safetensors"
            checkpointing.export_inference_weights(
                self._evaluation_model(), self.build_config, final, native_tile=config.val.tile
            )
            logger.info("finished %d iterations; EMA weights in %s", self.iteration, final)
        return TrainingResult(
            iteration=self.iteration,
            status=status,
            output_dir=self.output_dir,
            last_checkpoint=last_checkpoint,
            best=self.best,
            final_weights=final,
        )

    def _step(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, float], bool]:
        """One optimisation step; returns the losses (averaged over ranks) and whether to stop after it."""
        device = self.context.device
        degraded = batch["lq"].to(device, non_blocking=True)
        if self.detects:
            labels = batch["label"].to(device, non_blocking=True)
            levels = batch["level"].to(device, torch.float32, non_blocking=True)
            total, parts = self.forward_module(degraded, labels, levels)
        elif self.prompts:
            clean = batch["gt"].to(device, non_blocking=True)
            labels = batch["label"].to(device, non_blocking=True)
            total, parts = self.forward_module(degraded, clean, labels)
        else:
            clean = batch["gt"].to(device, non_blocking=True)
            if self.config.train.mixup.enabled:
                degraded, clean = self._mixup(degraded, clean)
            total, parts = self.forward_module(degraded, clean)
        names = ["total", *parts]
        stop_flag = torch.tensor([1.0 if self._stop_signal is not None else 0.0], device=device)
        summary = torch.cat([torch.stack([total.detach(), *(v.detach() for v in parts.values())]), stop_flag])
        summary = all_reduce_mean(summary, self.context).tolist()
        losses = dict(zip(names, summary[:-1], strict=True))
        if not all(math.isfinite(v) for v in losses.values()):
            shown = ", ".join(f"{k}={v:.4g}" for k, v in losses.items())
            raise TrainingDivergedError(
                f"non-finite loss at iteration {self.iteration} ({shown}); lower train.optimizer.lr, set "
                "train.grad_clip, or check the data"
            )
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        clip = self.config.train.grad_clip
        if clip is not None:
            parameters = [p for group in self.optimizer.param_groups for p in group["params"]]
            norm = float(torch.nn.utils.clip_grad_norm_(parameters, clip))
            if not math.isfinite(norm):
                raise TrainingDivergedError(f"non-finite gradient norm at iteration {self.iteration}")
        self.optimizer.step()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model, self.iteration)
        return losses, summary[-1] > 0

    def _log(self, losses: dict[str, float], writer: Any) -> None:
        lr = self.optimizer.param_groups[0]["lr"]
        shown = " ".join(f"{k}={v:.4g}" for k, v in losses.items())
        logger.info("iteration %d/%d lr=%.3g %s", self.iteration, self.config.train.total_iters, lr, shown)
        if writer is not None:
            for name, value in losses.items():
                writer.add_scalar(f"loss/{name}", value, self.iteration)
            writer.add_scalar("lr", lr, self.iteration)

    # -----------------------------------------------------------------------------------------------------
    # Validation

    def _evaluation_model(self) -> nn.Module:
        """The EMA model as validated and exported, BatchNorm statistics recomputed for its weights.

        Not with a prompter frozen from the start (``model.constyle.freeze``): its EMA weights are its own, and
        its statistics, the only BatchNorm in these models, belong to it.
        """
        if self._evaluation_cache is None or self._evaluation_cache[0] != self.iteration:
            recalibrate = self.config.train.ema.recalibrate_batches > 0 and not self.config.model.constyle.freeze
            module = self.ema.recalibrated(self._calibration_batches()) if recalibrate else self.ema.module
            self._evaluation_cache = (self.iteration, module)
        return self._evaluation_cache[1]

    def _calibration_batches(self) -> list[torch.Tensor]:
        """Fixed degraded training batches, the same at every call and after resuming, for recalibration."""
        if self._calibration is None:
            keyed = EpochKeyedDataset(self.train_set)
            size = self.config.data.train.batch_size
            count = self.config.train.ema.recalibrate_batches * size
            samples = [keyed[(CALIBRATION_EPOCH, i % len(self.train_set))]["lq"] for i in range(count)]
            self._calibration = [
                torch.stack(samples[i : i + size]).to(self.context.device) for i in range(0, count, size)
            ]
        return self._calibration

    def _validate(self, writer: Any) -> None:
        """Rank 0 scores the EMA model on the validation set (its restorations, or a prompter's class accuracy);
        the best by ``val.metric`` is saved."""
        is_best = False
        if self.context.is_main:
            if self.prompts:
                scores, samples = classification_accuracy(
                    self._evaluation_model(), self.val_set, device=self.context.device,
                    num_workers=self.config.data.val.num_workers,
                ), []
            else:
                scores, samples = evaluate(
                    self._evaluation_model(), self.val_set, device=self.context.device,
                    samples=self.config.val.samples, num_workers=self.config.data.val.num_workers,
                    tile=self.config.val.tile,
                )
            metric = self.config.val.metric
            value = scores[metric]
            is_best = self.best is None or value >= self.best.value
            if is_best:
                self.best = BestRecord(metric=metric, value=value, iteration=self.iteration)
            shown = " ".join(f"{k}={v:.4f}" for k, v in scores.items())
            logger.info(
                "iteration %d: validation %s (best %s %.4f at iteration %d)",
                self.iteration, shown, metric, self.best.value, self.best.iteration,
            )
            if writer is not None:
                for name, value in scores.items():
                    writer.add_scalar(f"val/{name}", value, self.iteration)
                for index, image in enumerate(samples):
                    writer.add_image(f"val/sample_{index}", image, self.iteration)
        if gather_objects(is_best, self.context)[0]:
            self._save_checkpoint(best=True)

    def _open_tensorboard(self) -> Any:
        if not (self.context.is_main and self.config.log.tensorboard):
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            logger.warning("TensorBoard is not installed (pip install 'irconstyle[train]'); scalars not written")
            return None
        # purge_step drops events a killed run logged after its last checkpoint, so curves do not double up.
        return SummaryWriter(str(self.output_dir / "tensorboard"), purge_step=self.iteration + 1)

    # -----------------------------------------------------------------------------------------------------
    # Signals

    def _install_signal_handlers(self) -> dict[int, Any]:
        """SIGINT / SIGTERM finish the current iteration, save a checkpoint and stop; a second one aborts."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, self._request_stop)
        self._previous_handlers = previous
        return previous

    def _request_stop(self, signum: int, frame: Any) -> None:
        if self._stop_signal is not None:
            self._restore_signal_handlers(self._previous_handlers)
            raise KeyboardInterrupt
        self._stop_signal = signum
        logger.info("%s received: saving a checkpoint after this iteration", signal.Signals(signum).name)

    @staticmethod
    def _restore_signal_handlers(previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _LossMeter:
    """Running means of the losses between two log lines, each over the iterations that computed it (a loss
    that ends within the window, at a freeze or at ``class_iters``, is averaged over its own iterations)."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, losses: dict[str, float]) -> None:
        for name, value in losses.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
            self.counts[name] = self.counts.get(name, 0) + 1

    def mean(self) -> dict[str, float]:
        return {name: value / self.counts[name] for name, value in self.sums.items()}


def check_input_sizes(config: TrainingConfig, model: nn.Module) -> None:
    """The training patch and validation tile must be multiples of what the model's downsamplings divide."""
    multiple = model.size_multiple  # every registered architecture declares it
    for key, size in (("data.train.patch_size", config.data.train.patch_size), ("val.tile", config.val.tile)):
        if size is not None and size % multiple:
            raise ConfigError(f"{key} ({size}) must be a multiple of {multiple} for {config.model.name}")


def _worker_ignores_interrupts(worker_id: int) -> None:
    """Data workers leave Ctrl-C to the main process, which finishes the iteration and saves."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _same_past(saved: dict[str, Any], current: dict[str, Any], iteration: int) -> bool:
    """Whether two ``train`` sections give iterations ``1..iteration`` the same learning rates and freeze state."""

    def limit(section: dict[str, Any]) -> float:
        return math.inf if section.get("constyle_iters") is None else section["constyle_iters"]

    if saved.get("constyle_iters") != current.get("constyle_iters") and min(limit(saved), limit(current)) < iteration:
        return False
    rates = [
        [scheduled_lr(step, base_lr=section["optimizer"]["lr"], **section["schedule"]) for step in range(iteration)]
        for section in (saved, current)
    ]
    return all(math.isclose(a, b, rel_tol=1e-12) for a, b in zip(*rates, strict=True))


def _matches(key: str, pattern: str) -> bool:
    return key.startswith(pattern) if pattern.endswith(".") else key == pattern or key.startswith(pattern + ".")


def train(
    config: TrainingConfig,
    *,
    output_dir: str | Path,
    resume: str | Path | None = None,
    progress: bool = True,
) -> TrainingResult:
    """Train ``config`` into ``output_dir`` (see :class:`Trainer`)."""
    return Trainer(config, output_dir=output_dir, resume=resume, progress=progress).run()
