"""tfx_explain: functional feature attribution for PyTorch, built on torch.func."""

__all__: list[str] = []
