"""Visual product search: the embedding model, the vector index and the image API."""
