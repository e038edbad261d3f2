"""Text-to-person search and attribute recognition with an APTM model. The procedure itself (encoders, score fusion,
ITM re-ranking, attribute prompts) is the checkpoint's remote code, `retrieval_aptm`; this package adds the gallery
index on disk, evaluation, and the original procedure written out as the reference (`reference`)."""

from retrieval_aptm import (ATTRIBUTE_SCORINGS, FUSIONS, PRECISIONS, SENTINEL, AttributeRecognizer, EncodedGallery,
                            Encoder, ExactFastStats, FusedScores, SearchResult, StreamingFusion, TextPersonSearch,
                            cpu_features, default_low_precision, exact_rescoring_mask, fuse_scores)

from .engine import RetrievalEngine
from .index import GalleryIndex
from .reference import min_max, original_procedure_scores

__all__ = [
    "ATTRIBUTE_SCORINGS", "AttributeRecognizer", "EncodedGallery", "Encoder", "ExactFastStats", "FUSIONS",
    "FusedScores", "GalleryIndex", "PRECISIONS", "RetrievalEngine", "SENTINEL", "SearchResult", "StreamingFusion",
    "TextPersonSearch", "cpu_features", "default_low_precision", "exact_rescoring_mask", "fuse_scores", "min_max",
    "original_procedure_scores",
]
