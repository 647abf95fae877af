"""infograv.model."""
