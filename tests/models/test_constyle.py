"""ConStyle's contrastive training step against the authors' recorded step, and its switches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import irconstyle
from irconstyle.models import losses, official
from irconstyle.models.constyle import ConStyle, ConStyleEncoder

# The one tolerance set by judgement, on the latents (absolute, they are of order 1): the recorded step is
# ill-conditioned, BatchNorm1d in train mode over 4 near-identical pooled features divides float rounding by
# their tiny spread, so latents differ between CPUs by many ulps. Every quantity computed from the latents
# (logits, losses) is then bounded by the error the latents' observed difference propagates into it plus
# float32 rounding of its own evaluation, on our side and the recording's, and not by a tolerance of its own.
LATENT_ATOL = 5e-4
UNIT_ROUNDOFF = 2.0**-24  # float32


def _gamma(terms: int) -> float:
    """Higham's γₙ = n·u / (1 − n·u): the relative rounding bound of an n-term float32 sum or dot product."""
    return terms * UNIT_ROUNDOFF / (1 - terms * UNIT_ROUNDOFF)


def _products_bound(a: torch.Tensor, da: torch.Tensor, b: torch.Tensor, db: torch.Tensor) -> torch.Tensor:
    """Bound on |(a + da)(b + db)ᵀ − abᵀ| as computed in float32 on both sides: the exact change by
    Cauchy–Schwarz row by row, plus γ_D·|a||b|ᵀ of rounding for each of the two evaluations."""
    a, da, b, db = (x.double() for x in (a, da, b, db))
    norm = torch.linalg.vector_norm
    na, nda, nb, ndb = norm(a, dim=1), norm(da, dim=1), norm(b, dim=1), norm(db, dim=1)
    change = nda[:, None] * nb[None] + na[:, None] * ndb[None] + nda[:, None] * ndb[None]
    rounding = 2 * _gamma(a.shape[1]) * ((a.abs() + da.abs()) @ (b.abs() + db.abs()).t())
    return change + rounding


def _mse_bound(difference: torch.Tensor, change_bound: torch.Tensor) -> float:
    """Bound on the change of mean(d²) when every |Δd| <= change_bound (exact: |2dΔd + Δd²| summed), plus
    float32 rounding of the mean on both sides."""
    d, b = difference.double().abs(), change_bound.double()
    return float((2 * d * b + b**2).mean() + 2 * _gamma(d.numel() + 2) * ((d + b) ** 2).mean())


def _infonce_bound(recorded: torch.Tensor, ours: torch.Tensor) -> float:
    """Bound on the change of the mean cross-entropy (positive at column 0) between two logit matrices.

    Per row, CE = LSE(l) − l₀ changes by LSE(l + Δ′) − LSE(l) with Δ′ = Δ − Δ₀; by the mean value theorem this
    is Σ p̃ⱼΔ′ⱼ at an intermediate softmax p̃, whose p̃₀ >= p₀·e^(−δ) for δ = max|Δ′|, hence
    |ΔCE| <= (1 − p₀e^(−δ))·δ. Rounding: LSE is a sum over the columns of terms of the logits' magnitude.
    """
    recorded, ours = recorded.double(), ours.double()
    shifted = (ours - recorded) - (ours - recorded)[:, :1]
    delta = shifted.abs().amax(dim=1)
    p0 = torch.softmax(recorded, dim=1)[:, 0]
    change = ((1 - p0 * torch.exp(-delta)) * delta).mean()
    rounding = 2 * _gamma(recorded.shape[1] + 2) * recorded.abs().amax()
    return float(change + rounding)


@pytest.fixture
def recorded_step(manifest, reference_dir):
    entry = manifest["ConStyle_train_step"]
    keywords = official.ARCHITECTURES["ConStyleNAFNet"].keywords
    model = irconstyle.build_model(
        "constyle_nafnet",
        **{keywords[key]: value for key, value in entry["config"].items()},
        contrastive=True,
        constyle_options={
            "queue_size": entry["queue_size"],
            "momentum": entry["momentum"],
            "temperature": entry["temperature"],
        },
    )
    irconstyle.load_checkpoint(model, reference_dir / "ConStyle_train_step.pth")
    arrays = {key: torch.from_numpy(value) for key, value in np.load(reference_dir / "ConStyle_train_step.npz").items()}
    return entry, model, arrays


def test_training_step_matches_authors(recorded_step):
    entry, model, recorded = recorded_step
    constyle = model.constyle.train()
    assert int(constyle.queue_ptr) == entry["queue_ptr_before"]
    torch.testing.assert_close(constyle.queue, recorded["queue_before"], rtol=0, atol=0)

    step = constyle.contrast(recorded["lq"], recorded["gt"])

    close = {"rtol": 0, "atol": LATENT_ATOL}
    torch.testing.assert_close(step.encoded.latent_q, recorded["latent_q"], **close)
    torch.testing.assert_close(step.encoded.latent_z, recorded["latent_z"], **close)
    torch.testing.assert_close(step.key, recorded["key"], **close)
    torch.testing.assert_close(constyle.queue, recorded["queue_after"], **close)
    assert int(constyle.queue_ptr) == entry["queue_ptr_after"]

    # Logits = [q·k, q·queue] / T; the queue before the step is exact, so only q and k carry differences.
    query, key = recorded["latent_q"], recorded["key"]
    d_query, d_key = step.encoded.latent_q.detach() - query, step.key - key
    queue = recorded["queue_before"].t()
    temperature = entry["temperature"]
    positive = torch.diagonal(_products_bound(query, d_query, key, d_key))[:, None]
    negative = _products_bound(query, d_query, queue, torch.zeros_like(queue))
    logit_bound = torch.cat([positive, negative], dim=1) / temperature
    logit_error = (step.logits.detach().double() - recorded["logits"].double()).abs()
    excess = float((logit_error - logit_bound).max())
    assert excess <= 0, f"logits exceed their propagated bound by up to {excess:.3g}"

    # Style: −MSE(G(z), G(n0)) − MSE(G(q), G(n1)), G(x) = xxᵀ/(B·D); the negatives come from the exact queue.
    n0, n1 = step.negatives
    normalizer = query.shape[0] * query.shape[1]
    style_bound = sum(
        _mse_bound(losses.batch_gram(x, normalizer) - losses.batch_gram(n, normalizer),
                   _products_bound(x, dx, x, dx) / normalizer)
        for x, dx, n in (
            (recorded["latent_z"], step.encoded.latent_z.detach() - recorded["latent_z"], n0),
            (query, d_query, n1),
        )
    )
    bounds = {
        "infonce": _infonce_bound(recorded["logits"], step.logits.detach()),
        "content": _mse_bound(query - key, (d_query - d_key).abs()),
        "style": style_bound,
    }
    ours = {
        "infonce": losses.infonce_loss(step.logits),
        "content": losses.content_loss(step.encoded.latent_q, step.key),
        "style": losses.style_loss(step.encoded.latent_z, step.encoded.latent_q, step.negatives),
    }
    for name, value in ours.items():
        assert abs(value.item() - entry[name]) <= bounds[name], f"{name}: {value.item()} vs {entry[name]}"


def test_loss_functions_are_exact_on_recorded_tensors(recorded_step):
    entry, _, recorded = recorded_step
    batch, pointer = entry["batch"], entry["queue_ptr_before"]
    queue = recorded["queue_before"]
    evicted = queue[:, pointer : pointer + batch].t()  # n1: the columns overwritten by this step
    next_evicted = queue[:, pointer + batch : pointer + 2 * batch].t()  # n0: the ones after them

    assert losses.infonce_loss(recorded["logits"]).item() == pytest.approx(entry["infonce"], rel=1e-6)
    assert losses.content_loss(recorded["latent_q"], recorded["key"]).item() == pytest.approx(
        entry["content"], rel=1e-6
    )
    style = losses.style_loss(recorded["latent_z"], recorded["latent_q"], (next_evicted, evicted))
    assert style.item() == pytest.approx(entry["style"], rel=1e-6)
    for name in ("infonce", "content", "style"):
        assert recorded[name].item() == pytest.approx(entry[name], rel=1e-6)


def _constyle(**options) -> ConStyle:
    return ConStyle(contrastive=True, **options).train()


def test_queue_size_not_a_multiple_of_batch_wraps_around():
    constyle = _constyle(queue_size=10)
    expected_queue = constyle.queue.clone()
    for step in range(3):
        before = constyle.queue.clone()
        result = constyle.contrast(torch.rand(4, 3, 32, 32), torch.rand(4, 3, 32, 32))
        columns = [(4 * step + i) % 10 for i in range(4)]  # step 2 writes 8, 9, 0, 1
        following = [(4 * step + 4 + i) % 10 for i in range(4)]
        torch.testing.assert_close(result.negatives[1], before[:, columns].t(), rtol=0, atol=0)
        torch.testing.assert_close(result.negatives[0], before[:, following].t(), rtol=0, atol=0)
        expected_queue[:, columns] = result.encoded.latent_q.detach().t()
    torch.testing.assert_close(constyle.queue, expected_queue, rtol=0, atol=0)
    assert int(constyle.queue_ptr) == 12 % 10


def test_enqueue_key_stores_the_clean_keys():
    constyle = _constyle(queue_size=8, enqueue="key")
    result = constyle.contrast(torch.rand(4, 3, 32, 32), torch.rand(4, 3, 32, 32))
    torch.testing.assert_close(constyle.queue[:, :4].t(), result.key, rtol=0, atol=0)
    assert not torch.allclose(constyle.queue[:, :4].t(), result.encoded.latent_q.detach())
    with pytest.raises(ValueError, match="enqueue"):
        ConStyle(contrastive=True, enqueue="both")


def test_normalize_latents_gives_standard_moco():
    constyle = _constyle(queue_size=8, normalize_latents=True, temperature=0.5)
    torch.testing.assert_close(constyle.queue.norm(dim=0), torch.ones(8))
    result = constyle.contrast(torch.rand(4, 3, 32, 32), torch.rand(4, 3, 32, 32))
    torch.testing.assert_close(result.key.norm(dim=1), torch.ones(4))
    assert result.logits.abs().max() <= 1 / 0.5 + 1e-5  # cosine similarities over the temperature
    torch.testing.assert_close(constyle.queue.norm(dim=0), torch.ones(8))

    published = _constyle(queue_size=8)
    assert not torch.allclose(published.queue.norm(dim=0), torch.ones(8))


def test_contrast_gradients_reach_the_query_encoder_only():
    constyle = _constyle(queue_size=8)
    result = constyle.contrast(torch.rand(4, 3, 32, 32), torch.rand(4, 3, 32, 32))
    assert not result.key.requires_grad
    loss = losses.infonce_loss(result.logits) + losses.content_loss(result.encoded.latent_q, result.key)
    loss.backward()
    assert constyle.encoder.head_q[0].weight.grad is not None
    assert all(p.grad is None for p in constyle.key_encoder.parameters())


def test_momentum_update_runs_before_the_key():
    constyle = _constyle(queue_size=8, momentum=0.0)  # the key encoder becomes a copy of the query encoder
    with torch.no_grad():
        for parameter in constyle.encoder.parameters():
            parameter.add_(0.01)
    clean = torch.rand(4, 3, 32, 32)
    result = constyle.contrast(clean, clean)
    torch.testing.assert_close(result.key, result.encoded.latent_q.detach())


def test_inference_model_is_the_query_encoder_only():
    constyle = ConStyle(contrastive=False)
    assert all(key.startswith("encoder.") for key in constyle.state_dict())
    with pytest.raises(RuntimeError, match="contrastive=True"):
        constyle.contrast(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))

    trained = _constyle(queue_size=8).eval()
    queue, pointer = trained.queue.clone(), int(trained.queue_ptr)
    image = torch.rand(1, 3, 32, 32)  # batch 1 is fine in eval mode
    with torch.no_grad():
        encoded = trained(image)
        expected = trained.encoder(image)
    torch.testing.assert_close(encoded.latent_q, expected.latent_q, rtol=0, atol=0)
    assert torch.equal(trained.queue, queue) and int(trained.queue_ptr) == pointer


def test_batch_of_one_in_training_is_refused():
    """BatchNorm1d in the projection heads cannot train on a single sample: such a batch is refused up front."""
    constyle = _constyle(queue_size=8)
    with pytest.raises(ValueError, match="batch of at least 2"):
        constyle.contrast(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))



def test_projection_heads_run_in_fp32_under_bf16_autocast():
    """The heads' BatchNorm with small running variances would amplify bf16 rounding into the latents."""
    encoder = ConStyleEncoder().eval()
    with torch.no_grad():
        for head in (encoder.head_z, encoder.head_q):
            head[1].running_var.fill_(1e-8)  # as trained heads have: standard deviations far below the activations
    pooled_inputs = []
    encoder.head_z.register_forward_pre_hook(lambda module, args: pooled_inputs.append(args[0]))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        encoded = encoder(torch.rand(1, 3, 32, 32))
    assert encoded.features[0].dtype == torch.bfloat16  # the trunk does use bf16
    pooled = pooled_inputs[0]
    assert pooled.dtype == torch.float32 and encoded.latent_z.dtype == encoded.latent_q.dtype == torch.float32
    with torch.no_grad():
        expected_z = encoder.head_z(pooled)
        torch.testing.assert_close(encoded.latent_z, expected_z, rtol=0, atol=0)
        torch.testing.assert_close(encoded.latent_q, encoder.head_q(expected_z), rtol=0, atol=0)
