"""The M3DHMR family's registrations: importing this module registers the model factory
``m3dhmr``, the datasets ``m3dhmr_crops`` / ``m3dhmr_stream`` and the inference adapter
(`handrecon.registry`; the ``handrecon.families`` entry point names this module)."""

from handrecon.models.m3dhmr import data, inference  # noqa: F401 - imported to register the datasets and the adapter
from handrecon.models.m3dhmr.model import M3DHMR
from handrecon.registry import register_model


@register_model("m3dhmr")
def m3dhmr(**kwargs) -> M3DHMR:
    """Build M3DHMR from config kwargs (see `M3DHMR`)."""
    return M3DHMR(**kwargs)
