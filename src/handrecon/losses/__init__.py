"""handrecon.losses"""

from handrecon.losses.keypoints import focal_heatmap_loss, oks, oks_loss
from handrecon.losses.mesh import edge_loss, normal_consistency_loss, normal_loss

__all__ = ["edge_loss", "focal_heatmap_loss", "normal_consistency_loss", "normal_loss", "oks", "oks_loss"]
