"""The first stage of VideoGPT (Yan et al. 2021): a VQ-VAE that turns a clip into a small grid of codes and back.

    frames (B, C, T, H, W) in [-1, 1]
      -> 3D conv encoder: stride-2 convolutions, then residual blocks      -> (B, D, t, h, w)
      -> each of the t*h*w vectors replaced by its nearest codebook entry -> codes (B, t, h, w)
      -> 3D conv decoder: residual blocks, then stride-2 transposed convs  -> frames (B, C, T, H, W)

The codebook is learned by exponential moving averages rather than by gradients (van den Oord et al. 2017,
appendix A.1): each entry drifts to the mean of the encoder outputs it wins. Two details decide whether that
works at all (VideoGPT; lucidrains/vector-quantize-pytorch):
- the codebook starts as encoder outputs of the first training batch, not random vectors: random ones sit far
  from everything the encoder produces and one or two codes win every position;
- a code whose moving-average use falls below `dead_code_threshold` is restarted at an encoder output of the
  current batch, where the data is.
Every codebook statistic is a buffer, so it is saved with the weights and a resumed run continues exactly.
Only training updates them: in eval mode, and in `encode` always, the codebook is a frozen lookup table.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import TokenizerConfig


def ssim(a, b):
    """Mean SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, data range 1) of each pair of (N, H, W)
    images in [0, 1] -> (N,). The measure video prediction papers (and OpenSTL) report beside MSE."""
    size = min(11, *a.shape[-2:])           # frames smaller than the window: the largest odd one that fits
    size -= 1 - size % 2
    x = torch.arange(size, dtype=a.dtype, device=a.device) - size // 2
    g = torch.exp(-x ** 2 / (2 * 1.5 ** 2))
    window = (g[:, None] * g[None, :] / g.sum() ** 2)[None, None]
    a, b = a[:, None], b[:, None]

    def blur(t):
        return F.conv2d(t, window)

    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b, cov = blur(a * a) - mu_a ** 2, blur(b * b) - mu_b ** 2, blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.mean(dim=(1, 2, 3))


# ----------------------------------------------------------------------------------------------------------
# encoder and decoder, causal in time
#
# Every convolution looks only backwards in time: a kernel of 3 frames is padded with two frames in front and
# none behind, a stride-2 step in time reads frames (2i, 2i+1) and its transposed twin writes them back from
# code frame i. So the codes of frames 0..k depend on those frames alone, and frames 0..k decode from their
# codes alone. That is what makes a primer of k frames an exact token prefix (its codes are the ones the whole
# clip would have had) and lets generation show each frame as soon as its codes are drawn (later codes can
# never change it). Space is ordinary: kernel 4 at stride 2 and kernel 3 at stride 1, padding 1; or, with
# patch_encoder, the encoder's kernels equal their strides and are 1x1x1 after them (TokenizerConfig says why).

def strides(config: TokenizerConfig) -> list[tuple[int, int, int]]:
    """One (t, h, w) stride per downsampling layer: each halves time and space until it has been halved
    log2(factor) times (VideoGPT's schedule), so 4x8x8 is (2,2,2), (2,2,2), (1,2,2)."""
    n_t, n_s = int(math.log2(config.time_downsample)), int(math.log2(config.space_downsample))
    return [(2 if i < n_t else 1, 2 if i < n_s else 1, 2 if i < n_s else 1) for i in range(max(n_t, n_s))]


class CausalConv3d(nn.Conv3d):
    """A 3D convolution padded in time on the past side only (kernel_t - stride_t frames), in space on both."""

    def __init__(self, c_in: int, c_out: int, kernel: tuple[int, int, int], stride=(1, 1, 1)):
        space_padding = (kernel[1] - stride[1] + 1) // 2
        super().__init__(c_in, c_out, kernel, stride, padding=(0, space_padding, space_padding))
        self.past = kernel[0] - stride[0]

    def forward(self, x):
        return super().forward(F.pad(x, (0, 0, 0, 0, self.past, 0)))


def down(c_in: int, c_out: int, stride: tuple[int, int, int]) -> CausalConv3d:
    """Kernel 2 at stride 2 in time (or 3 at stride 1), 4 at stride 2 in space (or 3 at stride 1)."""
    return CausalConv3d(c_in, c_out, (3 if stride[0] == 1 else 2, *(4 if s == 2 else 3 for s in stride[1:])), stride)


def patch_down(c_in: int, c_out: int, stride: tuple[int, int, int]) -> CausalConv3d:
    """`down` for a patch encoder: the kernel is the stride, so no pixel outside a code's patch reaches it."""
    return CausalConv3d(c_in, c_out, stride, stride)


def up(c_in: int, c_out: int, stride: tuple[int, int, int]) -> nn.ConvTranspose3d:
    """The inverse of `down`: code frame i writes frames stride_t*i .. stride_t*i + stride_t - 1 and nothing
    earlier or later; space as the ordinary transposed convolution."""
    return nn.ConvTranspose3d(c_in, c_out, (stride[0], *(4 if s == 2 else 3 for s in stride[1:])), stride,
                              padding=(0, 1, 1))


class ResBlock(nn.Module):
    """x + conv1x1(relu(conv3x3x3(relu(x)))): the VQ-VAE paper's residual block in 3D, causal in time. No
    normalisation layer, so a model computes the same thing in train and eval mode."""

    def __init__(self, channels: int, kernel=(3, 3, 3)):
        super().__init__()
        self.net = nn.Sequential(nn.ReLU(), CausalConv3d(channels, channels, kernel),
                                 nn.ReLU(), nn.Conv3d(channels, channels, 1))

    def forward(self, x):
        return x + self.net(x)


class Encoder(nn.Module):
    def __init__(self, c: TokenizerConfig):
        super().__init__()
        layers, width = [], c.channels
        for stride in strides(c):
            layers += [(patch_down if c.patch_encoder else down)(width, c.hidden, stride), nn.ReLU()]
            width = c.hidden
        kernel = (1, 1, 1) if c.patch_encoder else (3, 3, 3)
        layers += [CausalConv3d(c.hidden, c.hidden, kernel)]
        layers += [ResBlock(c.hidden, kernel) for _ in range(c.res_blocks)]
        layers += [nn.ReLU(), nn.Conv3d(c.hidden, c.code_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, video):
        return self.net(video)                          # (B, C, T, H, W) -> (B, D, t, h, w)


class Decoder(nn.Module):
    def __init__(self, c: TokenizerConfig):
        super().__init__()
        layers = [CausalConv3d(c.code_dim, c.hidden, (3, 3, 3))]
        layers += [ResBlock(c.hidden) for _ in range(c.res_blocks)]
        layers += [nn.ReLU()]
        upsampling = list(reversed(strides(c)))
        for i, stride in enumerate(upsampling):
            last = i == len(upsampling) - 1
            layers += [up(c.hidden, c.channels if last else c.hidden, stride)]
            if not last:
                layers += [nn.ReLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(z)                              # (B, D, t, h, w) -> (B, C, T, H, W)

    def reach(self) -> int:
        """How many code frames back a decoded frame can see (its receptive field in time, in code frames):
        decoding the last `reach` code frames gives the same newest frames as decoding the whole clip."""
        return 1 + sum(m.past for m in self.modules() if isinstance(m, CausalConv3d))


# ----------------------------------------------------------------------------------------------------------
# codebook

class Codebook(nn.Module):
    """K code vectors of dimension D, updated by EMA while training (see the module docstring)."""

    def __init__(self, size: int, dim: int, decay: float, dead_code_threshold: float, eps: float = 1e-5):
        super().__init__()
        self.size, self.decay, self.threshold, self.eps = size, decay, dead_code_threshold, eps
        embed = torch.randn(size, dim)
        self.register_buffer("embed", embed)                        # (K, D) the codes
        self.register_buffer("embed_avg", embed.clone())            # (K, D) EMA of the sum of vectors each won
        self.register_buffer("cluster_size", torch.zeros(size))     # (K,) EMA of how many vectors each won
        self.register_buffer("initialised", torch.tensor(False))
        self.register_buffer("restarts", torch.tensor(0))           # codes restarted so far

    def nearest(self, flat):
        """Index of the closest code to each row of flat (N, D), by squared Euclidean distance."""
        distance = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.embed.t()
                    + self.embed.pow(2).sum(1))                     # (N, K)
        return distance.argmin(1)

    @torch.no_grad()
    def initialise_(self, flat):
        """Codes from distinct encoder outputs of this batch (repeats only when it holds fewer than K)."""
        n = flat.size(0)
        pick = torch.randperm(n, device=flat.device)[:self.size] if n >= self.size \
            else torch.randint(n, (self.size,), device=flat.device)
        self.embed.copy_(flat[pick])
        self.embed_avg.copy_(flat[pick])
        self.cluster_size.fill_(1.0)
        self.initialised.fill_(True)

    @torch.no_grad()
    def update_(self, flat, codes):
        """One EMA step towards the mean of the vectors each code won in this batch."""
        counts = torch.bincount(codes, minlength=self.size).to(flat.dtype)           # (K,)
        sums = torch.zeros_like(self.embed).index_add_(0, codes, flat)               # (K, D)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # under DDP every rank's batch moves the codebook (DDP then copies rank 0's buffers to all ranks)
            torch.distributed.all_reduce(counts)
            torch.distributed.all_reduce(sums)
        self.cluster_size.lerp_(counts, 1 - self.decay)
        self.embed_avg.lerp_(sums, 1 - self.decay)
        # Laplace smoothing: a code nobody chose lately divides by a small number, never by zero
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.size * self.eps) * n
        self.embed.copy_(self.embed_avg / smoothed[:, None])

    @torch.no_grad()
    def expire_codes_(self, flat) -> None:
        """Restart every code used less than the threshold at a random vector of this batch (counted in
        `restarts`)."""
        dead = self.cluster_size < self.threshold
        n_dead = int(dead.sum())
        if n_dead:
            picks = flat[torch.randint(flat.size(0), (n_dead,), device=flat.device)]
            self.embed[dead] = picks
            self.embed_avg[dead] = picks * self.threshold       # so embed_avg / cluster_size == picks
            self.cluster_size[dead] = self.threshold
            self.restarts += n_dead

    def forward(self, z):
        """z (B, D, t, h, w) -> quantised z (gradients pass straight through to z), codes (B, t, h, w), and
        the commitment loss and perplexity (tensors)."""
        B, D, t, h, w = z.shape
        # (N, D), N = B*t*h*w; in fp32 under autocast too: the EMA statistics are fp32 buffers
        flat = z.movedim(1, -1).reshape(-1, D).float()
        if self.training and not self.initialised:
            self.initialise_(flat.detach())
        codes = self.nearest(flat.detach())                     # (N,)
        quantised = F.embedding(codes, self.embed)              # (N, D), the codes before this step's update
        if self.training:
            self.update_(flat.detach(), codes)
            self.expire_codes_(flat.detach())
        # the codebook is no parameter, so this pulls only the encoder towards the codes it chose
        commitment = F.mse_loss(flat, quantised)
        # straight-through estimator: the forward pass sees the code, the backward pass the encoder output
        quantised = flat + (quantised - flat).detach()
        counts = torch.bincount(codes, minlength=self.size)
        usage = counts.float() / codes.numel()
        perplexity = torch.exp(-(usage * torch.log(usage + 1e-10)).sum())      # codes in effective use
        stats = {"commitment": commitment, "perplexity": perplexity, "unused": (counts == 0).sum()}
        return (quantised.view(B, t, h, w, D).movedim(-1, 1), codes.view(B, t, h, w), stats)


# ----------------------------------------------------------------------------------------------------------
# the VQ-VAE

class VQVAE(nn.Module):
    def __init__(self, config: TokenizerConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.codebook = Codebook(config.codebook_size, config.code_dim, config.ema_decay, config.dead_code_threshold)
        self.decoder = Decoder(config)

    def forward(self, video):
        """video (B, C, T, H, W) in [-1, 1] -> (reconstruction, metrics). metrics["loss"] is what to minimise
        (reconstruction MSE + beta * commitment); the rest are for watching: mse, commitment, psnr (dB, mean
        over clips), perplexity (codes in effective use in this batch), unused (codes no position of this
        batch chose)."""
        quantised, _, stats = self.codebook(self.encoder(video))
        recon = self.decoder(quantised)
        mse = F.mse_loss(recon, video)
        # frames span [-1, 1], a peak-to-peak range of 2: PSNR = 10 log10(2^2 / MSE), per clip then averaged
        clip_mse = (recon.detach() - video).pow(2).flatten(1).mean(1)
        psnr = (10 * torch.log10(4.0 / clip_mse.clamp_min(1e-10))).mean()
        with torch.no_grad():
            frames = lambda v: ((v.float() + 1) / 2).clamp(0, 1).transpose(1, 2).flatten(0, 2)   # (B*T*C, H, W)
            similarity = ssim(frames(recon), frames(video)).mean()
        loss = mse + self.config.commitment * stats["commitment"]
        return recon, {"loss": loss, "mse": mse.detach(), "commitment": stats["commitment"].detach(), "psnr": psnr,
                       "ssim": similarity, "perplexity": stats["perplexity"], "unused": stats["unused"]}

    @torch.no_grad()
    def encode(self, video):
        """video (B, C, T, H, W) -> codes (B, t, h, w) long. A pure lookup: never moves the codebook."""
        z = self.encoder(video)
        B, D, t, h, w = z.shape
        return self.codebook.nearest(z.movedim(1, -1).reshape(-1, D)).view(B, t, h, w)

    @torch.no_grad()
    def decode(self, codes):
        """codes (B, t, h, w) long -> frames (B, C, T, H, W) clamped to [-1, 1]."""
        z = F.embedding(codes, self.codebook.embed).movedim(-1, 1)     # (B, D, t, h, w)
        return self.decoder(z).clamp(-1, 1)
