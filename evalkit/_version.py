"""The package version, in a module of its own so that any evalkit module can read it without importing the
package's `__init__` (which would close an import cycle through its lazily imported entry points)."""

__version__ = "0.1.0"
