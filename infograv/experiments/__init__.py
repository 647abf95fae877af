"""infograv.experiments."""
