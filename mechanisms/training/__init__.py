"""Training code: IRPO (``irpo``), the pCTR reward model (``pctr``) and the warm start (``warmstart``).

The mechanisms in :mod:`mechanisms` serve what these modules produce (adapters, reward models); the
training modules import the mechanisms' shared pieces, never the other way round (MOSAIC loads a
fitted pCTR model through :func:`mechanisms.training.pctr.PCTRModel.load` lazily).
"""
