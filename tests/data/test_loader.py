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


def test_class_pairs_share_the_class_never_the_example_and_change_each_epoch():
    from mwvae.data.loader import ClassPairedLoader

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
