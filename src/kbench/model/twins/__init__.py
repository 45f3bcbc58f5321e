"""The NumPy twins of Keras layers: one module per layer family, and :mod:`.registry` mapping class names to them."""
