"""The pages people use, served by the same process with assets from installed packages."""
