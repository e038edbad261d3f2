"""Text-to-person search and attribute recognition with an APTM model: batched encoders, the encoded gallery, score
fusion, the retrieval engine and the attribute recogniser."""

from .attributes import ATTRIBUTE_SCORINGS, AttributeRecognizer
from .encoding import Encoder
from .engine import RetrievalEngine, SearchResult
from .fusion import FUSIONS, SENTINEL, fuse_scores, min_max
from .index import GalleryIndex

__all__ = [
    "ATTRIBUTE_SCORINGS", "AttributeRecognizer", "Encoder", "FUSIONS", "GalleryIndex", "RetrievalEngine", "SENTINEL",
    "SearchResult", "fuse_scores", "min_max",
]
