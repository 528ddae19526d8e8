"""afscope: detect, describe, steer and explain alignment faking in language models."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("afscope")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+src"
