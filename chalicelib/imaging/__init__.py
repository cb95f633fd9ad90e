"""Pure imaging: decode, encode, operations and image analyses (arrays in, arrays or dicts out)."""
