"""The composition root: the FastAPI app that mounts every domain's router."""
