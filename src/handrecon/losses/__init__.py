"""handrecon.losses"""

from handrecon.losses.mesh import edge_loss, normal_consistency_loss, normal_loss

__all__ = ["edge_loss", "normal_consistency_loss", "normal_loss"]
