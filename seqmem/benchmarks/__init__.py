"""Benchmarks of seqmem: one module per area, each with ``run(quick) -> DataFrame`` of ratios."""
