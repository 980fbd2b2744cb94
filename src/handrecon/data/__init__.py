"""handrecon.data: the common sample schema, dataset loaders and the synthetic data format."""

from handrecon.data.schema import DatasetError, HandAnnotation, Sample, box_from_keypoints, load_image

__all__ = ["DatasetError", "HandAnnotation", "Sample", "box_from_keypoints", "load_image"]
