"""handrecon: 3D hand reconstruction from single RGB images (HandOS and M3DHMR).

    import handrecon
    model = handrecon.load("m3dhmr-openhand")          # or a checkpoint dir / run dir / .onnx file
    result = model.predict(image, box=(x1, y1, x2, y2), side="left")

`load` is imported lazily, so `import handrecon` stays cheap.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "load":
        from handrecon.infer.predictor import load

        return load
    raise AttributeError(f"module 'handrecon' has no attribute {name!r}")
