import torch

from mwvae.data.loader import InMemoryLoader


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
