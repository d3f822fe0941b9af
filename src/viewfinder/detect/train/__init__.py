"""YOLO training: the Darknet network in torch, its loss, augmentation, the recipe and the
bridge to VOC data and AP (``viewfinder train yolo``).

Built on the generic loop of :mod:`viewfinder.train` (trainer, hooks, mixed precision,
loss scaling). Needs the ``train`` extra (torch); modules import torch lazily. Training
code may read data sets and score AP (:mod:`viewfinder.datasets`, :mod:`viewfinder.eval`);
inference code in :mod:`viewfinder.detect` does not.
"""
