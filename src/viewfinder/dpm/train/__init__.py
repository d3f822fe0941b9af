"""Deformable Part Model training: voc-release's latent SVM pipeline (see docs/dpm_train.md).

Entry points: :func:`viewfinder.dpm.train.stages.train` (the resumable pipeline),
:func:`viewfinder.dpm.train.evaluate.evaluate` (held-out AP),
:class:`viewfinder.dpm.train.params.TrainParams` (every parameter, voc-release
defaults) and the solvers in :mod:`viewfinder.dpm.train.optimize`. Submodules are
imported on use; importing this package has no side effects.
"""
