"""infograv.geometry."""
