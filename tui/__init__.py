"""The Textual dashboard and the command line of txtop. No kernel access happens here."""

__version__ = "0.1.0"
