"""Map layers: pure builders from an aggregate to a pydeck layer and its legend, by name."""
