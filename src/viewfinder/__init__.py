"""viewfinder: vision pipelines for production.

Data flows one way: :mod:`viewfinder.media` (decode, colour, resize, encode) →
:mod:`viewfinder.runtime` (model specs, sessions, backends) → task packages
(:mod:`viewfinder.faces`, :mod:`viewfinder.detect`, :mod:`viewfinder.dpm`) →
:mod:`viewfinder.eval`, drawing and sinks. Nothing imports :mod:`viewfinder.cli`.

Importing the package has no side effects: subpackages are imported on use.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
