"""Gradient-decay analysis: how far back in time the gradient reaches, and why.

Every public function takes ``(model, batch, task)`` (a ``SequenceModel``, a ``tasks.Batch`` of
``task``), respects the batch's mask and sequence lengths (padding steps contribute nothing),
and returns one tidy pandas DataFrame in one column scheme, ``COLUMNS`` (quantity, stat, t, lag,
k, sample, n, value; documented in ``seqmem.analysis.scheme``).  ``make_probe`` records the very
same rows while a model trains.

- ``gradient_norms_by_lag``, ``input_saliency_by_step`` (gradients.py): ||dL/dh_t||,
  ||dL/dc_t||, ||dL/dx_t|| by lag from one backward pass.
- ``jacobian_norms_by_lag``, ``lyapunov_spectrum`` (jacobians.py): exact Jacobian products
  dh_T/dh_t, dc_T/dc_t (and their singular values) and Lyapunov exponents.
- ``gate_statistics``, ``forget_product_by_lag`` (gates.py): gate activations by lag, and the
  forget-gate product along the LSTM's cell-state path.
- ``connectivity`` (outputs.py): Madsen's (2019) ||dy_t'/dx_t|| for every output step t'
  and input step t.
- ``fit_decay`` (fits.py): decay factor, half-life, memory horizon of one quantity's rows, with
  confidence intervals over seeds; ``rnn_gradient_bound``: the Pascanu et al. (2013) bound, a
  property of the weights (it takes the model only).
- ``make_probe`` (probe.py): the training callback (what it records: a
  ``seqmem.config.ProbeConfig``); ``upgrade_probe_rows`` reads probe rows of older versions.
"""

from seqmem.analysis.fits import fit_decay, rnn_gradient_bound
from seqmem.analysis.gates import forget_product_by_lag, gate_statistics
from seqmem.analysis.gradients import gradient_norms_by_lag, input_saliency_by_step
from seqmem.analysis.jacobians import jacobian_norms_by_lag, lyapunov_spectrum
from seqmem.analysis.outputs import connectivity
from seqmem.analysis.probe import make_probe
from seqmem.analysis.scheme import COLUMNS, PROBE_COLUMNS, upgrade_probe_rows

__all__ = [
    "COLUMNS",
    "PROBE_COLUMNS",
    "gradient_norms_by_lag",
    "input_saliency_by_step",
    "jacobian_norms_by_lag",
    "lyapunov_spectrum",
    "gate_statistics",
    "forget_product_by_lag",
    "connectivity",
    "fit_decay",
    "rnn_gradient_bound",
    "make_probe",
    "upgrade_probe_rows",
]
