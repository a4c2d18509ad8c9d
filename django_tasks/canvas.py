"""Signatures and the canvas: chain, group, chord, map, starmap, chunks.

The names user code imports from ``django_tasks.canvas``, re-exported from
the modules that hold them:

- signatures.py: ``Signature`` and the canvas types, and ``signature()``,
  ``chain()``, ``chord()``;
- signature_data.py: a signature as the JSON data stored in headers;
- planning.py: a canvas turned into the messages to write (``Plan``);
- eager.py: a canvas run here and now (``apply()``, ``EAGER`` mode).
"""

from .eager import apply_eagerly, chord_error, fail_eagerly
from .planning import PAUSE_COLLECTOR_FROM, WRITE_EVERY, Plan, write_planned
from .signature_data import (
    MESSAGE_OPTIONS,
    UNIQUE_OPTIONS,
    WORKFLOW_OPTIONS,
    copy_tree,
    from_header,
    maybe_signature,
    signatures_to_header,
    to_header,
)
from .signatures import (
    Signature,
    _chain,
    _chord,
    chain,
    chord,
    chunks,
    group,
    signature,
    xmap,
    xstarmap,
)

__all__ = ["MESSAGE_OPTIONS", "PAUSE_COLLECTOR_FROM", "UNIQUE_OPTIONS", "WORKFLOW_OPTIONS",
           "WRITE_EVERY", "Plan", "Signature", "_chain", "_chord", "apply_eagerly", "chain",
           "chord", "chord_error", "chunks", "copy_tree", "fail_eagerly", "from_header", "group",
           "maybe_signature", "signature", "signatures_to_header", "to_header", "write_planned",
           "xmap", "xstarmap"]
