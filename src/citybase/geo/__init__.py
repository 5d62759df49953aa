"""Spatial base (时空底座): district → streets → communities → grids, buildings and addresses."""
