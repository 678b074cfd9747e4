"""The WaveNet: causality, receptive field, cached step == full forward, losses, a loss that falls."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import Tensor

from wavegen.audio import mu_law_decode, mu_law_encode
from wavegen.config import ModelConfig
from wavegen.data.conditioning import N_EXCITATION, N_TICK_FEATURES, N_VELOCITY, crop_ticks
from wavegen.nn.model import WaveNet, finer_mu_law, loss_fn, mol_loss, sample

SPT = 8  # samples per tick in these small tests
SMALL = ModelConfig(residual_channels=8, gate_channels=8, skip_channels=12, head_channels=16,
                    layers_per_cycle=4, cycles=2, cond_channels=6, n_classes=32, n_mixtures=3)


def make(**changes) -> WaveNet:
    torch.manual_seed(0)
    return WaveNet(dataclasses.replace(SMALL, **changes), SPT).eval()


def random_batch(model: WaveNet, B: int, T: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    if model.cfg.output == "mulaw":
        inputs = torch.randint(0, model.cfg.n_classes, (B, T), generator=g)
    else:
        inputs = torch.rand(B, T, generator=g) * 2 - 1
    n_ticks = crop_ticks(T, SPT, model.cfg.cond_lookahead_ticks)
    ticks = torch.rand(B, model.n_tick_features, n_ticks, generator=g)  # velocities after the notes' 3 x 88
    offset = torch.randint(0, 2 * SPT, (B,), generator=g)
    exc = torch.randn(B, N_EXCITATION, T, generator=g)
    style = torch.randint(0, max(model.cfg.n_styles, 1), (B,), generator=g) if model.cfg.n_styles else None
    return inputs, ticks, offset, exc, style


def test_receptive_field_formula():
    cfg = ModelConfig()
    assert cfg.receptive_field() == 2 * (1 + 2 + 4 + 8 + 16 + 32 + 64 + 128 + 256 + 512) + 1 == 2047
    assert dataclasses.replace(cfg, kernel_size=3, cycles=1).receptive_field() == 2 * 1023 + 1


@pytest.mark.parametrize("kernel_size", [2, 3])
def test_receptive_field_measured_by_gradient(kernel_size):
    model = make(output="mol", kernel_size=kernel_size, local_conditioning=False)
    T = model.receptive_field + 40
    x = (torch.rand(1, T) * 2 - 1).requires_grad_(True)
    model(x)[0, :, -1].sum().backward()
    touched = torch.nonzero(x.grad[0]).flatten()
    assert touched.max().item() == T - 1  # the current input counts
    assert T - touched.min().item() == model.receptive_field


@pytest.mark.parametrize("output", ["mulaw", "mol"])
def test_causal_the_past_ignores_the_input_at_t0_and_on_while_out_t0_reads_it(output):
    # out[t] predicts the sample after inputs[t], from inputs[..t] and the conditioning at t (which
    # describes that predicted sample). Changing them from t0 on must leave out[:t0] exactly as it was,
    # boundary included; and out[t0] must read inputs[t0], so a model that lags a sample is caught too.
    model = make(output=output)
    inputs, ticks, offset, exc, _ = random_batch(model, 2, 120)
    t0 = 70

    def changed_from(t: int, until: int | None = None) -> Tensor:
        x = inputs.clone()
        if output == "mulaw":
            x[:, t:until] = (x[:, t:until] + 5) % model.cfg.n_classes
        else:
            x[:, t:until] = -x[:, t:until]
        return x

    out = model(inputs, ticks, offset, exc)
    exc2 = exc.clone()
    exc2[:, :, t0:] = 0
    out2 = model(changed_from(t0), ticks, offset, exc2)
    torch.testing.assert_close(out2[..., :t0], out[..., :t0], rtol=0, atol=1e-6)
    assert not torch.allclose(out2[..., t0:], out[..., t0:])
    out3 = model(changed_from(t0, t0 + 1), ticks, offset, exc)  # the input at t0 alone
    torch.testing.assert_close(out3[..., :t0], out[..., :t0], rtol=0, atol=1e-6)
    assert (out3[..., t0] - out[..., t0]).abs().amax() > 1e-3


CASES = {
    "k2 mulaw unconditional": dict(local_conditioning=False),
    "k2 mulaw local": dict(),
    "k3 mulaw local+style": dict(kernel_size=3, n_styles=3),
    "k2 mol local+style": dict(output="mol", n_styles=2),
    "k3 mol unconditional": dict(output="mol", kernel_size=3, local_conditioning=False),
    "k2 no excitation": dict(excitation=False),
    "k2 velocity": dict(velocity=True),
    "k3 velocity+style": dict(kernel_size=3, n_styles=2, velocity=True),
    "k2 mulaw local+style+timbre": dict(n_styles=2, n_timbres=3),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_cached_step_equals_full_forward(case):
    model = make(**CASES[case])
    B, T = 3, 60
    inputs, ticks, offset, exc, style = random_batch(model, B, T, seed=1)
    timbre = torch.tensor([2, 0, 1]) if model.cfg.n_timbres else None
    full = model(inputs, ticks, offset, exc, style, timbre)
    cond = model.upsample(model.tick_conditioning(ticks), offset, T) if model.uses_notes else None
    state = model.init_state(B)
    for t in range(T):
        out = model.step(inputs[:, t], state,
                         cond=cond[:, :, t] if cond is not None else None,
                         exc=exc[:, :, t] if model.uses_excitation else None, style=style, timbre=timbre)
        torch.testing.assert_close(out, full[:, :, t], rtol=1e-4, atol=1e-5)
    if timbre is not None:  # and the timbre is heard: another timbre, another output
        assert not torch.allclose(model(inputs, ticks, offset, exc, style, timbre.flip(0)), full, atol=1e-4)


def test_mol_loss_prefers_the_right_sample_and_sampling_stays_on_the_grid():
    M = 2
    out = torch.zeros(1, 3 * M, 4)
    out[:, M : 2 * M] = 0.5  # both components centred on 0.5
    out[:, 2 * M :] = -5.0
    near = mol_loss(out, torch.full((1, 4), 0.5))
    far = mol_loss(out, torch.full((1, 4), -0.5))
    assert near < far and torch.isfinite(far)
    s = sample("mol", out[:, :, 0], 1.0, torch.Generator().manual_seed(0))
    assert abs(s.item() - 0.5) < 0.1 and abs(((s.item() + 1) / 2 * 65535) - round((s.item() + 1) / 2 * 65535)) < 1e-3


def test_mulaw_sampling_temperature_and_seed():
    logits = torch.tensor([[0.0, 3.0, 1.0]])
    assert sample("mulaw", logits, 0.0, None).item() == 1
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a = [sample("mulaw", logits, 1.0, g1).item() for _ in range(20)]
    b = [sample("mulaw", logits, 1.0, g2).item() for _ in range(20)]
    assert a == b and len(set(a)) > 1


def test_tiny_model_learns_a_rendered_chord():
    from wavegen.notes.render import render_notes
    from wavegen.notes.text import Note

    audio = render_notes([Note(60, 0, 1.0), Note(64, 0, 1.0), Note(67, 0, 1.0)], sample_rate_hz=8000).audio
    codes = torch.from_numpy(mu_law_encode(audio[400:4400] * 2, 64))
    cfg = dataclasses.replace(SMALL, n_classes=64, local_conditioning=False, layers_per_cycle=6,
                              cycles=1, residual_channels=16, gate_channels=16, skip_channels=32)
    torch.manual_seed(0)
    model = WaveNet(cfg, SPT)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = codes[None, :-1], codes[None, 1:]
    losses = []
    for _ in range(150):
        loss = loss_fn("mulaw", model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.log(64) - 0.1 < losses[0] < np.log(64) + 0.5
    assert np.mean(losses[-10:]) < 0.5 * losses[0]


def test_step_with_a_device_counter_equals_the_plain_step():
    # the CUDA-graph form of the step keeps its sample counter in a tensor; it must compute the same
    model = make(kernel_size=3, n_styles=2)
    inputs, ticks, offset, exc, style = random_batch(model, 2, 40, seed=3)
    cond = model.upsample(model.tick_conditioning(ticks), offset, 40)
    plain, counted = model.init_state(2), model.init_state(2)
    counted.t = torch.zeros((), dtype=torch.long)
    for t in range(40):
        a = model.step(inputs[:, t], plain, cond[:, :, t], exc[:, :, t], style)
        b = model.step(inputs[:, t], counted, cond[:, :, t], exc[:, :, t], style)
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert int(counted.t) == 40


@pytest.mark.gpu
def test_cuda_graph_generation_equals_the_plain_step():
    from wavegen.synth.generate import CudaGraphStep

    model = make().cuda()
    inputs, ticks, offset, exc, _ = random_batch(model, 4, 30, seed=4)
    inputs, ticks, offset, exc = inputs.cuda(), ticks.cuda(), offset.cuda(), exc.cuda()
    cond = model.upsample(model.tick_conditioning(ticks), offset, 30)
    graphed = CudaGraphStep(model, 4, torch.device("cuda"), inputs[:, 0], cond.shape[1], exc.shape[1], None)
    plain = model.init_state(4, "cuda")
    for t in range(30):
        want = model.step(inputs[:, t], plain, cond[:, :, t], exc[:, :, t])
        got = graphed(inputs[:, t], None, cond[:, :, t], exc[:, :, t])
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def _some_keys_silent(exc: Tensor, keys: list[int]) -> Tensor:
    out = torch.zeros_like(exc)
    for k in keys:  # key k: its sine (k) and cosine (88 + k) channels
        out[:, k], out[:, 88 + k] = exc[:, k], exc[:, 88 + k]
    return out


def test_forward_with_silent_keys_equals_the_step_and_the_dense_gradients(monkeypatch):
    # on the CPU the forward pass projects only the excitation channels that are nonzero somewhere in
    # the batch; the step (and a dense forward) project all 176: the same numbers, the same gradients
    import wavegen.nn.model as model_module

    model = make().train()
    B, T = 2, 50
    inputs, ticks, offset, exc, _ = random_batch(model, B, T, seed=6)
    exc = _some_keys_silent(exc, [3, 40, 87])
    full = model(inputs, ticks, offset, exc)
    cond = model.upsample(model.tick_conditioning(ticks), offset, T)
    state = model.init_state(B)
    for t in range(T):
        out = model.step(inputs[:, t], state, cond=cond[:, :, t], exc=exc[:, :, t])
        torch.testing.assert_close(out, full[:, :, t], rtol=1e-4, atol=1e-5)

    def grads(m):
        m.zero_grad()
        m(inputs, ticks, offset, exc).square().mean().backward()
        return {n: p.grad.clone() for n, p in m.named_parameters()}
    sparse = grads(model)
    monkeypatch.setattr(model_module, "sounding_channels", lambda e: (e, None))
    dense = grads(model)
    for name in dense:
        torch.testing.assert_close(sparse[name], dense[name], rtol=1e-5, atol=1e-7)
    w = sparse["layers.0.exc.weight"][:, :, 0]
    assert w[:, [3, 40, 87, 91, 128, 175]].abs().amax() > 0
    assert w[:, [0, 1, 88, 89]].abs().amax() == 0


def test_silent_batch_still_gives_every_weight_a_gradient():
    model = make().train()
    inputs, ticks, offset, exc, _ = random_batch(model, 2, 30, seed=7)
    model(inputs, ticks, offset, torch.zeros_like(exc)).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []


def test_upsample_repeats_each_tick_from_the_offset():
    model = make()
    ticks = torch.tensor([[[10.0, 11.0, 12.0, 13.0]]])  # (1, 1, 4): tick i holds 10 + i
    up = model.upsample(ticks.expand(2, 1, 4), torch.tensor([3, 8]), 12)  # SPT = 8
    assert up[0, 0].tolist() == [10.0] * 5 + [11.0] * 7  # samples 3..14 of the window
    assert up[1, 0].tolist() == [11.0] * 8 + [12.0] * 4  # samples 8..19


def test_long_windows_gather_the_conditioning_and_agree_with_the_one_hot_map(monkeypatch):
    import wavegen.nn.model as model_module

    model = make()
    inputs, ticks, offset, exc, _ = random_batch(model, 2, 60, seed=8)
    one_hot = model(inputs, ticks, offset, exc)
    monkeypatch.setattr(model_module, "ONE_HOT_MAX_TICKS", 0)
    gathered = model(inputs, ticks, offset, exc)
    torch.testing.assert_close(gathered, one_hot, rtol=1e-5, atol=1e-6)
    assert (gathered - model(inputs, ticks, offset + 5, exc)).abs().amax() > 1e-4  # the offset matters


def test_velocity_channels_are_read_by_a_velocity_model_alone():
    # a velocity model reads 88 channels more than the notes' 3 x 88, and they move its output; "auto" (what
    # a record from before velocities reads as) and false build the network as before, without them
    on, auto, off = make(velocity=True), make(), make(velocity=False)
    assert on.cond_net[0].in_channels == N_TICK_FEATURES + N_VELOCITY == 4 * 88
    assert auto.cond_net[0].in_channels == off.cond_net[0].in_channels == N_TICK_FEATURES
    assert auto.state_dict().keys() == off.state_dict().keys()
    inputs, ticks, offset, exc, _ = random_batch(on, 2, 40, seed=9)
    softer = ticks.clone()
    softer[:, N_TICK_FEATURES:] = softer[:, N_TICK_FEATURES:] * 0.5
    assert (on(inputs, ticks, offset, exc) - on(inputs, softer, offset, exc)).abs().amax() > 1e-3


def test_compiled_training_makes_a_handful_of_graphs_however_many_keys_sound():
    # a training batch's sounding keys change from step to step; inductor made a new graph for every new
    # count (40 s each on cpu.toml's model, then eager once torch's recompile limit was reached)
    import torch._dynamo

    torch._dynamo.reset()
    before = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    model = make().train()
    compiled = torch.compile(model)
    inputs, ticks, offset, exc, _ = random_batch(model, 2, 50)
    for n_keys in (3, 5, 7, 9):
        sparse = exc.clone()
        sparse[:, n_keys:] = 0
        compiled(inputs, ticks, offset, sparse).sum().backward()
    # the graph before the keys are counted and the one after them, for all four counts (width 16)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] - before == 2


def test_finer_mu_law_predicts_what_the_coarse_model_did():
    coarse, fine = make(n_classes=256), make(n_classes=1024)
    fine.load_state_dict(finer_mu_law(coarse.state_dict(), 256, 1024))
    inputs, ticks, offset, exc, style = random_batch(coarse, 2, 50, seed=3)
    # the same sounds in fine codes: the fine level nearest each coarse level's value, which lies inside it
    fine_inputs = torch.from_numpy(mu_law_encode(mu_law_decode(inputs.numpy(), 256), 1024))
    level = torch.from_numpy(mu_law_encode(mu_law_decode(np.arange(1024), 1024), 256))  # coarse level of each
    assert torch.equal(level[fine_inputs], inputs)
    with torch.no_grad():
        want = torch.log_softmax(coarse(inputs, ticks, offset, exc, style), dim=1)
        got = torch.log_softmax(fine(fine_inputs, ticks, offset, exc, style), dim=1)
    # each coarse level's probability, summed over the fine levels it holds, is the coarse model's
    summed = torch.stack([torch.logsumexp(got[:, level == c], dim=1) for c in range(256)], dim=1)
    torch.testing.assert_close(summed, want, rtol=1e-4, atol=1e-4)
    # and spread evenly inside it
    for c in (0, 128, 200, 255):
        inside = got[:, level == c]
        torch.testing.assert_close(inside, inside[:, :1].expand_as(inside), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="not finer"):
        finer_mu_law(fine.state_dict(), 1024, 256)


def test_a_layer_casts_its_input_before_padding_it_as_autocast_would_after(monkeypatch):
    """Under bf16 autocast each layer casts x to bf16 and pads that (no padded float32 copy): the forward
    and the gradients are bit for bit those of padding float32 and leaving the cast to the conv."""
    import wavegen.nn.model as M

    model = make()
    inputs, ticks, offset, exc, style = random_batch(model, 2, 300)

    def run():
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(inputs, ticks, offset, exc, style)
        out.float().square().mean().backward()
        return out.detach(), model.layers[0].dilated.weight.grad.clone(), model.embed.weight.grad.clone()

    cast_first = run()
    monkeypatch.setattr(M.torch, "is_autocast_enabled", lambda *a: False)  # the layer pads float32 itself
    pad_first = run()
    for a, b in zip(cast_first, pad_first, strict=True):
        assert torch.equal(a, b)
