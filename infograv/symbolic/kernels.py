"""Potential kernels of the information-gravity model (model.md §3) as SymPy expressions."""
