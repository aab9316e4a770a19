"""Pure functions from query results (storage.results) to cytoscape elements, plotly figures and table
rows. No Dash callbacks, no store: unit-tested without a browser."""
