"""impact: separate process quality from labour-market luck."""
__version__ = "0.1.0"
