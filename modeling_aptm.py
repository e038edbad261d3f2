"""APTM: a Swin image encoder, a BERT text encoder and a BERT fusion encoder with cross-attention to the image
tokens, with image-text contrastive (ITC), image-text matching (ITM) and masked-language-model (MLM) heads."""

from dataclasses import dataclass
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutput,
    BaseModelOutputWithCrossAttentions,
    BaseModelOutputWithPooling,
    ImageClassifierOutput,
)
from transformers.utils import ModelOutput

try:  # remote code (a package in the Hub module cache)
    from .configuration_aptm import APTMConfig, APTMCrossConfig, APTMTextConfig, APTMVisionConfig
except ImportError:  # installed top-level module
    from configuration_aptm import APTMConfig, APTMCrossConfig, APTMTextConfig, APTMVisionConfig


# ---------------------------------------------------------------------------------------------------------------------
# Attention: one code path for every attention of the model (Swin windows, text self-attention, cross-attention)
# ---------------------------------------------------------------------------------------------------------------------


def attention_forward(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: Optional[torch.Tensor] = None,
    dropout: float = 0.0,
    implementation: str = "sdpa",
) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Scaled dot-product attention over `[..., heads, length, head_dim]` tensors with an additive
    `attention_mask` broadcastable to the scores. `implementation` is `"sdpa"` (PyTorch kernel) or `"eager"`.
    Returns `(context, weights)`: the attention weights `[..., heads, length, key_length]` with `"eager"`, None with
    `"sdpa"`, whose kernel does not expose them (as transformers' SDPA path: ask for attentions with `"eager"`)."""
    if implementation == "eager":
        scores = torch.matmul(query * query.shape[-1] ** -0.5, key.transpose(-1, -2))
        if attention_mask is not None:
            scores = scores + attention_mask
        weights = scores.softmax(dim=-1)
        return torch.matmul(F.dropout(weights, p=dropout, training=dropout > 0), value), weights
    return F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, dropout_p=dropout), None


def _output_flags(config, output_attentions, output_hidden_states, return_dict):
    """The three output switches of a `forward`, each from `config` where the call leaves it None."""
    return (
        config.output_attentions if output_attentions is None else output_attentions,
        config.output_hidden_states if output_hidden_states is None else output_hidden_states,
        config.return_dict if return_dict is None else return_dict,
    )


def additive_attention_mask(attention_mask, dtype):
    """`[B, L]` mask of 1 (attend) / 0 (ignore) -> additive `[B, 1, 1, L]` mask, or None when absent."""
    if attention_mask is None:
        return None
    mask = attention_mask[:, None, None, :].to(dtype)
    return (1.0 - mask) * torch.finfo(dtype).min


def drop_path(hidden_states, drop_prob, training):
    """Stochastic depth: zero whole samples of a residual branch with probability `drop_prob`, rescale the rest."""
    if drop_prob == 0.0 or not training:
        return hidden_states
    keep = 1.0 - drop_prob
    shape = (hidden_states.shape[0],) + (1,) * (hidden_states.ndim - 1)
    return hidden_states * hidden_states.new_empty(shape).bernoulli_(keep) / keep


# ---------------------------------------------------------------------------------------------------------------------
# Losses: pure functions; `APTMForPreTraining.forward` calls them for the inputs it is given
# ---------------------------------------------------------------------------------------------------------------------


def gather_across_processes(tensor, gradient="local"):
    """Concatenate `tensor` from every process along dim 0 (identity with one process). With `gradient="local"`,
    as the original's `AllGather`, only this process's own slice carries gradient back; with `"global"` the gather
    is differentiable: each process's loss sends gradient to the slice of every other process too, so under DDP's
    gradient averaging the update equals the one-process update on the global batch (see `APTMConfig.itc_gradient`)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return tensor
    if torch.distributed.get_world_size() == 1:
        return tensor
    if gradient == "global" and tensor.requires_grad:
        from torch.distributed.nn.functional import all_gather

        return torch.cat(all_gather(tensor.contiguous()))
    gathered = [torch.empty_like(tensor) for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather(gathered, tensor.contiguous())
    gathered[torch.distributed.get_rank()] = tensor  # the same values, with this process's autograd history
    return torch.cat(gathered)


def image_text_contrastive_loss(image_features, text_features, temp, person_ids, gradient="local"):
    """Identity-aware symmetric InfoNCE over the (gathered) global batch: every pair with the same person id is a
    positive, with soft targets spread evenly over a row's positives. Features are L2-normalised. `gradient`: how
    the gathered features of other processes pass gradient back (`APTMConfig.itc_gradient`)."""
    image_features = gather_across_processes(image_features, gradient)
    text_features = gather_across_processes(text_features, gradient)
    person_ids = gather_across_processes(person_ids)
    logits = image_features @ text_features.t() / temp
    positives = (person_ids[:, None] == person_ids[None, :]).float()
    targets = positives / positives.sum(dim=1, keepdim=True)
    loss_i2t = -(F.log_softmax(logits, dim=1) * targets).sum(dim=1).mean()
    loss_t2i = -(F.log_softmax(logits.t(), dim=1) * targets).sum(dim=1).mean()
    return (loss_i2t + loss_t2i) / 2


@torch.no_grad()
def sample_hard_negatives(image_features, text_features, temp, person_ids):
    """For each text a negative image and for each image a negative text, drawn with probability
    softmax(similarity / temp) among the batch samples of another person (local batch). Returns two index tensors
    `[B]`; -1 where a sample has no other person in the batch (the original crashes there)."""
    similarity = text_features @ image_features.t() / temp
    different = person_ids[:, None] != person_ids[None, :]
    negatives = []
    for logits in (similarity, similarity.t()):
        weights = (logits.softmax(dim=1) + 1e-5) * different
        valid = weights.sum(dim=1) > 0
        drawn = torch.full_like(person_ids, -1)
        for row in valid.nonzero().flatten().tolist():
            drawn[row] = torch.multinomial(weights[row], 1)
        negatives.append(drawn)
    return negatives[0], negatives[1]


def masked_lm_loss(logits, labels):
    """Cross-entropy of MLM logits `[..., vocab]` against `labels` (-100 = not masked); 0 without any target."""
    labels = labels.reshape(-1)
    if not (labels != -100).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits.reshape(labels.shape[0], -1).float(), labels, ignore_index=-100)


def two_way_loss(logits, targets, label_smoothing=0.0, balanced=False):
    """Mean cross-entropy of 2-way `logits [..., 2]` against `targets` in {0, 1, -1 (ignored)}, with label smoothing
    (targets `1 - s/2` and `s/2`, as APTM's CrossEntropyLabelSmooth on 2 classes); 0 when every target is ignored.
    `balanced` averages the mean loss of each target value present instead of every sample, so a rare value weighs
    as much as a common one (the surrogate of the balanced accuracy that mA measures)."""
    known = targets >= 0
    if not known.any():
        return logits.sum() * 0.0
    targets = targets[known]
    log_probs = F.log_softmax(logits[known].float(), dim=-1)
    soft = F.one_hot(targets, 2).float() * (1 - label_smoothing) + label_smoothing / 2
    losses = -(soft * log_probs).sum(dim=-1)
    if not balanced:
        return losses.mean()
    return torch.stack([losses[targets == value].mean() for value in targets.unique()]).mean()


def attribute_contrastive_loss(image_features, prompt_features, temp, labels, label_smoothing=0.0, balanced=False):
    """IAC: for each attribute a 2-way contrast of the image against its two prompts (prompt `2i + v` states label
    value `v`), averaged over attributes (an attribute with no known label in the batch contributes 0)."""
    logits = (image_features @ prompt_features.t() / temp).view(len(labels), -1, 2)
    losses = [two_way_loss(logits[:, i], labels[:, i], label_smoothing, balanced) for i in range(labels.shape[1])]
    return torch.stack(losses).mean()


def prompt_targets(labels):
    """Attribute labels `[B, A]` in {1, 0, -1} -> prompt targets `[B, 2A]`: prompt `2i + v` is true (1) when label `i`
    is `v`, false (0) for the other value, -1 when unknown. Any other label value raises a `ValueError` naming it."""
    invalid = (labels < -1) | (labels > 1)
    if invalid.any():
        row, column = invalid.nonzero()[0].tolist()
        raise ValueError(f"attribute_labels[{row}][{column}] = {labels[row, column].item()} is not one of 1, 0, -1")
    targets = torch.stack([1 - labels, labels], dim=-1)
    return targets.masked_fill((labels < 0)[..., None], -1).flatten(1)


# ---------------------------------------------------------------------------------------------------------------------
# Vision: APTM's Swin Transformer at 384x128 (windows shrink to the shorter grid side, global token prepended)
# ---------------------------------------------------------------------------------------------------------------------


def window_partition(hidden_states, window_size):
    """`[B, H, W, C]` -> `[B, num_windows, window_size**2, C]` (windows in row-major order)."""
    batch, height, width, channels = hidden_states.shape
    windows = hidden_states.view(
        batch, height // window_size, window_size, width // window_size, window_size, channels
    )
    return windows.permute(0, 1, 3, 2, 4, 5).reshape(batch, -1, window_size * window_size, channels)


def window_order(height, width, window_size, shift_size=0, device=None):
    """Row-major grid index of every token of a `height x width` grid in a Swin block's window order: the grid
    cyclically shifted by `-shift_size` (as `torch.roll`), then split by `window_partition`."""
    grid = torch.arange(height * width, device=device).view(1, height, width, 1)
    if shift_size:
        grid = torch.roll(grid, shifts=(-shift_size, -shift_size), dims=(1, 2))
    return window_partition(grid, window_size).flatten()


def token_reorders(orders, final=None):
    """Gather indices taking a token sequence from row-major order through each of `orders` in turn, then into
    `final` (default: back to row-major): `len(orders) + 1` rows, row i moving tokens from the previous order into the
    next one."""
    natural = torch.arange(len(orders[0]), device=orders[0].device)
    steps = [natural, *orders, natural if final is None else final]
    reorders = []
    for current, target in zip(steps, steps[1:]):
        position = torch.empty_like(current)
        position[current] = natural  # where each grid index sits in the current order
        reorders.append(position[target])
    return torch.stack(reorders)


def relative_position_index(window_size, device=None):
    """Index into the `(2w-1)**2`-row bias table for every (query, key) pair of a `w x w` window."""
    coords = torch.stack(
        torch.meshgrid(torch.arange(window_size, device=device), torch.arange(window_size, device=device), indexing="ij")
    ).flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window_size - 1)
    return relative[..., 0] * (2 * window_size - 1) + relative[..., 1]


def shifted_window_mask(height, width, window_size, shift_size, device=None):
    """Additive mask `[num_windows, w*w, w*w]` (-100 between tokens of different regions) for cyclic-shifted windows."""
    region = torch.zeros(height, width, device=device)
    bounds = (slice(0, -window_size), slice(-window_size, -shift_size), slice(-shift_size, None))
    label = 0
    for rows in bounds:
        for cols in bounds:
            region[rows, cols] = label
            label += 1
    windows = window_partition(region[None, :, :, None], window_size)[0, :, :, 0]
    different = windows[:, None, :] != windows[:, :, None]
    return torch.zeros(different.shape, device=device).masked_fill(different, -100.0)


class APTMPatchEmbeddings(nn.Module):
    """Non-overlapping patch projection followed by LayerNorm."""

    def __init__(self, config: APTMVisionConfig):
        super().__init__()
        self.proj = nn.Conv2d(config.num_channels, config.embed_dim, config.patch_size, stride=config.patch_size)
        self.norm = nn.LayerNorm(config.embed_dim, eps=config.layer_norm_eps)

    def forward(self, pixel_values):
        return self.norm(self.proj(pixel_values).flatten(2).transpose(1, 2))


class APTMWindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with a learned relative-position bias."""

    def __init__(self, config: APTMVisionConfig, dim, num_heads, window_size):
        super().__init__()
        self.config = config
        self.num_heads = num_heads
        self.window_size = window_size
        self.relative_position_bias_table = nn.Parameter(torch.empty((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window_size), persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim, bias=config.qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, windows, window_mask=None):
        """`windows`: `[B, num_windows, N, C]`; `window_mask`: additive `[num_windows, N, N]` or None. Returns the
        projected context and the attention weights `[B * num_windows, heads, N, N]` (eager only, else None)."""
        batch, num_windows, length, channels = windows.shape
        qkv = self.qkv(windows).view(batch * num_windows, length, 3, self.num_heads, channels // self.num_heads)
        # [batch x windows, heads, N, head_dim] views of the projection, no copies: PyTorch's fused CPU kernel
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(length, length, self.num_heads).permute(2, 0, 1)
        mask = bias[None] if window_mask is None else (bias + window_mask[:, None]).repeat(batch, 1, 1, 1)
        dropout = self.config.attention_probs_dropout_prob if self.training else 0.0
        context, weights = attention_forward(query, key, value, mask.to(query.dtype), dropout,
                                             self.config._attn_implementation)
        context = context.transpose(1, 2).reshape(batch, num_windows, length, channels)
        return self.proj_drop(self.proj(context)), weights


class APTMSwinMLP(nn.Module):
    def __init__(self, config: APTMVisionConfig, dim):
        super().__init__()
        self.fc1 = nn.Linear(dim, int(dim * config.mlp_ratio))
        self.act = nn.GELU()
        self.fc2 = nn.Linear(int(dim * config.mlp_ratio), dim)
        self.drop = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(hidden_states)))))


class APTMSwinBlock(GradientCheckpointingLayer):
    """Swin block: (shifted-)window attention and MLP, each pre-norm with a residual and stochastic depth. It reads and
    returns its tokens in its window order; `APTMSwinStage` moves them between orders."""

    def __init__(self, config: APTMVisionConfig, dim, resolution, num_heads, shift, drop_path_rate, window_size=None):
        super().__init__()
        window_size = config.window_size if window_size is None else window_size  # the stage's (before clipping)
        self.resolution = resolution
        self.window_size = min(window_size, *resolution)
        self.shift_size = window_size // 2 if shift and min(resolution) > window_size else 0
        self.drop_path_rate = drop_path_rate
        self.norm1 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.attn = APTMWindowAttention(config, dim, num_heads, self.window_size)
        self.norm2 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.mlp = APTMSwinMLP(config, dim)
        self.register_buffer("attn_mask", self.compute_attn_mask(), persistent=False)

    def compute_attn_mask(self, device=None):
        if not self.shift_size:
            return None
        return shifted_window_mask(*self.resolution, self.window_size, self.shift_size, device=device)

    def forward(self, hidden_states):
        """`hidden_states` `[B, H*W, C]` in this block's window order (`window_order`): each window's tokens are
        consecutive, so the shift and the windows cost no copy (LayerNorm, MLP and residuals act per token). Returns
        the new states and the window attention weights (eager only, else None)."""
        batch, length, channels = hidden_states.shape
        windows = self.norm1(hidden_states).view(batch, -1, self.window_size**2, channels)
        attended, weights = self.attn(windows, self.attn_mask)
        hidden_states = hidden_states + drop_path(attended.view(batch, length, channels), self.drop_path_rate,
                                                  self.training)
        hidden_states = hidden_states + drop_path(self.mlp(self.norm2(hidden_states)), self.drop_path_rate,
                                                  self.training)
        return hidden_states, weights


def merge_order(height, width, device=None):
    """Row-major grid index of every token in patch-merging order: for each 2x2 neighbourhood (row-major over the
    half-resolution grid) its tokens (0,0), (1,0), (0,1), (1,1), consecutive."""
    grid = torch.arange(height * width, device=device).view(height // 2, 2, width // 2, 2)
    return grid.permute(0, 2, 3, 1).flatten()


class APTMPatchMerging(nn.Module):
    """2x2 neighbourhood concatenation ((0,0), (1,0), (0,1), (1,1)), LayerNorm, then a linear 4C -> 2C reduction. It
    reads its tokens in `merge_order`, so the concatenation is a view."""

    def __init__(self, config: APTMVisionConfig, dim, resolution):
        super().__init__()
        self.resolution = resolution
        self.norm = nn.LayerNorm(4 * dim, eps=config.layer_norm_eps)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, hidden_states):
        batch, length, channels = hidden_states.shape
        return self.reduction(self.norm(hidden_states.view(batch, length // 4, 4 * channels)))


class APTMSwinStage(nn.Module):
    """Swin blocks, then patch merging (all but the last stage). Between blocks the tokens move from one block's window
    order to the next one's with one gather (`token_reorders`), instead of a roll and a window partition before each
    attention and their inverses after it, and after the last block into the patch merging's order; the stage takes and
    returns row-major tokens."""

    def __init__(self, config: APTMVisionConfig, index, drop_path_rates):
        super().__init__()
        dim = config.embed_dim * 2**index
        stride = config.patch_size * 2**index
        resolution = (config.image_size[0] // stride, config.image_size[1] // stride)
        self.blocks = nn.ModuleList(
            APTMSwinBlock(config, dim, resolution, config.num_heads[index], shift=j % 2 == 1, drop_path_rate=rate,
                          window_size=config.stage_window_size(index))
            for j, rate in enumerate(drop_path_rates)
        )
        last = index == len(config.depths) - 1
        self.downsample = None if last else APTMPatchMerging(config, dim, resolution)
        reorders = self.compute_token_reorders("cpu")  # also under a meta-device init: the flags need real values
        self.reorder_needed = [not torch.equal(row, torch.arange(len(row), device="cpu")) for row in reorders]
        self.register_buffer("token_reorders", reorders, persistent=False)

    def compute_token_reorders(self, device=None):
        orders = [window_order(*block.resolution, block.window_size, block.shift_size, device) for block in self.blocks]
        return token_reorders(orders, None if self.downsample is None else merge_order(*self.downsample.resolution,
                                                                                        device))

    def reorder(self, hidden_states, step):
        """Tokens `[B, L, C]` moved by row `step` of `token_reorders` (nothing to do where that row is the identity)."""
        return hidden_states.index_select(1, self.token_reorders[step]) if self.reorder_needed[step] else hidden_states

    def forward(self, hidden_states):
        """Row-major tokens `[B, H*W, C]` -> the stage's output tokens and the attention weights of each block."""
        attentions = []
        for step, block in enumerate(self.blocks):
            hidden_states, weights = block(self.reorder(hidden_states, step))
            attentions.append(weights)
        hidden_states = self.reorder(hidden_states, len(self.blocks))
        hidden_states = hidden_states if self.downsample is None else self.downsample(hidden_states)
        return hidden_states, tuple(attentions)


class APTMPreTrainedModel(PreTrainedModel):
    config_class = APTMConfig
    base_model_prefix = "aptm"
    main_input_name = "pixel_values"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["APTMSwinBlock", "APTMLayer"]

    # set by a tower built inside a composite model (`inside_model=True`): its own `post_init` then leaves the weights
    # to the composite's, which initialises every module in one pass in definition order, so a seed gives the same
    # weights as it did before the towers were models of their own
    _weights_initialised_by_parent = False

    def init_weights(self):
        if self._weights_initialised_by_parent:
            self._weights_initialised_by_parent = False
            return
        super().init_weights()

    @classmethod
    def _can_set_attn_implementation(cls) -> bool:
        # Every attention of the model (`attention_forward`) reads `config._attn_implementation` of its tower at call
        # time, so `set_attn_implementation` takes effect at once, for the whole model or per tower (transformers'
        # source heuristic looks for its own attention-function registry, which APTM's one code path does not use).
        return True

    @torch.no_grad()
    def _init_weights(self, module):
        # a tower (its own config) or a composite model (every head initialised as the text towers, as the original)
        config = self.config.text_config if hasattr(self.config, "text_config") else self.config
        std = config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm1d):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
            init.zeros_(module.num_batches_tracked)
        elif isinstance(module, APTMWindowAttention):
            init.trunc_normal_(module.relative_position_bias_table, std=std)
            init.copy_(module.relative_position_index, relative_position_index(module.window_size))
        elif isinstance(module, APTMSwinBlock) and module.attn_mask is not None:
            init.copy_(module.attn_mask, module.compute_attn_mask())
        elif isinstance(module, APTMSwinStage):
            init.copy_(module.token_reorders, module.compute_token_reorders())
        elif isinstance(module, APTMModel):
            init.constant_(module.temp, self.config.temp)


class APTMVisionModel(APTMPreTrainedModel):
    """Swin image encoder. Returns `[B, 1 + N, C]` tokens: the mean of the final normalised patch tokens, then the
    N patch tokens (N = 48 at 384x128)."""

    config_class = APTMVisionConfig
    input_modalities = ("image",)
    _no_split_modules = ["APTMSwinBlock"]

    def __init__(self, config: APTMVisionConfig, inside_model: bool = False):
        super().__init__(config)
        self._weights_initialised_by_parent = inside_model
        self.patch_embed = APTMPatchEmbeddings(config)
        total = sum(config.depths)
        rates = [config.drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        starts = [sum(config.depths[:i]) for i in range(len(config.depths))]
        self.layers = nn.ModuleList(
            APTMSwinStage(config, i, rates[start : start + depth])
            for i, (start, depth) in enumerate(zip(starts, config.depths))
        )
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.patch_embed

    def forward(
        self,
        pixel_values: torch.FloatTensor,
        output_attentions: Optional[bool] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
    ) -> Union[BaseModelOutput, tuple]:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, num_channels, height, width)`): images at
                `config.image_size`.

        Returns `BaseModelOutput`:
            - `last_hidden_state` `(batch_size, 1 + num_patches, hidden_size)`: token 0 is the global (mean) token.
            - `hidden_states` (with `output_hidden_states`): the patch embeddings `(batch_size, H/4 * W/4, embed_dim)`
              and the output of each stage (row-major tokens; width and resolution change at each patch merging),
              `len(depths) + 1` tensors.
            - `attentions` (with `output_attentions`, eager attention only): one per Swin block, `sum(depths)`
              tensors of shape `(batch_size * num_windows, num_heads, window_size**2, window_size**2)`.
        """
        output_attentions, output_hidden_states, return_dict = _output_flags(
            self.config, output_attentions, output_hidden_states, return_dict)
        expected = (self.config.num_channels, *self.config.image_size)
        if pixel_values.ndim != 4 or tuple(pixel_values.shape[1:]) != expected:
            raise ValueError(
                f"pixel_values must have shape [batch, {expected[0]}, {expected[1]}, {expected[2]}], "
                f"got {list(pixel_values.shape)}; resize images with APTMProcessor"
            )
        hidden_states = self.patch_embed(pixel_values)
        all_hidden_states, all_attentions = [hidden_states], []
        for stage in self.layers:
            hidden_states, attentions = stage(hidden_states)
            all_hidden_states.append(hidden_states)
            all_attentions.extend(attentions)
        hidden_states = self.norm(hidden_states)
        hidden_states = torch.cat([hidden_states.mean(dim=1, keepdim=True), hidden_states], dim=1)
        output = BaseModelOutput(
            last_hidden_state=hidden_states,
            hidden_states=tuple(all_hidden_states) if output_hidden_states else None,
            attentions=tuple(all_attentions) if output_attentions else None,
        )
        return output if return_dict else output.to_tuple()


# ---------------------------------------------------------------------------------------------------------------------
# Text and fusion: BERT layers; fusion layers add cross-attention whose keys/values come from the image tokens
# ---------------------------------------------------------------------------------------------------------------------


class APTMTextEmbeddings(nn.Module):
    def __init__(self, config: APTMTextConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids=None):
        length = input_ids.shape[1]
        if length > self.position_embeddings.num_embeddings:
            raise ValueError(f"input_ids has {length} tokens, more than the {self.position_embeddings.num_embeddings} "
                             "positions of the model")
        positions = torch.arange(length, device=input_ids.device)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        embeddings = (
            self.word_embeddings(input_ids) + self.position_embeddings(positions) + self.token_type_embeddings(token_type_ids)
        )
        return self.dropout(self.LayerNorm(embeddings))


class APTMSelfAttention(nn.Module):
    """Multi-head attention of the BERT towers: self-attention, or cross-attention when `key_value_size` (the width
    of the image tokens) is given."""

    def __init__(self, config: APTMTextConfig, key_value_size=None):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        key_value_size = key_value_size or config.hidden_size
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(key_value_size, config.hidden_size)
        self.value = nn.Linear(key_value_size, config.hidden_size)

    def split_heads(self, states):
        return states.view(*states.shape[:2], self.num_heads, self.head_dim).transpose(1, 2)

    def key_value(self, states):
        """Keys and values `[B, heads, N, head_dim]` of `states`; computed once, they can be reused across queries."""
        return self.split_heads(self.key(states)), self.split_heads(self.value(states))

    def forward(self, hidden_states, attention_mask=None, key_value_states=None, key_value=None):
        """Context `[B, L, H]` and the attention weights `[B, heads, L, key_length]` (eager only, else None)."""
        if key_value is None:
            key_value = self.key_value(hidden_states if key_value_states is None else key_value_states)
        query = self.split_heads(self.query(hidden_states))
        dropout = self.config.attention_probs_dropout_prob if self.training else 0.0
        context, weights = attention_forward(query, *key_value, attention_mask, dropout,
                                             self.config._attn_implementation)
        return context.transpose(1, 2).flatten(2), weights


class APTMResidualOutput(nn.Module):
    """Projection back to the hidden size, dropout, residual and post-LayerNorm (after attention and after the
    feed-forward block)."""

    def __init__(self, config: APTMTextConfig, input_size):
        super().__init__()
        self.dense = nn.Linear(input_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, input_tensor):
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class APTMAttention(nn.Module):
    def __init__(self, config: APTMTextConfig, key_value_size=None):
        super().__init__()
        self.self = APTMSelfAttention(config, key_value_size)
        self.output = APTMResidualOutput(config, config.hidden_size)

    def forward(self, hidden_states, attention_mask=None, key_value_states=None, key_value=None):
        context, weights = self.self(hidden_states, attention_mask, key_value_states, key_value)
        return self.output(context, hidden_states), weights


class APTMIntermediate(nn.Module):
    def __init__(self, config: APTMTextConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = ACT2FN[config.hidden_act]

    def forward(self, hidden_states):
        return self.intermediate_act_fn(self.dense(hidden_states))


class APTMLayer(GradientCheckpointingLayer):
    """Post-norm BERT layer: bidirectional self-attention, then (fusion layers only) cross-attention to the image
    tokens, then the feed-forward block."""

    def __init__(self, config: APTMTextConfig, cross_attention=False):
        super().__init__()
        self.attention = APTMAttention(config)
        self.crossattention = APTMAttention(config, config.encoder_hidden_size) if cross_attention else None
        self.intermediate = APTMIntermediate(config)
        self.output = APTMResidualOutput(config, config.intermediate_size)

    def forward(self, hidden_states, attention_mask=None, encoder_hidden_states=None, cross_key_value=None,
                repeats=1, first_token_only=False):
        """`repeats > 1`: each text of `hidden_states` is paired with `repeats` consecutive images (of
        `encoder_hidden_states` or `cross_key_value`): the self-attention runs once per text and its output is
        repeated. `first_token_only`: only the first token's output is computed (keys and values still come from
        every token), as a caller that reads only [CLS] needs. Returns the new states, the self-attention weights and
        the cross-attention weights (None without cross-attention; both None unless the attention is eager)."""
        query_states = hidden_states[:, :1] if first_token_only else hidden_states
        hidden_states, self_weights = self.attention(query_states, attention_mask, key_value_states=hidden_states)
        if repeats > 1:
            hidden_states = hidden_states.repeat_interleave(repeats, dim=0)
        cross_weights = None
        if self.crossattention is not None:
            hidden_states, cross_weights = self.crossattention(hidden_states, None, encoder_hidden_states,
                                                               cross_key_value)
        return self.output(self.intermediate(hidden_states), hidden_states), self_weights, cross_weights


def run_layers(layers, hidden_states, attention_mask, output_attentions, output_hidden_states,
               encoder_hidden_states=None, cross_key_values=None):
    """Run BERT layers (with cross-attention to `encoder_hidden_states` or cached `cross_key_values` when the layers
    have it) and collect the hidden states and attention weights asked for."""
    mask = additive_attention_mask(attention_mask, hidden_states.dtype)
    all_hidden_states, self_attentions, cross_attentions = [hidden_states], [], []
    for index, layer in enumerate(layers):
        key_value = None if cross_key_values is None else cross_key_values[index]
        hidden_states, self_weights, cross_weights = layer(hidden_states, mask, encoder_hidden_states, key_value)
        all_hidden_states.append(hidden_states)
        self_attentions.append(self_weights)
        cross_attentions.append(cross_weights)
    has_cross = layers[0].crossattention is not None if len(layers) else False
    return BaseModelOutputWithCrossAttentions(
        last_hidden_state=hidden_states,
        hidden_states=tuple(all_hidden_states) if output_hidden_states else None,
        attentions=tuple(self_attentions) if output_attentions else None,
        cross_attentions=tuple(cross_attentions) if output_attentions and has_cross else None,
    )


class APTMTextEncoder(nn.Module):
    def __init__(self, config: APTMTextConfig):
        super().__init__()
        self.layer = nn.ModuleList(APTMLayer(config) for _ in range(config.num_hidden_layers))


class APTMTextModel(APTMPreTrainedModel):
    """BERT text encoder (embeddings and the text layers). Parameter names equal `transformers.BertModel`'s, so BERT
    checkpoints load into it directly."""

    config_class = APTMTextConfig
    main_input_name = "input_ids"
    input_modalities = ("text",)
    _no_split_modules = ["APTMLayer"]

    def __init__(self, config: APTMTextConfig, inside_model: bool = False):
        super().__init__(config)
        self._weights_initialised_by_parent = inside_model
        self.embeddings = APTMTextEmbeddings(config)
        self.encoder = APTMTextEncoder(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Module):
        self.embeddings.word_embeddings = value

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: Optional[torch.Tensor] = None,
        token_type_ids: Optional[torch.LongTensor] = None,
        output_attentions: Optional[bool] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
    ) -> Union[BaseModelOutput, tuple]:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`): token ids (`APTMProcessor`).
            attention_mask (`torch.Tensor` of shape `(batch_size, sequence_length)`, *optional*): 1 = token, 0 = pad.
            token_type_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*): segment ids.

        Returns `BaseModelOutput`: `last_hidden_state` `(batch_size, sequence_length, hidden_size)`; with
        `output_hidden_states`, the embeddings and every layer's output (`num_hidden_layers + 1` tensors of that
        shape); with `output_attentions` (eager attention only), every layer's self-attention weights
        `(batch_size, num_attention_heads, sequence_length, sequence_length)`.
        """
        output_attentions, output_hidden_states, return_dict = _output_flags(
            self.config, output_attentions, output_hidden_states, return_dict)
        hidden_states = self.embeddings(input_ids, token_type_ids)
        encoded = run_layers(self.encoder.layer, hidden_states, attention_mask, output_attentions,
                             output_hidden_states)
        output = BaseModelOutput(last_hidden_state=encoded.last_hidden_state, hidden_states=encoded.hidden_states,
                                 attentions=encoded.attentions)
        return output if return_dict else output.to_tuple()


class APTMFusionModel(APTMPreTrainedModel):
    """Fusion encoder: BERT layers with cross-attention, continuing the text encoder's hidden states."""

    config_class = APTMCrossConfig
    main_input_name = "hidden_states"
    input_modalities = ("text", "image")
    _no_split_modules = ["APTMLayer"]

    def __init__(self, config: APTMCrossConfig, inside_model: bool = False):
        super().__init__(config)
        self._weights_initialised_by_parent = inside_model
        self.layer = nn.ModuleList(APTMLayer(config, cross_attention=True) for _ in range(config.num_hidden_layers))
        self.post_init()

    def cross_key_values(self, encoder_hidden_states):
        """Per-layer cross-attention `(key, value)` of image tokens, each `[B, heads, N, head_dim]`. Pass the result as
        `cross_key_values` to attend to the same images again without recomputing them."""
        return tuple(layer.crossattention.self.key_value(encoder_hidden_states) for layer in self.layer)

    def forward(
        self,
        hidden_states: torch.FloatTensor,
        attention_mask: Optional[torch.Tensor] = None,
        encoder_hidden_states: Optional[torch.FloatTensor] = None,
        cross_key_values: Optional[tuple[tuple[torch.Tensor, torch.Tensor], ...]] = None,
        output_attentions: Optional[bool] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
    ) -> Union[BaseModelOutputWithCrossAttentions, tuple]:
        r"""
        Args:
            hidden_states (`torch.FloatTensor` of shape `(batch_size, sequence_length, hidden_size)`): the text
                encoder's last hidden states.
            attention_mask (`torch.Tensor` of shape `(batch_size, sequence_length)`, *optional*): the text mask.
            encoder_hidden_states (`torch.FloatTensor` of shape `(batch_size, 1 + num_patches, vision_hidden_size)`,
                *optional*): image tokens; or pass their `cross_key_values` (exactly one of the two).

        Returns `BaseModelOutputWithCrossAttentions`: `last_hidden_state` `(batch_size, sequence_length,
        hidden_size)`; with `output_hidden_states`, the input and every layer's output (`num_hidden_layers + 1`
        tensors); with `output_attentions` (eager attention only), every layer's self-attention weights
        `(batch_size, num_attention_heads, sequence_length, sequence_length)` and cross-attention weights
        `(batch_size, num_attention_heads, sequence_length, 1 + num_patches)`.
        """
        if (encoder_hidden_states is None) == (cross_key_values is None):
            raise ValueError("pass exactly one of encoder_hidden_states and cross_key_values")
        output_attentions, output_hidden_states, return_dict = _output_flags(
            self.config, output_attentions, output_hidden_states, return_dict)
        output = run_layers(self.layer, hidden_states, attention_mask, output_attentions, output_hidden_states,
                            encoder_hidden_states, cross_key_values)
        return output if return_dict else output.to_tuple()

    def first_token_states(self, hidden_states, attention_mask=None, encoder_hidden_states=None,
                           cross_key_values=None, images_per_text=1):
        """Final [CLS] states `[B * images_per_text, H]` of each text `[B, L, H]` fused with each of its
        `images_per_text` images (consecutive entries of `encoder_hidden_states` or `cross_key_values`), equal to
        `forward(...).last_hidden_state[:, 0]` on the texts repeated, without its repeated or unread work: the first
        layer's self-attention runs once per text, the last layer computes only the [CLS] token."""
        if (encoder_hidden_states is None) == (cross_key_values is None):
            raise ValueError("pass exactly one of encoder_hidden_states and cross_key_values")
        mask = additive_attention_mask(attention_mask, hidden_states.dtype)
        last = len(self.layer) - 1
        for index, layer in enumerate(self.layer):
            key_value = None if cross_key_values is None else cross_key_values[index]
            hidden_states = layer(hidden_states, mask, encoder_hidden_states, key_value,
                                  repeats=images_per_text if index == 0 else 1, first_token_only=index == last)[0]
            if index == 0 and mask is not None and images_per_text > 1:
                mask = mask.repeat_interleave(images_per_text, dim=0)
        return hidden_states[:, 0]


class APTMMLMHead(nn.Module):
    """BERT masked-LM head; the decoder weight is tied to the word embeddings."""

    def __init__(self, config: APTMTextConfig):
        super().__init__()
        self.transform = nn.Sequential()
        self.transform.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.transform.act = ACT2FN[config.hidden_act]
        self.transform.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, hidden_states):
        return self.decoder(self.transform(hidden_states))


def chunk_means(tokens, chunks=3):
    """`tokens` `[B, L, C]` averaged over `chunks` consecutive bins of the sequence, concatenated chunk by chunk ->
    `[B, chunks * C]`. Bin i is `[floor(i L / chunks), ceil((i + 1) L / chunks))` (`nn.AdaptiveAvgPool1d`'s; the
    bins overlap where `chunks` does not divide L)."""
    return F.adaptive_avg_pool1d(tokens.transpose(1, 2), chunks).transpose(1, 2).flatten(1)


class APTMPooledProjection(nn.Module):
    """MRA's ITC projection head (`projection_head="pooled_batchnorm"`): the tokens after the first averaged in 3
    chunks (`chunk_means`), preceded by the first token itself when `keep_first_token` (text: [CLS]; image: not, its
    global token is left out), then BatchNorm1d (running statistics in eval mode), Dropout and Linear. The chunk
    means of a caption run over every position, padding included, as in MRA."""

    def __init__(self, token_size, embed_dim, keep_first_token, dropout=0.0, chunks=3):
        super().__init__()
        self.keep_first_token, self.chunks = keep_first_token, chunks
        in_features = (chunks + keep_first_token) * token_size
        self.norm = nn.BatchNorm1d(in_features)
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(in_features, embed_dim)

    def pooled(self, tokens):
        """The head's input `[B, (chunks + keep_first_token) * C]` from tokens `[B, L, C]`."""
        pooled = chunk_means(tokens[:, 1:], self.chunks)
        return torch.cat([tokens[:, 0], pooled], dim=1) if self.keep_first_token else pooled

    def forward(self, tokens):
        return self.dense(self.dropout(self.norm(self.pooled(tokens))))


def project_tokens(head, tokens):
    """ITC projection of tokens `[B, L, C]` -> `[B, embed_dim]` (not normalised): an `APTMPooledProjection` reads
    every token, a Linear head (APTM) the first one."""
    return head(tokens) if isinstance(head, APTMPooledProjection) else head(tokens[:, 0])


# ---------------------------------------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class APTMOutput(ModelOutput):
    """
    Outputs of [`APTMModel`] for aligned (text, image) pairs.

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*):
            Identity-aware image-text contrastive loss of the batch, returned when `return_loss=True`.
        itm_logits (`torch.FloatTensor` of shape `(batch_size, 2)`):
            Image-text matching logits of each pair from the fusion encoder; index 1 means "match".
        logits_per_text (`torch.FloatTensor` of shape `(batch_size, batch_size)`):
            Cosine similarity of every text to every image of the batch divided by the temperature.
        image_embeds (`torch.FloatTensor` of shape `(batch_size, 1 + num_patches, vision_hidden_size)`):
            Image tokens of the vision encoder; token 0 is the global (mean) token.
        text_embeds (`torch.FloatTensor` of shape `(batch_size, sequence_length, hidden_size)`):
            Last hidden states of the text encoder.
        image_features (`torch.FloatTensor` of shape `(batch_size, embed_dim)`):
            Projected, L2-normalised global image token.
        text_features (`torch.FloatTensor` of shape `(batch_size, embed_dim)`):
            Projected, L2-normalised [CLS] text state.
        vision_model_output (`BaseModelOutput`):
            Output of [`APTMVisionModel`], with its `hidden_states`/`attentions` when asked for.
        text_model_output (`BaseModelOutput`):
            Output of [`APTMTextModel`], with its `hidden_states`/`attentions` when asked for.
        fusion_model_output (`BaseModelOutputWithCrossAttentions`, *optional*):
            Output of [`APTMFusionModel`] over every token of each pair (its [CLS] state gives `itm_logits`), with its
            `hidden_states`, `attentions` and `cross_attentions`; only when hidden states or attentions are asked for
            (otherwise the ITM logits come from the cheaper [CLS]-only pass).
    """

    loss: Optional[torch.FloatTensor] = None
    itm_logits: Optional[torch.FloatTensor] = None
    logits_per_text: Optional[torch.FloatTensor] = None
    image_embeds: Optional[torch.FloatTensor] = None
    text_embeds: Optional[torch.FloatTensor] = None
    image_features: Optional[torch.FloatTensor] = None
    text_features: Optional[torch.FloatTensor] = None
    vision_model_output: Optional[BaseModelOutput] = None
    text_model_output: Optional[BaseModelOutput] = None
    fusion_model_output: Optional[BaseModelOutputWithCrossAttentions] = None

    def to_tuple(self) -> tuple:
        return tuple(value.to_tuple() if isinstance(value, ModelOutput) else value for value in self.values())


@dataclass
class APTMForPreTrainingOutput(ModelOutput):
    """
    Outputs of [`APTMForPreTraining`]: the weighted total and every loss term that the given inputs switch on.

    Args:
        loss (`torch.FloatTensor` of shape `()`):
            Weighted sum of the terms below (captions: ITC + ITM + MLM, + `eda_loss_weight` x the EDA terms,
            + `attribute_loss_weight` x the mean of IAC, IAM and MAM; attributes without captions: IAC + IAM + MAM).
        loss_itc (`torch.FloatTensor`, *optional*): identity-aware image-text contrastive loss.
        loss_itm (`torch.FloatTensor`, *optional*): image-text matching loss with hard negatives.
        loss_mlm (`torch.FloatTensor`, *optional*): image-conditioned masked-language-model loss.
        loss_itc_eda (`torch.FloatTensor`, *optional*): ITC with the EDA-augmented captions.
        loss_itm_eda (`torch.FloatTensor`, *optional*): ITM with the EDA-augmented captions.
        loss_iac (`torch.FloatTensor`, *optional*): attribute-prompt contrastive loss.
        loss_iam (`torch.FloatTensor`, *optional*): attribute-prompt matching loss.
        loss_mam (`torch.FloatTensor`, *optional*): masked attribute-prompt language-model loss.
        itm_logits (`torch.FloatTensor` of shape `(3 * batch_size, 2)`, *optional*):
            ITM logits of the positives, the (negative image, text) and the (image, negative text) pairs.
        image_features (`torch.FloatTensor` of shape `(batch_size, embed_dim)`): normalised image features.
        text_features (`torch.FloatTensor` of shape `(batch_size, embed_dim)`, *optional*): normalised text features.
        logits_per_text (`torch.FloatTensor` of shape `(batch_size, batch_size)`, *optional*): the ITC similarities
            of the captions to the images divided by the temperature.
        vision_model_output (`BaseModelOutput`): output of [`APTMVisionModel`] on the images.
        text_model_output (`BaseModelOutput`, *optional*): output of [`APTMTextModel`] on the captions.
    """

    loss: Optional[torch.FloatTensor] = None
    loss_itc: Optional[torch.FloatTensor] = None
    loss_itm: Optional[torch.FloatTensor] = None
    loss_mlm: Optional[torch.FloatTensor] = None
    loss_itc_eda: Optional[torch.FloatTensor] = None
    loss_itm_eda: Optional[torch.FloatTensor] = None
    loss_iac: Optional[torch.FloatTensor] = None
    loss_iam: Optional[torch.FloatTensor] = None
    loss_mam: Optional[torch.FloatTensor] = None
    itm_logits: Optional[torch.FloatTensor] = None
    image_features: Optional[torch.FloatTensor] = None
    text_features: Optional[torch.FloatTensor] = None
    logits_per_text: Optional[torch.FloatTensor] = None
    vision_model_output: Optional[BaseModelOutput] = None
    text_model_output: Optional[BaseModelOutput] = None

    def to_tuple(self) -> tuple:
        return tuple(value.to_tuple() if isinstance(value, ModelOutput) else value for value in self.values())


# ---------------------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------------------


class APTMModel(APTMPreTrainedModel):
    """APTM for retrieval: dual encoders with projections for ITC, and the fusion encoder with the ITM head."""

    _keys_to_ignore_on_load_unexpected = [r"^mlm_head\."]

    def __init__(self, config: APTMConfig):
        super().__init__(config)
        self.vision_model = APTMVisionModel(config.vision_config, inside_model=True)
        self.text_model = APTMTextModel(config.text_config, inside_model=True)
        self.fusion_model = APTMFusionModel(config.cross_config, inside_model=True)
        self._build_heads(config)
        self.post_init()

    def _build_heads(self, config):
        vision_width, text_width = config.vision_config.hidden_size, config.text_config.hidden_size
        if config.projection_head == "pooled_batchnorm":
            self.vision_proj = APTMPooledProjection(vision_width, config.embed_dim, False, config.projection_dropout)
            self.text_proj = APTMPooledProjection(text_width, config.embed_dim, True, config.projection_dropout)
        else:
            self.vision_proj = nn.Linear(vision_width, config.embed_dim)
            self.text_proj = nn.Linear(text_width, config.embed_dim)
        hidden = config.cross_config.hidden_size
        self.itm_head = nn.Sequential(
            nn.Linear(hidden, 2 * hidden), nn.LayerNorm(2 * hidden), nn.GELU(), nn.Linear(2 * hidden, 2)
        )
        self.temp = nn.Parameter(torch.empty(()))

    def get_input_embeddings(self) -> nn.Module:
        return self.text_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module):
        self.text_model.set_input_embeddings(value)

    def image_features_from_embeds(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """Projected, L2-normalised global token (or, with MRA's pooled head, chunk means) of `image_embeds`
        `[B, 1 + N, C]` -> `[B, embed_dim]`."""
        return F.normalize(project_tokens(self.vision_proj, image_embeds), dim=-1)

    def text_features_from_embeds(self, text_embeds: torch.Tensor) -> torch.Tensor:
        """Projected, L2-normalised [CLS] state (or, with MRA's pooled head, [CLS] and chunk means) of `text_embeds`
        `[B, L, H]` -> `[B, embed_dim]`."""
        return F.normalize(project_tokens(self.text_proj, text_embeds), dim=-1)

    def get_image_features(
        self,
        pixel_values: torch.FloatTensor,
        output_attentions: Optional[bool] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
    ) -> Union[BaseModelOutputWithPooling, tuple]:
        r"""
        The vision tower's output with the retrieval features: `pooler_output` `(batch_size, embed_dim)` holds the
        projected, L2-normalised global tokens that ITC retrieval compares
        (`model.get_image_features(pixel_values).pooler_output`), `last_hidden_state` the image tokens
        `(batch_size, 1 + num_patches, vision_hidden_size)`, and `hidden_states`/`attentions` those of
        [`APTMVisionModel`] when asked for.
        """
        vision = self.vision_model(pixel_values, output_attentions, output_hidden_states, return_dict=True)
        return self._features_output(vision, self.image_features_from_embeds(vision.last_hidden_state), return_dict)

    def get_text_features(
        self,
        input_ids: torch.LongTensor,
        attention_mask: Optional[torch.Tensor] = None,
        token_type_ids: Optional[torch.LongTensor] = None,
        output_attentions: Optional[bool] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
    ) -> Union[BaseModelOutputWithPooling, tuple]:
        r"""
        The text tower's output with the retrieval features: `pooler_output` `(batch_size, embed_dim)` holds the
        projected, L2-normalised [CLS] states that ITC retrieval compares
        (`model.get_text_features(input_ids, attention_mask).pooler_output`), `last_hidden_state` the text states
        `(batch_size, sequence_length, hidden_size)`, and `hidden_states`/`attentions` those of [`APTMTextModel`]
        when asked for.
        """
        text = self.text_model(input_ids, attention_mask, token_type_ids, output_attentions, output_hidden_states,
                               return_dict=True)
        return self._features_output(text, self.text_features_from_embeds(text.last_hidden_state), return_dict)

    def _features_output(self, tower_output, features, return_dict):
        """A tower's output with the retrieval `features` as `pooler_output` (what `get_*_features` return)."""
        output = BaseModelOutputWithPooling(last_hidden_state=tower_output.last_hidden_state, pooler_output=features,
                                            hidden_states=tower_output.hidden_states,
                                            attentions=tower_output.attentions)
        return output if (self.config.return_dict if return_dict is None else return_dict) else output.to_tuple()

    def itm_logits(
        self,
        text_embeds: torch.Tensor,
        attention_mask: Optional[torch.Tensor],
        image_embeds: Optional[torch.Tensor] = None,
        cross_key_values: Optional[tuple[tuple[torch.Tensor, torch.Tensor], ...]] = None,
        images_per_text: int = 1,
    ) -> torch.Tensor:
        """Matching logits `[B * images_per_text, 2]` (index 1 = match) of text states `[B, L, H]` with their mask,
        each paired with `images_per_text` consecutive images: image tokens `[B * images_per_text, 1 + N, C]` or
        their precomputed `fusion_model.cross_key_values`."""
        return self.itm_head(self.fusion_model.first_token_states(text_embeds, attention_mask, image_embeds,
                                                                  cross_key_values, images_per_text))

    def forward(
        self,
        pixel_values: torch.FloatTensor,
        input_ids: torch.LongTensor,
        attention_mask: Optional[torch.Tensor] = None,
        token_type_ids: Optional[torch.LongTensor] = None,
        person_ids: Optional[torch.LongTensor] = None,
        return_loss: bool = False,
        output_attentions: Optional[bool] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
    ) -> Union[APTMOutput, tuple]:
        r"""
        Aligned (image, text) pairs -> [`APTMOutput`].

        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, 3, height, width)`): images.
            input_ids, attention_mask (`torch.LongTensor` of shape `(batch_size, sequence_length)`): one caption per
                image.
            token_type_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*): segment ids.
            person_ids (`torch.LongTensor` of shape `(batch_size,)`, *optional*): with `return_loss`, pairs with equal
                ids are ITC positives (default: each pair its own identity).
            return_loss (`bool`, *optional*, defaults to `False`): compute the ITC loss.
            output_attentions, output_hidden_states (`bool`, *optional*): return each tower's attention weights
                (eager attention only) or hidden states in `vision_model_output`, `text_model_output` and
                `fusion_model_output` (shapes in [`APTMVisionModel`], [`APTMTextModel`], [`APTMFusionModel`]).
        """
        output_attentions, output_hidden_states, return_dict = _output_flags(
            self.config, output_attentions, output_hidden_states, return_dict)
        if input_ids.shape[0] != pixel_values.shape[0]:
            raise ValueError(
                f"forward takes aligned pairs: got {input_ids.shape[0]} texts and {pixel_values.shape[0]} images"
            )
        vision = self.vision_model(pixel_values, output_attentions, output_hidden_states, return_dict=True)
        text = self.text_model(input_ids, attention_mask, token_type_ids, output_attentions, output_hidden_states,
                               return_dict=True)
        image_embeds, text_embeds = vision.last_hidden_state, text.last_hidden_state
        image_features = self.image_features_from_embeds(image_embeds)
        text_features = self.text_features_from_embeds(text_embeds)
        if return_loss and person_ids is None:
            person_ids = torch.arange(len(input_ids), device=input_ids.device)
        fusion = None
        if output_attentions or output_hidden_states:
            fusion = self.fusion_model(text_embeds, attention_mask, image_embeds, None, output_attentions,
                                       output_hidden_states, return_dict=True)
            itm_logits = self.itm_head(fusion.last_hidden_state[:, 0])
        else:
            itm_logits = self.itm_logits(text_embeds, attention_mask, image_embeds)
        output = APTMOutput(
            loss=image_text_contrastive_loss(image_features, text_features, self.temp, person_ids,
                                             self.config.itc_gradient) if return_loss else None,
            itm_logits=itm_logits,
            logits_per_text=text_features @ image_features.t() / self.temp,
            image_embeds=image_embeds,
            text_embeds=text_embeds,
            image_features=image_features,
            text_features=text_features,
            vision_model_output=vision,
            text_model_output=text,
            fusion_model_output=fusion,
        )
        return output if return_dict else output.to_tuple()

    def save_pretrained(self, save_directory, is_main_process: bool = True, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, and the checkpoint carries the retrieval pipelines whoever saves it: their
        tasks in `config.json`'s `custom_pipelines`, their files (`pipeline_aptm.py`, `retrieval_aptm.py`) beside this
        one (transformers copies a remote-code file's relative imports with it), so that
        `pipeline("text-person-retrieval", model=save_directory, trust_remote_code=True)` works on it; the files
        sentence-transformers reads (`sentence_transformers_aptm`), so that `SentenceTransformer` and `CrossEncoder`
        load it with `trust_remote_code=True`; and the Inference Endpoints handler (`handler.py`, taking
        `EndpointHandler` from `handler_aptm.py`)."""
        # These files are direct relative imports of this one, so every transformers version brings them into the module
        # cache beside it (5.0 copies only the direct relative imports of a local folder's file).
        try:  # remote code (a package in the Hub module cache)
            from .pipeline_aptm import custom_pipelines
            from .retrieval_aptm import TextPersonSearch  # noqa: F401
        except ImportError:  # installed top-level module
            from pipeline_aptm import custom_pipelines
        self.config.custom_pipelines = custom_pipelines()
        saved = super().save_pretrained(save_directory, is_main_process, *args, **kwargs)
        if is_main_process:
            self._write_checkpoint_files(save_directory)
        return saved

    def _upload_modified_files(self, working_dir, *args, **kwargs):
        # `save_pretrained(..., push_to_hub=True)` uploads the files written since it started before returning here:
        # write this class's own files first so that they travel too
        self._write_checkpoint_files(working_dir)
        return super()._upload_modified_files(working_dir, *args, **kwargs)

    @staticmethod
    def _write_checkpoint_files(save_directory):
        """The files beside the weights: sentence-transformers' and the Inference Endpoints handler."""
        try:  # remote code (a package in the Hub module cache)
            from .handler_aptm import write_entry_point
            from .sentence_transformers_aptm import write_sentence_transformers_files
        except ImportError:  # installed top-level module
            from handler_aptm import write_entry_point
            from sentence_transformers_aptm import write_sentence_transformers_files
        write_sentence_transformers_files(save_directory)
        write_entry_point(save_directory)  # handler.py of Inference Endpoints, beside handler_aptm.py


class APTMForPreTraining(APTMModel):
    """APTM with the masked-language-model head and the training losses of the original code. The terms computed
    depend only on the inputs given: captions (`input_ids`) switch on ITC and ITM, `mlm_labels` MLM, `eda_input_ids`
    the EDA terms, `attribute_labels` with the prompt bank the attribute losses (IAC, IAM, MAM)."""

    _tied_weights_keys = {"mlm_head.decoder.weight": "text_model.embeddings.word_embeddings.weight"}

    def __init__(self, config: APTMConfig):
        super().__init__(config)
        if config.tie_word_embeddings:  # not saved; `Trainer` re-ties it when loading the best checkpoint, no warning
            self._keys_to_ignore_on_save = {"mlm_head.decoder.weight"}

    def _build_heads(self, config):
        super()._build_heads(config)
        self.mlm_head = APTMMLMHead(config.text_config)

    def get_output_embeddings(self) -> nn.Module:
        return self.mlm_head.decoder

    def set_output_embeddings(self, value: nn.Module):
        self.mlm_head.decoder = value

    def mlm_logits(self, input_ids, attention_mask, image_embeds, masked_positions=None):
        """Image-conditioned MLM logits: all text and fusion layers over `input_ids` (with [MASK] tokens), then the MLM
        head, only at `masked_positions` `[B, M]` when given (`[B, M, vocab]`), else at every position."""
        text_embeds = self.text_model(input_ids, attention_mask).last_hidden_state
        hidden = self.fusion_model(text_embeds, attention_mask, image_embeds).last_hidden_state
        if masked_positions is not None:
            hidden = torch.gather(hidden, 1, masked_positions[..., None].expand(-1, -1, hidden.shape[-1]))
        return self.mlm_head(hidden)

    def matching_loss(self, image_embeds, image_features, text_embeds, text_mask, text_features, person_ids,
                      negatives=None):
        """ITM loss and logits over B positives, B (negative image, text) and B (image, negative text) pairs of
        aligned encoder outputs (negatives: `negatives` or drawn by `sample_hard_negatives`)."""
        negative_images, negative_texts = negatives or sample_hard_negatives(
            image_features, text_features, self.temp, person_ids)
        batch = torch.arange(len(person_ids), device=person_ids.device)
        with_image, with_text = negative_images >= 0, negative_texts >= 0
        image_index = torch.cat([batch, negative_images[with_image], batch[with_text]])
        text_index = torch.cat([batch, batch[with_image], negative_texts[with_text]])
        text_mask = None if text_mask is None else text_mask[text_index]
        logits = self.itm_logits(text_embeds[text_index], text_mask, image_embeds[image_index])
        labels = (torch.arange(len(logits), device=logits.device) < len(batch)).long()
        if len(logits) == len(batch):  # no sample has a batch-mate of another person: nothing to contrast
            return logits.sum() * 0.0, logits
        return F.cross_entropy(logits, labels), logits

    def forward(
        self,
        pixel_values: torch.FloatTensor,
        input_ids: Optional[torch.LongTensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        person_ids: Optional[torch.LongTensor] = None,
        mlm_input_ids: Optional[torch.LongTensor] = None,
        mlm_positions: Optional[torch.LongTensor] = None,
        mlm_labels: Optional[torch.LongTensor] = None,
        eda_input_ids: Optional[torch.LongTensor] = None,
        eda_attention_mask: Optional[torch.Tensor] = None,
        attribute_labels: Optional[torch.LongTensor] = None,
        attribute_input_ids: Optional[torch.LongTensor] = None,
        attribute_attention_mask: Optional[torch.Tensor] = None,
        attribute_mlm_input_ids: Optional[torch.LongTensor] = None,
        attribute_mlm_positions: Optional[torch.LongTensor] = None,
        attribute_mlm_labels: Optional[torch.LongTensor] = None,
        itm_negatives: Optional[tuple[torch.LongTensor, torch.LongTensor]] = None,
        attribute_matching_prompts: Optional[torch.LongTensor] = None,
        attribute_mlm_images: Optional[torch.LongTensor] = None,
        output_attentions: Optional[bool] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
    ) -> Union[APTMForPreTrainingOutput, tuple]:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(B, 3, H, W)`): images.
            input_ids, attention_mask (`torch.LongTensor` of shape `(B, L)`, *optional*): one caption per image.
            person_ids (`torch.LongTensor` of shape `(B,)`, *optional*): identity of each pair; pairs of the same
                person are positives for ITC and never negatives for ITM (default: every pair its own identity).
            mlm_input_ids, mlm_positions, mlm_labels (*optional*): masked captions `(B, L)`, the masked positions
                `(B, M)` and their original ids `(B, M)` (-100 = padding of the list).
            eda_input_ids, eda_attention_mask (*optional*): EDA-augmented captions `(B, L')`.
            attribute_labels (`torch.LongTensor` of shape `(B, A)`, *optional*): labels in {1, 0, -1 (unknown)}.
            attribute_input_ids, attribute_attention_mask (*optional*): the `2A` prompts, prompt `2i + v` stating
                label value `v` of attribute `i`.
            attribute_mlm_input_ids, attribute_mlm_positions, attribute_mlm_labels (*optional*): the masked prompts.
            itm_negatives (`tuple` of two `torch.LongTensor` of shape `(B,)`, *optional*): negative image per text and
                negative text per image (default: sampled from the similarities).
            attribute_matching_prompts (`torch.LongTensor`, *optional*): prompts used for IAM (default: a random
                draw of `config.num_attribute_matching_prompts`).
            attribute_mlm_images (`torch.LongTensor`, *optional*): for each prompt with a positive image in the
                batch (in prompt order), the image it is paired with for MAM (default: a random positive image).
            output_attentions, output_hidden_states (`bool`, *optional*): return the vision and text towers' attention
                weights (eager attention only) or hidden states in `vision_model_output` and `text_model_output`.
        """
        output_attentions, output_hidden_states, return_dict = _output_flags(
            self.config, output_attentions, output_hidden_states, return_dict)
        vision = self.vision_model(pixel_values, output_attentions, output_hidden_states, return_dict=True)
        image_embeds = vision.last_hidden_state
        image_features = self.image_features_from_embeds(image_embeds)
        batch = len(pixel_values)
        if person_ids is None:
            person_ids = torch.arange(batch, device=pixel_values.device)
        terms, output = {}, {"image_features": image_features, "vision_model_output": vision}
        if input_ids is not None:
            text = self.text_model(input_ids, attention_mask, None, output_attentions, output_hidden_states,
                                   return_dict=True)
            text_embeds = text.last_hidden_state
            text_features = self.text_features_from_embeds(text_embeds)
            terms["loss_itc"] = image_text_contrastive_loss(image_features, text_features, self.temp, person_ids,
                                                            self.config.itc_gradient)
            terms["loss_itm"], output["itm_logits"] = self.matching_loss(
                image_embeds, image_features, text_embeds, attention_mask, text_features, person_ids, itm_negatives)
            output.update(text_features=text_features, logits_per_text=text_features @ image_features.t() / self.temp,
                          text_model_output=text)
        if mlm_labels is not None:
            logits = self.mlm_logits(mlm_input_ids, attention_mask, image_embeds, mlm_positions)
            terms["loss_mlm"] = masked_lm_loss(logits, mlm_labels)
        if eda_input_ids is not None:
            eda_embeds = self.text_model(eda_input_ids, eda_attention_mask).last_hidden_state
            eda_features = self.text_features_from_embeds(eda_embeds)
            terms["loss_itc_eda"] = image_text_contrastive_loss(image_features, eda_features, self.temp, person_ids,
                                                                self.config.itc_gradient)
            terms["loss_itm_eda"], _ = self.matching_loss(
                image_embeds, image_features, eda_embeds, eda_attention_mask, eda_features, person_ids)
        if attribute_labels is not None:
            terms.update(self._attribute_losses(
                image_embeds, image_features, attribute_labels, attribute_input_ids, attribute_attention_mask,
                attribute_mlm_input_ids, attribute_mlm_positions, attribute_mlm_labels, attribute_matching_prompts,
                attribute_mlm_images))
        if not terms:
            raise ValueError("no loss to compute: pass captions (input_ids), mlm_labels or attribute_labels")
        output.update(terms)
        output["loss"] = self.total_loss(terms, captions=input_ids is not None)
        result = APTMForPreTrainingOutput(**output)
        return result if return_dict else result.to_tuple()

    def total_loss(self, terms, captions):
        """The weighted sum of loss `terms` (`{"loss_itc": ..., ...}`); `captions`: whether the batch had captions
        (the attribute terms then share `attribute_loss_weight`)."""
        config = self.config
        weights = {"loss_itc": config.itc_loss_weight, "loss_itm": config.itm_loss_weight,
                   "loss_mlm": config.mlm_loss_weight, "loss_itc_eda": config.eda_loss_weight * config.itc_loss_weight,
                   "loss_itm_eda": config.eda_loss_weight * config.itm_loss_weight}
        attribute_weight = config.attribute_loss_weight / 3 if captions else 1.0
        weights.update(dict.fromkeys(("loss_iac", "loss_iam", "loss_mam"), attribute_weight))
        return sum(weights[name] * value for name, value in terms.items())

    def attribute_matching_loss(self, image_embeds, prompt_embeds, prompt_mask, targets, matching_prompts):
        """IAM: the ITM head's two-way loss of each prompt in `matching_prompts` against every image `[B, 1 + N, C]`,
        averaged over the prompts (`targets` `[B, 2A]` from `prompt_targets`, -1 = unknown)."""
        smoothing, balanced = self.config.attribute_label_smoothing, self.config.attribute_balanced_loss
        matching = []
        for prompt in matching_prompts.tolist():
            logits = self.itm_logits(prompt_embeds[prompt : prompt + 1], prompt_mask[prompt : prompt + 1], image_embeds,
                                     images_per_text=len(image_embeds))
            matching.append(two_way_loss(logits, targets[:, prompt], smoothing, balanced))
        return torch.stack(matching).mean()

    def _attribute_losses(self, image_embeds, image_features, labels, prompt_ids, prompt_mask, mlm_ids, mlm_positions,
                          mlm_labels, matching_prompts=None, mlm_images=None):
        """IAC, IAM and MAM of a batch against the prompt bank."""
        if prompt_ids is None:
            raise ValueError("attribute_labels need the prompt bank: attribute_input_ids and attribute_attention_mask")
        if prompt_ids.shape[0] != 2 * labels.shape[1]:
            raise ValueError(f"{labels.shape[1]} attribute labels need {2 * labels.shape[1]} prompts, got {prompt_ids.shape[0]}")
        smoothing, balanced = self.config.attribute_label_smoothing, self.config.attribute_balanced_loss
        prompt_embeds = self.text_model(prompt_ids, prompt_mask).last_hidden_state
        prompt_features = self.text_features_from_embeds(prompt_embeds)
        targets = prompt_targets(labels)
        losses = {"loss_iac": attribute_contrastive_loss(image_features, prompt_features, self.temp, labels, smoothing,
                                                            balanced)}
        if matching_prompts is None:
            count = min(self.config.num_attribute_matching_prompts, len(prompt_ids))
            matching_prompts = torch.randperm(len(prompt_ids), device=labels.device)[:count]
        losses["loss_iam"] = self.attribute_matching_loss(image_embeds, prompt_embeds, prompt_mask, targets,
                                                          matching_prompts)
        if mlm_labels is not None:
            positive = targets == 1
            kept = positive.any(dim=0).nonzero().flatten()
            if mlm_images is None:
                mlm_images = torch.stack([torch.multinomial(positive[:, p].float(), 1)[0] for p in kept.tolist()]) \
                    if len(kept) else kept
            if len(kept):
                logits = self.mlm_logits(mlm_ids[kept], prompt_mask[kept], image_embeds[mlm_images], mlm_positions[kept])
                losses["loss_mam"] = masked_lm_loss(logits, mlm_labels[kept])
            else:
                losses["loss_mam"] = image_features.sum() * 0.0
        return losses


class APTMForImageClassification(APTMPreTrainedModel):
    """The image-only attribute classifier of the paper's PA-100K ablation (the original's
    `pa100k_only_img_classifier`): the image encoder's global token through Linear(vision width, `embed_dim`),
    BatchNorm1d, Dropout(`classifier_dropout`) and Linear(`embed_dim`, `num_attributes`), both linear layers drawn
    from N(0, 1e-5^2) with zero biases, trained with binary cross-entropy on 0/1 `attribute_labels`; an attribute is
    predicted present where its sigmoid is >= 0.5. No text parts: a pre-training checkpoint initialises the image
    encoder only."""

    def __init__(self, config: APTMConfig):
        super().__init__(config)
        self.vision_model = APTMVisionModel(config.vision_config, inside_model=True)
        self.classifier = nn.Sequential(
            nn.Linear(config.vision_config.hidden_size, config.embed_dim), nn.BatchNorm1d(config.embed_dim),
            nn.Dropout(config.classifier_dropout), nn.Linear(config.embed_dim, config.num_attributes),
        )
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module):
        classifier = getattr(self, "classifier", None)
        if classifier is not None and (module is classifier[0] or module is classifier[3]):
            init.normal_(module.weight, mean=0.0, std=1e-5)
            init.zeros_(module.bias)
        else:
            super()._init_weights(module)

    def get_input_embeddings(self) -> nn.Module:
        return self.vision_model.get_input_embeddings()

    def forward(
        self,
        pixel_values: torch.FloatTensor,
        attribute_labels: Optional[torch.Tensor] = None,
        output_attentions: Optional[bool] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
    ) -> Union[ImageClassifierOutput, tuple]:
        r"""
        Logits `(batch_size, num_attributes)`, and the mean binary cross-entropy when `attribute_labels` (0/1,
        `(batch_size, num_attributes)`) are given; `hidden_states`/`attentions` are the vision tower's (shapes in
        [`APTMVisionModel`]).
        """
        output_attentions, output_hidden_states, return_dict = _output_flags(
            self.config, output_attentions, output_hidden_states, return_dict)
        vision = self.vision_model(pixel_values, output_attentions, output_hidden_states, return_dict=True)
        logits = self.classifier(vision.last_hidden_state[:, 0])
        loss = None
        if attribute_labels is not None:
            loss = F.binary_cross_entropy_with_logits(logits, attribute_labels.to(logits.dtype))
        output = ImageClassifierOutput(loss=loss, logits=logits, hidden_states=vision.hidden_states,
                                       attentions=vision.attentions)
        return output if return_dict else output.to_tuple()

    @torch.no_grad()
    def classify_attributes(self, pixel_values: torch.FloatTensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(predictions, probabilities)`, both `[B, num_attributes]`: sigmoid of the logits, and 1 where it is >= 0.5
        (the original's evaluation)."""
        probabilities = torch.sigmoid(self(pixel_values, return_dict=True).logits)
        return (probabilities >= 0.5).long(), probabilities


APTMModel.register_for_auto_class("AutoModel")
APTMForPreTraining.register_for_auto_class("AutoModelForPreTraining")
APTMForImageClassification.register_for_auto_class("AutoModelForImageClassification")

__all__ = [
    "APTMPreTrainedModel", "APTMVisionModel", "APTMTextModel", "APTMFusionModel", "APTMModel", "APTMForPreTraining",
    "APTMForImageClassification", "APTMOutput", "APTMForPreTrainingOutput", "APTMPooledProjection",
    "attribute_contrastive_loss", "image_text_contrastive_loss", "masked_lm_loss", "prompt_targets",
    "sample_hard_negatives", "two_way_loss",
]
