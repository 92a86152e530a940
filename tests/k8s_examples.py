"""Where the tests find the real Kubernetes manifests: a copy kept in the
repository (tests/data/k8s-examples, from /work/shared/k8s-examples; their
upstream sources in SOURCES.md there), so a clean clone tests them without
the shared folder beside it. tests/unit/test_k8s_examples.py checks the copy
still matches the shared folder when that folder is present."""

from __future__ import annotations

from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent / "data" / "k8s-examples"
SHARED_EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "k8s-examples"
