"""edgemaxx: a validator for EdgeMaxxing-style text-to-image contests."""

__version__ = "0.1.0"
