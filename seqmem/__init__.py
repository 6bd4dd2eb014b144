"""seqmem: measure and see why vanilla RNNs forget and LSTMs/GRUs remember.

Recurrent cells (``seqmem.cells``), the unrolled sequence model (``seqmem.model``),
training, gradient-decay analysis, resumable studies and reports.  Submodules are
imported explicitly so that ``import seqmem`` stays cheap.
"""

__version__ = "0.3.0"
