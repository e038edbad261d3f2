"""APTM retrieval with the paper's procedure, travelling with every checkpoint as remote code (it imports only torch,
transformers and the other APTM files): encode a gallery once, rank it for each text by cosine similarity, re-rank
each query's top-k candidates with the ITM head (each image's cross-attention keys/values computed once), fuse the two
scores as the original evaluator, and recognise attributes from prompt pairs.

Score fusion (`fusion=`):
  * `"cosine"`: dual-encoder only, no re-ranking (fastest).
  * `"itm"`: the top-k candidates by cosine carry their ITM logit (index 1 = match); every other image gets -1000
    (the original evaluation until July 2023). Ties among the rest follow the metric's tie policy.
  * `"aptm"` (default): the original evaluator since August 2023. ITM logits of the top-k, other entries filled with
    the row minimum, the whole matrix min-max normalised, plus `cosine_weight` (0.002) x the min-max normalised cosine
    matrix. With `world_size=W > 1` this reproduces what the original computes on W GPUs: queries are split in W row
    blocks; on each process the rows it did not compute still hold the 1000 sentinel when it normalises, and the W
    matrices are summed. A row owned by a process whose minimum ITM logit is m then ranks by
    logit / (1000 - m) + W x 0.002 x normalised cosine, so the cosine weighs about W x (1000 - m) / (max - min)
    times more than on one GPU (two orders of magnitude for typical logit ranges): the paper's numbers were measured
    with W = 4. MRA's evaluator (APTM's successor) has the same rule and the same multi-process quirk.

Test-time flip (`test_time_flip=`, MRA's, default `config.test_time_flip`): the gallery is encoded a second time
mirrored (the preprocessed pixels flipped left-right). The cosine ranking uses the mean of each image's two
normalised features (not normalised again); the top-k by it are re-ranked with the ITM head on both the plain and the
mirrored image tokens, at the same indices; each of the two ITM matrices gets its own row-minimum fill and its own
min-max normalisation (per emulated process), and the fused score is their mean plus the cosine term, MRA's
`(S + S_flip) / 2 + 0.002 x minmax(cosine)`. The ITM logits then carry a last axis of the two views.

Attribute scoring (`scoring=`): each attribute of the processor's schema has two prompts (label value 0 and 1), and
the prediction is the value whose prompt scores higher. The prompts' text states are computed once per call, each
image's cross-attention keys/values once, and a batch of `batch_size` images is scored against every prompt in one
fused batch (the prompts' states shared by their images).
  * `"itm"` (default): ITM logit[1] of each (image, prompt) pair through the fusion encoder, the original PA-100K
    evaluation.
  * `"contrastive"`: the IAC logits, image feature . prompt feature / temperature (dual encoder only, no fusion).

Evaluation streams (`TextPersonSearch.fused_scores`): a first pass over query batches keeps only the text features,
the top-k indices and ITM logits `[Q, k]`, and the global extremes the fusion normalises with (`StreamingFusion`);
final score rows are then produced in query chunks, so memory grows with queries x k plus the gallery and one chunk,
never with queries x gallery (`fuse_scores` is the same fusion of whole matrices); query texts are encoded one
re-ranking group at a time, so only one group's token states are alive. Score columns (the image-to-text direction)
come the same way a chunk of gallery images at a time (`FusedScores.column_chunks`). Rows and columns equal the
whole-matrix formulas above (tested against them).

The scores equal the original one-query-at-a-time procedure's (tested against it); text is padded only to each
batch's longest caption.

Precision of the re-ranking (`TextPersonSearch(precision=)`):
  * `"fp32"` (default): the scores above.
  * `"bf16"`: everything under bfloat16 autocast (as `autocast=torch.bfloat16`): faster where the hardware has
    bfloat16 (GPUs, CPUs with `avx512_bf16` or AMX), emulated and slower elsewhere; approximate, near-ties reorder.
  * `"int8"`: the fusion encoder's and ITM head's linear layers dynamically quantised to int8 (`Int8Matcher`, CPU
    only, VNNI accelerates it); encoders and cosine in fp32; approximate.
  * `"exact-fast"`: every candidate's ITM logit in a low precision the device accelerates (`low_precision`, default
    `default_low_precision`: bf16 on a GPU or a CPU with bfloat16 instructions, else int8), then in fp32 those whose
    order decides the top `exact_top` (`exact_rescoring_mask`): the top `exact_top` of every query, their order and
    their scores are fp32's. The argument: with every low-precision logit within a bound b of its fp32 value, a
    candidate that `exact_top` others beat by more than 2b in every view, with a cosine at least as high, ranks below
    them in fp32 under every fusion (each fused score increases with the logits and the cosine), so only candidates
    not beaten so are needed in fp32, and those within 2b of a query's lowest logit, so that the fill value and the
    normalisation (each query's lowest and highest logit) are fp32's too. The bound is measured per engine (model):
    the first `calibration_pairs` logits are computed both ways, and b is `ERROR_MARGIN` (4) times the largest
    error measured; every logit re-scored later is compared too, and a group where one errs beyond the bound it was
    selected with is redone whole in fp32, the bound widening to 4x that error. Exactness so rests on the bound
    holding for the logits never computed in fp32; it is measured on thousands of logits with a 4x margin and
    checked on every re-scored one. fp32 itself differs between batch sizes by float rounding (~1e-6), which can
    swap exact ties in either engine. `exact_fast_stats` reports the share re-scored.
"""

import copy
import inspect
import warnings
import weakref
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import Any, Union

import torch
from transformers.utils.logging import tqdm

SENTINEL = 1000.0
CHUNK_SCORES = 2**21  # scores in one chunk of query rows when they are streamed (8 MB in float32)
FUSIONS = ("cosine", "itm", "aptm")
PRECISIONS = ("fp32", "bf16", "int8", "exact-fast")
LOW_PRECISIONS = ("bf16", "int8")
CPU_FEATURES = ("avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
ERROR_MARGIN = 4.0  # exact-fast's error bound: this many times the largest low-precision error measured
FULL_RESCORING_SHARE = 0.75  # exact-fast re-scores a whole group in fp32 (at once) when it selects this share
ATTRIBUTE_SCORINGS = ("itm", "contrastive")
# images as the encoders take them: PIL images or arrays, a `datasets.Dataset` with an `image` column, or a
# preprocessed `pixel_values` tensor
Images = Union[Sequence[Any], torch.Tensor]


def check_choice(value, choices, name):
    """Raise a `ValueError` naming `name` and its choices unless `value` is one of `choices`."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def cpu_features() -> dict[str, bool]:
    """Which of the CPU instructions that accelerate low precision (`CPU_FEATURES`: int8 dot products `avx512_vnni`
    and `avx_vnni`, bfloat16 `avx512_bf16` and the AMX tiles `amx_bf16`, `amx_int8`) this machine's CPU reports in
    `/proc/cpuinfo` (all False where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), [])
    except OSError:
        flags = []
    return {name: name in flags for name in CPU_FEATURES}


def default_low_precision(device: torch.device) -> str:
    """The low precision exact-fast re-ranks with on `device`: `"bf16"` on a GPU or a CPU with bfloat16 instructions
    (`avx512_bf16` or AMX), else `"int8"` (dynamic int8 linear layers, accelerated by VNNI)."""
    if device.type != "cpu":
        return "bf16"
    features = cpu_features()
    return "bf16" if features["avx512_bf16"] or features["amx_bf16"] else "int8"


class Int8Matcher(torch.nn.Module):
    """A copy of a model's fusion encoder and ITM head whose linear layers are dynamically quantised to int8 (weights
    int8 per tensor, activations quantised per call; torch's x86/fbgemm kernels, VNNI where the CPU has it): the ITM
    logits of `APTMModel.itm_logits`, approximately. The model itself is left unchanged (CPU only)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        if model.device.type != "cpu":
            raise ValueError(f"int8 re-ranking runs on the CPU; the model is on {model.device}")
        with warnings.catch_warnings():  # torch.ao's eager quantisation warns that it is deprecated
            warnings.simplefilter("ignore")
            self.fusion_model, self.itm_head = (
                torch.ao.quantization.quantize_dynamic(copy.deepcopy(module).float(), {torch.nn.Linear},
                                                       dtype=torch.qint8, inplace=True)
                for module in (model.fusion_model, model.itm_head))

    def itm_logits(self, text_embeds, attention_mask, cross_key_values=None, images_per_text=1):
        """As `APTMModel.itm_logits` with precomputed `cross_key_values`."""
        return self.itm_head(self.fusion_model.first_token_states(text_embeds, attention_mask, None, cross_key_values,
                                                                  images_per_text))


def exact_rescoring_mask(logits: torch.Tensor, cosine: torch.Tensor, top: int, bound: float) -> torch.Tensor:
    r"""
    Which candidates exact-fast re-scores in fp32 (`[q, k]` bool), from their low-precision ITM logits `logits`
    `[q, k, V]` (V views), their exact cosine `[q, k]`, the ranks to keep exact `top` and the error bound `bound`:
    every low-precision logit within `bound` of its fp32 value.

    A candidate j is left in low precision only if (a) at least `top` candidates i of its query surely score above
    it: in every view `logits[i] - logits[j] > 2 bound` (so i's fp32 logit is higher) and `cosine[i] >= cosine[j]`,
    which makes i's fused score higher under any fusion (each is increasing in every view's logit and in the cosine,
    whatever the normalisation), and (b) in no view it lies within `2 bound` of the query's lowest logit. By (a) the
    fp32 top `top` are all re-scored, their order among themselves is fp32's, and every candidate left ranks below
    them; by (a) and (b) each query's highest and lowest logit per view, from which the fusion's fill value and
    normalisation follow, are fp32 values too, and the logits left lie strictly between them.
    """
    margin = 2 * bound
    surely_above = ((logits[:, :, None] - logits[:, None, :] > margin).all(dim=-1)
                    & (cosine[:, :, None] >= cosine[:, None, :]))  # [q, i, j]: i surely above j
    near_lowest = (logits <= logits.min(dim=1, keepdim=True).values + margin).any(dim=-1)
    return (surely_above.sum(dim=1) < top) | near_lowest


@dataclass
class ExactFastStats:
    """What exact-fast re-ranking did in the last ranking call: (query, candidate, view) logits computed in low
    precision (`pairs`), of those computed in fp32 too (`rescored`: calibration, the candidates near the top-n
    boundary or the lowest logit, and groups redone after an error beyond the bound), the error bound in use and the
    largest low-precision error measured against fp32 (over every logit computed both ways, by this engine)."""

    pairs: int = 0
    rescored: int = 0
    error_bound: float | None = None
    largest_error: float = 0.0

    @property
    def rescored_share(self) -> float:
        """Share of the logits computed in fp32."""
        return self.rescored / self.pairs if self.pairs else 0.0


def itm_views(topk_itm: torch.Tensor) -> torch.Tensor:
    """ITM logits of the top-k as `[Q, k, V]`: V = 1 view (`[Q, k]` given) or the plain and mirrored images under
    test-time flip (`[Q, k, 2]` given)."""
    return topk_itm if topk_itm.ndim == 3 else topk_itm[..., None]


def fuse_scores(cosine: torch.Tensor, topk_indices: torch.Tensor | None, topk_itm: torch.Tensor | None,
                fusion: str = "aptm", cosine_weight: float = 0.002, world_size: int = 1) -> torch.Tensor:
    """Final `[Q, G]` scores from the cosine matrix and the ITM logits `[Q, k]` of the top-k candidates (`[Q, k, 2]`
    under test-time flip: the plain and mirrored images', each normalised on its own and averaged; None for the
    `"cosine"` fusion): a `StreamingFusion` that observes every row at once."""
    streaming = StreamingFusion(fusion, cosine_weight, world_size)
    streaming.observe(cosine, topk_indices, topk_itm)
    return streaming.scores(slice(None), cosine)


class StreamingFusion:
    r"""
    Score fusion computed in query chunks. `observe` every chunk of cosine rows with its top-k indices and ITM logits,
    in query order (it keeps the `[Q, k]` top-k and the global extremes: the cosine matrix's, and per row the ITM
    logits' from which the ITM-filled matrix's and each emulated process's extremes follow); then `scores` gives the
    final scores of any rows from their cosine rows, as the module docstring states them for the whole matrices.
    Rows observed apart (one share of the queries in each process) combine through their `totals`, which concatenate
    in query order (`merge`).

    Args:
        fusion (`str`, *optional*, defaults to `"aptm"`): `"cosine"`, `"itm"` or `"aptm"` (see the module docstring).
        cosine_weight (`float`, *optional*, defaults to 0.002): weight of the cosine in the `"aptm"` fusion.
        world_size (`int`, *optional*, defaults to 1): the processes of the original evaluator the `"aptm"` fusion
            reproduces.
    """

    TOTALS = ("cosine_extremes", "topk_indices", "topk_itm")

    def __init__(self, fusion: str = "aptm", cosine_weight: float = 0.002, world_size: int = 1):
        check_choice(fusion, FUSIONS, "fusion")
        if world_size < 1:
            raise ValueError(f"world_size must be at least 1, got {world_size}")
        self.fusion, self.cosine_weight, self.world_size = fusion, cosine_weight, world_size
        self._cosine_low, self._cosine_high = float("inf"), float("-inf")
        self._topk_indices, self._topk_itm = [], []
        self._process_extremes = None

    def observe(self, cosine: torch.Tensor, topk_indices: torch.Tensor | None = None,
                topk_itm: torch.Tensor | None = None) -> None:
        """Take the next query rows: cosine `[q, G]`, top-k indices `[q, k]` and ITM logits `[q, k]`, or `[q, k, 2]`
        under test-time flip (None for `"cosine"`)."""
        totals = {"cosine_extremes": torch.stack([cosine.min(), cosine.max()]).double().cpu()[None]}
        if self.fusion != "cosine":
            if topk_indices is None or topk_itm is None:
                raise ValueError(f"the {self.fusion!r} fusion needs the top-k indices and ITM logits of the rows")
            totals.update(topk_indices=topk_indices, topk_itm=topk_itm)
        self.merge(totals)

    def totals(self) -> dict:
        """What the rows observed so far leave, as tensors on the CPU: `cosine_extremes` `[1, 2]` (the lowest and
        highest cosine, float64) and, unless the fusion is `"cosine"`, `topk_indices` and `topk_itm` `[q, k]`. Those
        of consecutive query rows, each tensor concatenated along its first dimension in query order, are those of
        all the rows."""
        totals = {"cosine_extremes": torch.tensor([[self._cosine_low, self._cosine_high]], dtype=torch.float64)}
        if self.fusion != "cosine":
            totals.update(zip(self.TOTALS[1:], self._gathered()))
        return totals

    def merge(self, totals: dict) -> None:
        """Take `totals` of the next query rows (another `StreamingFusion`'s of the same fusion, or those of several
        concatenated in query order) after the rows taken so far."""
        expected = self.TOTALS if self.fusion != "cosine" else self.TOTALS[:1]
        if sorted(totals) != sorted(expected):
            raise ValueError(f"totals of a {self.fusion!r} fusion hold {list(expected)}, got {list(totals)}")
        extremes = totals["cosine_extremes"]
        self._cosine_low = min(self._cosine_low, extremes[:, 0].min().item())
        self._cosine_high = max(self._cosine_high, extremes[:, 1].max().item())
        if self.fusion != "cosine":
            if totals["topk_indices"].shape != totals["topk_itm"].shape[:2]:
                raise ValueError(f"topk_indices {list(totals['topk_indices'].shape)} and topk_itm "
                                 f"{list(totals['topk_itm'].shape)} must share their shape [q, k] (topk_itm [q, k, "
                                 "2] under test-time flip)")
            self._topk_indices.append(totals["topk_indices"].cpu())
            self._topk_itm.append(totals["topk_itm"].cpu())
        self._process_extremes = None

    def _gathered(self):
        if len(self._topk_itm) > 1:
            self._topk_indices, self._topk_itm = [torch.cat(self._topk_indices)], [torch.cat(self._topk_itm)]
        return self._topk_indices[0], self._topk_itm[0]

    def _per_process(self):
        """Per emulated process and ITM view (`[W, V]`): the low end and span of its min-max normalisation (span 0: a
        constant matrix); per process (`[W]`): the value the normalised sentinel rows of the other processes add to
        its rows, averaged over the views."""
        if self._process_extremes is None:
            _, itm = self._gathered()
            itm = itm_views(itm)
            row_low, row_high = itm.min(dim=1).values, itm.max(dim=1).values  # [Q, V]
            step = len(itm) // self.world_size + 1
            lows, spans, sentinel_terms = [], [], []
            for rank in range(self.world_size):
                owned = slice(rank * step, (rank + 1) * step)
                for view in range(itm.shape[-1]):
                    extremes = ([row_low[owned, view].min().item(), row_high[owned, view].max().item()]
                                if len(row_low[owned]) else [])
                    if len(row_low[owned]) < len(itm):  # the rows of the other processes still hold the sentinel
                        extremes.append(SENTINEL)
                    low, high = min(extremes), max(extremes)
                    lows.append(low)
                    spans.append(high - low)
                    sentinel_terms.append((SENTINEL - low) / (high - low) if high > low else 0.0)
            shape = (self.world_size, itm.shape[-1])
            sentinel_terms = torch.tensor(sentinel_terms, dtype=itm.dtype).view(shape)
            self._process_extremes = (step, torch.tensor(lows, dtype=itm.dtype).view(shape),
                                      torch.tensor(spans, dtype=itm.dtype).view(shape),
                                      (sentinel_terms.sum(dim=0) - sentinel_terms).mean(dim=1))
        return self._process_extremes

    def scores(self, rows: slice | list | torch.Tensor, cosine: torch.Tensor, columns: slice | None = None
               ) -> torch.Tensor:
        """Final scores `[len(rows), C]` of query `rows` (a slice or indices) from their cosine rows `[len(rows), C]`:
        against every gallery image (C = G), or against the images `columns` (a slice of the gallery, step 1) only,
        whose cosine columns `cosine` then holds."""
        if self.fusion == "cosine":
            return cosine.clone()
        topk_indices, topk_itm = self._gathered()
        rows = torch.arange(len(topk_itm))[rows]
        width = cosine.shape[1]
        offset = 0 if columns is None else columns.start or 0
        topk_indices = topk_indices[rows].to(cosine.device) - offset
        # candidates outside the columns go to a spare last column, dropped after the scatter
        topk_indices = torch.where((topk_indices >= 0) & (topk_indices < width), topk_indices, width)
        views = itm_views(topk_itm[rows].to(cosine.device, cosine.dtype))  # [q, k, V]
        if self.fusion == "itm":
            return cosine.new_full((len(cosine), width + 1), -SENTINEL).scatter_(
                1, topk_indices, views.mean(dim=-1))[:, :width]
        shape = (len(cosine), width + 1, views.shape[-1])
        itm = views.min(dim=1, keepdim=True).values.expand(shape).clone().scatter_(
            1, topk_indices[..., None].expand(-1, -1, shape[-1]), views)[:, :width]
        step, lows, spans, other_processes = (value if isinstance(value, int) else value.to(cosine.device, cosine.dtype)
                                              for value in self._per_process())
        owner = (rows // step).to(cosine.device)
        low, span = lows[owner, None], spans[owner, None]
        own = torch.where(span > 0, (itm - low) / torch.where(span > 0, span, 1), 0).mean(dim=-1)
        cosine_span = self._cosine_high - self._cosine_low
        cosine_term = (self.cosine_weight * ((cosine - self._cosine_low) / cosine_span) if cosine_span > 0
                       else torch.zeros_like(cosine))
        return own + other_processes[owner, None] + self.world_size * cosine_term


class FusedScores:
    r"""
    Final scores of queries against a gallery, produced a chunk of query rows at a time (`TextPersonSearch.
    fused_scores` builds it): it holds the text features `[Q, E]`, the gallery features and a `StreamingFusion` that
    has observed every query, so one chunk's cosine rows are recomputed and fused when asked for.

    Args:
        fusion (`StreamingFusion`): has observed every query row.
        text_features (`torch.Tensor`): normalised text features `[Q, E]`.
        gallery_features (`torch.Tensor`): normalised gallery features `[G, E]` (on the device that computes).
        chunk_size (`int`, *optional*): query rows per chunk of `chunks` (default: as many as make `CHUNK_SCORES`
            scores, at least one), so that a chunk and what is computed from it stay the same size for any gallery.
    """

    def __init__(self, fusion, text_features, gallery_features, chunk_size=None):
        self.fusion, self.text_features, self.gallery_features = fusion, text_features, gallery_features
        self.chunk_size = chunk_size or max(1, CHUNK_SCORES // len(gallery_features))

    def __len__(self):
        return len(self.text_features)

    @property
    def shape(self):
        return len(self.text_features), len(self.gallery_features)

    def rows(self, rows):
        """Final scores `[len(rows), G]` (on the CPU) of query `rows`: a slice or a list of indices."""
        features = self.text_features[rows].to(self.gallery_features.device, self.gallery_features.dtype)
        cosine = (features @ self.gallery_features.t()).float()
        return self.fusion.scores(rows, cosine).cpu()

    def chunks(self):
        """`(rows, scores)` for each chunk of `chunk_size` query rows in order, `rows` a slice."""
        for start in range(0, len(self), self.chunk_size):
            rows = slice(start, start + self.chunk_size)
            yield rows, self.rows(rows)

    def columns(self, columns: slice) -> torch.Tensor:
        """Final scores `[Q, len(columns)]` (on the CPU) of every query against the gallery images `columns` (a
        slice, step 1): the columns of the whole matrix, computed from those images' cosine columns alone."""
        gallery = self.gallery_features[columns]
        cosine = (self.text_features.to(gallery.device, gallery.dtype) @ gallery.t()).float()
        return self.fusion.scores(slice(None), cosine, columns).cpu()

    def column_chunks(self, images: range | None = None):
        """`(columns, scores)` for each chunk of gallery images `images` (a range, default all) in order, `columns` a
        slice and `scores` `[Q, len(columns)]`, each chunk holding at most `CHUNK_SCORES` scores (at least one
        image): the image-to-text direction in bounded memory."""
        images = range(self.shape[1]) if images is None else images
        step = max(1, CHUNK_SCORES // len(self))
        for start in range(images.start, images.stop, step):
            columns = slice(start, min(start + step, images.stop))
            yield columns, self.columns(columns)

    def matrix(self):
        """The whole `[Q, G]` score matrix (queries x gallery memory: for small sets)."""
        return torch.cat([scores for _, scores in self.chunks()])


class GatheredKeyValues:
    """Per fusion layer `(key, value)` of the images at `slots`, gathered from `key_values` (per layer, one row per
    image) when the fusion encoder reaches that layer, so at most two layers' gathered copies are alive at a time (the
    one in use and the next) instead of all of them: with k = 128 at the paper size, ~0.6 GB for a group of 8 queries
    instead of ~1.8 GB."""

    def __init__(self, key_values, slots):
        self.key_values, self.slots = key_values, slots

    def __len__(self):
        return len(self.key_values)

    def __getitem__(self, layer):
        key, value = self.key_values[layer]
        return key[self.slots], value[self.slots]


@dataclass
class EncodedGallery:
    """A gallery encoded once: normalised projected features `[G, E]` for the cosine ranking and the image tokens
    `[G, 1 + N, C]` the fusion encoder attends to (a tensor, or any object with a `shape` whose rows are read by
    indexing with a tensor of indices, such as a memory-mapped index's). Encoded with test-time flip, the features
    are the mean of each image's plain and mirrored normalised features, and `flipped_image_embeds` holds the
    mirrored images' tokens (None otherwise)."""

    image_features: torch.Tensor
    image_embeds: torch.Tensor
    flipped_image_embeds: torch.Tensor = field(default=None, kw_only=True)

    def __len__(self):
        return len(self.image_features)


@dataclass
class SearchResult:
    """Ranked gallery for one query: gallery indices best first, their final scores, cosine similarities and ITM
    logits (NaN where not re-ranked; the mean of the plain and mirrored images' under test-time flip)."""

    query: str
    indices: list
    scores: list
    cosine: list
    itm_logits: list


class Encoder:
    r"""
    Batched, gradient-free encoding with an APTM model.

    Args:
        model (`APTMModel`): the model (eval mode is set).
        processor (`APTMProcessor`): tokenizer and image processor.
        batch_size (`int`, *optional*, defaults to 32): images or texts encoded at once.
        autocast (`torch.dtype`, *optional*): e.g. `torch.bfloat16` for approximate, faster scoring.
        progress (`bool`, *optional*, defaults to `True`): show progress bars.
    """

    def __init__(self, model: torch.nn.Module, processor: Any, batch_size: int = 32,
                 autocast: torch.dtype | None = None, progress: bool = True):
        self.model = model.eval()
        self.processor = processor
        self.batch_size = batch_size
        self.autocast = autocast
        self.progress = progress
        self._texts_shared = "images_per_text" in inspect.signature(model.itm_logits).parameters

    @property
    def device(self):
        return self.model.device

    def _autocast(self):
        if self.autocast is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast)

    def _bar(self, iterable, description, total=None):
        return tqdm(iterable, desc=description, total=total, disable=not self.progress, leave=False)

    def _match_logits(self, text_embeds: torch.Tensor, mask: torch.Tensor, cross_key_values,
                      images_per_text: int) -> torch.Tensor:
        """ITM logit[1] (float32) `[B * images_per_text]` of each text `[B, L, H]` paired with its `images_per_text`
        consecutive entries of `cross_key_values`."""
        with self._autocast():
            if self._texts_shared:
                logits = self.model.itm_logits(text_embeds, mask, cross_key_values=cross_key_values,
                                               images_per_text=images_per_text)
            else:  # a checkpoint whose remote code predates `images_per_text`: one text copy per pair
                logits = self.model.itm_logits(text_embeds.repeat_interleave(images_per_text, dim=0),
                                               mask.repeat_interleave(images_per_text, dim=0),
                                               cross_key_values=cross_key_values)
        return logits[:, 1].float()

    @torch.no_grad()
    def encode_images(self, images: Images, flip: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Image tokens `[N, 1 + P, C]` and normalised features `[N, E]` of a list of images (PIL or arrays) or of
        `pixel_values`; with `flip`, of the images mirrored (the preprocessed pixels flipped left-right)."""
        if isinstance(images, torch.Tensor):
            pixel_values = images.to(self.device)
        else:
            pixel_values = self.processor.image_processor(list(images))["pixel_values"].to(self.device)
        if flip:
            pixel_values = pixel_values.flip(-1)
        with self._autocast():
            embeds = self.model.vision_model(pixel_values).last_hidden_state
            return embeds.float(), self.model.image_features_from_embeds(embeds).float()

    def encode_gallery(self, images: Images, flip: bool = False) -> "EncodedGallery":
        """Encode a gallery once (in batches, with a progress bar) into an `EncodedGallery`. `images` is a sequence of
        PIL images or arrays, a `datasets.Dataset` with an `image` column, or a `pixel_values` tensor. With `flip`
        (test-time flip) the mirrored images are encoded too (see `EncodedGallery`)."""
        if hasattr(images, "column_names"):
            images = images["image"] if "image" in images.column_names else images
        total = len(images)
        if not total:
            raise ValueError("the gallery is empty")
        embeds, features, flipped_embeds = [], [], []
        for start in self._bar(range(0, total, self.batch_size), "encoding gallery",
                               total=(total + self.batch_size - 1) // self.batch_size):
            stop = min(start + self.batch_size, total)
            batch = images[start:stop] if isinstance(images, torch.Tensor) else [images[i] for i in range(start, stop)]
            if flip and not isinstance(batch, torch.Tensor):
                batch = self.processor.image_processor(batch)["pixel_values"]  # once for both views
            batch_embeds, batch_features = self.encode_images(batch)
            if flip:
                mirrored_embeds, mirrored_features = self.encode_images(batch, flip=True)
                batch_features = (batch_features + mirrored_features) / 2
                flipped_embeds.append(mirrored_embeds.cpu())
            embeds.append(batch_embeds.cpu())
            features.append(batch_features.cpu())
        return EncodedGallery(torch.cat(features), torch.cat(embeds),
                              flipped_image_embeds=torch.cat(flipped_embeds) if flip else None)

    @torch.no_grad()
    def encode_text_batch(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`(text_embeds, attention_mask, features)` of one batch of texts, padded to its longest, or to the
        processor's `max_length` for a model whose text projection pools every position, padding included (MRA's
        `APTMPooledProjection`)."""
        pools_padding = getattr(self.model.text_proj, "keep_first_token", False)
        inputs = self.processor.tokenize(list(texts), padding="max_length" if pools_padding else "longest")
        ids, mask = inputs["input_ids"].to(self.device), inputs["attention_mask"].to(self.device)
        with self._autocast():
            embeds = self.model.text_model(ids, mask).last_hidden_state
            return embeds.float(), mask, self.model.text_features_from_embeds(embeds).float()

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Per batch of `batch_size` texts: `(text_embeds, attention_mask, features)`, padded to the batch's
        longest."""
        return [self.encode_text_batch(texts[start : start + self.batch_size])
                for start in range(0, len(texts), self.batch_size)]


class TextPersonSearch(Encoder):
    r"""
    Text-to-person search with the paper's procedure: cosine top-k, ITM re-ranking, score fusion.

    Args:
        model (`APTMModel`), processor (`APTMProcessor`), batch_size, autocast, progress: as `Encoder`.
        k (`int`, *optional*): candidates re-ranked with ITM (default: `config.k_test`).
        fusion (`str`, *optional*, defaults to `"aptm"`): `"cosine"`, `"itm"` or `"aptm"` (see the module docstring);
            `rank` and `search` also take it per call, which leaves the object unchanged.
        cosine_weight (`float`, *optional*): weight of the cosine in `"aptm"` fusion (default `config.itm_cosine_weight`).
        world_size (`int`, *optional*, defaults to 1): reproduce the original evaluator run on that many GPUs.
        test_time_flip (`bool`, *optional*): encode galleries mirrored too and fuse both views, as MRA's evaluator
            (see the module docstring; default `config.test_time_flip`). A gallery scores with the views it was
            encoded with.
        query_batch_size (`int`, *optional*, defaults to 8): queries re-ranked at once.
        kv_memory_limit (`int`, *optional*, defaults to 2 GiB): keep the whole gallery's cross-attention keys/values
            when they fit in this many bytes (4 per value, 2 under bfloat16/float16 autocast); otherwise compute them
            per query batch.
        precision (`str`, *optional*, defaults to `"fp32"`): of the ITM re-ranking (see the module docstring):
            `"fp32"`; `"bf16"` (bfloat16 autocast of every stage, as `autocast=torch.bfloat16`; approximate); `"int8"`
            (the fusion encoder's linear layers dynamically quantised, CPU only; approximate); `"exact-fast"` (every
            candidate in `low_precision`, then fp32 where the order of the top `exact_top` is decided: the same top
            `exact_top` as fp32). Encoders and cosine stay in fp32 except under `"bf16"`.
        exact_top (`int`, *optional*, defaults to 10): the ranks exact-fast keeps equal to fp32's.
        low_precision (`str`, *optional*): exact-fast's low precision, `"int8"` or `"bf16"` (default: what the device
            accelerates, `default_low_precision`).
    """

    calibration_pairs = 256  # exact-fast: logits computed both ways before the error bound is used

    def __init__(self, model: torch.nn.Module, processor: Any, k: int | None = None, fusion: str = "aptm",
                 cosine_weight: float | None = None, world_size: int = 1, batch_size: int = 32,
                 query_batch_size: int = 8, autocast: torch.dtype | None = None, progress: bool = True,
                 kv_memory_limit: int = 2**31, test_time_flip: bool | None = None, precision: str = "fp32",
                 exact_top: int = 10, low_precision: str | None = None):
        check_choice(fusion, FUSIONS, "fusion")
        check_choice(precision, PRECISIONS, "precision")
        if autocast is not None and precision not in ("fp32", "bf16"):
            raise ValueError(f"autocast applies to the fp32 and bf16 precisions, not {precision!r}")
        if precision == "bf16":
            autocast = autocast or torch.bfloat16
        super().__init__(model, processor, batch_size=batch_size, autocast=autocast, progress=progress)
        self.precision = precision
        self.exact_top = exact_top
        self.low_precision = {"int8": "int8", "exact-fast": low_precision or default_low_precision(self.device)}.get(
            precision)
        if self.low_precision is not None:
            check_choice(self.low_precision, LOW_PRECISIONS, "low_precision")
        self._int8_matcher = Int8Matcher(model) if self.low_precision == "int8" else None
        self.exact_fast_stats = ExactFastStats()
        self._calibrated_pairs = 0
        self.k = k or model.config.k_test
        self.fusion = fusion
        self.cosine_weight = model.config.itm_cosine_weight if cosine_weight is None else cosine_weight
        self.world_size = world_size
        self.query_batch_size = query_batch_size
        self.kv_memory_limit = kv_memory_limit
        self.test_time_flip = (getattr(model.config, "test_time_flip", False) if test_time_flip is None
                               else test_time_flip)
        self._kv_cache = {}

    def encode_gallery(self, images: Images, flip: bool | None = None) -> "EncodedGallery":
        """`Encoder.encode_gallery`, mirrored images included under test-time flip (default: the object's)."""
        return super().encode_gallery(images, self.test_time_flip if flip is None else flip)

    @torch.no_grad()
    def _cross_key_values(self, gallery, images, view="image_embeds"):
        """Per fusion layer `(key, value)` `[len(images), heads, N, head_dim]` of gallery images. Only their rows of
        the gallery's image tokens `view` (`image_embeds` or `flipped_image_embeds`) are read (it may be a
        memory-mapped index's), and upcast to float32 (an index may store float16 or bfloat16)."""
        with self._autocast():
            embeds = getattr(gallery, view)[images].to(self.device, torch.float32)
            return self.model.fusion_model.cross_key_values(embeds)

    def _gallery_key_values(self, gallery, view="image_embeds"):
        """Keys/values of the whole gallery's image tokens `view` when they fit in `kv_memory_limit` bytes, else None.
        They are kept for the next calls on the same gallery (the same object of the same size, the same
        cross-attention weights and autocast), so repeated searches of a gallery pay for them once."""
        config = self.model.config.cross_config
        element = 4 if self.autocast is None else torch.finfo(self.autocast).bits // 8  # autocast projections' dtype
        per_image = 2 * config.num_hidden_layers * gallery.image_embeds.shape[1] * config.hidden_size * element
        if per_image * len(gallery) > self.kv_memory_limit:
            return None
        weights = [tensor for layer in self.model.fusion_model.layer
                   for tensor in (layer.crossattention.self.key.weight, layer.crossattention.self.value.weight)]
        state = (len(gallery), self.autocast, tuple((id(tensor), tensor._version) for tensor in weights))
        cached = self._kv_cache.get(view)
        if cached is not None and cached[0]() is gallery and cached[1] == state:
            return cached[2]
        kv = self._cross_key_values(gallery, torch.arange(len(gallery)), view)
        self._kv_cache[view] = (weakref.ref(gallery), state, kv)
        return kv

    @torch.no_grad()
    def _pair_logits(self, text_embeds, mask, images, gallery, gallery_kv, view, images_per_text, low=False):
        """ITM logit[1] `[len(images)]` of each text `[B, L, H]` with its `images_per_text` consecutive gallery
        images of `images` (indices, their image tokens `view`), in the engine's low precision with `low`. Image
        keys/values come from `gallery_kv` (computed once for the gallery) or are computed here for the distinct
        images."""
        if gallery_kv is None:
            distinct, slots = images.unique(return_inverse=True)
            kv = self._cross_key_values(gallery, distinct.cpu(), view)
        else:
            slots, kv = images, gallery_kv
        length = int(mask.sum(1).max())
        text_embeds, mask, cross = text_embeds[:, :length], mask[:, :length], GatheredKeyValues(kv, slots)
        if low and self.low_precision == "int8":
            return self._int8_matcher.itm_logits(text_embeds, mask, cross, images_per_text)[:, 1].float()
        with torch.autocast(self.device.type, dtype=torch.bfloat16) if low else nullcontext():
            return self._match_logits(text_embeds, mask, cross, images_per_text)

    def _rerank(self, text_embeds, mask, candidates, cosine, gallery, gallery_kv, views):
        """ITM logits `[q, k, V]` of each query's candidates `[q, k]` (cosine `[q, k]`) with their image tokens in
        each of `views` (`gallery_kv` one entry per view), in the engine's precision. Exact-fast computes them all in
        low precision, then in fp32 those `exact_rescoring_mask` selects with the error bound (`ERROR_MARGIN` times
        the largest error measured so far on logits computed both ways); every logit in fp32 until
        `calibration_pairs` logits were compared, for a group where it selects `FULL_RESCORING_SHARE` or more, and
        for a group where a re-scored logit erred beyond the bound it was selected with (the bound then widens)."""
        queries, k = candidates.shape

        def logits(low, texts=text_embeds, masks=mask, images=candidates.flatten(), per_text=k):
            return torch.stack([self._pair_logits(texts, masks, images, gallery, kv, view, per_text, low)
                                for view, kv in zip(views, gallery_kv)], dim=-1)

        if self.precision != "exact-fast":
            return logits(self.precision == "int8").view(queries, k, len(views))
        stats = self.exact_fast_stats
        fast = logits(True).view(queries, k, len(views))
        stats.pairs += fast.numel()
        bound = stats.error_bound
        selected = (exact_rescoring_mask(fast, cosine, self.exact_top, bound)
                    if self._calibrated_pairs >= self.calibration_pairs else None)
        if selected is not None and selected.sum() < FULL_RESCORING_SHARE * selected.numel():
            query, candidate = selected.nonzero(as_tuple=True)
            exact = logits(False, text_embeds[query], mask[query], candidates[query, candidate], 1)
            stats.rescored += exact.numel()
            error = (exact - fast[query, candidate]).abs().max().item()
            stats.largest_error = max(stats.largest_error, error)
            stats.error_bound = ERROR_MARGIN * stats.largest_error
            if error <= bound:
                fast[query, candidate] = exact
                return fast
        exact = logits(False).view(queries, k, len(views))  # calibration, most selected, or an error beyond the bound
        stats.rescored += exact.numel()
        stats.largest_error = max(stats.largest_error, (exact - fast).abs().max().item())
        stats.error_bound = ERROR_MARGIN * stats.largest_error
        self._calibrated_pairs += exact.numel()
        return exact

    def _ranked_batches(self, texts, gallery, k, fusion):
        """Per batch of `batch_size` texts: text features `[q, E]`, cosine rows `[q, G]` (on the device), top-k
        indices and their ITM logits `[q, k]` (`[q, k, 2]`, plain and mirrored, for a gallery encoded with test-time
        flip; both None for the cosine fusion). Within a batch, queries are encoded, ranked and re-ranked
        `query_batch_size` at a time in order of token count (`batch_size` at a time for the cosine fusion), each
        group padded to its longest: only one group's text token states are alive at a time."""
        check_choice(fusion, FUSIONS, "fusion")
        texts = list(texts)
        if not texts:
            raise ValueError("no query texts")
        k = min(k or self.k, len(gallery))
        gallery_features = gallery.image_features.to(self.device)
        rerank = fusion != "cosine"
        views = ["image_embeds"] + (["flipped_image_embeds"] if getattr(gallery, "flipped_image_embeds", None)
                                    is not None else [])
        gallery_kv = [self._gallery_key_values(gallery, view) for view in views] if rerank else None
        group_size = self.query_batch_size if rerank else self.batch_size
        self.exact_fast_stats = replace(self.exact_fast_stats, pairs=0, rescored=0)
        bar = self._bar(None, "re-ranking" if rerank else "scoring", total=len(texts))
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            token_counts = self.processor.tokenize(batch, padding="longest")["attention_mask"].sum(1)
            by_length = token_counts.argsort(stable=True)  # similar lengths encoded and re-ranked together
            features = torch.empty(len(batch), gallery_features.shape[1], device=self.device)
            cosine = torch.empty(len(batch), len(gallery), device=self.device)
            top = torch.empty(len(batch), k, dtype=torch.long, device=self.device) if rerank else None
            itm = torch.empty(len(batch), k, len(views), device=self.device) if rerank else None
            for first in range(0, len(batch), group_size):
                rows = by_length[first : first + group_size]
                text_embeds, mask, features[rows] = self.encode_text_batch([batch[row] for row in rows.tolist()])
                cosine[rows] = (features[rows].to(gallery_features.dtype) @ gallery_features.t()).float()
                if rerank:
                    top_cosine, top[rows] = cosine[rows].topk(k, dim=1)
                    itm[rows] = self._rerank(text_embeds, mask, top[rows], top_cosine, gallery, gallery_kv, views)
                bar.update(len(rows))
            yield features, cosine, top, itm if itm is None or len(views) > 1 else itm[..., 0]
        bar.close()

    def rank(self, texts: Sequence[str], gallery: "EncodedGallery", k: int | None = None, fusion: str | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Cosine matrix `[Q, G]`, top-k indices `[Q, k]` and their ITM logits `[Q, k]` (`[Q, k, 2]` under test-time
        flip; both None for the cosine fusion) of query texts against an encoded gallery (anything with
        `image_features` and `image_embeds`)."""
        cosine_rows, topk_rows, itm_rows = [], [], []
        for _, cosine, top, itm in self._ranked_batches(texts, gallery, k, fusion or self.fusion):
            cosine_rows.append(cosine.cpu())
            if top is not None:
                topk_rows.append(top.cpu())
                itm_rows.append(itm.cpu())
        cosine = torch.cat(cosine_rows)
        if not topk_rows:
            return cosine, None, None
        return cosine, torch.cat(topk_rows), torch.cat(itm_rows)

    def fused_scores(self, texts: Sequence[str], gallery: "EncodedGallery", fusion: str | None = None,
                     chunk_size: int | None = None) -> "FusedScores":
        """`FusedScores` of query texts against an encoded gallery, in bounded memory: one pass ranks and re-ranks the
        queries, keeping their features, top-k and the fusion's extremes; score rows are then computed per chunk of
        `chunk_size` queries (see `FusedScores`) when asked for. `fusion` defaults to the object's."""
        fusion = StreamingFusion(fusion or self.fusion, self.cosine_weight, self.world_size)
        features = []
        for batch_features, cosine, top, itm in self._ranked_batches(texts, gallery, None, fusion.fusion):
            fusion.observe(cosine, top, itm)
            features.append(batch_features)
        return FusedScores(fusion, torch.cat(features), gallery.image_features.to(self.device), chunk_size)

    def score_matrix(self, texts: Sequence[str], gallery: "EncodedGallery", fusion: str | None = None) -> torch.Tensor:
        """Final fused scores `[len(texts), len(gallery)]` (the evaluation path); `fusion` defaults to the object's."""
        fusion = fusion or self.fusion
        cosine, topk, itm = self.rank(texts, gallery, fusion=fusion)
        return fuse_scores(cosine, topk, itm, fusion, self.cosine_weight, self.world_size)

    def search(self, texts: Sequence[str], gallery: "EncodedGallery", top: int = 10, fusion: str | None = None
               ) -> list["SearchResult"]:
        """`SearchResult`s of each query text: the top `top` gallery images after re-ranking (at least `top`
        candidates are re-ranked). `fusion` (default: the object's) is a setting of this call only."""
        fusion = fusion or self.fusion
        check_choice(fusion, FUSIONS, "fusion")
        texts = [texts] if isinstance(texts, str) else list(texts)
        cosine, topk, itm = self.rank(texts, gallery, k=max(self.k, top), fusion=fusion)
        final = fuse_scores(cosine, topk, itm, fusion, self.cosine_weight, self.world_size)
        logits = torch.full_like(cosine, float("nan"))
        if topk is not None:
            logits.scatter_(1, topk, itm_views(itm).mean(dim=-1))
        results = []
        for row, text in enumerate(texts):
            order = final[row].argsort(descending=True, stable=True)[:top]
            results.append(SearchResult(text, order.tolist(), final[row, order].tolist(), cosine[row, order].tolist(),
                                        logits[row, order].tolist()))
        return results


class AttributeRecognizer(Encoder):
    r"""
    Attribute recognition with an APTM model and its processor's prompt schema.

    Args:
        model (`APTMModel`), processor (`APTMProcessor`), batch_size, autocast, progress: as `Encoder`.
        scoring (`str`, *optional*, defaults to `"itm"`): `"itm"` or `"contrastive"` (see the module docstring);
            every method also takes it per call, which leaves the object unchanged.
    """

    def __init__(self, model: torch.nn.Module, processor: Any, scoring: str = "itm", batch_size: int = 32,
                 autocast: torch.dtype | None = None, progress: bool = True):
        check_choice(scoring, ATTRIBUTE_SCORINGS, "attribute scoring")
        super().__init__(model, processor, batch_size=batch_size, autocast=autocast, progress=progress)
        self.scoring = scoring

    @torch.no_grad()
    def prompt_scores(self, images: Images, scoring: str | None = None) -> torch.Tensor:
        """Score of every (image, attribute prompt) pair `[N, 2A]`: raw ITM logit[1], as the original PA-100K
        evaluation, or the IAC logit."""
        scoring = scoring or self.scoring
        check_choice(scoring, ATTRIBUTE_SCORINGS, "attribute scoring")
        prompts = self.processor.encode_attribute_prompts()
        ids, mask = prompts["input_ids"].to(self.device), prompts["attention_mask"].to(self.device)
        with self._autocast():
            prompt_embeds = self.model.text_model(ids, mask).last_hidden_state
            prompt_features = self.model.text_features_from_embeds(prompt_embeds).float()
        rows = []
        for start in self._bar(range(0, len(images), self.batch_size), "attributes",
                               total=(len(images) + self.batch_size - 1) // self.batch_size):
            image_embeds, image_features = self.encode_images(images[start : start + self.batch_size])
            if scoring == "contrastive":
                rows.extend((image_features @ prompt_features.t() / self.model.temp).cpu())
                continue
            with self._autocast():
                per_layer = self.model.fusion_model.cross_key_values(image_embeds)
            # every prompt paired with every image of the batch: prompt p's pairs are the images in order
            cross = GatheredKeyValues(per_layer, torch.arange(len(image_embeds), device=self.device).repeat(len(ids)))
            logits = self._match_logits(prompt_embeds, mask, cross, len(image_embeds))
            rows.extend(logits.view(len(ids), len(image_embeds)).t().cpu())
        return torch.stack(rows) if rows else torch.zeros(0, len(ids))  # no images: no rows

    def recognize(self, images: Images, scoring: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-attribute predictions `[N, A]` (label value 1/0 of the processor's schema: 1 where the label-1 prompt
        scores strictly higher, as the original argmax) and the probability of label value 1 (softmax over the two
        prompt scores) for each image."""
        scores = self.prompt_scores(images, scoring)
        pairs = torch.stack([scores[:, 0::2], scores[:, 1::2]], dim=-1)
        return (pairs[..., 1] > pairs[..., 0]).long(), pairs.softmax(-1)[..., 1]

    def describe(self, images: Images, scoring: str | None = None) -> list[list[tuple[str, str, float]]]:
        """For each image, `[(attribute name, statement that holds, probability of that statement)]`."""
        predictions, probabilities = self.recognize(images, scoring)
        described = []
        for prediction, probability in zip(predictions.tolist(), probabilities.tolist()):
            described.append([
                (name, pair[value], p if value else 1 - p)
                for name, pair, value, p in zip(self.processor.attribute_names, self.processor.attribute_prompts,
                                                prediction, probability)
            ])
        return described


__all__ = [
    "ATTRIBUTE_SCORINGS", "AttributeRecognizer", "EncodedGallery", "Encoder", "ExactFastStats", "FUSIONS",
    "FusedScores", "Int8Matcher", "PRECISIONS", "SENTINEL", "SearchResult", "StreamingFusion", "TextPersonSearch",
    "cpu_features", "default_low_precision", "exact_rescoring_mask", "fuse_scores",
]
