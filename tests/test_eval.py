"""The evaluation suite on every model: each metric it admits, and the same
numbers twice for the same seed."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate

from mwvae.config import compose_config
from mwvae.evaluation.classifier import load_classifiers
from mwvae.evaluation.suite import draw_evaluation_figures, evaluate, style_errors, whole
from mwvae.training import build_model
from tests.subsets import SUBSET

from .test_train import COCO_DEMO, MODELS, QUIET

SMALL = {"likelihood": {"k": 10, "num_samples": 20}, "joint_samples": 200}


def built(tmp_path, model, data="mnist"):
    cfg = compose_config(
        [
            *QUIET,
            f"paths.output_dir={tmp_path}",
            f"model={model}",
            f"data={data}",
            SUBSET,
        ]
    )
    return build_model(cfg), instantiate(cfg.data, _recursive_=False)


@pytest.mark.parametrize("model", MODELS)
def test_every_model_gets_the_metrics_it_admits(tmp_path, model):
    net, datamodule = built(tmp_path, model)
    metrics = evaluate(net, datamodule, SMALL)
    assert all(value == value for value in metrics.values())  # no NaN
    assert metrics["test/evaluator_accuracy/image"] > 0.5
    if model == "vae":
        assert set(metrics) == {
            "test/evaluator_accuracy/image",
            "test/recon_mse/image_only/image",
            "test/loglik/image",
            "test/loglik_se/image",
            "test/loglik_ess/image",
            "test/probe/image",
            "test/fd_classifier/image",
        }
    elif model == "m_vae_joint":  # infers only from both: no cross-modal metric, no probe
        assert "test/loglik/joint" in metrics and "test/coherence/joint" in metrics
        assert not any(k.startswith(("test/coherence/image", "test/probe")) for k in metrics)
        assert "test/coherence/observed_1" not in metrics and "test/fd_classifier/image" in metrics
    else:
        for key in (
            "coherence/image_to_label",
            "coherence/label_to_image",
            "coherence/joint",
            "loglik/joint",
            "loglik/image",
            "loglik/label",
            "loglik/image_given_label",
            "loglik_se/image_given_label",
            "loglik_ess/joint",
            "probe/image",
            "w2",
            "recon_mse/label_only/image",
            "coherence/observed_1",
            "fd_classifier/image",
            "fd_classifier/label_to_image",
        ):
            assert f"test/{key}" in metrics, key
        assert metrics["test/loglik/joint"] <= metrics["test/loglik/image"]  # common draws
    if model == "fmw_vae":  # the private code of the image imputed both ways
        assert "test/coherence_class_mean/label_to_image" in metrics
        assert "test/recon_mse_class_mean/label_only/image" in metrics
        assert "test/style/mse_own_style/image" in metrics


def test_w2_is_the_training_objective_s_alignment_term(tmp_path):
    net, datamodule = built(tmp_path, "mvae_poe")
    metrics = evaluate(net, datamodule, {**SMALL, "likelihood": {"num_samples": 0}})
    datamodule.setup()
    test = datamodule.splits["test"]
    terms = net.objective({m: test[m] for m in net.modality_names})
    assert metrics["test/w2"] == pytest.approx(terms.w2.item(), rel=1e-5)


def test_same_checkpoint_same_seed_same_numbers(tmp_path):
    net, datamodule = built(tmp_path, "fmw_vae", "mnist3")
    first = evaluate(net, datamodule, SMALL)
    drawn = draw_evaluation_figures(net, datamodule, SMALL, tmp_path)
    second = evaluate(net, datamodule, SMALL)
    assert first == second  # drawing the figures between changes no number
    # Every subset -> target pair of three modalities, both styles for images.
    pairs = {
        "image_to_label", "image_to_image2", "label_to_image", "label_to_image2",
        "image2_to_image", "image2_to_label", "image+label_to_image2",
        "image+image2_to_label", "label+image2_to_image",
    }  # fmt: skip
    by_observed = {"observed_1", "observed_2", "leave_one_out"}
    assert {k.split("/", 2)[2] for k in first if k.startswith("test/coherence/")} == (
        pairs | by_observed | {"joint"}
    )
    assert {k.split("/", 2)[2] for k in first if k.startswith("test/coherence_class_mean/")} == {
        p for p in pairs if p.endswith("image") or p.endswith("image2")
    } | by_observed
    singles = [first[f"test/coherence/{p}"] for p in pairs if "+" not in p]
    assert first["test/coherence/observed_1"] == pytest.approx(sum(singles) / len(singles))
    assert (
        "test/fd_classifier/image" in first and "test/fd_classifier/label+image2_to_image" in first
    )
    assert "test/loglik/label+image2" in first and "test/loglik/image_given_label+image2" in first
    assert "test/style/mse_own_style/image2" in first
    assert sorted(p.name for p in drawn) == [
        "latent_projection.png",
        "reconstructions.png",
        "style_transfer.png",
    ]


def test_figures_draw_with_the_classifiers_they_are_given(tmp_path, monkeypatch):
    net, datamodule = built(tmp_path, "mw_vae")
    classifiers = load_classifiers(datamodule, net.modality_names)

    def reload(*args, **kwargs):
        raise AssertionError("loaded again: loading hashes the training data")

    monkeypatch.setattr("mwvae.evaluation.suite.load_classifiers", reload)
    drawn = draw_evaluation_figures(net, datamodule, SMALL, tmp_path, classifiers)
    assert drawn and all(path.exists() for path in drawn)
    with pytest.raises(AssertionError, match="loaded again"):
        draw_evaluation_figures(net, datamodule, SMALL, tmp_path)


def test_fmw_vae_scores_its_own_caption_style_by_token_errors(tmp_path, coco_data_dir):
    # Every modality but the label has a private code, token captions too:
    # their style error is a token error rate, as their reconstruction's is.
    cfg = compose_config(
        [
            *QUIET,
            f"paths.output_dir={tmp_path}",
            "experiment=coco_demo",
            "data/text=tokens",
            "model=fmw_vae",
            *COCO_DEMO,
            f"paths.data_dir={coco_data_dir}",
        ]
    )
    net, datamodule = build_model(cfg).eval(), instantiate(cfg.data, _recursive_=False)
    datamodule.setup()
    test = whole(datamodule.test_dataloader())
    errors = style_errors(net, {m: test[m] for m in net.modality_names}, size=8)
    assert set(errors) == {"style/mse_own_style/image", "style/token_error_rate_own_style/caption"}
    assert 0 <= errors["style/token_error_rate_own_style/caption"] <= 1
    assert errors["style/mse_own_style/image"] > 0
