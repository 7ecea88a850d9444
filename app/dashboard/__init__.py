"""The dashboard: the Streamlit entry point, its pages and the cached calls they share. Only this
package imports streamlit; the engine beside it never does (a lint rule says so)."""
