"""cardgen: safety evidence for the fine-tuned checkpoint that is actually served.

>>> from cardgen.identity import fingerprint
>>> identity = fingerprint("path/to/checkpoint")          # doctest: +SKIP
>>> identity.weights_digest                                  # doctest: +SKIP
'sha256:4f1c...'
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cardgen")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
