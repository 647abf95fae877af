"""infograv.geodesic."""
