"""Order curation: raw order lines to curated ones, the input every domain reads."""
