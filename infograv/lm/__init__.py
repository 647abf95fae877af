"""infograv.lm."""
