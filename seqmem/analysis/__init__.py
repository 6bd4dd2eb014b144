"""Gradient-decay analysis: how far back in time the gradient reaches, and why.

Every public function takes a model (and a task's batch or inputs) and returns a tidy pandas
DataFrame; ``make_probe`` records all of them while a model trains.

- ``gradient_norms_by_lag``, ``input_saliency_by_step`` (gradients.py): ||dL/dh_t||,
  ||dL/dc_t||, ||dL/dx_t|| by lag from one backward pass.
- ``jacobian_norms_by_lag``, ``lyapunov_spectrum`` (jacobians.py): exact Jacobian products
  dh_T/dh_t, dc_T/dc_t, forget-gate products, and Lyapunov exponents.
- ``gate_statistics`` (gates.py): gate activations by step.
- ``fit_decay``, ``rnn_gradient_bound`` (fits.py): decay factor, half-life, memory horizon with
  confidence intervals over seeds; the Pascanu et al. (2013) bound.
- ``make_probe`` (probe.py): the training callback, long probe rows (what it records: a
  ``seqmem.config.ProbeConfig``).
"""

from seqmem.analysis.fits import fit_decay, rnn_gradient_bound
from seqmem.analysis.gates import gate_statistics
from seqmem.analysis.gradients import gradient_norms_by_lag, input_saliency_by_step
from seqmem.analysis.jacobians import jacobian_norms_by_lag, lyapunov_spectrum
from seqmem.analysis.probe import PROBE_COLUMNS, make_probe, to_probe_rows

__all__ = [
    "gradient_norms_by_lag",
    "input_saliency_by_step",
    "jacobian_norms_by_lag",
    "lyapunov_spectrum",
    "gate_statistics",
    "fit_decay",
    "rnn_gradient_bound",
    "make_probe",
    "to_probe_rows",
    "PROBE_COLUMNS",
]
