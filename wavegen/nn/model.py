"""WaveNet: dilated causal convolutions with gated units, conditioned on the 88-key text.

    codes ─► embed ─► [dilated causal conv ─(+ cond, excitation, style, timbre)─► tanh·σ ─┬─► 1x1 ─► + residual]
                                                                                          └─► 1x1 ─► skip ─┐
                          ... layers_per_cycle x cycles, dilations 1, 2, 4, ... per cycle                  │
    Σ skips ─► ReLU ─► 1x1 ─► ReLU ─► 1x1 ─► logits (256 mu-law classes, or mixture of logistics)

Time alignment: `out[..., t]` is the distribution of the sample after `inputs[..., t]`, and the
conditioning at position t describes that predicted sample. The model knows nothing of files or MIDI.
`step` runs one sample at a time, each layer's `step` beside its `forward`, with per-layer circular
buffers: its cost per sample does not depend on the receptive field, and it computes exactly what
`forward` computes. It is the reference for the compiled kernels of wavegen/synth/fast.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wavegen.config import ModelConfig
from wavegen.data.conditioning import DEFAULT_VELOCITY, N_EXCITATION, N_TICK_FEATURES, N_VELOCITY

MOL_BITS = 16  # the mixture of logistics models 16-bit audio
# up to this many ticks in a window, layers repeat the tick conditioning by a matmul with the one-hot
# tick map (n_ticks multiply-adds per value: fast, both ways); longer windows gather (memory stays linear)
ONE_HOT_MAX_TICKS = 32
AUTOCAST_DEVICES = ("cpu", "cuda")  # where a layer casts before padding (the meta device of FLOP counts has no autocast)
SOUNDING_MIN = 16  # the excitation channels a CPU forward projects: at least this many, a power of two


class ResidualLayer(nn.Module):
    """One gated layer: (B, R, T) -> residual (B, R, T) and skip (B, S, T)."""

    def __init__(self, residual: int, gate: int, skip: int, kernel_size: int, dilation: int,
                 cond_channels: int, exc_channels: int, n_styles: int, n_timbres: int = 0, last: bool = False):
        super().__init__()
        self.kernel_size, self.dilation = kernel_size, dilation
        self.dilated = nn.Conv1d(residual, 2 * gate, kernel_size, dilation=dilation)
        self.cond = nn.Conv1d(cond_channels, 2 * gate, 1, bias=False) if cond_channels else None
        self.exc = nn.Conv1d(exc_channels, 2 * gate, 1, bias=False) if exc_channels else None
        self.style = nn.Embedding(n_styles, 2 * gate) if n_styles else None
        self.timbre = nn.Embedding(n_timbres, 2 * gate) if n_timbres else None
        # the last layer feeds only the skips: a residual output would get no gradient (and DDP
        # refuses parameters without one)
        self.res = None if last else nn.Conv1d(gate, residual, 1)
        self.skip = nn.Conv1d(gate, skip, 1)

    @property
    def history(self) -> int:
        """Past inputs the dilated conv reads besides the current one."""
        return (self.kernel_size - 1) * self.dilation

    def gate(self, h: Tensor) -> Tensor:
        a, b = h.chunk(2, dim=1)
        return torch.tanh(a) * torch.sigmoid(b)

    def globals(self, style: Tensor | None, timbre: Tensor | None) -> Tensor | None:
        """The global conditioning (B, 2 * gate) of style ids (B,) and timbre ids (B,), or None."""
        g = None
        for table, ids in ((self.style, style), (self.timbre, timbre)):
            if table is not None and ids is not None:
                g = table(ids) if g is None else g + table(ids)
        return g

    def forward(self, x: Tensor, cond: Tensor | None, exc: Tensor | None, style: Tensor | None,
                ticks_to_samples: Tensor | None = None, exc_keys: Tensor | None = None,
                timbre: Tensor | None = None):
        """x (B, R, T); cond (B, cond_channels, n_ticks) at tick rate with ticks_to_samples either the
        one-hot map (B, n_ticks, T) of each sample's tick or its tick index (B, T), or cond (B,
        cond_channels, T) with ticks_to_samples None; exc (B, 2*88, T), or only its channels
        `exc_keys` (the others being zero); style (B,) and timbre (B,) ids."""
        x_in = x
        if x.dtype == torch.float32 and x.device.type in AUTOCAST_DEVICES and torch.is_autocast_enabled(x.device.type):
            # cast, then pad: the values autocast would give the conv, without a padded float32 copy of x
            # and its gradient (bf16 training steps 1.06x on a 2-core CPU, BENCHMARKS.md)
            x_in = x.to(torch.get_autocast_dtype(x.device.type))
        h = self.dilated(F.pad(x_in, (self.history, 0)))  # left padding only: causal
        if self.cond is not None and cond is not None:
            c = self.cond(cond)  # a 1x1 conv commutes with repeating a tick: project, then repeat
            if ticks_to_samples is None:
                h = h + c
            elif ticks_to_samples.dim() == 2:
                h = h + gather_ticks(c, ticks_to_samples)
            else:  # the repeat as a matmul with the one-hot map, added in the same call: a dense GEMM
                h = torch.baddbmm(h, c, ticks_to_samples)  # both ways (a gather's backward scatter-adds)
        if self.exc is not None and exc is not None:
            w = self.exc.weight if exc_keys is None else self.exc.weight.index_select(1, exc_keys)
            h = h + F.conv1d(exc, w)
        g = self.globals(style, timbre)
        if g is not None:
            h = h + g[:, :, None]
        z = self.gate(h)
        return (x if self.res is None else x + self.res(z)), self.skip(z)

    def step(self, x: Tensor, buf: Tensor, t: int | Tensor, cond: Tensor | None, exc: Tensor | None,
             style: Tensor | None, timbre: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """`forward` for one sample t: x (B, R) is this sample's input, buf (B, R, max(history, 1)) the
        circular buffer of the past ones (input t' at t' % its length; x is written into it); cond
        (B, cond_channels), exc (B, 2*88), style (B,) and timbre (B,) as in `forward`, for this sample.
        Returns residual (B, R) and skip (B, S). t may be a 0-d long tensor on the device: then no
        value leaves the device, and the step can be captured in a CUDA graph."""
        on_device = isinstance(t, Tensor)
        w, k, n = self.dilated.weight, self.kernel_size, buf.shape[-1]  # tap j: input (k - 1 - j) * dilation back
        h = F.linear(x, w[:, :, k - 1], self.dilated.bias)
        for j in range(k - 1):
            back = (k - 1 - j) * self.dilation
            if on_device:
                past = buf.index_select(2, torch.remainder(t - back, n).view(1))[:, :, 0]
            else:
                past = buf[:, :, (t - back) % n]
            h = h + F.linear(past, w[:, :, j])
        if self.history:
            if on_device:
                buf.index_copy_(2, torch.remainder(t, n).view(1), x[:, :, None])
            else:
                buf[:, :, t % n] = x
        if self.cond is not None and cond is not None:
            h = h + F.linear(cond, self.cond.weight[:, :, 0])
        if self.exc is not None and exc is not None:
            h = h + F.linear(exc, self.exc.weight[:, :, 0])
        g = self.globals(style, timbre)
        if g is not None:
            h = h + g
        z = self.gate(h)
        residual = x if self.res is None else x + F.linear(z, self.res.weight[:, :, 0], self.res.bias)
        return residual, F.linear(z, self.skip.weight[:, :, 0], self.skip.bias)


def gather_ticks(values: Tensor, tick_index: Tensor) -> Tensor:
    """(B, C, n_ticks) at tick rate -> (B, C, T): sample t of row b takes tick tick_index[b, t]."""
    return torch.gather(values, 2, tick_index[:, None, :].expand(-1, values.shape[1], -1))


@torch.compiler.disable  # its output's width depends on the data: compiled graphs take it as an input
def sounding_channels(exc: Tensor) -> tuple[Tensor, Tensor | None]:
    """The excitation is zero on every key that does not sound, most of the 2 x 88 channels of a
    crop: on the CPU, keep only the channels that are nonzero somewhere in the batch (and their
    indices), so that every layer's projection skips the zeros: the same sums, a third of the work on
    four-voice music. Elsewhere (a GPU would wait on the host for the count) the whole excitation."""
    if exc.device.type != "cpu":
        return exc, None
    keys = exc.detach().abs().amax(dim=(0, 2)).nonzero()[:, 0]
    # the count changes from batch to batch, and torch.compile compiles its graphs again for every new
    # width (~40 s each, marking the width dynamic does not stop it) until its recompile limit sends the
    # rest of the run back to eager: so the width is rounded up to a power of two from SOUNDING_MIN with
    # silent channels (zero input, zero gradient: the same sums), a handful of graphs in all; a silent
    # batch gets SOUNDING_MIN zero channels, which keep every weight in the graph (DDP wants that)
    width = SOUNDING_MIN
    while width < keys.numel():
        width *= 2
    if width >= exc.shape[1]:
        return exc, None
    if width > keys.numel():
        silent = torch.ones(exc.shape[1], dtype=torch.bool)
        silent[keys] = False
        keys = torch.cat([keys, silent.nonzero()[: width - keys.numel(), 0]]).sort().values
    return exc.index_select(1, keys), keys


@dataclass
class StepState:
    """Per-layer circular buffers of past inputs for `WaveNet.step`."""

    buffers: list[Tensor]  # layer l: (B, R, history_l)
    t: int | Tensor = 0  # samples consumed so far (a 0-d long tensor on the device for CUDA graphs)


class WaveNet(nn.Module):
    def __init__(self, cfg: ModelConfig, samples_per_tick: int, default_velocity: int = DEFAULT_VELOCITY):
        """default_velocity: the velocity (1..127) a note without one gets, in a model with velocity channels
        (`cfg.uses_velocity()`)."""
        super().__init__()
        self.cfg = cfg
        self.samples_per_tick = samples_per_tick
        self.default_velocity = int(default_velocity)
        R, G, S = cfg.residual_channels, cfg.gate_channels, cfg.skip_channels
        self.n_out = cfg.n_classes if cfg.output == "mulaw" else 3 * cfg.n_mixtures
        if cfg.output == "mulaw":
            self.embed: nn.Module = nn.Embedding(cfg.n_classes, R)
        else:
            self.embed = nn.Conv1d(1, R, 1)
        C = cfg.cond_channels if cfg.local_conditioning else 0
        E = N_EXCITATION if (cfg.local_conditioning and cfg.excitation) else 0
        if C:
            k = 2 * cfg.cond_lookahead_ticks + 1  # sees cond_lookahead_ticks before and after
            self.cond_net: nn.Module | None = nn.Sequential(
                nn.Conv1d(self.n_tick_features, C, k, padding=cfg.cond_lookahead_ticks),
                nn.GELU(),
                nn.Conv1d(C, C, 1),
            )
        else:
            self.cond_net = None
        dilations = cfg.dilations()
        self.layers = nn.ModuleList(
            ResidualLayer(R, G, S, cfg.kernel_size, d, C, E, cfg.n_styles, cfg.n_timbres, last=i == len(dilations) - 1)
            for i, d in enumerate(dilations)
        )
        self.head = nn.Sequential(
            nn.ReLU(), nn.Conv1d(S, cfg.head_channels, 1), nn.ReLU(), nn.Conv1d(cfg.head_channels, self.n_out, 1)
        )

    # ------------------------------------------------------------------------------------------
    @property
    def receptive_field(self) -> int:
        return self.cfg.receptive_field()

    @property
    def uses_notes(self) -> bool:
        return self.cond_net is not None

    @property
    def uses_excitation(self) -> bool:
        return self.layers[0].exc is not None

    @property
    def uses_velocity(self) -> bool:
        """The tick features carry 88 velocity channels after the 3 x 88 of the notes (data/conditioning.py)."""
        return self.cfg.uses_velocity()

    @property
    def n_tick_features(self) -> int:
        """Channels of the tick features the conditioning network reads: 3 x 88, plus 88 with velocities."""
        return N_TICK_FEATURES + (N_VELOCITY if self.uses_velocity else 0)

    def embed_inputs(self, inputs: Tensor) -> Tensor:
        """inputs: (B, T) int64 codes (mulaw) or float audio in [-1, 1] (mol) -> (B, R, T)."""
        if self.cfg.output == "mulaw":
            return self.embed(inputs).transpose(1, 2)
        return self.embed(inputs[:, None, :].float())

    def tick_conditioning(self, ticks: Tensor) -> Tensor:
        """ticks: (B, n_tick_features, n_ticks) features -> (B, cond_channels, n_ticks)."""
        assert self.cond_net is not None
        return self.cond_net(ticks)

    def tick_index(self, offset: Tensor, n_samples: int) -> Tensor:
        """(B, n_samples) long: the tick of the window that samples [offset_b, offset_b + n_samples)
        of row b fall in."""
        t = torch.arange(n_samples, device=offset.device)
        return torch.div(offset[:, None] + t[None, :], self.samples_per_tick, rounding_mode="floor")

    def upsample(self, cond_ticks: Tensor, offset: Tensor, n_samples: int) -> Tensor:
        """(B, C, n_ticks) -> (B, C, n_samples): each tick repeated samples_per_tick times, then the
        samples [offset_b, offset_b + n_samples) of each row b."""
        return gather_ticks(cond_ticks, self.tick_index(offset.to(cond_ticks.device), n_samples))

    def forward(self, inputs: Tensor, ticks: Tensor | None = None, offset: Tensor | None = None,
                exc: Tensor | None = None, style: Tensor | None = None, timbre: Tensor | None = None) -> Tensor:
        """inputs: (B, T); ticks: (B, n_tick_features, n_ticks) and offset: (B,) int, the sample in the tick
        window where the conditioning of out[..., 0] starts; exc: (B, 2*88, T); style and timbre: (B,) int.
        Returns (B, n_out, T): out[..., t] predicts the sample after inputs[..., t]."""
        x = self.embed_inputs(inputs)
        T = x.shape[-1]
        cond = ticks_to_samples = None
        if self.cond_net is not None and ticks is not None:
            if offset is None:
                offset = torch.zeros(x.shape[0], dtype=torch.long)
            cond = self.tick_conditioning(ticks)  # each layer projects it at tick rate
            ticks_to_samples = self.tick_index(offset.to(x.device), T)
            if cond.shape[-1] <= ONE_HOT_MAX_TICKS:  # a crop: the one-hot map, small (B, n_ticks, T)
                ticks_to_samples = F.one_hot(ticks_to_samples, cond.shape[-1]).transpose(1, 2).to(x.dtype)
        exc_keys = None
        if self.uses_excitation and exc is not None:
            exc, exc_keys = sounding_channels(exc)
        else:
            exc = None
        skips = None
        for layer in self.layers:
            x, s = layer(x, cond, exc, style, ticks_to_samples, exc_keys, timbre)
            skips = s if skips is None else skips + s
        return self.head(skips)

    # ------------------------------------------------------------------------------------------
    def init_state(self, batch: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> StepState:
        R = self.cfg.residual_channels
        return StepState([torch.zeros(batch, R, max(layer.history, 1), device=device, dtype=dtype)
                          for layer in self.layers])

    @torch.no_grad()
    def step(self, inputs: Tensor, state: StepState, cond: Tensor | None = None,
             exc: Tensor | None = None, style: Tensor | None = None, timbre: Tensor | None = None) -> Tensor:
        """One sample. inputs: (B,) the previous sample (code or float); cond: (B, cond_channels), the
        tick conditioning of the sample to predict; exc: (B, 2*88); style and timbre: (B,).
        Returns (B, n_out) and advances `state` (a device counter in `state.t` stays on the device)."""
        x = self.embed_inputs(inputs[:, None])[:, :, 0]  # (B, R)
        skips = None
        for layer, buf in zip(self.layers, state.buffers, strict=True):
            x, s = layer.step(x, buf, state.t, cond, exc, style, timbre)
            skips = s if skips is None else skips + s
        if isinstance(state.t, Tensor):
            state.t.add_(1)
        else:
            state.t += 1
        return self.head(skips[:, :, None])[:, :, 0]


# ----------------------------------------------------------------------------------------------
# losses and sampling (always in float32)


def mulaw_loss(out: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy in nats per sample. out: (B, n_classes, T); targets: (B, T) int64."""
    return F.cross_entropy(out.float(), targets)


def _mol_params(out: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """out: (B, 3M, T) -> logit_probs, means, log_scales, each (B, T, M)."""
    out = out.float().transpose(1, 2)
    M = out.shape[-1] // 3
    return out[..., :M], out[..., M : 2 * M], torch.clamp(out[..., 2 * M :], min=-9.0)


def mol_loss(out: Tensor, targets: Tensor) -> Tensor:
    """Discretized mixture of logistics over 16-bit audio: mean nats per sample.
    targets: (B, T) float audio in [-1, 1], on the 16-bit grid."""
    logit_probs, means, log_scales = _mol_params(out)
    y = targets.float()[..., None]
    half_bin = 1.0 / (2**MOL_BITS - 1)
    centered = y - means
    inv_s = torch.exp(-log_scales)
    cdf_plus = torch.sigmoid(inv_s * (centered + half_bin))
    cdf_min = torch.sigmoid(inv_s * (centered - half_bin))
    log_cdf_plus = F.logsigmoid(inv_s * (centered + half_bin))  # for y at -1: the whole lower tail
    log_one_minus_cdf_min = -F.softplus(inv_s * (centered - half_bin))  # for y at +1: the upper tail
    mid = inv_s * centered
    log_pdf_mid = mid - log_scales - 2.0 * F.softplus(mid) + math.log(2 * half_bin)
    delta = cdf_plus - cdf_min
    log_mid = torch.where(delta > 1e-5, torch.log(torch.clamp(delta, min=1e-12)), log_pdf_mid)
    log_probs = torch.where(y < -0.999, log_cdf_plus, torch.where(y > 0.999, log_one_minus_cdf_min, log_mid))
    log_probs = log_probs + F.log_softmax(logit_probs, dim=-1)
    return -torch.logsumexp(log_probs, dim=-1).mean()


def loss_fn(output: str, out: Tensor, targets: Tensor) -> Tensor:
    return mulaw_loss(out, targets) if output == "mulaw" else mol_loss(out, targets)


def sample(output: str, out: Tensor, temperature: float, generator: torch.Generator | None,
           min_p: float = 0.0) -> Tensor:
    """out: (B, n_out) for one step -> (B,) codes (mulaw) or float samples (mol). min_p (mulaw only):
    classes less likely than min_p times the most likely one are never drawn."""
    out = out.float()
    if output == "mulaw":
        if temperature <= 0:
            return out.argmax(dim=-1)
        probs = torch.softmax(out / temperature, dim=-1)
        if min_p > 0:
            probs = probs.masked_fill(probs < min_p * probs.amax(dim=-1, keepdim=True), 0.0)
        return torch.multinomial(probs, 1, generator=generator)[:, 0]
    M = out.shape[-1] // 3
    logit_probs, means, log_scales = out[:, :M], out[:, M : 2 * M], torch.clamp(out[:, 2 * M :], min=-9.0)
    u = torch.rand(logit_probs.shape, generator=generator, device=out.device).clamp(1e-5, 1 - 1e-5)
    pick = (logit_probs / max(temperature, 1e-3) - torch.log(-torch.log(u))).argmax(dim=-1, keepdim=True)
    mu = means.gather(1, pick)[:, 0]
    s = torch.exp(log_scales.gather(1, pick)[:, 0]) * max(temperature, 0.0)
    v = torch.rand(mu.shape, generator=generator, device=out.device).clamp(1e-5, 1 - 1e-5)
    x = mu + s * (torch.log(v) - torch.log1p(-v))
    steps = 2**MOL_BITS - 1
    return torch.round((x.clamp(-1, 1) + 1) / 2 * steps) / steps * 2 - 1


def finer_mu_law(weights: dict[str, Tensor], from_classes: int, to_classes: int) -> dict[str, Tensor]:
    """A mu-law WaveNet's weights (`state_dict`) re-cut for more mu-law levels, predicting what they did:
    each fine level j takes the input embedding and the output row of the coarse level its value falls in
    (c(j) = mu_law_encode(mu_law_decode(j, to), from)), its bias lowered by the log of how many fine levels
    share that coarse one. So the new network's distribution is the old one's, spread evenly over the
    fine levels inside each coarse level (summed per coarse level, the same to rounding), and a run with
    model.n_classes = to_classes can start from a model of from_classes (train.init)."""
    from wavegen.audio import mu_law_decode, mu_law_encode

    if to_classes <= from_classes:
        raise ValueError(f"finer_mu_law: {to_classes} levels are not finer than {from_classes}")
    coarse = torch.from_numpy(mu_law_encode(mu_law_decode(np.arange(to_classes), to_classes), from_classes))
    counts = torch.bincount(coarse, minlength=from_classes)
    if int(counts.min()) == 0:  # every coarse level must hold a fine one: true when the fine grid is finer
        raise ValueError(f"finer_mu_law: some of {from_classes} levels hold none of {to_classes}")
    out = dict(weights)
    head = max((k for k in weights if k.startswith("head.") and k.endswith(".weight")),
               key=lambda k: int(k.split(".")[1]))
    bias = head[: -len("weight")] + "bias"
    out["embed.weight"] = weights["embed.weight"][coarse].clone()
    out[head] = weights[head][coarse].clone()
    out[bias] = (weights[bias][coarse] - torch.log(counts[coarse].to(weights[bias].dtype))).clone()
    return out
