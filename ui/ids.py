"""Every component id of the UI, in one place, so pages, callbacks and browser tests agree."""

# frame (ui/app.py)
NAV = "nav"
STORE_BANNER = "store-banner"  # shown while the flow store does not answer
STORE_TICK = "store-tick"  # dcc.Interval that refreshes the banner

# service map page (ui/pages/service_map.py)
WINDOW = "window"  # radio: live, 5m, 1h, 24h, custom
SINCE = "since"  # custom range inputs
UNTIL = "until"
NAMESPACES = "namespaces"
POD = "pod"
LABEL = "label"
VERDICT = "verdict"
PROTOCOL = "protocol"
HTTP_STATUS = "http-status"
CHANGES = "changes"  # "what changed" switch
STATE = "view-state"  # dcc.Store: the validated ViewState (as a dict)
URL_SINK = "url-sink"  # dcc.Store written by the clientside callback that updates the address bar
FILTER_ERROR = "filter-error"
TICK = "live-tick"  # dcc.Interval of live mode
EXPANDED = "expanded-namespaces"  # dcc.Store: namespaces expanded by a click while the map is collapsed
MAP = "service-map"
MAP_SUMMARY = "map-summary"
SELECTION = "selection"  # dcc.Store: {"kind": "edge"|"node"|"namespaces", ...}
SELECTION_TEXT = "selection-text"
CLEAR_SELECTION = "clear-selection"
GRID = "flows-grid"
GRID_TOTAL = "flows-total"
GRID_RESET = "grid-reset"  # dcc.Store written by the clientside callback that purges the grid cache
DETAILS = "flow-details"
DETAILS_JSON = "flow-json"
RED = "http-red"
DNS = "dns-top"
DROPS = "drops-by-reason"

# policy page (ui/pages/policy.py)
POLICY_WORKLOAD = "policy-workload"
POLICY_VIEW = "policy-view"
POLICY_YAML = "policy-yaml"
POLICY_DOWNLOAD_BUTTON = "policy-download-button"
POLICY_DOWNLOAD = "policy-download"
