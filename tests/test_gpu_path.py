"""The GPU path of training, checked on the CPU: training steps that never
make the host wait for the device, torch.compile, and bf16 autocast."""

from __future__ import annotations

import copy
import math
import traceback
from collections import defaultdict
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from torch.utils._python_dispatch import TorchDispatchMode

from mwvae import load_model
from mwvae.config import compose_config
from mwvae.models import FMWVAE, JMVAE, MMVAE, MWVAE, VAE, JointMVAE, MoPoE, MVAEPoE
from mwvae.training import build_model, build_trainer, train
from tests.models.tiny import MODALITIES3, make_batch, make_model

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["logger=none", "callbacks.progress_bar.refresh_rate=0", f"paths.root_dir={ROOT}"]
# MNIST's networks, narrowed: what these tests check does not depend on the width.
SMALL_NETWORKS = [
    f"data.modalities.{m}.{net}.hidden_dims=[32]"
    for m in ("image", "label")
    for net in ("encoder", "decoder")
]


def config(tmp_path, *overrides):
    return compose_config([*QUIET, *SMALL_NETWORKS, f"paths.output_dir={tmp_path}", *overrides])


def fit_parts(cfg):
    """What `train` fits: the DataModule, the model and the Trainer of `cfg`."""
    return instantiate(cfg.data, _recursive_=False), build_model(cfg), build_trainer(cfg)


# ---------------------------------------------------------------- no host waits
aten = torch.ops.aten
# Ops after which the host waits for a GPU: reading a value (`.item()`,
# `float()`, `int()`, `bool()`, `if tensor:` all call _local_scalar_dense),
# comparing whole tensors, or an output whose size depends on the values.
HOST_WAITS = {
    aten._local_scalar_dense.default,
    aten.equal.default,
    aten.nonzero.default,
    aten.masked_select.default,
    aten._unique2.default,
    aten.unique_dim.default,
    aten.unique_consecutive.default,
}
INDEXING = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default}


def waits_for_the_device(func, args) -> bool:
    if func in HOST_WAITS:
        return True
    # Indexing with a boolean mask runs a nonzero inside.
    return func in INDEXING and any(i is not None and i.dtype == torch.bool for i in args[1])


def mwvae_caller() -> str:
    frames = [f for f in traceback.extract_stack() if "/mwvae/" in f.filename]
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "outside mwvae"


class HostWaits(TorchDispatchMode):
    """Records, per training step, the ops that would wait for a GPU. On the
    CPU they run the same ops, so a CPU run finds what would wait on a GPU
    (except copies to the host, which a CPU tensor does not make)."""

    def __init__(self):
        super().__init__()
        self.step: int | None = None  # None: not recording
        self.calls: dict[int, list[str]] = defaultdict(list)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if self.step is not None and waits_for_the_device(func, args):
            self.calls[self.step].append(f"{func} from {mwvae_caller()}")
        return func(*args, **(kwargs or {}))


class MarkTrainingSteps(pl.Callback):
    """Labels what `waits` sees with the step: from one step's start to the
    next one's (the batch gathers, Lightning's logging and the progress bar
    in between included), and up to the end of the epoch's last step (the
    validation loaders then draw their pairs, on the host, once)."""

    def __init__(self, waits: HostWaits):
        self.waits = waits

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.waits.step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx + 1 == trainer.num_training_batches:
            self.waits.step = None


LOG_EVERY = 2
STEPS = 5  # data.subset.train / data.batch_size
MODEL_OPTIONS = [
    ["model=vae"],
    ["model=m_vae"],
    ["model=m_vae_joint"],
    ["model=mw_vae", "model.kl_warmup_epochs=1"],
    ["model=fmw_vae"],
    ["model=fmw_vae", "model.decorrelation=mmd", "model.decorrelation_weight=1"],
    ["model=fmw_vae", "model.decorrelation=cross_cov", "model.decorrelation_weight=1"],
    ["model=mvae_poe"],
    ["model=mvae_poe_paper"],
    ["model=jmvae"],
    ["model=mmvae"],
    ["model=mopoe"],
]


JOINT_ENCODERS = ("model=m_vae_joint", "model=jmvae")


@pytest.mark.parametrize("model_options", MODEL_OPTIONS, ids=" ".join)
def test_no_training_step_waits_for_the_device_between_logging_steps(tmp_path, model_options):
    cfg = config(
        tmp_path,
        *model_options,
        "data=mnist3",  # three modalities: the random and all-subset objectives
        "data.subset={train:160,val:32,test:32}",
        "data.batch_size=32",
        "trainer.max_epochs=1",
        "+trainer.limit_val_batches=1",
        f"trainer.log_every_n_steps={LOG_EVERY}",
        "callbacks.progress_bar.refresh_rate=1",  # the default refreshes every 25 steps
        # The NaN guard as on an accelerator: it reads the loss at logging steps only
        # (on the CPU, `auto` reads it every step: a CPU value is there without waiting).
        "callbacks.nonfinite.check=log_steps",
        # Masked objectives too, for the models that train on incomplete examples.
        *([] if model_options[0] in JOINT_ENCODERS else ["data.paired_fraction=0.5"]),
    )
    datamodule, model, trainer = fit_parts(cfg)
    waits = HostWaits()
    trainer.callbacks.append(MarkTrainingSteps(waits))
    with waits:
        trainer.fit(model, datamodule=datamodule)

    # One epoch of STEPS: every LOG_EVERY-th step, and the epoch's last (MetricHistory's point).
    logging_steps = {step for step in range(STEPS) if (step + 1) % LOG_EVERY == 0} | {STEPS - 1}
    assert trainer.global_step == STEPS
    assert {step: calls for step, calls in waits.calls.items() if step not in logging_steps} == {}
    # Logging steps read the metrics (MetricHistory's float()): the recorder sees them.
    assert set(waits.calls) == logging_steps


# ---------------------------------------------------------------- torch.compile
def test_compiled_networks_train_and_their_checkpoint_loads_uncompiled(tmp_path):
    graphs = []

    def counting_aot_eager(graph, example_inputs):
        graphs.append(graph)
        return torch._dynamo.lookup_backend("aot_eager")(graph, example_inputs)

    torch._dynamo.register_backend(counting_aot_eager, name="mwvae_test_counting_aot_eager")
    cfg = config(
        tmp_path,
        "data.subset={train:256,val:64,test:64}",
        "trainer.max_epochs=1",
        "+trainer.limit_val_batches=1",
        "+trainer.limit_test_batches=1",
        "figures=false",
        "evaluate=false",
        "compile.enabled=true",
        "compile.backend=mwvae_test_counting_aot_eager",
    )
    _, objects = train(cfg)
    assert graphs  # the networks ran through the compiler
    model = objects["model"].eval()
    path = objects["trainer"].checkpoint_callback.best_model_path
    names = torch.load(path, weights_only=True)["state_dict"]
    assert set(names) == set(model.state_dict())
    assert not any("_orig_mod" in name for name in names)

    loaded = load_model(path)
    batch = next(iter(objects["datamodule"].test_dataloader()))
    for observed in ({"image": batch["image"]}, {"label": batch["label"]}, batch):
        expected, actual = model.reconstruct(observed), loaded.reconstruct(observed)
        for name in expected:
            torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=0)


# ---------------------------------------------------------------- bf16 autocast
@pytest.mark.parametrize(
    "model_class", [VAE, JointMVAE, MWVAE, FMWVAE, MVAEPoE, JMVAE, MMVAE, MoPoE]
)
def test_loss_terms_stay_float32_and_close_under_bf16_autocast(model_class):
    model = make_model(model_class, MODALITIES3)
    twin = copy.deepcopy(model)  # the same random subsets, where a model draws them
    batch = make_batch(64, MODALITIES3)
    torch.manual_seed(0)
    expected = model.objective(batch).as_metrics()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.manual_seed(0)
        actual = twin.objective(batch).as_metrics()
    for name, value in actual.items():
        assert value.dtype == torch.float32, name
        # bf16 matrix products round to ~3 significant digits; sums and
        # exponentials in bf16 were off by up to 10% (JMVAE's KL).
        torch.testing.assert_close(value, expected[name], rtol=1e-2, atol=1e-3, msg=name)


class TrainingLosses(pl.Callback):
    def __init__(self):
        self.losses: list[torch.Tensor] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(outputs["loss"].detach())


def test_a_bf16_mixed_run_multiplies_in_bf16_and_keeps_the_loss_in_float32(tmp_path):
    cfg = config(
        tmp_path, "model=fmw_vae", "data=mnist3", "debug=fast", "trainer.precision=bf16-mixed"
    )
    datamodule, model, trainer = fit_parts(cfg)
    losses = TrainingLosses()
    trainer.callbacks.append(losses)
    decoded = []
    model.decoders["image"].register_forward_hook(
        lambda net, inputs, out: decoded.append(out.dtype)
    )
    trainer.fit(model, datamodule=datamodule)
    metrics = trainer.test(model, datamodule=datamodule, verbose=False)[0]

    assert torch.bfloat16 in decoded  # autocast was on
    assert [loss.dtype for loss in losses.losses] == [torch.float32]
    assert all(torch.isfinite(loss) for loss in losses.losses)
    assert all(math.isfinite(value) for value in metrics.values())
