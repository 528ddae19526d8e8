"""Interop with other interpretability tools' data formats.

* :mod:`afscope.interop.introspective`: TransluceAI's introspective-interp (arXiv 2511.08579):
  :func:`export_introspective` writes folders its dataloaders read unchanged (hint_attribution,
  act_patch, features_explain) with a report of what loads and what cannot;
  :func:`import_introspective` reads its released datasets into afscope task folders.

This package sits above ``data``, ``counterfactual``, ``steer`` and ``explain`` and may import
them; none of them imports it.
"""

from afscope.interop.config import IIExportConfig, IIImportConfig
from afscope.interop.introspective import (
    export_introspective,
    import_introspective,
    read_rows,
    source_kind,
)

__all__ = ["IIExportConfig", "IIImportConfig", "export_introspective", "import_introspective",
           "read_rows", "source_kind"]
