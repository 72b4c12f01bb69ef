"""The supervision rules of the seed (《督办工作实施办法》): pure Python, no I/O."""
