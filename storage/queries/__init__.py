"""Every read query of a FlowStore: flows, the service map (its SQL shared with Grafana), L7 aggregates;
FlowFilters as SQL (filters); stored rows back into flows (rebuild)."""
