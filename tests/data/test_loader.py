from types import SimpleNamespace

import pytest
import torch
from pytorch_lightning.trainer.states import TrainerStatus
from torch.utils._python_dispatch import TorchDispatchMode

from mwvae.data.loader import ClassPairedLoader, InMemoryLoader, loader_device


def make_loader(**kwargs):
    tensors = {"image": torch.arange(10).float().view(10, 1), "label": torch.arange(10)}
    return InMemoryLoader(tensors, batch_size=4, **kwargs)


def test_every_example_once_per_epoch_in_aligned_batches():
    loader = make_loader(shuffle=True, seed=3)
    batches = list(loader)
    assert len(batches) == len(loader) == 3
    labels = torch.cat([b["label"] for b in batches])
    assert sorted(labels.tolist()) == list(range(10))
    for batch in batches:
        assert torch.equal(batch["image"].view(-1).long(), batch["label"])


def test_order_depends_on_seed_and_epoch_only():
    def order(seed, epoch):
        loader = make_loader(shuffle=True, seed=seed)
        loader.sampler.set_epoch(epoch)
        return torch.cat([b["label"] for b in loader]).tolist()

    assert order(0, 0) == order(0, 0)
    assert order(0, 0) != order(0, 1)
    assert order(0, 0) != order(1, 0)


def test_unshuffled_loader_keeps_order_and_drop_last():
    assert torch.cat([b["label"] for b in make_loader()]).tolist() == list(range(10))
    assert len(list(make_loader(drop_last=True))) == 2


def test_class_pairs_share_the_class_never_the_example_and_change_each_epoch():
    labels = torch.arange(40) % 4
    tensors = {"image": torch.arange(40).float(), "label": labels}
    loader = ClassPairedLoader(
        tensors, 16, source="image", pair_name="image2", class_key="label", shuffle=True, seed=2
    )

    def pairs():
        batches = list(loader)
        return torch.cat([b["image"] for b in batches]), torch.cat([b["image2"] for b in batches])

    def partner_of_each_example():
        example, partner = pairs()
        return partner[example.argsort()]

    epoch0 = partner_of_each_example()
    assert torch.equal(labels[epoch0.long()], labels)  # same class
    assert not (epoch0 == torch.arange(40)).any()  # never itself
    assert torch.equal(partner_of_each_example(), epoch0)  # the same epoch pairs the same way
    loader.sampler.set_epoch(1)
    assert not torch.equal(partner_of_each_example(), epoch0)


class DeviceCopies(TorchDispatchMode):
    """Counts the copies of tensors to another device."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += func is torch.ops.aten._to_copy.default
        return func(*args, **(kwargs or {}))


# `meta` stands in for an accelerator: its tensors have shapes and devices but
# no data, and a gather works on them.
@pytest.mark.parametrize("sharded", [False, True])
def test_on_a_device_the_split_is_copied_once_and_the_order_once_per_epoch(sharded):
    shard = {"rank": 1, "world_size": 2} if sharded else {}
    tensors = {"image": torch.rand(40, 1, 2, 2), "label": torch.arange(40) % 4}
    loader = ClassPairedLoader(
        tensors,
        8,
        source="image",
        pair_name="image2",
        class_key="label",
        shuffle=True,
        seed=2,
        device="meta",
        **shard,
    )
    assert {t.device.type for t in loader.tensors.values()} == {"meta"}
    on_the_host = ClassPairedLoader(
        tensors, 8, source="image", pair_name="image2", class_key="label", shuffle=True, **shard
    )
    for epoch in (0, 1):
        loader.sampler.set_epoch(epoch)
        with DeviceCopies() as copies:
            batches = list(loader)
        assert copies.count == 2  # the epoch's order and pairs, not a copy per batch
        expected = list(on_the_host)
        assert len(batches) == len(expected) == len(loader)
        for batch, same in zip(batches, expected, strict=True):
            assert {x.device.type for x in batch.values()} == {"meta"}
            assert {m: x.shape for m, x in batch.items()} == {m: x.shape for m, x in same.items()}


def test_without_a_device_the_loader_keeps_the_tensors_it_was_given():
    tensors = {"image": torch.rand(10, 1), "label": torch.arange(10)}
    loader = InMemoryLoader(tensors, 4, shuffle=True)
    assert all(loader.tensors[m] is t for m, t in tensors.items())
    with DeviceCopies() as copies:
        list(loader)
    assert copies.count == 0


def test_loaders_follow_a_running_trainer_onto_its_accelerator_only():
    def trainer(device, status=TrainerStatus.RUNNING):
        return SimpleNamespace(
            state=SimpleNamespace(status=status),
            strategy=SimpleNamespace(root_device=torch.device(device)),
        )

    assert loader_device(None) is None
    assert loader_device(trainer("cpu")) is None
    assert loader_device(trainer("cuda:1")) == torch.device("cuda:1")
    # e.g. `evaluate` after testing reads whole splits on the host and copies batches
    assert loader_device(trainer("cuda:1", TrainerStatus.FINISHED)) is None
