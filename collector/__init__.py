"""The node collector: eBPF datapath, decoding and enrichment into flow.Flow, the node's Observer API."""
