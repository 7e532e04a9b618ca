"""Benchmarks of tfx_explain against Captum 0.9 and the plain forward(+backward) limit."""
