"""Common Ground: the engine (ingest, warehouse, analytics, export) and the Streamlit UI."""
